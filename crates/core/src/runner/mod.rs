//! The make-like runner (README "Running pipelines"; issue #3): `pipeline.toml` parsing and validation
//! ([`pipeline`], [`params`]), stage keys and code identity ([`key`]), `pipeline.lock` ([`lockfile`]),
//! planning and staleness reasons ([`plan`]), building one stage ([`exec`]) on an executor
//! ([`executor`]: local processes or Slurm jobs, [`slurm`]), parallel scheduling ([`schedule`]) and the store-facing commands ([`commands`]).
//!
//! Exit codes: 0 success, 1 a stage or command failed, 2 invalid pipeline or usage.
//! The run path never touches libtorch.

mod child;
pub mod commands;
mod dag;
pub mod exec;
pub mod executor;
pub mod graph;
pub mod key;
pub mod lockfile;
pub mod logs;
pub mod params;
pub mod pipeline;
mod pipeline_error;
pub mod plan;
pub mod run_cmd;
pub mod schedule;
pub mod slurm;
pub mod sweep;
pub mod ui;

use std::path::{Path, PathBuf};

pub use pipeline::{Pipeline, PipelineError};
pub use schedule::{RunOptions, StageOutcome};

use crate::store::statcache::StatCache;
use crate::store::{Store, StoreError};

/// Errors of runner commands.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
    #[error("{0}")]
    Usage(String),
    #[error("stage `{stage}`: cmd[0] `{program}`: {message}")]
    Program {
        stage: String,
        program: String,
        message: String,
    },
    #[error(transparent)]
    LockFile(#[from] lockfile::LockFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("stage `{stage}` failed: {message}")]
    StageFailed { stage: String, message: String },
    #[error("stage `{stage}` stopped by an interrupt; its checkpoints are kept in {} — run `scan run` again to resume", work.display())]
    Interrupted { stage: String, work: PathBuf },
    #[error("{0}")]
    Failed(String),
}

impl From<PipelineError> for RunnerError {
    fn from(e: PipelineError) -> Self {
        RunnerError::Pipeline(Box::new(e))
    }
}

impl From<Box<PipelineError>> for RunnerError {
    fn from(e: Box<PipelineError>) -> Self {
        RunnerError::Pipeline(e)
    }
}

impl RunnerError {
    /// 2 for an invalid pipeline or usage error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunnerError::Pipeline(_)
            | RunnerError::Usage(_)
            | RunnerError::Program { .. }
            | RunnerError::LockFile(_) => 2,
            _ => 1,
        }
    }
}

/// Default pipeline file name.
pub const PIPELINE_FILE: &str = "pipeline.toml";

/// The store for a pipeline file: `--store`/`SCAN_STORE`, else `<workspace>/artifacts`.
pub fn store_for(pipeline: &Path, store: Option<&Path>) -> Store {
    match store {
        Some(s) => Store::new(s),
        None => {
            let abs = std::path::absolute(pipeline).unwrap_or_else(|_| pipeline.to_path_buf());
            Store::new(abs.parent().unwrap_or(Path::new(".")).join("artifacts"))
        }
    }
}

/// Everything a command needs: the validated pipeline, its store, stat cache and lock file.
#[derive(Debug)]
pub struct Ctx {
    pub pipeline: Pipeline,
    pub store: Store,
    pub cache: StatCache,
    pub lock_path: PathBuf,
    pub lock: lockfile::LockFile,
}

impl Ctx {
    /// Load and validate `pipeline` (with `--set` overrides) and open its store.
    pub fn load(
        pipeline: &Path,
        store: Option<&Path>,
        sets: &[String],
    ) -> Result<Ctx, RunnerError> {
        let p = Pipeline::load(pipeline, sets)?;
        let store = store_for(&p.path, store);
        let lock_path = p.path.with_extension("lock");
        let lock = lockfile::LockFile::read(&lock_path)?;
        let cache = StatCache::load(&store);
        Ok(Ctx {
            pipeline: p,
            store,
            cache,
            lock_path,
            lock,
        })
    }
}
