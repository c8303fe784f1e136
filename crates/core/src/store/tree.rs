//! Directory outputs: a canonical manifest of (relative path, blob hash, executable bit), sorted by path,
//! stored as a blob itself; the directory's hash is the manifest's hash. `trees/<hash>/` holds a read-only
//! materialisation (hard links to the blobs, copies for executables). Symlinks and special files are
//! rejected; empty subdirectories are not recorded.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::canon::hash_file;
use super::{remove_tree, Digest, Result, Store, StoreError};

/// One file of a directory output. Fields are declared in sorted order: serialisation is canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeEntry {
    pub exec: bool,
    pub hash: Digest,
    pub path: String,
}

/// The manifest of a directory output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeManifest {
    pub entries: Vec<TreeEntry>,
    pub schema: u32,
}

impl TreeManifest {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(hash: &str, bytes: &[u8]) -> Result<TreeManifest> {
        let m: TreeManifest =
            serde_json::from_slice(bytes).map_err(|e| StoreError::BadManifest {
                hash: hash.into(),
                message: e.to_string(),
            })?;
        for e in &m.entries {
            if !super::is_hash(&e.hash) || !safe_rel_path(&e.path) {
                return Err(StoreError::BadManifest {
                    hash: hash.into(),
                    message: format!("bad entry `{}`", e.path),
                });
            }
        }
        Ok(m)
    }
}

/// A relative path without `..`, `.`, empty or absolute components.
pub fn safe_rel_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Files under `dir` as sorted (relative path, absolute path, executable); rejects symlinks.
pub fn walk(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let meta = fs_err::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                return Err(StoreError::Symlink { path });
            } else if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(Path::to_str)
                    .ok_or_else(|| StoreError::NonUtf8 { path: path.clone() })?
                    .to_string();
                out.push((rel, path, meta.permissions().mode() & 0o111 != 0));
            } else {
                return Err(StoreError::NotRegular { path });
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Hash a directory the way [`Store::put_dir`] would, without storing anything; `hash` hashes one file
/// (e.g. through the stat cache).
pub fn hash_dir_with(dir: &Path, mut hash: impl FnMut(&Path) -> Result<Digest>) -> Result<Digest> {
    let mut entries = Vec::new();
    for (path, abs, exec) in walk(dir)? {
        entries.push(TreeEntry {
            exec,
            hash: hash(&abs)?,
            path,
        });
    }
    Ok(super::hash_bytes(
        &TreeManifest { entries, schema: 1 }.to_bytes(),
    ))
}

/// Hash a directory by reading every file.
pub fn hash_dir(dir: &Path) -> Result<Digest> {
    hash_dir_with(dir, |p| Ok(hash_file(p)?))
}

impl Store {
    /// Store every file of `dir` as a blob (moving them when `move_files`) and the manifest; returns the
    /// manifest hash and materialises `trees/<hash>/`.
    pub fn put_dir(&self, dir: &Path, move_files: bool) -> Result<Digest> {
        let mut entries = Vec::new();
        for (path, abs, exec) in walk(dir)? {
            entries.push(TreeEntry {
                exec,
                hash: self.put_file(&abs, move_files)?,
                path,
            });
        }
        let hash = self.put_bytes(&TreeManifest { entries, schema: 1 }.to_bytes())?;
        self.materialise_tree(&hash)?;
        Ok(hash)
    }

    /// Parsed manifest of a stored directory.
    pub fn read_tree(&self, hash: &str) -> Result<TreeManifest> {
        let path = self.blob_path(hash);
        if !path.is_file() {
            return Err(StoreError::MissingBlob { hash: hash.into() });
        }
        TreeManifest::parse(hash, &fs_err::read(path)?)
    }

    /// Whether the manifest and every blob it lists are present.
    pub fn has_tree(&self, hash: &str) -> bool {
        match self.read_tree(hash) {
            Ok(m) => m.entries.iter().all(|e| self.has_blob(&e.hash)),
            Err(_) => false,
        }
    }

    /// `trees/<hash>/`, built (read-only) from the blobs if it does not exist yet.
    pub fn materialise_tree(&self, hash: &str) -> Result<PathBuf> {
        let dest = self.tree_path(hash);
        if dest.is_dir() {
            return Ok(dest);
        }
        let manifest = self.read_tree(hash)?;
        let tmp = self.temp_dir("tree")?;
        let root = tmp.join("t");
        let result = (|| -> Result<()> {
            fs_err::create_dir_all(&root)?;
            for e in &manifest.entries {
                let blob = self.blob_path(&e.hash);
                if !blob.is_file() {
                    return Err(StoreError::MissingBlob {
                        hash: e.hash.to_string(),
                    });
                }
                let target = root.join(&e.path);
                if let Some(parent) = target.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                if e.exec || std::fs::hard_link(&blob, &target).is_err() {
                    fs_err::copy(&blob, &target)?;
                    let mode = if e.exec { 0o555 } else { 0o444 };
                    fs_err::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
                }
            }
            let mut dirs = vec![root.clone()];
            for (_, abs, _) in walk(&root)? {
                let mut p = abs.parent();
                while let Some(d) = p.filter(|d| *d != root) {
                    dirs.push(d.to_path_buf());
                    p = d.parent();
                }
            }
            dirs.sort();
            dirs.dedup();
            for d in dirs.iter().rev() {
                fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o555))?;
            }
            if let Some(parent) = dest.parent() {
                fs_err::create_dir_all(parent)?;
            }
            if std::fs::rename(&root, &dest).is_err() && !dest.is_dir() {
                fs_err::rename(&root, &dest)?;
            }
            Ok(())
        })();
        let _ = remove_tree(&tmp);
        result.map(|()| dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_round_trips_and_hash_is_stable() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("report");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("b.txt"), b"b").unwrap();
        std::fs::write(src.join("sub/a.png"), b"png").unwrap();
        let expected = hash_dir(&src).unwrap();
        let store = Store::new(t.path().join("s"));
        let h = store.put_dir(&src, false).unwrap();
        assert_eq!(h, expected);
        let tree = store.materialise_tree(&h).unwrap();
        assert_eq!(std::fs::read(tree.join("sub/a.png")).unwrap(), b"png");
        assert_eq!(hash_dir(&tree).unwrap(), h);
        assert!(store.has_tree(&h));
        remove_tree(&store.tree_path(&h)).unwrap();
        assert_eq!(store.materialise_tree(&h).unwrap(), tree);
    }

    #[test]
    fn symlink_rejected() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("l")).unwrap();
        assert!(matches!(walk(t.path()), Err(StoreError::Symlink { .. })));
    }

    #[test]
    fn rel_paths() {
        assert!(safe_rel_path("a/b.png"));
        assert!(!safe_rel_path("../x") && !safe_rel_path("/x") && !safe_rel_path("a//b"));
    }
}
