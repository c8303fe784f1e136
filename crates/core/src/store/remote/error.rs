//! Typed errors of remote operations. Every error names the remote (its URL, which never holds
//! credentials) and, where there is one, the object; the underlying cause is kept as `source`.

use std::path::PathBuf;

use crate::store::StoreError;

/// An error talking to a remote or moving bytes between it and the local store.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote URL `{url}`: {message}")]
    BadUrl { url: String, message: String },
    #[error("remote {remote}: cannot set up the client")]
    Config {
        remote: String,
        #[source]
        source: object_store::Error,
    },
    #[error("remote {remote}: cannot start the I/O runtime")]
    Runtime {
        remote: String,
        #[source]
        source: std::io::Error,
    },
    /// A request failed: after `attempts` tries for a transient error (network, 5xx, throttling),
    /// at once for a permanent one (permission, bad request).
    #[error("remote {remote}: {op} {object} failed after {attempts} attempt(s)")]
    Request {
        remote: String,
        op: &'static str,
        object: String,
        attempts: u32,
        transient: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A downloaded object did not hash to its name; it was refused (never entered the store).
    #[error("remote {remote}: object {object} is corrupt: its contents hash to {actual}, expected {expected}; refused")]
    Corrupt {
        remote: String,
        object: String,
        expected: String,
        actual: String,
    },
    #[error("remote {remote}: action record {object} is invalid: {message}")]
    BadRecord {
        remote: String,
        object: String,
        message: String,
    },
    #[error("remote {remote}: {object} is missing on the remote")]
    Missing { remote: String, object: String },
    #[error("remote {remote}: {object}: local file {path}")]
    LocalIo {
        remote: String,
        object: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An earlier request of this process found the remote down; it is not asked again.
    #[error("remote {remote} is unavailable (an earlier request failed)")]
    Unavailable { remote: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RemoteError {
    /// Whether the remote looks down or unreachable (as opposed to a wrong object or a local
    /// problem): `scan run` then warns and builds locally.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RemoteError::Request { transient, .. } => *transient,
            RemoteError::Unavailable { .. } => true,
            _ => false,
        }
    }
}

/// `error: cause: cause…` on one line (for warnings that are not followed by a cause list).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}
