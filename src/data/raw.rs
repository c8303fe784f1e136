//! Raw input files: locate them, read them whole (gunzipping `.gz`), and record each one's
//! name and BLAKE3 checksum for the artifact metadata.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{IngestError, SourceFile};

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// One raw file read into memory.
#[derive(Debug)]
pub struct RawFile {
    /// Where it was read from (error messages).
    pub path: PathBuf,
    /// Name and checksum of the bytes on disk (before decompression).
    pub source: SourceFile,
    /// Content, gunzipped when the file is gzip-compressed.
    pub bytes: Vec<u8>,
}

/// The checksum record of `bytes` under `name` (BLAKE3, lowercase hex).
pub fn source_file(name: &str, bytes: &[u8]) -> SourceFile {
    SourceFile {
        name: name.to_string(),
        blake3: blake3::hash(bytes).to_hex().to_string(),
        bytes: bytes.len() as u64,
    }
}

/// The name recorded for `path`: its path relative to `root` with `/` separators (so that the
/// artifact does not depend on where the data directory lives), else its file name.
pub fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        parts.join("/")
    }
}

/// Read `path` (recorded as `name`), gunzipping it when it starts with the gzip magic number.
pub fn read_raw(path: &Path, name: &str) -> Result<RawFile, IngestError> {
    let disk = fs_err::read(path)?;
    let source = source_file(name, &disk);
    let bytes = if disk.starts_with(&GZIP_MAGIC) {
        gunzip(path, &disk)?
    } else {
        disk
    };
    Ok(RawFile {
        path: path.to_path_buf(),
        source,
        bytes,
    })
}

fn gunzip(path: &Path, disk: &[u8]) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::with_capacity(disk.len().saturating_mul(2));
    flate2::read::MultiGzDecoder::new(disk)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::bad(path, format!("gzip data is truncated or corrupt: {e}")))?;
    Ok(out)
}

/// A required file: alternative names, the first existing one wins (e.g. plain, then `.gz`).
pub type Need = Vec<String>;

/// The first directory of `dirs` that holds every file of `needs`, with the path chosen for each.
pub fn locate(dirs: &[PathBuf], needs: &[Need]) -> Option<(PathBuf, Vec<PathBuf>)> {
    dirs.iter().find_map(|dir| {
        let found: Option<Vec<PathBuf>> = needs
            .iter()
            .map(|alts| alts.iter().map(|a| dir.join(a)).find(|p| p.is_file()))
            .collect();
        found.map(|paths| (dir.clone(), paths))
    })
}

/// `name` and `name.gz`.
pub fn plain_or_gz(name: &str) -> Need {
    vec![name.to_string(), format!("{name}.gz")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gz_and_plain_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.path().join("a"), &data).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        std::fs::write(dir.path().join("a.gz"), &gz).unwrap();
        let a = read_raw(&dir.path().join("a"), "a").unwrap();
        let b = read_raw(&dir.path().join("a.gz"), "a.gz").unwrap();
        assert_eq!(a.bytes, data);
        assert_eq!(b.bytes, data);
        assert_eq!(b.source.bytes, gz.len() as u64);
        assert_eq!(a.source.blake3, blake3::hash(&data).to_hex().to_string());
        // A truncated gzip stream is an error naming the file.
        std::fs::write(dir.path().join("t.gz"), &gz[..gz.len() / 2]).unwrap();
        let err = read_raw(&dir.path().join("t.gz"), "t.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.gz") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn locate_prefers_first_dir_with_all_files() {
        let dir = tempfile::tempdir().unwrap();
        let (d1, d2) = (dir.path().join("d1"), dir.path().join("d2"));
        std::fs::create_dir_all(&d1).unwrap();
        std::fs::create_dir_all(&d2).unwrap();
        std::fs::write(d1.join("x"), b"").unwrap();
        std::fs::write(d2.join("x.gz"), b"").unwrap();
        std::fs::write(d2.join("y"), b"").unwrap();
        let needs = vec![plain_or_gz("x"), plain_or_gz("y")];
        let (d, paths) = locate(&[d1, d2.clone()], &needs).unwrap();
        assert_eq!(d, d2);
        assert_eq!(paths, vec![d2.join("x.gz"), d2.join("y")]);
        assert_eq!(relative_name(&d2, &paths[0]), "x.gz");
    }
}
