//! Reading PyTorch `torch.save` files without Python (METHOD.md §3.8): the zip format of PyTorch ≥ 1.6
//! (`<name>/data.pkl` plus one stored entry `<name>/data/<key>` per storage) and the legacy format of
//! older PyTorch, which the reference's published checkpoints use (magic-number pickle, protocol
//! pickle, system-info pickle, the object pickle, the pickled list of storage keys, then each storage
//! as an 8-byte element count and its bytes).
//!
//! The object pickle is decoded by [`crate::data::pickle`]; tensors in it are calls of
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)` (or `_rebuild_tensor`, or
//! `_rebuild_parameter(tensor, …)`), whose storage is a persistent id `('storage', <torch.XStorage>,
//! key, location, numel[, view])`. [`TorchFile::tensor`] resolves such a value into a contiguous
//! little-endian [`RawTensor`], following the strides. Only the storages a caller asks for are read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::pickle::{self, Value};

/// Errors name the file and what in it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TorchFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// Element type of a tensor in a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// The dtype of PyTorch storage class `name` (`FloatStorage`, …).
    fn of_storage(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

/// A tensor read from a checkpoint: contiguous, row-major, little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Where the storages' bytes are.
enum Storages {
    /// Zip format: entry name prefix (`archive/`) and (entry name → byte range in the file).
    Zip {
        prefix: String,
        entries: HashMap<String, (usize, usize)>,
    },
    /// Legacy format: storage key → byte range of its data in the file.
    Legacy(HashMap<String, (usize, usize)>),
}

/// An opened `torch.save` file: the decoded object and access to its storages.
pub struct TorchFile {
    pub path: PathBuf,
    bytes: Vec<u8>,
    /// The saved object.
    pub root: Value,
    storages: Storages,
}

fn format_err(path: &Path, message: impl Into<String>) -> TorchFileError {
    TorchFileError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    b.get(at..at + 8).and_then(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        usize::try_from(u64::from_le_bytes(a)).ok()
    })
}

/// The entries of a zip file (stored entries only, as `torch.save` writes them; zip64 sizes and
/// offsets understood): name → byte range of the entry's data.
fn zip_entries(b: &[u8]) -> Result<HashMap<String, (usize, usize)>, String> {
    let truncated = || "truncated zip file".to_string();
    // End of central directory: the last `PK\x05\x06` (a comment may follow it).
    let eocd = (0..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..].starts_with(b"PK\x05\x06"))
        .ok_or("no zip end-of-central-directory record")?;
    let mut count = u16_at(b, eocd + 10).ok_or_else(truncated)?;
    let mut cd = u32_at(b, eocd + 16).ok_or_else(truncated)?;
    if count == 0xffff || cd == 0xffff_ffff {
        // Zip64: the locator sits right before the EOCD and points at the zip64 EOCD record.
        let loc = eocd.checked_sub(20).ok_or_else(truncated)?;
        if !b[loc..].starts_with(b"PK\x06\x07") {
            return Err("zip64 locator missing".into());
        }
        let rec = u64_at(b, loc + 8).ok_or_else(truncated)?;
        if !b.get(rec..).is_some_and(|s| s.starts_with(b"PK\x06\x06")) {
            return Err("zip64 end-of-central-directory record missing".into());
        }
        count = u64_at(b, rec + 32).ok_or_else(truncated)?;
        cd = u64_at(b, rec + 48).ok_or_else(truncated)?;
    }
    let mut entries = HashMap::new();
    let mut at = cd;
    for _ in 0..count {
        if !b.get(at..).is_some_and(|s| s.starts_with(b"PK\x01\x02")) {
            return Err(format!("bad central directory entry at offset {at}"));
        }
        let method = u16_at(b, at + 10).ok_or_else(truncated)?;
        let mut size = u32_at(b, at + 20).ok_or_else(truncated)?;
        let usize_ = u32_at(b, at + 24).ok_or_else(truncated)?;
        let name_len = u16_at(b, at + 28).ok_or_else(truncated)?;
        let extra_len = u16_at(b, at + 30).ok_or_else(truncated)?;
        let comment_len = u16_at(b, at + 32).ok_or_else(truncated)?;
        let mut local = u32_at(b, at + 42).ok_or_else(truncated)?;
        let name = b.get(at + 46..at + 46 + name_len).ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(name).into_owned();
        // Zip64 extra field (id 1): the 0xffffffff fields in order (size, compressed size, offset).
        let extra = b
            .get(at + 46 + name_len..at + 46 + name_len + extra_len)
            .ok_or_else(truncated)?;
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).unwrap_or(0);
            let len = u16_at(extra, e + 2).unwrap_or(0);
            if id == 1 {
                let mut f = e + 4;
                let mut next = || {
                    let v = u64_at(extra, f);
                    f += 8;
                    v
                };
                if usize_ == 0xffff_ffff {
                    next().ok_or_else(truncated)?;
                }
                if size == 0xffff_ffff {
                    size = next().ok_or_else(truncated)?;
                }
                if local == 0xffff_ffff {
                    local = next().ok_or_else(truncated)?;
                }
            }
            e += 4 + len;
        }
        if method != 0 {
            return Err(format!(
                "zip entry `{name}` is compressed (method {method}); torch.save stores entries \
                 uncompressed"
            ));
        }
        if !b.get(local..).is_some_and(|s| s.starts_with(b"PK\x03\x04")) {
            return Err(format!("bad local header of `{name}`"));
        }
        let lname = u16_at(b, local + 26).ok_or_else(truncated)?;
        let lextra = u16_at(b, local + 28).ok_or_else(truncated)?;
        let start = local + 30 + lname + lextra;
        if start + size > b.len() {
            return Err(format!("zip entry `{name}` runs past the end of the file"));
        }
        entries.insert(name, (start, start + size));
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

