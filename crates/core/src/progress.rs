//! Structured progress from a stage to the runner: the runner gives each stage a pipe as an inherited
//! file descriptor (`SCAN_PROGRESS_FD`), and the stage writes one JSON [`ProgressEvent`] per line. The
//! runner draws them (a bar with ETA per running stage on a terminal, timestamped lines otherwise);
//! nothing is parsed out of the stage's text output. A stage run by hand has no such descriptor and
//! reports nothing.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Environment variable naming the inherited descriptor.
pub const ENV_PROGRESS_FD: &str = "SCAN_PROGRESS_FD";

/// One progress report: `done` of `total` units (steps over all epochs), the current epoch, and the
/// latest numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressEvent {
    /// Units done and in total (e.g. training steps over all epochs).
    pub done: u64,
    pub total: u64,
    /// 1-based epoch and epochs, when the stage trains.
    pub epoch: Option<u64>,
    pub epochs: Option<u64>,
    pub loss: Option<f64>,
    /// A monitored metric, e.g. `("knn_acc", 0.71)`.
    pub metric: Option<(String, f64)>,
    pub images_per_s: Option<f64>,
    /// Set on the last event of an epoch.
    pub epoch_end: bool,
}

/// The stage side: writes events to the runner's descriptor, if there is one.
pub struct Reporter {
    out: Option<Mutex<std::fs::File>>,
}

impl Reporter {
    /// The reporter of this process (from `SCAN_PROGRESS_FD`).
    pub fn from_env() -> Reporter {
        let fd = std::env::var(ENV_PROGRESS_FD)
            .ok()
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|&fd| fd > 2 && unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
        Reporter {
            // SAFETY: the runner opened this descriptor for us and nothing else in the process uses it.
            out: fd.map(|fd| Mutex::new(unsafe { std::fs::File::from_raw_fd(fd) })),
        }
    }

    /// Whether a runner listens (stages then leave the terminal to it).
    pub fn active(&self) -> bool {
        self.out.is_some()
    }

    /// Send one event; a runner that went away is ignored.
    pub fn send(&self, e: &ProgressEvent) {
        if let Some(out) = &self.out {
            if let (Ok(mut f), Ok(mut line)) = (out.lock(), serde_json::to_vec(e)) {
                line.push(b'\n');
                let _ = f.write_all(&line);
            }
        }
    }
}

/// The process-wide reporter.
pub fn reporter() -> &'static Reporter {
    static R: std::sync::OnceLock<Reporter> = std::sync::OnceLock::new();
    R.get_or_init(Reporter::from_env)
}
