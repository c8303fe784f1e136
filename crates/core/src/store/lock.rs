//! Advisory file locks (flock via libc). A per-key lock `locks/<key>.lock` is held while a stage key is
//! being built and records the holder's pid and host; a second run waits for it and then reuses the
//! result. flock is released by the kernel when the holder dies, so a lock left by a `kill -9` is
//! recovered automatically. `locks/store.lock` is held shared by runs and imports and exclusively by
//! `gc` and `verify`, which delete files.

use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::{Result, Store};

/// A held lock; released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct FileLock {
    file: fs_err::File,
}

fn flock(file: &fs_err::File, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a valid, open file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => {
                return Err(std::io::Error::new(
                    err.kind(),
                    format!("flock {}: {err}", file.path().display()),
                ))
            }
        }
    }
}

fn open_lock_file(path: &Path) -> Result<fs_err::File> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    Ok(fs_err::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?)
}

impl FileLock {
    /// Take the lock at `path` (exclusive or shared), calling `on_wait(holder)` once if it must wait.
    pub fn acquire(path: &Path, exclusive: bool, on_wait: impl FnOnce(&str)) -> Result<FileLock> {
        let mut file = open_lock_file(path)?;
        let mode = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        if !flock(&file, mode | libc::LOCK_NB)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            on_wait(holder.trim());
            flock(&file, mode)?;
        }
        if exclusive {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = writeln!(
                file,
                "pid={} host={}",
                std::process::id(),
                super::hostname()
            );
        }
        Ok(FileLock { file })
    }

    /// Take the lock only if it is free now.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        Ok(flock(&file, libc::LOCK_EX | libc::LOCK_NB)?.then_some(FileLock { file }))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

impl Store {
    /// Exclusive per-key build lock.
    pub fn lock_key(&self, key: &str, on_wait: impl FnOnce(&str)) -> Result<FileLock> {
        FileLock::acquire(&self.lock_path(key), true, on_wait)
    }

    /// The store-wide lock: shared for runs/imports, exclusive for gc/verify.
    pub fn lock_store(&self, exclusive: bool, on_wait: impl FnOnce(&str)) -> Result<FileLock> {
        FileLock::acquire(&self.dir("locks").join("store.lock"), exclusive, on_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_lock_is_refused_until_drop() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("k.lock");
        let a = FileLock::acquire(&p, true, |_| panic!("should not wait")).unwrap();
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
        let holder = std::fs::read_to_string(&p).unwrap();
        assert!(
            holder.contains(&format!("pid={}", std::process::id())),
            "{holder}"
        );
        drop(a);
        assert!(FileLock::try_acquire(&p).unwrap().is_some());
    }
}