/// The pickled bytes of PyTorch's legacy magic number 0x1950a86a20f9469cfc6c (protocol 2).
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";

/// The persistent ids of storages in a value tree: (key, dtype).
fn storage_ids(v: &Value, out: &mut Vec<(String, DType)>) {
    match v {
        Value::Persistent(pid) => {
            if let Ok((key, dtype, _)) = storage_pid(pid) {
                out.push((key, dtype));
            }
        }
        Value::List(items) | Value::Tuple(items) => items.iter().for_each(|x| storage_ids(x, out)),
        Value::Dict(items) => items.iter().for_each(|(k, x)| {
            storage_ids(k, out);
            storage_ids(x, out);
        }),
        Value::Object { args, state, .. } => {
            args.iter().for_each(|x| storage_ids(x, out));
            if let Some(s) = state {
                storage_ids(s, out);
            }
        }
        _ => {}
    }
}

/// `('storage', torch.XStorage, key, location, numel[, view])` → (key, dtype, numel).
fn storage_pid(pid: &Value) -> Result<(String, DType, usize), String> {
    let Value::Tuple(t) = pid else {
        return Err(format!("persistent id {pid:?} is not a tuple"));
    };
    if t.len() < 5 || t[0].text().as_deref() != Some("storage") {
        return Err(format!("persistent id {pid:?} is not a storage"));
    }
    let dtype = match &t[1] {
        Value::Global(m, n) if m == "torch" => {
            DType::of_storage(n).ok_or_else(|| format!("unsupported storage type torch.{n}"))?
        }
        other => return Err(format!("unsupported storage type {other:?}")),
    };
    let key = t[2].text().ok_or("storage key is not a string")?;
    let numel = match t[4] {
        Value::Int(n) if n >= 0 => n as usize,
        _ => return Err("storage size is not a count".into()),
    };
    if t.len() > 5 && t[5] != Value::None {
        return Err("storage views (PyTorch < 1.0) are not supported".into());
    }
    Ok((key, dtype, numel))
}

fn usize_list(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(format!("{what} holds {x:?}")),
            })
            .collect(),
        Value::Int(i) if *i >= 0 => Ok(vec![*i as usize]),
        _ => Err(format!("{what} is {v:?}")),
    }
}

