//! The make-like runner (README "Running pipelines"): `pipeline.toml` parsing and validation
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
pub mod remote;
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
    Remote(Box<crate::store::remote::RemoteError>),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("stage `{stage}` failed: {message}")]
    StageFailed { stage: String, message: String },
    #[error("stage `{stage}` stopped by an interrupt; its checkpoints are kept in {} — run `scan run` again to resume", work.display())]
    Interrupted { stage: String, work: PathBuf },
    #[error("{0}")]
    Failed(String),
    /// A stage that must be built reads results that were to come from the remote, and fetching
    /// them failed: the scheduler builds those upstream stages locally and retries.
    #[error("stage `{stage}`: the outputs of {upstream:?} could not be fetched from the remote")]
    NeedUpstream {
        stage: String,
        upstream: Vec<String>,
        #[source]
        source: Box<crate::store::remote::RemoteError>,
    },
}

impl From<crate::store::remote::RemoteError> for RunnerError {
    fn from(e: crate::store::remote::RemoteError) -> Self {
        RunnerError::Remote(Box::new(e))
    }
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

/// Everything a command needs: the validated pipeline, its store, stat cache and lock file, and
/// the remote when one is configured (no I/O until it is used).
#[derive(Debug)]
pub struct Ctx {
    pub pipeline: Pipeline,
    pub store: Store,
    pub cache: StatCache,
    pub lock_path: PathBuf,
    pub lock: lockfile::LockFile,
    pub remote: Option<crate::store::remote::Remote>,
    /// `--require-remote`: a remote that cannot be reached is an error, not a warning.
    pub require_remote: bool,
}

impl Ctx {
    /// Load and validate `pipeline` (with `--set` overrides) and open its store.
    pub fn load(
        pipeline: &Path,
        store: Option<&Path>,
        sets: &[String],
    ) -> Result<Ctx, RunnerError> {
        let mut p = Pipeline::load(pipeline, sets)?;
        let store = store_for(&p.path, store);
        let lock_path = p.path.with_extension("lock");
        let lock = lockfile::LockFile::read(&lock_path)?;
        p.bind_absent(&lock)?;
        let cache = StatCache::load(&store);
        Ok(Ctx {
            pipeline: p,
            store,
            cache,
            lock_path,
            lock,
            remote: None,
            require_remote: false,
        })
    }

    /// Use the remote `url` (`--remote`/`SCAN_REMOTE`) or, without one, the pipeline's
    /// `[remote]`; `none` (or an empty value) means no remote. No network request is made here.
    pub fn with_remote(mut self, url: Option<&str>, require: bool) -> Result<Ctx, RunnerError> {
        let from_file = self.pipeline.remote.clone();
        let (url, endpoint) = match url.map(str::trim) {
            Some("") | Some("none") => (None, None),
            Some(u) => (Some(u.to_string()), from_file.and_then(|r| r.endpoint)),
            None => match from_file {
                Some(r) => (Some(r.url), r.endpoint),
                None => (None, None),
            },
        };
        self.remote = match url {
            Some(u) => Some(crate::store::remote::Remote::new(&u, endpoint.as_deref())?),
            None => None,
        };
        self.require_remote = require;
        if require && self.remote.is_none() {
            return Err(RunnerError::Usage(
                "--require-remote: no remote configured ([remote] url in the pipeline file, --remote or SCAN_REMOTE)".into(),
            ));
        }
        Ok(self)
    }

    /// The remote, or a usage error naming how to configure one.
    pub fn remote(&self) -> Result<&crate::store::remote::Remote, RunnerError> {
        self.remote.as_ref().ok_or_else(|| {
            RunnerError::Usage(
                "no remote configured: set `[remote] url = ...` in the pipeline file, or pass --remote URL (or SCAN_REMOTE)".into(),
            )
        })
    }

    /// Register this workspace's lock file as a gc root of the store (once; a no-op after).
    pub fn register_root(&self) {
        let _ = self.store.register_root(&self.lock_path);
    }
}
