//! Canonical JSON and BLAKE3 hashing: the byte-stable encodings everything content-addressed is built on.
//!
//! Canonical JSON: object keys sorted (by bytes), no whitespace, strings escaped as `serde_json` does,
//! numbers as `serde_json` prints them (`f64` through ryu: `5.0`, `0.1`, `1e-7`), so the same value always
//! yields the same bytes regardless of how it was built (the crate enables `preserve_order`).

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::Digest;

/// Length of a hex BLAKE3 digest.
pub const HASH_LEN: usize = 64;

/// Canonical JSON text of `value` (sorted keys, no whitespace).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A copy of `value` whose objects have their keys inserted in sorted order (so that ordinary
/// serialisation, e.g. to TOML, is canonical too).
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k.as_str()])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// BLAKE3 of a byte string.
pub fn hash_bytes(bytes: &[u8]) -> Digest {
    Digest::of(bytes)
}

/// BLAKE3 of a file's contents (streamed).
pub fn hash_file(path: &Path) -> std::io::Result<Digest> {
    let file = fs_err::File::open(path)?;
    hash_reader(file)
}

/// BLAKE3 of everything `reader` yields.
pub fn hash_reader(mut reader: impl Read) -> std::io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Digest::parse(&hasher.finalize().to_hex()).expect("BLAKE3 hex is a digest"))
}

/// Whether `s` looks like a hex BLAKE3 digest (64 lowercase hex digits).
pub fn is_hash(s: &str) -> bool {
    s.len() == HASH_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// First 12 hex digits, for messages.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_and_is_compact() {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), json!(1));
        m.insert("a".into(), json!({"y": [1.5, "x"], "x": 5.0}));
        assert_eq!(
            canonical_json(&Value::Object(m)),
            r#"{"a":{"x":5.0,"y":[1.5,"x"]},"b":1}"#
        );
    }

    #[test]
    fn floats_are_stable() {
        assert_eq!(canonical_json(&json!(0.1)), "0.1");
        assert_eq!(canonical_json(&json!(1e-7)), "1e-7");
        assert_eq!(canonical_json(&json!("a\"b")), r#""a\"b""#);
    }

    #[test]
    fn blake3_known_vector() {
        // Official BLAKE3 test vector for the empty input.
        assert_eq!(
            hash_bytes(b"").as_str(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert!(is_hash(&hash_bytes(b"x")));
        assert!(!is_hash("../etc"));
    }
}
