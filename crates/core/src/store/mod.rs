//! Content-addressed artifact store (README "Store layout").
//!
//! Layout under the store root (default `<workspace>/artifacts/`):
//! - `blobs/<2 hex>/<hash>`: file contents addressed by BLAKE3, read-only (0444). A directory output is
//!   stored as its files' blobs plus a manifest blob (see [`tree`]).
//! - `trees/<manifest hash>/`: a read-only materialisation of a directory output (hard links to blobs).
//! - `actions/<key>.json`: action records (stage key → output hashes, key manifest, duration, host, start).
//! - `locks/<key>.lock`: per-key flock files holding `pid`/`host` of the builder; `locks/store.lock` is
//!   shared by runs and taken exclusively by `gc`/`verify`.
//! - `logs/<key>.log`, `runs/` (small run log for `gc --keep-runs`), `statcache.json`, `tmp/` (staging),
//!   `quarantine/` (corrupt blobs found by `verify`).
//! - `remote-actions/<key>.json`: records fetched from a remote whose outputs are not downloaded
//!   (see [`remote`]); `roots/<id>.json`: the lock files of the workspaces using this store (gc roots).
//!
//! Every file is written atomically (temp file, fsync, rename) so a crash leaves either nothing or a whole file.

pub mod action;
pub mod blob;
pub mod canon;
pub mod digest;
pub mod gc;
pub mod lock;
pub mod remote;
pub mod statcache;
pub mod transfer;
pub mod tree;
pub mod verify;

use std::path::{Path, PathBuf};

pub use action::{ActionRecord, OutputKind, OutputRef, Provenance};
pub use canon::{canonical_json, hash_bytes, hash_file, is_hash, short};
pub use digest::{Digest, StageKey};

/// Errors of store operations; each names the offending path, hash or entry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("output {path} is a symbolic link (outputs must be regular files or directories)")]
    Symlink { path: PathBuf },
    #[error("output {path} is neither a regular file nor a directory")]
    NotRegular { path: PathBuf },
    #[error("{path}: file name is not valid UTF-8")]
    NonUtf8 { path: PathBuf },
    #[error("blob {hash} is missing from the store")]
    MissingBlob { hash: String },
    #[error("blob {hash} is corrupt (contents hash to {actual})")]
    CorruptBlob { hash: String, actual: String },
    #[error("directory manifest {hash}: {message}")]
    BadManifest { hash: String, message: String },
    #[error("action record {path}: {message}")]
    BadAction { path: PathBuf, message: String },
    #[error("import {file}: entry `{entry}`: {message}")]
    Import {
        file: PathBuf,
        entry: String,
        message: String,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A store rooted at a directory; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store at `root` (created lazily by the operations that write).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, hash: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(&hash[..2.min(hash.len())])
            .join(hash)
    }

    pub fn tree_path(&self, hash: &str) -> PathBuf {
        self.root.join("trees").join(hash)
    }

    pub fn action_path(&self, key: &str) -> PathBuf {
        self.root.join("actions").join(format!("{key}.json"))
    }

    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.lock"))
    }

    pub fn log_path(&self, key: &str) -> PathBuf {
        self.root.join("logs").join(format!("{key}.log"))
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// A fresh directory under `<store>/tmp/` named `<prefix>.<pid>.<random>`.
    pub fn temp_dir(&self, prefix: &str) -> Result<PathBuf> {
        let tmp = self.dir("tmp");
        fs_err::create_dir_all(&tmp)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}.{}.", std::process::id()))
            .tempdir_in(&tmp)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))?;
        Ok(dir.keep())
    }

    pub fn has_blob(&self, hash: &str) -> bool {
        is_hash(hash) && self.blob_path(hash).is_file()
    }
}

/// The name of this host (for lock holders and action records).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Remove a directory tree that may contain read-only files and directories.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs_err::remove_file(path);
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    fs_err::remove_dir_all(path)
}
