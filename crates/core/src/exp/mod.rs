//! Experiments: every `scan run` is recorded as an experiment — the base pipeline as `base`, each
//! variant of a sweep (or of a `--set`) under its name — in `<pipeline>.experiments.json` beside the
//! pipeline file. A record holds the variant's overrides and, per stage, the key and outputs it ran
//! or reused, so `scan exp show` reads metrics straight from the store ([`table`]), `scan exp plot`
//! draws them ([`plot`]), and `--exp NAME` lets `show`, `explain`, `export` and `push` address a
//! variant. Running a variant never touches `pipeline.lock`, which keeps describing
//! `pipeline.toml` alone.

pub mod plot;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runner::sweep::Variant;
use crate::store::{OutputRef, StageKey, Store};

/// Version of the experiments file.
pub const EXPERIMENTS_VERSION: u32 = 1;

/// What one stage of an experiment used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    pub key: StageKey,
    pub outputs: BTreeMap<String, OutputRef>,
    /// The built-in stage binary, if any (how `exp show` finds metrics).
    pub builtin: Option<String>,
    /// Whether this run built it (false: reused from the store).
    pub ran: bool,
    /// Wall time of the build that made the result (from its action record).
    pub duration_s: f64,
}

/// One experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub name: String,
    pub group: String,
    pub seed: Option<u64>,
    /// `STAGE.PARAM` → value, as given.
    pub overrides: Vec<(String, Value)>,
    pub stages: BTreeMap<String, StageRun>,
    /// Unix time the run finished.
    pub finished_at: u64,
    /// Whether every stage completed.
    pub complete: bool,
}

impl Experiment {
    /// The variant this experiment ran.
    pub fn variant(&self) -> Variant {
        Variant {
            name: self.name.clone(),
            group: self.group.clone(),
            overrides: self.overrides.clone(),
            seed: self.seed,
        }
    }
}

/// The experiments file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentLog {
    pub version: u32,
    pub experiments: Vec<Experiment>,
}

/// Errors reading or writing the experiments file.
#[derive(Debug, thiserror::Error)]
pub enum ExpError {
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("no experiment `{name}` in {path} (experiments: {known})")]
    Unknown {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// Where the experiments of `pipeline` are recorded.
pub fn log_path(pipeline: &Path) -> PathBuf {
    pipeline.with_extension("experiments.json")
}

impl ExperimentLog {
    /// Read `path`; missing is empty.
    pub fn read(path: &Path) -> Result<ExperimentLog, ExpError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ExpError::Json {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ExperimentLog {
                version: EXPERIMENTS_VERSION,
                experiments: Vec::new(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The experiment called `name`.
    pub fn find(&self, name: &str, path: &Path) -> Result<&Experiment, ExpError> {
        self.experiments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ExpError::Unknown {
                name: name.into(),
                path: path.to_path_buf(),
                known: if self.experiments.is_empty() {
                    "none yet: `scan run` records them".into()
                } else {
                    self.experiments
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }

    /// Insert or replace experiments by name, under a lock on the file (concurrent runs are safe).
    pub fn upsert(path: &Path, store: &Store, records: Vec<Experiment>) -> Result<(), ExpError> {
        if records.is_empty() {
            return Ok(());
        }
        let guard_name = crate::store::hash_bytes(path.to_string_lossy().as_bytes());
        let guard = store
            .dir("locks")
            .join(format!("experiments-{}.lock", guard_name.short()));
        let _lock = crate::store::lock::FileLock::acquire(&guard, true, |_| {})?;
        let mut log = ExperimentLog::read(path)?;
        log.version = EXPERIMENTS_VERSION;
        for r in records {
            match log.experiments.iter_mut().find(|e| e.name == r.name) {
                Some(e) => *e = r,
                None => log.experiments.push(r),
            }
        }
        let json = serde_json::to_vec_pretty(&log).map_err(|source| ExpError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        crate::util::atomic_write(path, &json)?;
        Ok(())
    }
}
