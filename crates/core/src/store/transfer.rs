//! `scan export` / `scan import`: one portable tar file holding action records and the blobs they
//! reference (directory outputs: manifest and files). Entries are only `scan-export.json`,
//! `actions/<key>.json` and `blobs/<2 hex>/<hash>`. Import verifies every blob's hash against its name and
//! every record's key against its manifest, refuses any other entry (path traversal, links, devices),
//! stages everything under `tmp/` and commits blobs first, records last: a failed import leaves nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::canon::hash_reader;
use super::{remove_tree, ActionRecord, OutputKind, Result, Store, StoreError};

/// Largest action record accepted by import.
const MAX_ACTION_BYTES: u64 = 64 << 20;

/// Summary of an export or import.
#[derive(Debug, Default, Clone, Serialize)]
pub struct TransferReport {
    pub actions: Vec<String>,
    pub blobs: usize,
    pub bytes: u64,
}

fn tar_err(file: &Path, entry: &str, message: impl ToString) -> StoreError {
    StoreError::Import {
        file: file.to_path_buf(),
        entry: entry.into(),
        message: message.to_string(),
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

impl Store {
    /// Blob hashes an action record needs (outputs; for directories the manifest and its files).
    pub fn blobs_of(&self, rec: &ActionRecord) -> Result<BTreeSet<String>> {
        let mut set = BTreeSet::new();
        for o in rec.outputs.values() {
            set.insert(o.hash.to_string());
            if o.kind == OutputKind::Dir {
                set.extend(
                    self.read_tree(&o.hash)?
                        .entries
                        .into_iter()
                        .map(|e| e.hash.into()),
                );
            }
        }
        Ok(set)
    }

    /// Write the records of `keys` and their blobs into the tar file `out` (atomically).
    pub fn export(&self, keys: &[String], out: &Path) -> Result<TransferReport> {
        let dir = match out.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".scan-export-")
            .tempfile_in(&dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let report = self.export_to(keys, std::io::BufWriter::new(tmp.as_file()))?;
        tmp.as_file().sync_all()?;
        tmp.persist(out).map_err(|e| {
            std::io::Error::new(e.error.kind(), format!("{}: {}", out.display(), e.error))
        })?;
        Ok(report)
    }

    /// Stream the records of `keys` and their blobs as a tar archive into `w` (e.g. stdout):
    /// blobs are copied file by file, never held in memory.
    pub fn export_to(&self, keys: &[String], w: impl Write) -> Result<TransferReport> {
        let mut report = TransferReport::default();
        let mut records = Vec::new();
        let mut blobs = BTreeSet::new();
        for key in keys {
            let rec = self.read_action(key).ok_or_else(|| StoreError::BadAction {
                path: self.action_path(key),
                message: "missing or unreadable".into(),
            })?;
            for h in self.blobs_of(&rec)? {
                if !self.has_blob(&h) {
                    return Err(StoreError::MissingBlob { hash: h });
                }
                blobs.insert(h);
            }
            records.push(rec);
        }
        let mut builder = tar::Builder::new(w);
        let index = serde_json::json!({"schema": 1, "keys": keys});
        let index = serde_json::to_vec_pretty(&index).unwrap_or_default();
        builder.append_data(
            &mut header(index.len() as u64),
            "scan-export.json",
            &index[..],
        )?;
        for rec in &records {
            let bytes = serde_json::to_vec_pretty(rec).unwrap_or_default();
            let name = format!("actions/{}.json", rec.key);
            builder.append_data(&mut header(bytes.len() as u64), &name, &bytes[..])?;
            report.actions.push(rec.key.to_string());
        }
        for h in &blobs {
            let path = self.blob_path(h);
            let file = fs_err::File::open(&path)?;
            let size = file.metadata()?.len();
            let name = format!("blobs/{}/{h}", &h[..2]);
            builder.append_data(&mut header(size), &name, file)?;
            report.blobs += 1;
            report.bytes += size;
        }
        builder.into_inner()?.flush()?;
        Ok(report)
    }

    /// Import a file written by [`Store::export`]; all or nothing.
    pub fn import(&self, file: &Path) -> Result<TransferReport> {
        let f = fs_err::File::open(file)?;
        self.import_from(std::io::BufReader::new(f), file)
    }

    /// Import an archive read from `r` in one pass (e.g. stdin); `name` is used in messages.
    pub fn import_from(&self, r: impl Read, name: &Path) -> Result<TransferReport> {
        let tmp = self.temp_dir("import")?;
        let result = self.import_into(r, name, &tmp);
        let _ = remove_tree(&tmp);
        result
    }

    fn import_into(&self, r: impl Read, file: &Path, tmp: &Path) -> Result<TransferReport> {
        let mut report = TransferReport::default();
        let mut archive = tar::Archive::new(r);
        let mut staged_blobs: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut records: Vec<ActionRecord> = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| tar_err(file, "(archive)", e))?;
        for (i, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| tar_err(file, &format!("#{i}"), e))?;
            let raw = entry.path_bytes();
            let name = std::str::from_utf8(&raw)
                .map_err(|_| tar_err(file, &String::from_utf8_lossy(&raw), "name is not UTF-8"))?
                .to_string();
            let kind = entry.header().entry_type();
            if kind.is_dir() && matches!(name.trim_end_matches('/'), "blobs" | "actions") {
                continue;
            }
            if !kind.is_file() {
                return Err(tar_err(
                    file,
                    &name,
                    format!("refused: not a regular file ({kind:?})"),
                ));
            }
            let parts: Vec<&str> = name.split('/').collect();
            match parts.as_slice() {
                ["scan-export.json"] => {}
                ["actions", f] if f.strip_suffix(".json").is_some_and(super::is_hash) => {
                    let key = &f[..f.len() - 5];
                    if entry.size() > MAX_ACTION_BYTES {
                        return Err(tar_err(file, &name, "action record too large"));
                    }
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    let rec = ActionRecord::parse(Path::new(&name), &bytes)
                        .map_err(|e| tar_err(file, &name, e))?;
                    if *rec.key != *key {
                        return Err(tar_err(
                            file,
                            &name,
                            format!("record holds key {}", rec.key),
                        ));
                    }
                    records.push(rec);
                }
                ["blobs", shard, h]
                    if super::is_hash(h) && h.starts_with(shard) && shard.len() == 2 =>
                {
                    let dest = tmp.join(h);
                    let mut out = fs_err::File::create(&dest)?;
                    let mut tee = Tee {
                        inner: &mut entry,
                        out: &mut out,
                        error: None,
                    };
                    let actual = hash_reader(&mut tee)?;
                    if let Some(e) = tee.error {
                        return Err(e.into());
                    }
                    if *actual != **h {
                        return Err(tar_err(file, &name, format!("contents hash to {actual}")));
                    }
                    out.sync_all()?;
                    report.bytes += entry.size();
                    staged_blobs.insert(h.to_string(), dest);
                }
                _ => {
                    return Err(tar_err(
                        file,
                        &name,
                        "refused: only actions/<key>.json and blobs/<xx>/<hash> may be imported",
                    ))
                }
            }
        }
        // Every record must be complete with what is staged or already stored.
        let present = |h: &str| staged_blobs.contains_key(h) || self.has_blob(h);
        for rec in &records {
            for (out_name, o) in &rec.outputs {
                let missing = |h: &str| {
                    tar_err(file, &format!("actions/{}.json", rec.key), format!("output `{out_name}` needs blob {h}, which is neither in the file nor in the store"))
                };
                if !present(&o.hash) {
                    return Err(missing(&o.hash));
                }
                if o.kind == OutputKind::Dir {
                    let bytes = match staged_blobs.get(o.hash.as_str()) {
                        Some(p) => fs_err::read(p)?,
                        None => self.read_blob(&o.hash)?,
                    };
                    let m = super::tree::TreeManifest::parse(&o.hash, &bytes)?;
                    if let Some(e) = m.entries.iter().find(|e| !present(&e.hash)) {
                        return Err(missing(&e.hash));
                    }
                }
            }
        }
        for (h, src) in &staged_blobs {
            let dest = self.blob_path(h);
            if dest.is_file() {
                continue;
            }
            if let Some(parent) = dest.parent() {
                fs_err::create_dir_all(parent)?;
            }
            fs_err::set_permissions(src, std::fs::Permissions::from_mode(0o444))?;
            fs_err::rename(src, &dest)?;
            report.blobs += 1;
        }
        for rec in &records {
            self.write_action(rec)?;
            report.actions.push(rec.key.to_string());
        }
        Ok(report)
    }
}

/// Copies what it reads into `out` (write errors are kept and reported after hashing).
struct Tee<'a, R: Read> {
    inner: &'a mut R,
    out: &'a mut fs_err::File,
    error: Option<std::io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.error.is_none() {
            if let Err(e) = self.out.write_all(&buf[..n]) {
                self.error = Some(e);
            }
        }
        Ok(n)
    }
}
