//! Action records `actions/<key>.json`: what building one stage key produced (output hashes and kinds),
//! the key manifest it was built from, how long it took, where and when. Written last and atomically:
//! a record exists only once all its blobs are committed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{canonical_json, Digest, Result, StageKey, Store, StoreError};

/// Schema version of action records.
pub const ACTION_SCHEMA: u32 = 1;

/// Whether an output is a single file or a directory (manifest blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    File,
    Dir,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::File => "file",
            OutputKind::Dir => "dir",
        }
    }
}

/// A stored output: its content hash and kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRef {
    pub hash: Digest,
    pub kind: OutputKind,
}

/// Where and how a stage ran: recorded beside its result, never part of its key (a pretext trained
/// on a GPU is reused on a CPU and the other way round).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    /// `cpu` or `cuda`.
    pub device: String,
    /// The GPU's name, when one was used.
    pub device_name: Option<String>,
    pub libtorch: Option<String>,
    /// CUDA available to libtorch (`available` / `not available`).
    pub cuda: Option<String>,
    pub threads: usize,
    /// Training precision (`fp32`, …).
    pub precision: Option<String>,
}

/// One action record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRecord {
    pub schema: u32,
    pub key: StageKey,
    pub stage: String,
    /// The canonical key manifest; `key` is the BLAKE3 of its canonical JSON.
    pub manifest: serde_json::Value,
    pub outputs: BTreeMap<String, OutputRef>,
    pub duration_s: f64,
    pub host: String,
    /// Unix time (seconds) the build started.
    pub started_at: u64,
    /// Where and how the stage ran, as it reported it (never part of the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl ActionRecord {
    /// Parse and check a record: schema, key = hash(manifest), hashes well-formed.
    pub fn parse(path: &std::path::Path, bytes: &[u8]) -> Result<ActionRecord> {
        let rec: ActionRecord =
            serde_json::from_slice(bytes).map_err(|source| StoreError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let bad = |message: String| StoreError::BadAction {
            path: path.to_path_buf(),
            message,
        };
        if rec.schema != ACTION_SCHEMA {
            return Err(bad(format!("unsupported schema {}", rec.schema)));
        }
        let actual = StageKey::of_manifest(&canonical_json(&rec.manifest));
        if actual != rec.key {
            return Err(bad(format!(
                "key {} does not match its manifest ({actual})",
                rec.key
            )));
        }
        Ok(rec)
    }
}

impl Store {
    /// The record for `key`, or `None` when there is none (or it is unreadable).
    pub fn read_action(&self, key: &str) -> Option<ActionRecord> {
        let path = self.action_path(key);
        let bytes = std::fs::read(&path).ok()?;
        ActionRecord::parse(&path, &bytes)
            .ok()
            .filter(|r| *r.key == *key)
    }

    /// Where a record fetched from a remote is kept while its outputs are not (all) in this
    /// store: `remote-actions/<key>.json`. It lets keys downstream be computed, and a later run
    /// find the result, without a network request; `scan pull` or a run that needs the outputs
    /// downloads them and moves the record to `actions/`.
    pub fn remote_action_path(&self, key: &str) -> std::path::PathBuf {
        self.root.join("remote-actions").join(format!("{key}.json"))
    }

    /// The remembered remote record for `key` (see [`Store::remote_action_path`]).
    pub fn read_remote_action(&self, key: &str) -> Option<ActionRecord> {
        let path = self.remote_action_path(key);
        let bytes = std::fs::read(&path).ok()?;
        ActionRecord::parse(&path, &bytes)
            .ok()
            .filter(|r| *r.key == *key)
    }

    /// Remember a record fetched from a remote (atomically).
    pub fn write_remote_action(&self, rec: &ActionRecord) -> Result<()> {
        let path = self.remote_action_path(&rec.key);
        let bytes = serde_json::to_vec_pretty(rec).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        crate::util::atomic_write(&path, &bytes)?;
        Ok(())
    }

    /// Drop the remembered remote record of `key` (its outputs are local now, or it was bad).
    pub fn forget_remote_action(&self, key: &str) {
        let _ = std::fs::remove_file(self.remote_action_path(key));
    }

    /// Keys of the remembered remote records.
    pub fn remote_action_keys(&self) -> Result<Vec<String>> {
        let dir = self.dir("remote-actions");
        let mut keys = Vec::new();
        if dir.is_dir() {
            for entry in fs_err::read_dir(&dir)? {
                let name = entry?.file_name();
                if let Some(k) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                    if super::is_hash(k) {
                        keys.push(k.to_string());
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Write a record atomically.
    pub fn write_action(&self, rec: &ActionRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(|source| StoreError::Json {
            path: self.action_path(&rec.key),
            source,
        })?;
        crate::util::atomic_write(&self.action_path(&rec.key), &bytes)?;
        Ok(())
    }

    /// Whether every output of the record is present in the store.
    pub fn has_outputs(&self, rec: &ActionRecord) -> bool {
        rec.outputs.values().all(|o| self.has_output(o))
    }

    pub fn has_output(&self, o: &OutputRef) -> bool {
        match o.kind {
            OutputKind::File => self.has_blob(&o.hash),
            OutputKind::Dir => self.has_tree(&o.hash),
        }
    }

    /// Path of an output as a stage or user should read it (blob file or materialised tree).
    pub fn output_path(&self, o: &OutputRef) -> Result<std::path::PathBuf> {
        match o.kind {
            OutputKind::File if self.has_blob(&o.hash) => Ok(self.blob_path(&o.hash)),
            OutputKind::File => Err(StoreError::MissingBlob {
                hash: o.hash.to_string(),
            }),
            OutputKind::Dir => self.materialise_tree(&o.hash),
        }
    }

    /// Keys of all action records in the store.
    pub fn action_keys(&self) -> Result<Vec<String>> {
        let dir = self.dir("actions");
        let mut keys = Vec::new();
        if dir.is_dir() {
            for entry in fs_err::read_dir(&dir)? {
                let name = entry?.file_name();
                if let Some(k) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                    if super::is_hash(k) {
                        keys.push(k.to_string());
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}
