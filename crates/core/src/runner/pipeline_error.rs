//! Why a pipeline file is invalid: one variant per kind of error, each naming the file, stage and key.

use std::path::PathBuf;

/// Why a pipeline file is invalid (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: TOML syntax error: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}{}: {context}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Schema {
        path: PathBuf,
        context: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{path}: stage `{stage}`: parameter `{key}`: {message}")]
    Param {
        path: PathBuf,
        stage: String,
        key: String,
        message: String,
    },
    #[error("{path}: stage `{stage}`: no `data_dir` input and no default data folder: declare `inputs = {{ data_dir = \"...\" }}`, set $SCAN_DATA_DIR to an existing folder, or set the param `download = true`")]
    NoDataDir { path: PathBuf, stage: String },
    #[error("{path}: {context}: `{key}` must be {expected}, found {found}")]
    WrongType {
        path: PathBuf,
        context: String,
        key: String,
        expected: &'static str,
        found: String,
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
