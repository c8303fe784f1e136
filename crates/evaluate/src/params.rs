//! Input paths of stage `evaluate` (METHOD.md §8); its params schema is `scan_core::params::EvalParams`.

use std::path::PathBuf;

use super::inputs::{self, input_role, COMPARE_PREFIX, CURVES_PREFIX};
use super::EvalError;
#[cfg(test)]
use crate::report::Published;
pub use scan_core::params::EvalParams;
use scan_core::stage::StageArgs;

/// Input paths of stage `evaluate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalInputs {
    pub weights: PathBuf,
    pub test: PathBuf,
    pub train: Option<PathBuf>,
    pub neighbors: Option<PathBuf>,
    pub mine_metrics: Option<PathBuf>,
    /// `(input name, path)` of each `curves_*` input, sorted by name.
    pub curves: Vec<(String, PathBuf)>,
    /// `(input name, path)` of each `compare_*` input (metrics shown beside this run), sorted.
    pub compare: Vec<(String, PathBuf)>,
}

impl EvalInputs {
    /// From the stage's `--input` pairs; unknown names are an error.
    pub fn from_args(args: &StageArgs) -> Result<Self, EvalError> {
        let pairs = args.input_pairs()?;
        if let Some((n, _)) = pairs.iter().find(|(n, _)| input_role(n).is_none()) {
            return Err(EvalError::Inputs(format!(
                "unknown input `{n}` (expected weights, test, train, neighbors, mine_metrics, \
                 {CURVES_PREFIX}*, {COMPARE_PREFIX}*)"
            )));
        }
        Ok(EvalInputs {
            weights: args.input("weights")?,
            test: args.input("test")?,
            train: args.optional_input("train")?,
            neighbors: args.optional_input("neighbors")?,
            mine_metrics: args.optional_input("mine_metrics")?,
            curves: inputs::curves_inputs(&pairs),
            compare: inputs::inputs_of(&pairs, inputs::InputRole::Compare),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_and_unknown_keys() {
        let p: EvalParams = scan_core::stage::parse_params(Path::new("p.json"), "{}").unwrap();
        assert_eq!(p, EvalParams::default());
        assert_eq!(p.batch_size, 256);
        let p: EvalParams =
            scan_core::stage::parse_params(Path::new("p.json"), r#"{"published": "cifar100-20"}"#)
                .unwrap();
        assert_eq!(p.published, Some(Published::Cifar100_20));
        let e =
            scan_core::stage::parse_params::<EvalParams>(Path::new("p.json"), r#"{"publish": 1}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("publish"), "{e}");
        assert!(scan_core::stage::parse_params::<EvalParams>(
            Path::new("p.json"),
            r#"{"published": "imagenet"}"#
        )
        .is_err());
    }
}
