//! Blobs: file contents addressed by BLAKE3 under `blobs/<2 hex>/<hash>`, read-only (0444).
//!
//! Committing moves a staged file into place with an atomic rename after fsync, so a blob path either
//! does not exist or holds exactly the bytes its name promises.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::canon::{hash_bytes, hash_file};
use super::{Digest, Result, Store};

impl Store {
    /// Move (or copy, when `move_file` is false) `src` into the store; returns its hash.
    pub fn put_file(&self, src: &Path, move_file: bool) -> Result<Digest> {
        let hash = hash_file(src)?;
        let dest = self.blob_path(&hash);
        if dest.is_file() {
            if move_file {
                fs_err::remove_file(src)?;
            }
            return Ok(hash);
        }
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        if move_file {
            fs_err::File::open(src)?.sync_all()?;
            fs_err::set_permissions(src, std::fs::Permissions::from_mode(0o444))?;
            fs_err::rename(src, &dest)?;
        } else {
            let tmp = self.temp_dir("blob")?;
            let staged = tmp.join("blob");
            fs_err::copy(src, &staged)?;
            let result = (|| -> Result<()> {
                fs_err::File::open(&staged)?.sync_all()?;
                fs_err::set_permissions(&staged, std::fs::Permissions::from_mode(0o444))?;
                fs_err::rename(&staged, &dest)?;
                Ok(())
            })();
            let _ = fs_err::remove_dir_all(&tmp);
            result?;
        }
        Ok(hash)
    }

    /// Store `bytes` as a blob; returns its hash.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let hash = hash_bytes(bytes);
        let dest = self.blob_path(&hash);
        if dest.is_file() {
            return Ok(hash);
        }
        crate::util::atomic_write(&dest, bytes)?;
        fs_err::set_permissions(&dest, std::fs::Permissions::from_mode(0o444))?;
        Ok(hash)
    }

    /// Commit a staged, already verified file (e.g. a download) as blob `hash`: read-only, then
    /// renamed into place; a blob already there is kept and the staged file dropped.
    pub fn commit_blob(&self, staged: tempfile::NamedTempFile, hash: &Digest) -> Result<()> {
        let dest = self.blob_path(hash);
        if dest.is_file() {
            return Ok(());
        }
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::set_permissions(staged.path(), std::fs::Permissions::from_mode(0o444))?;
        staged.persist(&dest).map_err(|e| {
            std::io::Error::new(e.error.kind(), format!("{}: {}", dest.display(), e.error))
        })?;
        Ok(())
    }

    /// Size of a stored blob.
    pub fn blob_size(&self, hash: &str) -> Option<u64> {
        std::fs::metadata(self.blob_path(hash))
            .ok()
            .map(|m| m.len())
    }

    /// Contents of a blob.
    pub fn read_blob(&self, hash: &str) -> Result<Vec<u8>> {
        Ok(fs_err::read(self.blob_path(hash))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_file_is_content_addressed_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("s"));
        let src = dir.path().join("x");
        std::fs::write(&src, b"hello").unwrap();
        let h = store.put_file(&src, false).unwrap();
        assert_eq!(h, hash_bytes(b"hello"));
        let p = store.blob_path(&h);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o444
        );
        assert!(src.exists());
        assert_eq!(store.put_file(&src, true).unwrap(), h);
        assert!(!src.exists());
        assert_eq!(store.put_bytes(b"hello").unwrap(), h);
    }
}