impl TorchFile {
    /// Open and decode a `torch.save` file (zip or legacy format).
    pub fn open(path: &Path) -> Result<TorchFile, TorchFileError> {
        let bytes = fs_err::read(path).map_err(|source| TorchFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let err = |m: String| format_err(path, m);
        if bytes.starts_with(b"PK\x03\x04") {
            let entries = zip_entries(&bytes).map_err(err)?;
            let (pkl, range) = entries
                .iter()
                .filter(|(n, _)| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
                .min_by(|a, b| a.0.cmp(b.0))
                .map(|(n, r)| (n.clone(), *r))
                .ok_or_else(|| {
                    err("zip file without `<name>/data.pkl`: not a torch.save file".into())
                })?;
            let prefix = pkl.trim_end_matches("data.pkl").to_string();
            if let Some(&(a, b)) = entries.get(&format!("{prefix}byteorder")) {
                if &bytes[a..b] != b"little" {
                    return Err(err(format!(
                        "byte order `{}` (only little-endian checkpoints are supported)",
                        String::from_utf8_lossy(&bytes[a..b])
                    )));
                }
            }
            let root =
                pickle::parse(&bytes[range.0..range.1]).map_err(|m| err(format!("{pkl}: {m}")))?;
            Ok(TorchFile {
                path: path.to_path_buf(),
                bytes,
                root,
                storages: Storages::Zip { prefix, entries },
            })
        } else if bytes.starts_with(LEGACY_MAGIC) {
            let mut at = LEGACY_MAGIC.len();
            let mut next = |what: &str| -> Result<Value, TorchFileError> {
                let (v, used) =
                    pickle::parse_prefix(&bytes[at..]).map_err(|m| err(format!("{what}: {m}")))?;
                at += used;
                Ok(v)
            };
            let protocol = next("protocol version")?;
            if protocol != Value::Int(1001) {
                return Err(err(format!(
                    "legacy protocol version {protocol:?} (expected 1001)"
                )));
            }
            let info = next("system info")?;
            if info.get("little_endian") == Some(&Value::Bool(false)) {
                return Err(err(
                    "big-endian checkpoint (only little-endian is supported)".into(),
                ));
            }
            let root = next("saved object")?;
            let keys = next("storage keys")?;
            let Value::List(keys) = keys else {
                return Err(err("the storage key list is not a list".into()));
            };
            let mut ids = Vec::new();
            storage_ids(&root, &mut ids);
            let dtypes: HashMap<String, DType> = ids.into_iter().collect();
            let mut ranges = HashMap::new();
            for k in &keys {
                let key = k
                    .text()
                    .ok_or_else(|| err("a storage key is not a string".into()))?;
                let dtype = dtypes
                    .get(&key)
                    .ok_or_else(|| err(format!("storage `{key}` is not used by the object")))?;
                let numel = u64_at(&bytes, at)
                    .ok_or_else(|| err(format!("storage `{key}` is truncated")))?;
                let start = at + 8;
                let end = numel
                    .checked_mul(dtype.size())
                    .and_then(|n| n.checked_add(start))
                    .filter(|&e| e <= bytes.len())
                    .ok_or_else(|| err(format!("storage `{key}` is truncated")))?;
                ranges.insert(key, (start, end));
                at = end;
            }
            Ok(TorchFile {
                path: path.to_path_buf(),
                bytes,
                root,
                storages: Storages::Legacy(ranges),
            })
        } else {
            Err(err(
                "not a PyTorch checkpoint (neither a zip file nor the legacy torch.save format)"
                    .into(),
            ))
        }
    }

    fn storage_bytes(&self, key: &str) -> Result<&[u8], String> {
        let range = match &self.storages {
            Storages::Zip { prefix, entries } => entries.get(&format!("{prefix}data/{key}")),
            Storages::Legacy(ranges) => ranges.get(key),
        };
        let &(a, b) = range.ok_or_else(|| format!("storage `{key}` missing from the file"))?;
        Ok(&self.bytes[a..b])
    }

    /// The tensor a value of the saved object stands for, or `None` if it is no tensor.
    pub fn tensor(&self, v: &Value) -> Option<Result<RawTensor, String>> {
        let Value::Object { callable, args, .. } = v else {
            return None;
        };
        if callable.is_global(&["torch._utils"], "_rebuild_parameter") {
            return match args.first() {
                Some(inner) => self.tensor(inner),
                None => Some(Err("_rebuild_parameter without a tensor".into())),
            };
        }
        if !callable.is_global(&["torch._utils"], "_rebuild_tensor_v2")
            && !callable.is_global(&["torch._utils"], "_rebuild_tensor")
        {
            return None;
        }
        Some(self.rebuild(args))
    }

    fn rebuild(&self, args: &[Value]) -> Result<RawTensor, String> {
        let [Value::Persistent(pid), offset, size, stride, ..] = args else {
            return Err("tensor without a storage, offset, size and stride".into());
        };
        let (key, dtype, numel) = storage_pid(pid)?;
        let offset = match offset {
            Value::Int(o) if *o >= 0 => *o as usize,
            other => return Err(format!("storage offset {other:?}")),
        };
        let shape = usize_list(size, "size")?;
        let stride = usize_list(stride, "stride")?;
        if shape.len() != stride.len() {
            return Err(format!(
                "size {shape:?} and stride {stride:?} differ in length"
            ));
        }
        let data = self.storage_bytes(&key)?;
        let es = dtype.size();
        if data.len() != numel * es {
            return Err(format!(
                "storage `{key}` holds {} bytes, expected {numel} elements of {es} bytes",
                data.len()
            ));
        }
        let count: usize = shape.iter().product();
        let mut out = Vec::with_capacity(count * es);
        if count > 0 {
            let last = offset
                + shape
                    .iter()
                    .zip(&stride)
                    .map(|(&n, &s)| (n - 1) * s)
                    .sum::<usize>();
            if last >= numel {
                return Err(format!(
                    "size {shape:?}, stride {stride:?} at offset {offset} run past storage `{key}` \
                     of {numel} elements"
                ));
            }
            let mut idx = vec![0usize; shape.len()];
            for _ in 0..count {
                let e = offset + idx.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
                out.extend_from_slice(&data[e * es..(e + 1) * es]);
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < shape[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        Ok(RawTensor {
            dtype,
            shape,
            data: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pth.tar");
        std::fs::write(&p, b"hello").unwrap();
        let e = TorchFile::open(&p).err().unwrap().to_string();
        assert!(
            e.contains("x.pth.tar") && e.contains("not a PyTorch checkpoint"),
            "{e}"
        );
        std::fs::write(&p, b"PK\x03\x04 truncated").unwrap();
        let e = TorchFile::open(&p).err().unwrap().to_string();
        assert!(e.contains("zip"), "{e}");
    }
}
