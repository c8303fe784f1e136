//! `scan verify`: re-hash every blob; a blob whose contents do not match its name is moved to
//! `quarantine/` (so the stage owning it is rebuilt by the next run), materialised trees that use it are
//! removed, and unreadable action records are quarantined too. Callers hold the store lock exclusively.

use std::collections::BTreeSet;

use serde::Serialize;

use super::canon::hash_file;
use super::{remove_tree, Result, Store};

/// One corrupt blob.
#[derive(Debug, Clone, Serialize)]
pub struct Corrupt {
    pub hash: String,
    pub actual: String,
    pub moved_to: String,
}

/// Result of a verification.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VerifyReport {
    pub blobs_checked: usize,
    pub corrupt: Vec<Corrupt>,
    pub bad_actions: Vec<String>,
    pub trees_removed: usize,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.bad_actions.is_empty()
    }
}

fn quarantine(store: &Store, src: &std::path::Path, name: &str) -> Result<String> {
    let dir = store.dir("quarantine");
    fs_err::create_dir_all(&dir)?;
    let mut dest = dir.join(name);
    let mut i = 1;
    while dest.exists() {
        dest = dir.join(format!("{name}.{i}"));
        i += 1;
    }
    fs_err::rename(src, &dest)?;
    Ok(dest.to_string_lossy().into_owned())
}

impl Store {
    /// Verify every blob and action record.
    pub fn verify(&self, mut progress: impl FnMut(usize)) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut bad = BTreeSet::new();
        let blobs = self.dir("blobs");
        if blobs.is_dir() {
            let mut shards: Vec<_> = fs_err::read_dir(&blobs)?.collect::<std::io::Result<_>>()?;
            shards.sort_by_key(|e| e.file_name());
            for shard in shards {
                if !shard.path().is_dir() {
                    continue;
                }
                for e in fs_err::read_dir(shard.path())? {
                    let e = e?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    let actual = hash_file(&e.path())?;
                    report.blobs_checked += 1;
                    progress(report.blobs_checked);
                    if *actual != *name {
                        let moved_to = quarantine(self, &e.path(), &name)?;
                        report.corrupt.push(Corrupt {
                            hash: name.clone(),
                            actual: actual.to_string(),
                            moved_to,
                        });
                        bad.insert(name);
                    }
                }
            }
        }
        for key in self.action_keys()? {
            let path = self.action_path(&key);
            if self.read_action(&key).is_none() {
                quarantine(self, &path, &format!("{key}.json"))?;
                report.bad_actions.push(key);
            }
        }
        let trees = self.dir("trees");
        if trees.is_dir() {
            for e in fs_err::read_dir(&trees)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let broken = bad.contains(&name)
                    || match self.read_tree(&name) {
                        Ok(m) => m.entries.iter().any(|x| bad.contains(x.hash.as_str())),
                        Err(_) => true,
                    };
                if broken {
                    remove_tree(&e.path())?;
                    report.trees_removed += 1;
                }
            }
        }
        Ok(report)
    }
}
