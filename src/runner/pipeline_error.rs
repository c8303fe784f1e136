//! Why a pipeline file is invalid: one variant per kind of error, each naming the file, stage and key.

use std::path::PathBuf;

/// Why a pipeline file is invalid (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: TOML syntax error: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {context}: unknown field `{key}` (allowed: {allowed})")]
    UnknownField {
        path: PathBuf,
        context: String,
        key: String,
        allowed: &'static str,
    },
    #[error("{path}: {context}: `{key}` must be {expected}, found {found}")]
    WrongType {
        path: PathBuf,
        context: String,
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("{path}: stage `{stage}`: missing required field `{key}`")]
    Missing {
        path: PathBuf,
        stage: String,
        key: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: stage `{stage}`: input `{input}` = \"{reference}\": stage `{upstream}` has no output `{output}` (it declares: {declared})")]
    UnknownOutput {
        path: PathBuf,
        stage: String,
        input: String,
        reference: String,
        upstream: String,
        output: String,
        declared: String,
    },
    #[error("{path}: stage `{stage}`: input `{input}` = \"{reference}\" is neither `<stage>.<output>` of a known stage nor an existing path ({resolved})")]
    MissingPath {
        path: PathBuf,
        stage: String,
        input: String,
        reference: String,
        resolved: PathBuf,
    },
    #[error("{path}: stage `{stage}`: output `{output}` is declared twice")]
    DuplicateOutput {
        path: PathBuf,
        stage: String,
        output: String,
    },
    #[error("{path}: dependency cycle: {cycle}")]
    Cycle { path: PathBuf, cycle: String },
    #[error("{path}: no stages defined (add a [stages.NAME] table)")]
    Empty { path: PathBuf },
}
