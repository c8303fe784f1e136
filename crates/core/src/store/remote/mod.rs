//! Remote stores (README "Sharing"): the local store's content mirrored on S3 (and S3-compatible
//! servers), GCS, Azure, an HTTP/WebDAV server or a directory, through the `object_store` crate.
//!
//! Layout on the remote, under the URL's prefix, mirrors the local store:
//! - `blobs/<2 hex>/<blake3>`: file contents and directory manifests;
//! - `actions/<key>.json`: action records, uploaded only after every blob they name.
//!
//! Everything is addressed by key or content hash, so no listing is ever needed: a lookup is one
//! GET of `actions/<key>.json`, "does the remote have this blob" one HEAD. Every downloaded blob is
//! streamed to a temp file under `<store>/tmp/`, hashed, and renamed into the store only when its
//! BLAKE3 matches its name; records are checked (key = hash of manifest, outputs as declared). A
//! reader therefore never sees a record whose blobs are missing, and an interrupted transfer leaves
//! nothing half-visible on either side (servers commit a PUT or a multipart upload atomically).
//!
//! Modules: [`spec`] (URLs), [`client`] (the connection, built lazily), [`retry`] (backoff),
//! [`objects`] (single-object operations), [`sync`] (records and their blobs), [`error`].
//! The `Remote` value itself does no I/O until an operation needs the remote.

pub mod client;
pub mod error;
pub mod objects;
pub mod retry;
pub mod spec;
pub mod sync;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

pub use error::{chain, RemoteError};
pub use spec::{RemoteSpec, Scheme};
pub use sync::Transfer;

/// Environment variable naming the remote (overrides `[remote] url`; `none` disables it).
pub const ENV_REMOTE: &str = "SCAN_REMOTE";

/// Counters of what this process sent and received.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub downloaded_objects: AtomicU64,
    pub downloaded_bytes: AtomicU64,
    pub uploaded_objects: AtomicU64,
    pub uploaded_bytes: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub downloaded_objects: u64,
    pub downloaded_bytes: u64,
    pub uploaded_objects: u64,
    pub uploaded_bytes: u64,
}

/// A remote store. Cheap to create: the connection is built on first use.
pub struct Remote {
    spec: RemoteSpec,
    client: OnceLock<client::Client>,
    connect_lock: Mutex<()>,
    policy: retry::RetryPolicy,
    /// Set once a request failed for a transient reason after all retries: the remote is down
    /// for the rest of this process and is not asked again.
    down: AtomicBool,
    /// Objects found corrupt on download: `push` overwrites them even though they exist.
    bad: Mutex<BTreeSet<String>>,
    stats: Stats,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.spec.url)
            .finish()
    }
}

impl Remote {
    /// A remote for `url` (`endpoint`: S3-compatible endpoint). No I/O.
    pub fn new(url: &str, endpoint: Option<&str>) -> Result<Remote, RemoteError> {
        Ok(Remote {
            spec: RemoteSpec::parse(url, endpoint)?,
            client: OnceLock::new(),
            connect_lock: Mutex::new(()),
            policy: retry::RetryPolicy::default(),
            down: AtomicBool::new(false),
            bad: Mutex::new(BTreeSet::new()),
            stats: Stats::default(),
        })
    }

    /// The URL, as messages print it (it never holds credentials).
    pub fn url(&self) -> &str {
        &self.spec.url
    }

    pub fn spec(&self) -> &RemoteSpec {
        &self.spec
    }

    /// Whether a request of this process already found the remote down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether this process has connected (i.e. sent or tried to send a request).
    pub fn connected(&self) -> bool {
        self.client.get().is_some()
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: g(&s.requests),
            downloaded_objects: g(&s.downloaded_objects),
            downloaded_bytes: g(&s.downloaded_bytes),
            uploaded_objects: g(&s.uploaded_objects),
            uploaded_bytes: g(&s.uploaded_bytes),
        }
    }

    /// The connection, built on first use.
    pub(crate) fn client(&self) -> Result<&client::Client, RemoteError> {
        if self.is_down() {
            return Err(RemoteError::Unavailable {
                remote: self.spec.url.clone(),
            });
        }
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let _guard = self.connect_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.client.get().is_none() {
            let c = client::connect(&self.spec)?;
            let _ = self.client.set(c);
        }
        self.client.get().ok_or_else(|| RemoteError::Unavailable {
            remote: self.spec.url.clone(),
        })
    }

    fn mark_bad(&self, object: &str) {
        if let Ok(mut b) = self.bad.lock() {
            b.insert(object.to_string());
        }
    }

    fn is_bad(&self, object: &str) -> bool {
        self.bad.lock().map(|b| b.contains(object)).unwrap_or(false)
    }
}

/// The relative object name of a blob: `blobs/<2 hex>/<hash>`.
pub fn blob_object(hash: &str) -> String {
    format!("blobs/{}/{hash}", &hash[..2.min(hash.len())])
}

/// The relative object name of an action record: `actions/<key>.json`.
pub fn action_object(key: &str) -> String {
    format!("actions/{key}.json")
}
