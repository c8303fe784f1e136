//! Errors of the `ingest` stage: every message names the offending file, folder or URL.

use std::path::PathBuf;

use super::DataError;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A filesystem error; `fs_err` already puts the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A raw file or folder whose content is wrong (truncated, bad magic, label out of range, ...).
    #[error("{path}: {message}")]
    Bad { path: PathBuf, message: String },
    /// Raw files that could not be found; the message says which files to put where.
    #[error("{0}")]
    Missing(String),
    /// Params that are valid JSON but make no sense together.
    #[error("params: {0}")]
    Params(String),
    #[error(transparent)]
    Data(#[from] DataError),
    /// A failed download (`download = true`).
    #[error(transparent)]
    Download(#[from] super::download::DownloadError),
}

impl IngestError {
    /// A [`IngestError::Bad`] for `path`.
    pub fn bad(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        IngestError::Bad {
            path: path.into(),
            message: message.into(),
        }
    }
}
