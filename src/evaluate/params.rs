//! Params and input paths of stage `evaluate` (spec section 8).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::inputs::{self, input_role, CURVES_PREFIX};
use super::EvalError;
use crate::report::Published;
use crate::stage::StageArgs;

fn default_batch_size() -> usize {
    256
}
fn default_grid_top() -> usize {
    8
}
fn default_grid_max_clusters() -> usize {
    20
}
fn default_nn_anchors() -> usize {
    8
}
fn default_nn_neighbors() -> usize {
    10
}

/// Params of stage `evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalParams {
    /// Prediction batch size.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Most confident samples shown per cluster beside its prototype.
    #[serde(default = "default_grid_top")]
    pub grid_top: usize,
    /// Clusters shown in the prototype grid (the first ones).
    #[serde(default = "default_grid_max_clusters")]
    pub grid_max_clusters: usize,
    /// Anchors in the nearest-neighbour grid.
    #[serde(default = "default_nn_anchors")]
    pub nn_anchors: usize,
    /// Neighbours shown per anchor.
    #[serde(default = "default_nn_neighbors")]
    pub nn_neighbors: usize,
    /// Published numbers to show; default: from the test split's dataset name.
    #[serde(default)]
    pub published: Option<Published>,
}

impl Default for EvalParams {
    fn default() -> Self {
        EvalParams {
            batch_size: default_batch_size(),
            grid_top: default_grid_top(),
            grid_max_clusters: default_grid_max_clusters(),
            nn_anchors: default_nn_anchors(),
            nn_neighbors: default_nn_neighbors(),
            published: None,
        }
    }
}

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
}

impl EvalInputs {
    /// From the stage's `--input` pairs; unknown names are an error.
    pub fn from_args(args: &StageArgs) -> Result<Self, EvalError> {
        let pairs = args.input_pairs()?;
        if let Some((n, _)) = pairs.iter().find(|(n, _)| input_role(n).is_none()) {
            return Err(EvalError::Inputs(format!(
                "unknown input `{n}` (expected weights, test, train, neighbors, mine_metrics, \
                 {CURVES_PREFIX}*)"
            )));
        }
        Ok(EvalInputs {
            weights: args.input("weights")?,
            test: args.input("test")?,
            train: args.optional_input("train")?,
            neighbors: args.optional_input("neighbors")?,
            mine_metrics: args.optional_input("mine_metrics")?,
            curves: inputs::curves_inputs(&pairs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_and_unknown_keys() {
        let p: EvalParams = crate::stage::parse_params(Path::new("p.json"), "{}").unwrap();
        assert_eq!(p, EvalParams::default());
        assert_eq!(p.batch_size, 256);
        let p: EvalParams =
            crate::stage::parse_params(Path::new("p.json"), r#"{"published": "cifar100-20"}"#)
                .unwrap();
        assert_eq!(p.published, Some(Published::Cifar100_20));
        let e = crate::stage::parse_params::<EvalParams>(Path::new("p.json"), r#"{"publish": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("publish"), "{e}");
        assert!(crate::stage::parse_params::<EvalParams>(
            Path::new("p.json"),
            r#"{"published": "imagenet"}"#
        )
        .is_err());
    }
}
