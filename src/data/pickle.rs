//! A minimal, safe pickle reader for the CIFAR "python version" files and PyTorch checkpoints: no
//! Python at run time, no code execution. It evaluates the opcodes of protocols 0–5 that plain data
//! uses (dicts, lists, tuples, ints, floats, str/bytes) into a [`Value`] tree; a call of a global
//! (`REDUCE`, `NEWOBJ`) becomes an inert [`Value::Object`], except `_codecs.encode(s, 'latin1')` and
//! `bytes()`, which is how Python 3 writes `bytes` at protocol 2, and `collections.OrderedDict()`,
//! which becomes a [`Value::Dict`] (a PyTorch state_dict; its `BUILD` state, the `_metadata`
//! attribute, is dropped). A persistent id (`PERSID`, `BINPERSID`: how PyTorch refers to tensor
//! storages) becomes an inert [`Value::Persistent`]. [`super::numpy::ndarray`] then recognises
//! numpy's `_reconstruct` / `_frombuffer` objects and returns the raw array bytes; `nn::torch_file`
//! resolves PyTorch's tensors.
//!
//! The memo keeps snapshots (taken when an object is memoised), which is exact for these files: they
//! never fetch a container from the memo after filling it (PyTorch fetches only globals, storage
//! keys and the empty hooks dict).

use std::rc::Rc;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Rc<Vec<u8>>),
    Str(Rc<str>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// A persistent id (`PERSID` / `BINPERSID`), left for the caller to resolve.
    Persistent(Box<Value>),
    /// An integer that does not fit 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// `callable(*args)` with an optional `BUILD` state.
    Object {
        callable: Box<Value>,
        args: Vec<Value>,
        state: Option<Box<Value>>,
    },
}

impl Value {
    /// The value of `key` (given as `bytes` or `str`) in a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Bytes(b) if b.as_slice() == key.as_bytes() => Some(v),
                Value::Str(s) if &**s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Text of a `str` or `bytes` value.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub(crate) fn is_global(&self, modules: &[&str], name: &str) -> bool {
        matches!(self, Value::Global(m, n) if n == name && modules.contains(&m.as_str()))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() - self.pos < n {
            return Err(format!(
                "pickle is truncated: needs {n} bytes at offset {}, {} left",
                self.pos,
                self.b.len() - self.pos
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<usize, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    fn u64(&mut self) -> Result<usize, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        usize::try_from(u64::from_le_bytes(a)).map_err(|_| "length overflows".to_string())
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.b[self.pos..];
        let end = rest.iter().position(|&c| c == b'\n').ok_or_else(|| {
            format!(
                "pickle is truncated: unterminated line at offset {}",
                self.pos
            )
        })?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end])
            .map_err(|_| format!("non-UTF-8 text at offset {}", self.pos))
    }
}

fn utf8(bytes: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(bytes)
        .map(|s| Value::Str(Rc::from(s)))
        .map_err(|_| "invalid UTF-8 in a pickled str".to_string())
}

/// Apply `callable(*args)`: the byte-string constructors are evaluated, anything else stays inert.
fn call(callable: Value, args: Vec<Value>) -> Result<Value, String> {
    if callable.is_global(&["_codecs"], "encode") {
        if let [Value::Str(s), Value::Str(enc)] = args.as_slice() {
            if matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1") {
                let bytes: Option<Vec<u8>> =
                    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                return bytes
                    .map(|b| Value::Bytes(Rc::new(b)))
                    .ok_or_else(|| "_codecs.encode: non-latin1 character".to_string());
            }
        }
    }
    if callable.is_global(&["collections"], "OrderedDict") && args.is_empty() {
        return Ok(Value::Dict(Vec::new()));
    }
    if callable.is_global(&["__builtin__", "builtins"], "bytes") && args.is_empty() {
        return Ok(Value::Bytes(Rc::new(Vec::new())));
    }
    Ok(Value::Object {
        callable: Box::new(callable),
        args,
        state: None,
    })
}

/// Decode a pickle.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    parse_prefix(bytes).map(|(v, _)| v)
}

