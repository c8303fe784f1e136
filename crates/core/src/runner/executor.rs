//! Where a stage process runs, and with what.
//!
//! A stage may declare `resources = { gpus, cpus, mem, time }` in `pipeline.toml`. They describe the
//! machine a stage wants, not what it computes, so they never enter its key: the same stage run on a
//! laptop or on a cluster node is the same artifact.
//!
//! Two executors carry out the stage protocol of [`super::exec`]:
//! - `local` (the default) runs the command as a child process of the runner ([`super::child`]).
//!   With `--gpus 0,1,...` the runner hands devices out: a stage that declares `gpus = N` waits for N
//!   free devices and sees only those in `CUDA_VISIBLE_DEVICES`; every other stage sees
//!   `CUDA_VISIBLE_DEVICES=""` and so runs on the CPU instead of crowding a device another stage
//!   holds. Without `--gpus` the runner leaves `CUDA_VISIBLE_DEVICES` alone.
//! - `slurm` submits the same command line as one batch job per stage ([`super::slurm`]); the
//!   declared resources become sbatch flags and the `[executor]` table adds partition, account and
//!   any further flags.
//!
//! The rule for "needs a GPU" is only what the stage declares (`gpus >= 1`); nothing is inferred from
//! the stage's program, so a pipeline without `resources` behaves on a GPU cluster exactly as on a
//! CPU-only one.

use std::sync::{Condvar, Mutex};

use serde::Deserialize;

/// `resources = { ... }` of a stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// GPUs the stage needs (0: none).
    pub gpus: Option<u32>,
    /// CPU cores.
    pub cpus: Option<u32>,
    /// Memory, as Slurm writes it: a number with an optional K/M/G/T suffix (`"32G"`).
    pub mem: Option<String>,
    /// Wall-clock limit, as Slurm writes it: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
    pub time: Option<String>,
}

impl Resources {
    /// GPUs needed (0 when not declared).
    pub fn gpus(&self) -> u32 {
        self.gpus.unwrap_or(0)
    }

    /// Check the values (plan time, before anything runs).
    pub fn validate(&self) -> Result<(), String> {
        if self.cpus == Some(0) {
            return Err("`cpus` must be at least 1".into());
        }
        if let Some(m) = &self.mem {
            if !valid_mem(m) {
                return Err(format!(
                    "`mem` = \"{m}\": expected a number with an optional K, M, G or T suffix (\"32G\")"
                ));
            }
        }
        if let Some(t) = &self.time {
            if !valid_time(t) {
                return Err(format!(
                    "`time` = \"{t}\": expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
                ));
            }
        }
        Ok(())
    }
}

fn valid_mem(m: &str) -> bool {
    let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    m.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
}

fn valid_time(t: &str) -> bool {
    let num = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| !num(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if !parts.iter().all(|p| num(p)) {
        return false;
    }
    match days {
        // D-HH, D-HH:MM, D-HH:MM:SS
        Some(_) => (1..=3).contains(&parts.len()),
        // MM, MM:SS, HH:MM:SS
        None => (1..=3).contains(&parts.len()) && t != "0",
    }
}

/// Which executor runs the stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Child processes of the runner, on this machine.
    #[default]
    Local,
    /// One Slurm batch job per stage (`sbatch`); the store must be on a filesystem the nodes share.
    Slurm,
}

/// `[executor]` in `pipeline.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorFile {
    /// `local` or `slurm` (`scan run --executor` overrides it).
    pub kind: Option<ExecutorKind>,
    /// `sbatch --partition`.
    pub partition: Option<String>,
    /// `sbatch --account`.
    pub account: Option<String>,
    /// Further sbatch flags, passed as written (`["--qos=long", "--constraint=a100"]`).
    #[serde(default)]
    pub extra: Vec<String>,
}

impl ExecutorFile {
    pub fn validate(&self) -> Result<(), String> {
        for f in &self.extra {
            if !f.starts_with('-') {
                return Err(format!(
                    "`extra` = \"{f}\": each entry is one sbatch flag (`--qos=long`)"
                ));
            }
        }
        Ok(())
    }
}

/// How this run executes stages.
#[derive(Debug)]
pub enum Executor {
    Local { gpus: Option<GpuPool> },
    Slurm(ExecutorFile),
}

impl Executor {
    /// The executor from `--executor`/`--gpus` and the pipeline's `[executor]` table.
    pub fn new(
        file: &ExecutorFile,
        kind: Option<ExecutorKind>,
        gpus: Option<&[String]>,
    ) -> Result<Executor, String> {
        match kind.or(file.kind).unwrap_or_default() {
            ExecutorKind::Local => Ok(Executor::Local {
                gpus: gpus.map(GpuPool::new).transpose()?,
            }),
            ExecutorKind::Slurm => {
                if gpus.is_some() {
                    return Err(
                        "--gpus hands out the GPUs of this machine; with the slurm \
                                executor declare `resources = { gpus = N }` and Slurm assigns them"
                            .into(),
                    );
                }
                Ok(Executor::Slurm(file.clone()))
            }
        }
    }

