//! Official `.tar.gz` archives read in place (CIFAR-10/100 binary and python versions, STL-10): the
//! archive is streamed once through gunzip and tar, and only the wanted members are read; nothing is
//! extracted to disk. Members are matched by their path inside the archive (`./` prefixes ignored);
//! links, directories and other members are skipped. A member that is missing, a truncated or corrupt
//! gzip stream and a damaged tar header are errors naming the archive (and the member).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::IngestError;

/// The gzip magic number, which every official archive starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The path shown in error messages for `member` of `archive`.
pub fn member_path(archive: &Path, member: &str) -> PathBuf {
    archive.join(member)
}

/// A member's path inside an archive, normalised: `./a/b` → `a/b`.
fn normalise(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.join("/")
}

fn corrupt(archive: &Path, e: std::io::Error) -> IngestError {
    IngestError::bad(
        archive,
        format!("not a readable .tar.gz archive (truncated or corrupt?): {e}"),
    )
}

/// Stream the `.tar.gz` at `archive` and call `visit(member, reader, size)` for each regular-file
/// member named in `wanted` or in `optional`, in archive order. Reading stops once every member
/// of both lists was seen; a member of `wanted` that is not in the archive is an error.
pub fn for_each_member(
    archive: &Path,
    wanted: &[String],
    optional: &[String],
    mut visit: impl FnMut(&str, &mut dyn Read, u64) -> Result<(), IngestError>,
) -> Result<(), IngestError> {
    let mut file = fs_err::File::open(archive)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    if n < 2 || magic != GZIP_MAGIC {
        return Err(IngestError::bad(
            archive,
            "not a gzip file (an official .tar.gz archive starts with 1f 8b)",
        ));
    }
    let file = fs_err::File::open(archive)?;
    let gz = flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut tar = tar::Archive::new(gz);
    let mut pending: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    let mut pending_optional: BTreeSet<&str> = optional.iter().map(String::as_str).collect();
    for entry in tar.entries().map_err(|e| corrupt(archive, e))? {
        if pending.is_empty() && pending_optional.is_empty() {
            break;
        }
        let mut entry = entry.map_err(|e| corrupt(archive, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = normalise(&entry.path().map_err(|e| corrupt(archive, e))?);
        if !pending.remove(name.as_str()) && !pending_optional.remove(name.as_str()) {
            continue;
        }
        let size = entry.size();
        visit(&name, &mut entry, size).map_err(|e| match e {
            // An I/O error while reading a member is the archive's fault (truncated stream).
            IngestError::Io(io) => corrupt(archive, io),
            other => other,
        })?;
    }
    if !pending.is_empty() {
        let missing: Vec<&str> = pending.into_iter().collect();
        return Err(IngestError::bad(
            archive,
            format!(
                "the archive has no member {} (not the official archive, or truncated?)",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Read a member whole (its size comes from the tar header).
pub fn read_member(reader: &mut dyn Read, size: u64) -> Result<Vec<u8>, IngestError> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 30));
    reader.read_to_end(&mut bytes)?;
    if bytes.len() as u64 != size {
        return Err(IngestError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("member ends after {} of {size} bytes", bytes.len()),
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn reads_wanted_members_only_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar.gz");
        std::fs::write(
            &p,
            tgz(&[("./d/x", b"xx"), ("d/skip", b"s"), ("d/y", b"yyy")]),
        )
        .unwrap();
        let mut seen = Vec::new();
        for_each_member(
            &p,
            &["d/y".into(), "d/x".into()],
            &["d/z".into()],
            |n, r, s| {
                seen.push((n.to_string(), read_member(r, s)?));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            seen,
            vec![
                ("d/x".into(), b"xx".to_vec()),
                ("d/y".into(), b"yyy".to_vec())
            ]
        );
        let err = for_each_member(&p, &["d/w".into()], &[], |_, _, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.tar.gz") && err.contains("d/w"), "{err}");
        // Truncated gzip stream.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let err = for_each_member(&p, &["d/y".into()], &[], |_, r, s| {
            read_member(r, s).map(drop)
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("a.tar.gz") && err.contains("corrupt"), "{err}");
        std::fs::write(&p, b"plain").unwrap();
        let err = for_each_member(&p, &[], &[], |_, _, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a gzip file"), "{err}");
    }
}
