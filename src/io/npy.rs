//! NumPy `.npy` float matrices (format versions 1–3, as `numpy.save` writes them): an `[n, dim]`
//! array of `float16`, `float32` or `float64`, either byte order, C or Fortran order, read into
//! row-major `f32`. Anything else (other dtypes, other ranks, pickled objects) is an error naming the
//! file.

use std::path::Path;

use super::common::IoError;

/// The magic string every `.npy` file starts with.
pub const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// An `[rows, cols]` matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// IEEE 754 half precision bits → `f32` (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f32::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

/// The value of `key` in the header dict text (`'key': value`), up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat_single = format!("'{key}'");
    let pat_double = format!("\"{key}\"");
    let start = header
        .find(&pat_single)
        .map(|i| i + pat_single.len())
        .or_else(|| header.find(&pat_double).map(|i| i + pat_double.len()))?;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

/// Parse a `.npy` file's bytes.
pub fn parse_npy(path: &Path, bytes: &[u8]) -> Result<Matrix, IoError> {
    let bad = |m: String| IoError::invalid(path, format!("not a readable .npy float matrix: {m}"));
    if !bytes.starts_with(NPY_MAGIC) || bytes.len() < 10 {
        return Err(bad("no .npy magic string".into()));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (l as usize, 12)
        }
        v => return Err(bad(format!("format version {v} is not supported"))),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("truncated header".into()))?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| bad("header is not text".into()))?;
    let descr = dict_value(header, "descr")
        .ok_or_else(|| bad("header has no `descr`".into()))?
        .trim_matches(|c| c == '\'' || c == '"');
    let fortran = match dict_value(header, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        other => return Err(bad(format!("bad `fortran_order` {other:?}"))),
    };
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| bad("header has no `shape`".into()))?;
    let shape: Vec<usize> = shape_text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad(format!("bad `shape` {shape_text}")))?;
    let [rows, cols] = shape[..] else {
        return Err(bad(format!(
            "shape {shape_text} is not a matrix [n, dim] (one row per sample)"
        )));
    };
    if rows == 0 || cols == 0 {
        return Err(bad(format!("shape {shape_text} is empty")));
    }
    let (little, size) = match descr.as_bytes() {
        [order @ (b'<' | b'>' | b'='), b'f', s @ (b'2' | b'4' | b'8')] => {
            let little = match order {
                b'<' => true,
                b'>' => false,
                _ => cfg!(target_endian = "little"),
            };
            (little, (s - b'0') as usize)
        }
        _ => {
            return Err(bad(format!(
                "dtype `{descr}` is not float16, float32 or float64"
            )))
        }
    };
    let count = rows
        .checked_mul(cols)
        .ok_or_else(|| bad(format!("shape {shape_text} is too large")))?;
    let body = &bytes[data_start..];
    if Some(body.len()) != count.checked_mul(size) {
        return Err(bad(format!(
            "shape {shape_text} × {size}-byte values needs {} data bytes, the file has {} \
             (truncated?)",
            count.saturating_mul(size),
            body.len()
        )));
    }
    let value = |c: &[u8]| -> f32 {
        match (size, little) {
            (2, true) => f16_to_f32(u16::from_le_bytes([c[0], c[1]])),
            (2, false) => f16_to_f32(u16::from_be_bytes([c[0], c[1]])),
            (4, true) => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            (4, false) => f32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            (_, true) => {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }
            (_, false) => {
                f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }
        }
    };
    let flat: Vec<f32> = body.chunks_exact(size).map(value).collect();
    let data = if fortran {
        // Column-major: element (r, c) is at c·rows + r.
        let mut out = vec![0f32; count];
        for (c, col) in flat.chunks_exact(rows).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                out[r * cols + c] = v;
            }
        }
        out
    } else {
        flat
    };
    Ok(Matrix { rows, cols, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_orders_and_dtypes() {
        let p = Path::new("x.npy");
        let vals = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let le: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = parse_npy(p, &npy("<f4", false, "(2, 3)", &le)).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.data, vals);
        // Fortran order: the same bytes are the columns.
        let m = parse_npy(p, &npy("<f4", true, "(2, 3)", &le)).unwrap();
        assert_eq!(m.data, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let be: Vec<u8> = vals
            .iter()
            .flat_map(|v| (*v as f64).to_be_bytes())
            .collect();
        let m = parse_npy(p, &npy(">f8", false, "(3, 2)", &be)).unwrap();
        assert_eq!((m.rows, m.cols, m.data[5]), (3, 2, 6.0));
        // float16: 1.0 = 0x3c00, -2.5 = 0xc100, 2^-24 = 0x0001 (subnormal).
        let h: Vec<u8> = [0x3c00u16, 0xc100, 0x0001, 0x7bff]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let m = parse_npy(p, &npy("<f2", false, "(2, 2)", &h)).unwrap();
        assert_eq!(m.data, [1.0, -2.5, 2f32.powi(-24), 65504.0]);
        for (bytes, needle) in [
            (npy("<i4", false, "(2, 3)", &le), "dtype"),
            (npy("<f4", false, "(6,)", &le), "matrix"),
            (npy("<f4", false, "(2, 4)", &le), "truncated"),
            (b"PAR1".to_vec(), "magic"),
        ] {
            let e = parse_npy(p, &bytes).unwrap_err().to_string();
            assert!(e.contains("x.npy") && e.contains(needle), "{e}");
        }
    }
}
