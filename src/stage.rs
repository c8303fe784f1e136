//! The stage protocol shared by every stage binary (README, "Stage protocol").
//!
//! The runner executes `<cmd> --out DIR --params FILE.json [--input NAME=PATH]...`. DIR is a fresh
//! staging directory, FILE.json the stage's resolved params, each PATH a read-only store path. The stage
//! writes exactly one file (or directory) per declared output name into DIR and exits 0.
//!
//! This module also holds the *code identity* of the built-in stages: each declares an implementation
//! version, bumped whenever its algorithm or output format changes. The runner puts it in the stage key,
//! so rebuilding the project with a stage unchanged never invalidates its cached results.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde::de::DeserializeOwned;

/// Built-in stage binaries and their implementation versions (bump on any change of results).
pub const BUILTIN_STAGES: &[(&str, u32)] = &[
    ("scan-ingest", 1),
    ("scan-pretext", 1),
    ("scan-embed", 1),
    ("scan-mine", 1),
    ("scan-cluster", 1),
    ("scan-selflabel", 1),
    ("scan-evaluate", 1),
];

/// Implementation version of a built-in stage binary, `None` for anything else.
pub fn builtin_version(binary: &str) -> Option<u32> {
    BUILTIN_STAGES
        .iter()
        .find(|(name, _)| *name == binary)
        .map(|&(_, v)| v)
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

    /// Load and type-check the params file. Use `#[serde(deny_unknown_fields)]` on `T` so that a typo
    /// is an error naming the key.
    pub fn load_params<T: DeserializeOwned>(&self) -> Result<T, StageError> {
        load_params_file(&self.params)
    }
}

/// Parse a params JSON file into `T`; errors name the file and the offending key path.
pub fn load_params_file<T: DeserializeOwned>(path: &Path) -> Result<T, StageError> {
    let text = fs_err::read_to_string(path).map_err(|source| StageError::ParamsIo {
        path: path.to_path_buf(),
        source,
    })?;
    parse_params(path, &text)
}

/// Parse params JSON text (`path` is only used in error messages).
pub fn parse_params<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, StageError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        StageError::Params {
            path: path.to_path_buf(),
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// The `main` of every stage binary: parse [`StageArgs`], run, print the error chain, map to an exit
/// code (0 ok, 1 stage failed).
pub fn stage_main(name: &str, run: impl FnOnce(&StageArgs) -> anyhow::Result<()>) -> ExitCode {
    let args = StageArgs::parse();
    match run(&args) {
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct P {
        #[allow(dead_code)]
        epochs: u32,
    }

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
