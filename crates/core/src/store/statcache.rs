//! Stat cache for external inputs and stage executables: `statcache.json` in the store maps an absolute
//! path to (size, mtime_ns, inode, device, hash), so an unchanged multi-GB dataset is not re-read on every
//! run. An entry is trusted only when all four stat fields match. Files modified within the last two
//! seconds are not cached (a write within the same mtime tick after hashing would go unnoticed).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::canon::hash_file;
use super::{Digest, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
    hash: Digest,
}

/// Thread-safe stat cache; `save` writes it back (atomically) when it changed.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    inner: Mutex<(BTreeMap<String, Entry>, bool)>,
}

fn stat_key(meta: &std::fs::Metadata) -> (u64, i128, u64, u64) {
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    (meta.size(), mtime_ns, meta.ino(), meta.dev())
}

impl StatCache {
    /// Load `<store>/statcache.json` (an unreadable cache is treated as empty).
    pub fn load(store: &Store) -> StatCache {
        let path = store.root().join("statcache.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        StatCache {
            path,
            inner: Mutex::new((entries, false)),
        }
    }

    /// Hash of the file at `path`, from the cache when its stat is unchanged.
    pub fn hash_file(&self, path: &Path) -> Result<Digest> {
        let meta = fs_err::metadata(path)?;
        let (size, mtime_ns, ino, dev) = stat_key(&meta);
        let name = path.to_string_lossy().into_owned();
        if let Ok(guard) = self.inner.lock() {
            if let Some(e) = guard.0.get(&name) {
                if (e.size, e.mtime_ns, e.ino, e.dev) == (size, mtime_ns, ino, dev) {
                    return Ok(e.hash.clone());
                }
            }
        }
        let hash = hash_file(path)?;
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        let after = fs_err::metadata(path)?;
        if stat_key(&after) == (size, mtime_ns, ino, dev) && now_ns - mtime_ns > 2_000_000_000 {
            if let Ok(mut guard) = self.inner.lock() {
                let entry = Entry {
                    size,
                    mtime_ns,
                    ino,
                    dev,
                    hash: hash.clone(),
                };
                if guard.0.get(&name) != Some(&entry) {
                    guard.0.insert(name, entry);
                    guard.1 = true;
                }
            }
        }
        Ok(hash)
    }

    /// Hash of a file or directory (directories hash like directory outputs).
    pub fn hash_path(&self, path: &Path) -> Result<(Digest, super::OutputKind)> {
        if fs_err::metadata(path)?.is_dir() {
            Ok((
                super::tree::hash_dir_with(path, |p| self.hash_file(p))?,
                super::OutputKind::Dir,
            ))
        } else {
            Ok((self.hash_file(path)?, super::OutputKind::File))
        }
    }

    /// Write the cache back if anything was added.
    pub fn save(&self) -> Result<()> {
        let Ok(guard) = self.inner.lock() else {
            return Ok(());
        };
        if guard.1 {
            let bytes = serde_json::to_vec(&guard.0).map_err(|source| super::StoreError::Json {
                path: self.path.clone(),
                source,
            })?;
            crate::util::atomic_write(&self.path, &bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hit_and_invalidation() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("s"));
        let f = t.path().join("data.bin");
        std::fs::write(&f, b"abc").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let c = StatCache::load(&store);
        assert_eq!(c.hash_file(&f).unwrap(), super::super::hash_bytes(b"abc"));
        c.save().unwrap();
        let c2 = StatCache::load(&store);
        assert_eq!(c2.inner.lock().unwrap().0.len(), 1);
        std::fs::write(&f, b"abcd").unwrap();
        assert_eq!(c2.hash_file(&f).unwrap(), super::super::hash_bytes(b"abcd"));
    }
}
