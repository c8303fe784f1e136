//! `pipeline.lock` beside the pipeline file: per stage the key, cmd, code identity, params, input hashes
//! and output hashes of its last successful build. TOML, sorted, no timestamps: it is stable under reruns
//! and meant to be committed. `scan explain` compares the current state against it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::key::{InputHash, Resolved};
use super::pipeline::Stage;
use crate::store::{Digest, OutputKind, OutputRef, StageKey};

pub const LOCK_VERSION: u32 = 2;
const HEADER: &str =
    "# Written by `scan run`; commit it with pipeline.toml. Do not edit by hand.\n";

/// One recorded input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInput {
    pub hash: Digest,
    pub kind: OutputKind,
    pub source: String,
}

/// One stage's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    pub key: StageKey,
    pub cmd: Vec<String>,
    pub code: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code_files: BTreeMap<String, Digest>,
    /// Dotted keys of the params written in the pipeline file or `--set` (the rest are defaults).
    /// (Before `params`: TOML emits plain values before tables.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit: Option<Vec<String>>,
    /// Resolved params (defaults included).
    #[serde(default)]
    pub params: Value,
    #[serde(default)]
    pub inputs: BTreeMap<String, LockInput>,
    pub outputs: BTreeMap<String, OutputRef>,
}

impl LockEntry {
    pub fn new(
        stage: &Stage,
        resolved: &Resolved,
        key: &StageKey,
        inputs: &BTreeMap<String, InputHash>,
        outputs: &BTreeMap<String, OutputRef>,
    ) -> LockEntry {
        LockEntry {
            key: key.clone(),
            cmd: stage.cmd.clone(),
            code: resolved.code.clone(),
            code_files: resolved.code_files.clone(),
            params: crate::store::canon::sorted(&stage.params),
            explicit: Some(super::params::flatten(&stage.written).into_keys().collect()),
            inputs: inputs
                .iter()
                .map(|(n, i)| {
                    (
                        n.clone(),
                        LockInput {
                            hash: i.hash.clone(),
                            kind: i.kind,
                            source: i.source.clone(),
                        },
                    )
                })
                .collect(),
            outputs: outputs.clone(),
        }
    }
}

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    #[serde(default)]
    pub stages: BTreeMap<String, LockEntry>,
}

impl Default for LockFile {
    fn default() -> Self {
        LockFile {
            version: LOCK_VERSION,
            stages: BTreeMap::new(),
        }
    }
}

/// Errors reading or writing the lock file.
#[derive(Debug, thiserror::Error)]
pub enum LockFileError {
    #[error("{path}: {message} (delete it to start over; `scan run` rewrites it)")]
    Parse {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl LockFile {
    /// Read `path`; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<LockFile, LockFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockFile::default()),
            Err(e) => {
                return Err(
                    std::io::Error::new(e.kind(), format!("{}: {e}", path.display())).into(),
                )
            }
        };
        toml::from_str(&text).map_err(|e| LockFileError::Parse {
            path: path.into(),
            message: e.to_string().trim().into(),
        })
    }

    /// Canonical TOML text.
    pub fn to_text(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(self)?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Write atomically if the content differs from what is on disk.
    pub fn write_if_changed(&self, path: &Path) -> Result<bool, LockFileError> {
        let text = self.to_text().map_err(|e| LockFileError::Parse {
            path: path.into(),
            message: format!("cannot serialise: {e}"),
        })?;
        if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        crate::util::atomic_write(path, text.as_bytes())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_stable() {
        let mut lock = LockFile::default();
        lock.stages.insert(
            "b".into(),
            LockEntry {
                key: StageKey::of_manifest("{}"),
                cmd: vec!["sh".into(), "x.sh".into()],
                code: "exe:00".into(),
                code_files: BTreeMap::from([("x.sh".into(), Digest::of(b"1"))]),
                params: serde_json::json!({"lr": 0.5, "n": 3, "sub": {"x": "y"}}),
                explicit: Some(vec!["lr".into()]),
                inputs: BTreeMap::from([(
                    "i".into(),
                    LockInput {
                        hash: Digest::of(b"2"),
                        kind: OutputKind::File,
                        source: "a.o".into(),
                    },
                )]),
                outputs: BTreeMap::from([(
                    "o".into(),
                    OutputRef {
                        hash: Digest::of(b"3"),
                        kind: OutputKind::Dir,
                    },
                )]),
            },
        );
        let text = lock.to_text().unwrap();
        let back: LockFile = toml::from_str(&text).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.to_text().unwrap(), text);
        assert!(text.contains("lr = 0.5"), "{text}");
    }
}