/// Decode the pickle at the start of `bytes`; returns the value and the number of bytes it took
/// (files such as PyTorch's legacy checkpoints hold several pickles back to back).
pub fn parse_prefix(bytes: &[u8]) -> Result<(Value, usize), String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: std::collections::HashMap<usize, Value> = std::collections::HashMap::new();
    macro_rules! pop {
        () => {
            stack
                .pop()
                .ok_or_else(|| format!("stack underflow at offset {}", r.pos))?
        };
    }
    macro_rules! pop_mark {
        () => {{
            let m = marks
                .pop()
                .ok_or_else(|| format!("missing MARK at offset {}", r.pos))?;
            if m > stack.len() {
                return Err(format!("bad MARK at offset {}", r.pos));
            }
            stack.split_off(m)
        }};
    }
    macro_rules! top {
        () => {
            stack
                .last_mut()
                .ok_or_else(|| format!("stack underflow at offset {}", r.pos))?
        };
    }
    loop {
        let at = r.pos;
        let op = r
            .u8()
            .map_err(|_| format!("pickle is truncated: no STOP opcode (ends at offset {at})"))?;
        match op {
            0x80 => {
                r.u8()?;
            }
            0x95 => {
                r.u64()?;
            }
            b'.' => {
                return stack
                    .pop()
                    .map(|v| (v, r.pos))
                    .ok_or_else(|| "empty pickle".to_string())
            }
            b'(' => marks.push(stack.len()),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'l' => {
                let items = pop_mark!();
                stack.push(Value::List(items));
            }
            b't' => {
                let items = pop_mark!();
                stack.push(Value::Tuple(items));
            }
            b'd' => {
                let items = pop_mark!();
                stack.push(Value::Dict(pairs(items, at)?));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(format!("stack underflow at offset {at}"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'a' => {
                let v = pop!();
                match top!() {
                    Value::List(l) => l.push(v),
                    _ => return Err(format!("APPEND to a non-list at offset {at}")),
                }
            }
            b'e' => {
                let items = pop_mark!();
                match top!() {
                    Value::List(l) => l.extend(items),
                    _ => return Err(format!("APPENDS to a non-list at offset {at}")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop!();
                    let k = pop!();
                    vec![k, v]
                } else {
                    pop_mark!()
                };
                let new = pairs(items, at)?;
                match top!() {
                    Value::Dict(d) => d.extend(new),
                    _ => return Err(format!("SETITEM on a non-dict at offset {at}")),
                }
            }
            b'q' | b'r' | b'p' | 0x94 => {
                let idx = match op {
                    b'q' => r.u8()? as usize,
                    b'r' => r.u32()?,
                    b'p' => r
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad PUT at {at}"))?,
                    _ => memo.len(),
                };
                let v = top!().clone();
                memo.insert(idx, v);
            }
            b'h' | b'j' | b'g' => {
                let idx = match op {
                    b'h' => r.u8()? as usize,
                    b'j' => r.u32()?,
                    _ => r
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad GET at {at}"))?,
                };
                let v = memo
                    .get(&idx)
                    .ok_or_else(|| format!("memo key {idx} missing at offset {at}"))?;
                stack.push(v.clone());
            }
            b'J' => {
                let s = r.take(4)?;
                stack.push(Value::Int(
                    i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64
                ));
            }
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => {
                let s = r.take(2)?;
                stack.push(Value::Int(u16::from_le_bytes([s[0], s[1]]) as i64));
            }
            b'I' | b'L' => {
                let t = r.line()?.trim_end_matches('L');
                stack.push(match (op, t) {
                    (b'I', "00") => Value::Bool(false),
                    (b'I', "01") => Value::Bool(true),
                    _ => Value::Int(t.parse().map_err(|_| format!("bad INT {t:?} at {at}"))?),
                });
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    r.u8()? as usize
                } else {
                    r.u32()?
                };
                let s = r.take(n)?;
                if n > 8 {
                    stack.push(Value::BigInt(s.to_vec()));
                    continue;
                }
                let fill = if s.last().is_some_and(|&b| b & 0x80 != 0) {
                    0xff
                } else {
                    0
                };
                let mut a = [fill; 8];
                a[..n].copy_from_slice(s);
                stack.push(Value::Int(i64::from_le_bytes(a)));
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'G' => {
                let s = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                stack.push(Value::Float(f64::from_be_bytes(a)));
            }
            b'F' => {
                let t = r.line()?;
                stack.push(Value::Float(
                    t.trim().parse().map_err(|_| format!("bad FLOAT at {at}"))?,
                ));
            }
            b'U' | b'C' | b'T' | b'B' | 0x8e | 0x96 => {
                let n = match op {
                    b'U' | b'C' => r.u8()? as usize,
                    b'T' | b'B' => r.u32()?,
                    _ => r.u64()?,
                };
                stack.push(Value::Bytes(Rc::new(r.take(n)?.to_vec())));
            }
            0x8c | b'X' | 0x8d => {
                let n = match op {
                    0x8c => r.u8()? as usize,
                    b'X' => r.u32()?,
                    _ => r.u64()?,
                };
                stack.push(utf8(r.take(n)?)?);
            }
            b'c' => {
                let module = r.line()?.to_string();
                let name = r.line()?.to_string();
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop!().text();
                let module = pop!().text();
                match (module, name) {
                    (Some(m), Some(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err(format!("bad STACK_GLOBAL at offset {at}")),
                }
            }
            b'R' | 0x81 => {
                let args = match pop!() {
                    Value::Tuple(t) => t,
                    _ => return Err(format!("call arguments are not a tuple at offset {at}")),
                };
                let callable = pop!();
                stack.push(call(callable, args)?);
            }
            b'b' => {
                let st = pop!();
                match top!() {
                    Value::Object { state, .. } => *state = Some(Box::new(st)),
                    // An OrderedDict's instance attributes (a state_dict's `_metadata`).
                    Value::Dict(_) => {}
                    _ => return Err(format!("BUILD on a non-object at offset {at}")),
                }
            }
            b'Q' => {
                let pid = pop!();
                stack.push(Value::Persistent(Box::new(pid)));
            }
            b'P' => {
                let pid = r.line()?.to_string();
                stack.push(Value::Persistent(Box::new(Value::Str(Rc::from(
                    pid.as_str(),
                )))));
            }
            b'0' => {
                pop!();
            }
            b'1' => {
                let _ = pop_mark!();
            }
            b'2' => {
                let v = top!().clone();
                stack.push(v);
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at offset {at}"
                ))
            }
        }
    }
}

fn pairs(items: Vec<Value>, at: usize) -> Result<Vec<(Value, Value)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("odd number of dict items at offset {at}"));
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first bytes of an official CIFAR-10 python batch (Python 2 cPickle, protocol 2), with a
    /// 2-image array instead of 10 000: `{'data': array(uint8 [2, 3]), 'labels': [6, 9]}`.
    fn py2_style() -> Vec<u8> {
        let mut p =
            b"\x80\x02}q\x01(U\x04dataq\x02cnumpy.core.multiarray\n_reconstruct\nq\x03".to_vec();
        p.extend_from_slice(b"cnumpy\nndarray\nq\x04K\x00\x85U\x01b\x87Rq\x05(K\x01K\x02K\x03\x86");
        p.extend_from_slice(
            b"cnumpy\ndtype\nq\x06U\x02u1K\x00K\x01\x87Rq\x07(K\x03U\x01|NNNJ\xff\xff\xff\xff",
        );
        p.extend_from_slice(b"J\xff\xff\xff\xffK\x00tbI00\nT\x06\x00\x00\x00\x01\x02\x03\xfd\xfe\xfftbU\x06labelsq\x08");
        p.extend_from_slice(b"]q\t(K\x06K\teU\x01Bh\x03u.");
        p
    }

    #[test]
    fn reads_python2_cifar_layout() {
        let v = parse(&py2_style()).unwrap();
        let a = crate::data::numpy::ndarray(v.get("data").unwrap()).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(*a.data, vec![1, 2, 3, 253, 254, 255]);
        assert_eq!(
            v.get("labels"),
            Some(&Value::List(vec![Value::Int(6), Value::Int(9)]))
        );
        // The memoised string fetched back with BINGET.
        assert!(matches!(v.get("B"), Some(Value::Global(_, n)) if n == "_reconstruct"));
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let p = py2_style();
        for cut in [1, 10, 60, p.len() - 1] {
            assert!(parse(&p[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse(b"hello world").is_err());
        assert!(parse(b"").unwrap_err().contains("truncated"));
    }

    #[test]
    fn torch_state_dict_layout() {
        // OrderedDict() with one entry whose value is a persistent id, then a BUILD of `_metadata`;
        // then PyTorch's legacy magic number as a 10-byte LONG1.
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00w".to_vec();
        p.extend_from_slice(
            b"(X\x07\x00\x00\x00storageX\x01\x00\x00\x000tQs}X\x09\x00\x00\x00_metadata",
        );
        p.extend_from_slice(b"}sb.");
        let (v, used) = parse_prefix(&p).unwrap();
        assert_eq!(used, p.len());
        let Some(Value::Persistent(pid)) = v.get("w") else {
            panic!("{v:?}")
        };
        assert!(matches!(&**pid, Value::Tuple(t) if t.len() == 2));
        let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        let (m, used) = parse_prefix(magic).unwrap();
        assert_eq!(used, magic.len());
        assert!(matches!(m, Value::BigInt(b) if b.len() == 10));
    }

    #[test]
    fn python3_protocol2_bytes_via_codecs() {
        // _codecs.encode('\xff\x00', 'latin1') as Python 3 writes it at protocol 2.
        let p = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00\xc3\xbf\x00q\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.";
        assert_eq!(parse(p).unwrap(), Value::Bytes(Rc::new(vec![0xff, 0])));
    }
}