    /// Whether every stage's needs can be met at all (plan time).
    pub fn check(&self, stage: &str, r: &Resources) -> Result<(), String> {
        if let Executor::Local { gpus: Some(pool) } = self {
            if r.gpus() as usize > pool.len() {
                return Err(format!(
                    "stage `{stage}` needs {} GPUs but --gpus lists only {}",
                    r.gpus(),
                    pool.len()
                ));
            }
        }
        Ok(())
    }
}

/// The devices of `--gpus`, handed to running stages one set at a time.
#[derive(Debug)]
pub struct GpuPool {
    all: usize,
    free: Mutex<Vec<String>>,
    returned: Condvar,
}

impl GpuPool {
    /// From `--gpus 0,1,2,3` (device ids as CUDA numbers them, or UUIDs).
    pub fn new(ids: &[String]) -> Result<GpuPool, String> {
        let mut seen: Vec<String> = Vec::new();
        for id in ids {
            let id = id.trim();
            if id.is_empty() || id.contains(',') || seen.iter().any(|s| s == id) {
                return Err(format!("--gpus: `{id}` is empty or listed twice"));
            }
            seen.push(id.to_string());
        }
        if seen.is_empty() {
            return Err("--gpus: no devices listed".into());
        }
        seen.reverse(); // handed out from the end: first listed, first used
        Ok(GpuPool {
            all: seen.len(),
            free: Mutex::new(seen),
            returned: Condvar::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.all
    }

    pub fn is_empty(&self) -> bool {
        self.all == 0
    }

    /// Wait for `n` free devices (`n <= len()`, checked at plan time) and take them.
    pub fn take(&self, n: usize) -> GpuLease<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while free.len() < n {
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        let at = free.len() - n;
        let mut ids = free.split_off(at);
        ids.reverse();
        GpuLease { pool: self, ids }
    }
}

/// Devices held by one running stage; returned to the pool on drop.
#[derive(Debug)]
pub struct GpuLease<'a> {
    pool: &'a GpuPool,
    ids: Vec<String>,
}

impl GpuLease<'_> {
    /// The value of `CUDA_VISIBLE_DEVICES` (empty: no device).
    pub fn visible(&self) -> String {
        self.ids.join(",")
    }
}

impl Drop for GpuLease<'_> {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
        free.extend(self.ids.drain(..).rev());
        self.pool.returned.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_validated() {
        let r = |mem: Option<&str>, time: Option<&str>| Resources {
            mem: mem.map(String::from),
            time: time.map(String::from),
            ..Default::default()
        };
        for ok in ["32G", "512M", "1024", "2t"] {
            assert!(r(Some(ok), None).validate().is_ok(), "{ok}");
        }
        for bad in ["", "G", "32GB", "1.5G", "-1G", "0"] {
            assert!(r(Some(bad), None).validate().is_err(), "{bad}");
        }
        for ok in ["30", "30:00", "4:00:00", "1-0", "1-12:00", "2-00:00:00"] {
            assert!(r(None, Some(ok)).validate().is_ok(), "{ok}");
        }
        for bad in ["", "1h", "1:2:3:4", "a-1", "1-", "4:00:00:00", "0"] {
            assert!(r(None, Some(bad)).validate().is_err(), "{bad}");
        }
        let zero = Resources {
            cpus: Some(0),
            ..Default::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn gpu_pool_hands_out_distinct_devices_and_waits() {
        let ids: Vec<String> = ["0", "1", "2"].iter().map(|s| s.to_string()).collect();
        let pool = GpuPool::new(&ids).unwrap();
        let a = pool.take(1);
        let b = pool.take(2);
        assert_eq!(a.visible(), "0");
        assert_eq!(b.visible(), "1,2");
        std::thread::scope(|sc| {
            let h = sc.spawn(|| pool.take(2).visible());
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(!h.is_finished(), "only one device is free");
            drop(b);
            assert_eq!(h.join().unwrap(), "1,2");
        });
        drop(a);
        assert_eq!(pool.take(3).visible(), "0,1,2");
        assert!(GpuPool::new(&["0".into(), "0".into()]).is_err());
        assert!(GpuPool::new(&[]).is_err());
    }

    #[test]
    fn executor_from_flags_and_file() {
        let file = ExecutorFile {
            kind: Some(ExecutorKind::Slurm),
            ..Default::default()
        };
        assert!(matches!(
            Executor::new(&file, None, None),
            Ok(Executor::Slurm(_))
        ));
        assert!(matches!(
            Executor::new(&file, Some(ExecutorKind::Local), None),
            Ok(Executor::Local { gpus: None })
        ));
        assert!(Executor::new(&file, None, Some(&["0".into()])).is_err());
        let local = Executor::new(&ExecutorFile::default(), None, Some(&["0".into()])).unwrap();
        let two = Resources {
            gpus: Some(2),
            ..Default::default()
        };
        assert!(local.check("s", &two).is_err());
        assert!(local.check("s", &Resources::default()).is_ok());
    }
}
