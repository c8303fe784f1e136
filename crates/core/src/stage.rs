//! The stage protocol shared by every stage binary (README, "Stage protocol").
//!
//! The runner executes `<cmd> --out DIR --params FILE.json [--input NAME=PATH]...`. DIR is a fresh
//! staging directory, FILE.json the stage's resolved params (every default filled in), each PATH a
//! read-only store path. The stage writes exactly one file (or directory) per declared output name into
//! DIR and exits 0.
//!
//! Two environment variables complete the protocol for built-in stages:
//! - `SCAN_CODE_IDENTITY`: the code identity the runner put into the key. A built-in stage binary
//!   whose own identity differs (a stale binary beside a fresh `scan`) refuses to run, so that it never
//!   writes results under a key computed for other code.
//! - `SCAN_PROVENANCE`: a file where the stage may record where and how it ran ([`Provenance`]:
//!   device, libtorch, threads, precision). The runner copies it into the action record, beside the
//!   key and never in it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use crate::builtin::Builtin;
use crate::params::StageParams;
pub use crate::store::Provenance;

/// Environment variable carrying the code identity the runner computed the key with.
pub const ENV_CODE_IDENTITY: &str = "SCAN_CODE_IDENTITY";
/// Environment variable naming the file a stage records its [`Provenance`] in.
pub const ENV_PROVENANCE: &str = "SCAN_PROVENANCE";

impl Provenance {
    /// Write to the file named by `SCAN_PROVENANCE`, if the runner set it.
    pub fn record(&self) -> std::io::Result<()> {
        let Some(path) = std::env::var_os(ENV_PROVENANCE) else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::util::atomic_write(Path::new(&path), &json)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("missing required input `{name}` (pass --input {name}=PATH)")]
    MissingInput { name: String },
    #[error("input `{0}` is given more than once")]
    DuplicateInput(String),
    #[error("bad --input `{0}`: expected NAME=PATH")]
    BadInputSpec(String),
    #[error("params file {path}: {source}")]
    ParamsIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "this {binary} was built from other sources (code identity {own}) than the `scan` that \
         computed the key ({expected}); rebuild both: cargo build --release"
    )]
    StaleBinary {
        binary: &'static str,
        own: String,
        expected: String,
    },
    #[error("params file {path}: parameter `{key}`: {message}")]
    Params {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Command-line arguments every stage binary accepts.
#[derive(Debug, Clone, Parser)]
pub struct StageArgs {
    /// Staging directory to write the declared outputs into.
    #[arg(long)]
    pub out: PathBuf,
    /// JSON file with the stage's resolved params.
    #[arg(long)]
    pub params: PathBuf,
    /// Inputs as NAME=PATH (repeatable).
    #[arg(long = "input", value_name = "NAME=PATH")]
    pub inputs: Vec<String>,
}

impl StageArgs {
    /// Parsed `(name, path)` pairs; names must be unique.
    pub fn input_pairs(&self) -> Result<Vec<(String, PathBuf)>, StageError> {
        let mut pairs: Vec<(String, PathBuf)> = Vec::new();
        for spec in &self.inputs {
            let (name, path) = spec
                .split_once('=')
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| StageError::BadInputSpec(spec.clone()))?;
            if pairs.iter().any(|(n, _)| n == name) {
                return Err(StageError::DuplicateInput(name.to_string()));
            }
            pairs.push((name.to_string(), PathBuf::from(path)));
        }
        Ok(pairs)
    }

    /// Path of a required input.
    pub fn input(&self, name: &str) -> Result<PathBuf, StageError> {
        self.optional_input(name)?
            .ok_or_else(|| StageError::MissingInput { name: name.into() })
    }

    /// Path of an optional input.
    pub fn optional_input(&self, name: &str) -> Result<Option<PathBuf>, StageError> {
        Ok(self
            .input_pairs()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p))
    }

    /// Where to write output `name`.
    pub fn output(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// Load the params file and check it against the stage's schema.
    pub fn load_params<T: StageParams>(&self) -> Result<T, StageError> {
        load_params_file(&self.params)
    }
}

/// Parse a params JSON file into `T`; errors name the file and the offending key path.
pub fn load_params_file<T: StageParams>(path: &Path) -> Result<T, StageError> {
    let text = fs_err::read_to_string(path).map_err(|source| StageError::ParamsIo {
        path: path.to_path_buf(),
        source,
    })?;
    parse_params(path, &text)
}

/// Parse params JSON text (`path` is only used in error messages).
pub fn parse_params<T: StageParams>(path: &Path, text: &str) -> Result<T, StageError> {
    let bad = |key: String, message: String| StageError::Params {
        path: path.to_path_buf(),
        key,
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad("(top level)".into(), e.to_string()))?;
    crate::params::parse(&value).map_err(|e| bad(e.key, e.message))
}

/// Refuse to run under a key computed for another code identity (see the module doc).
pub fn check_identity(builtin: Builtin) -> Result<(), StageError> {
    match std::env::var(ENV_CODE_IDENTITY) {
        Ok(expected) if expected != builtin.identity() => Err(StageError::StaleBinary {
            binary: builtin.binary(),
            own: builtin.identity().to_string(),
            expected,
        }),
        _ => Ok(()),
    }
}

/// The `main` of every stage binary: parse [`StageArgs`], run, print the error chain, map to an exit
/// code (0 ok, 1 stage failed).
pub fn stage_main(
    builtin: Builtin,
    run: impl FnOnce(&StageArgs) -> anyhow::Result<()>,
) -> ExitCode {
    let name = builtin.binary();
    let args = StageArgs::parse();
    let result = check_identity(builtin)
        .map_err(anyhow::Error::from)
        .and_then(|()| run(&args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct P {
        epochs: u32,
    }

    impl StageParams for P {}

    #[test]
    fn unknown_key_is_named() {
        let err =
            parse_params::<P>(Path::new("p.json"), r#"{"epochs": 3, "epochz": 1}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("p.json") && msg.contains("epochz"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key() {
        let err = parse_params::<P>(Path::new("p.json"), r#"{"epochs": "x"}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`epochs`"), "{msg}");
    }

    #[test]
    fn inputs_parse() {
        let a = StageArgs {
            out: "o".into(),
            params: "p".into(),
            inputs: vec!["train=/a/b".into(), "test=/c".into()],
        };
        assert_eq!(a.input("test").unwrap(), PathBuf::from("/c"));
        assert!(a.input("nope").unwrap_err().to_string().contains("nope"));
    }
}
