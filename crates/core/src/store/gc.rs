//! `scan gc`: drop action records, blobs, trees, logs and lock files that neither `pipeline.lock` nor the
//! last N runs reference. Also the run log (`runs/`, the newest [`RUN_LOG_LIMIT`] runs are kept) that
//! `gc --keep-runs N` reads. Callers hold the store lock exclusively while collecting.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{remove_tree, OutputKind, Result, Store};

/// How many run-log entries are kept on disk.
pub const RUN_LOG_LIMIT: usize = 50;

/// One entry of the run log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLogEntry {
    pub started_at: u64,
    pub pipeline: String,
    pub keys: Vec<String>,
}

/// What `gc` removed (or would remove, with `dry_run`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    pub kept_actions: usize,
    pub removed_actions: Vec<String>,
    pub removed_blobs: usize,
    pub removed_trees: usize,
    pub freed_bytes: u64,
    /// Remembered remote records (`remote-actions/`) dropped.
    pub removed_remote_records: usize,
    pub dry_run: bool,
}

/// One gc root: a workspace's lock file registered by `scan run`/`scan pull` on this store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcRoot {
    pub lock: PathBuf,
}

impl Store {
    /// Register `lock_path` (a workspace's `pipeline.lock`) as a gc root: `scan gc` from any
    /// workspace keeps what every registered lock file references. Writes once per workspace.
    pub fn register_root(&self, lock_path: &Path) -> Result<()> {
        let abs = std::path::absolute(lock_path).unwrap_or_else(|_| lock_path.to_path_buf());
        let id = super::hash_bytes(abs.as_os_str().as_encoded_bytes());
        let path = self
            .dir("roots")
            .join(format!("{}.json", super::short(&id)));
        if path.is_file() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&GcRoot { lock: abs }).unwrap_or_default();
        crate::util::atomic_write(&path, &bytes)?;
        Ok(())
    }

    /// The registered roots: (root file, lock file it names).
    pub fn roots(&self) -> Result<Vec<(PathBuf, PathBuf)>> {
        let dir = self.dir("roots");
        let mut out = Vec::new();
        if dir.is_dir() {
            for e in fs_err::read_dir(&dir)? {
                let p = e?.path();
                if let Some(root) = std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<GcRoot>(&b).ok())
                {
                    out.push((p, root.lock));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Append a run to the run log (and prune it to the newest entries).
    pub fn record_run(&self, entry: &RunLogEntry) -> Result<()> {
        let dir = self.dir("runs");
        // A rerun referencing exactly the same keys (e.g. a no-op run) adds nothing.
        if let Some(last) = self.run_files()?.last() {
            let same = std::fs::read(last)
                .ok()
                .and_then(|b| serde_json::from_slice::<RunLogEntry>(&b).ok())
                .is_some_and(|e| e.keys == entry.keys && e.pipeline == entry.pipeline);
            if same {
                return Ok(());
            }
        }
        let name = format!("{:020}-{:010}.json", now_nanos(), std::process::id());
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        crate::util::atomic_write(&dir.join(name), &bytes)?;
        let files = self.run_files()?;
        for old in files.iter().take(files.len().saturating_sub(RUN_LOG_LIMIT)) {
            let _ = fs_err::remove_file(old);
        }
        Ok(())
    }

    fn run_files(&self) -> Result<Vec<PathBuf>> {
        let dir = self.dir("runs");
        let mut files = Vec::new();
        if dir.is_dir() {
            for e in fs_err::read_dir(&dir)? {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == "json") {
                    files.push(p);
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// Keys referenced by the newest `n` runs.
    pub fn recent_run_keys(&self, n: usize) -> Result<BTreeSet<String>> {
        let files = self.run_files()?;
        let mut keys = BTreeSet::new();
        for f in files.iter().rev().take(n) {
            if let Ok(e) = serde_json::from_slice::<RunLogEntry>(&fs_err::read(f)?) {
                keys.extend(e.keys);
            }
        }
        Ok(keys)
    }

    /// Remove everything not reachable from `keep` (action keys).
    pub fn gc(&self, keep: &BTreeSet<String>, dry_run: bool) -> Result<GcReport> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let mut live_blobs = BTreeSet::new();
        let mut live_trees = BTreeSet::new();
        for key in self.action_keys()? {
            let rec = self.read_action(&key);
            match rec.filter(|_| keep.contains(&key)) {
                Some(rec) => {
                    report.kept_actions += 1;
                    for o in rec.outputs.values() {
                        live_blobs.insert(o.hash.to_string());
                        if o.kind == OutputKind::Dir {
                            live_trees.insert(o.hash.to_string());
                            if let Ok(m) = self.read_tree(&o.hash) {
                                live_blobs.extend(m.entries.into_iter().map(|e| e.hash.into()));
                            }
                        }
                    }
                }
                None => {
                    if !dry_run {
                        fs_err::remove_file(self.action_path(&key))?;
                        let _ = std::fs::remove_file(self.log_path(&key));
                        if let Ok(Some(_held)) =
                            super::lock::FileLock::try_acquire(&self.lock_path(&key))
                        {
                            let _ = std::fs::remove_file(self.lock_path(&key));
                        }
                    }
                    report.removed_actions.push(key);
                }
            }
        }
        for key in self.remote_action_keys()? {
            if !keep.contains(&key) {
                report.removed_remote_records += 1;
                if !dry_run {
                    self.forget_remote_action(&key);
                }
            }
        }
        let blobs = self.dir("blobs");
        if blobs.is_dir() {
            for shard in fs_err::read_dir(&blobs)? {
                let shard = shard?.path();
                if !shard.is_dir() {
                    continue;
                }
                for e in fs_err::read_dir(&shard)? {
                    let e = e?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    if live_blobs.contains(&name) {
                        continue;
                    }
                    report.removed_blobs += 1;
                    report.freed_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                    if !dry_run {
                        fs_err::remove_file(e.path())?;
                    }
                }
            }
        }
        let trees = self.dir("trees");
        if trees.is_dir() {
            for e in fs_err::read_dir(&trees)? {
                let e = e?;
                if !live_trees.contains(&*e.file_name().to_string_lossy()) {
                    report.removed_trees += 1;
                    if !dry_run {
                        remove_tree(&e.path())?;
                    }
                }
            }
        }
        Ok(report)
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
