//! MNIST / Fashion-MNIST IDX files, gzipped or not: `idx3-ubyte` images `[N, rows, cols]`
//! and `idx1-ubyte` labels `[N]`, big-endian header, magic `00 00 08 <ndims>`.

use super::raw::RawFile;
use super::IngestError;

/// An IDX uint8 tensor: its dimensions and the data after the header.
struct Idx<'a> {
    dims: Vec<usize>,
    data: &'a [u8],
}

fn parse(file: &RawFile, ndims: u8) -> Result<Idx<'_>, IngestError> {
    let b = &file.bytes;
    let bad = |m: String| IngestError::bad(&file.path, m);
    let expected_magic = [0u8, 0, 0x08, ndims];
    if b.len() < 4 || b[..4] != expected_magic {
        let found: Vec<String> = b.iter().take(4).map(|x| format!("{x:02x}")).collect();
        return Err(bad(format!(
            "wrong magic number {} (expected {:02x} {:02x} {:02x} {:02x}: IDX uint8 with {ndims} dimension(s))",
            if found.is_empty() { "(empty file)".into() } else { found.join(" ") },
            expected_magic[0],
            expected_magic[1],
            expected_magic[2],
            expected_magic[3]
        )));
    }
    let header = 4 + 4 * ndims as usize;
    if b.len() < header {
        return Err(bad(format!(
            "truncated header: {} bytes, expected at least {header}",
            b.len()
        )));
    }
    let dims: Vec<usize> = b[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let expected = count.and_then(|c| c.checked_add(header));
    if expected != Some(b.len()) {
        let dims_txt: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        return Err(bad(format!(
            "wrong size: header says {} so {} bytes are expected, the file has {}{}",
            dims_txt.join("×"),
            expected.map_or("too many".into(), |e| e.to_string()),
            b.len(),
            if expected.is_some_and(|e| e > b.len()) {
                " (truncated?)"
            } else {
                ""
            }
        )));
    }
    Ok(Idx {
        dims,
        data: &b[header..],
    })
}

/// Images and labels read from an IDX pair: `(images NHW1 u8, labels, height, width)`.
pub struct IdxData {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
}

/// Read an images file and a labels file; labels must be below `num_classes`.
pub fn read_pair(
    images: &RawFile,
    labels: &RawFile,
    num_classes: usize,
) -> Result<IdxData, IngestError> {
    let img = parse(images, 3)?;
    let lab = parse(labels, 1)?;
    let (n, h, w) = (img.dims[0], img.dims[1], img.dims[2]);
    if lab.dims[0] != n {
        return Err(IngestError::bad(
            &labels.path,
            format!(
                "{} labels but {} has {n} images (image/label count mismatch)",
                lab.dims[0],
                images.path.display()
            ),
        ));
    }
    if let Some((i, &l)) = lab
        .data
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= num_classes)
    {
        return Err(IngestError::bad(
            &labels.path,
            format!("label {l} of item {i} is out of range 0..{num_classes}"),
        ));
    }
    Ok(IdxData {
        images: img.data.to_vec(),
        labels: lab.data.iter().map(|&l| l as i64).collect(),
        height: h,
        width: w,
    })
}

/// Serialise an IDX uint8 tensor (used by tests to build fixtures).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::raw::source_file;
    use std::path::PathBuf;

    fn raw(name: &str, bytes: Vec<u8>) -> RawFile {
        RawFile {
            path: PathBuf::from(name),
            source: source_file(name, &bytes),
            bytes,
        }
    }

    #[test]
    fn reads_rows_then_columns() {
        // 2 images of 2 rows × 3 columns, value = 100n + 10y + x.
        let data: Vec<u8> = (0..2)
            .flat_map(|n| (0..2).flat_map(move |y| (0..3).map(move |x| 100 * n + 10 * y + x)))
            .collect();
        let d = read_pair(
            &raw("img", encode(&[2, 2, 3], &data)),
            &raw("lab", encode(&[2], &[3, 9])),
            10,
        )
        .unwrap();
        assert_eq!((d.height, d.width), (2, 3));
        assert_eq!(d.images[3 + 2], 12); // n=0, y=1, x=2
        assert_eq!(d.images[6 + 3 + 1], 111); // n=1, y=1, x=1
        assert_eq!(d.labels, vec![3, 9]);
    }

    #[test]
    fn bad_files_are_named() {
        let img = raw("img.idx", encode(&[2, 2, 2], &[0; 8]));
        let lab = raw("lab.idx", encode(&[2], &[1, 2]));
        let cases = [
            (
                raw("img.idx", encode(&[2, 2, 2], &[0; 7])),
                lab.bytes.clone(),
                "img.idx",
                "truncated",
            ),
            (
                raw("img.idx", encode(&[2, 2], &[0; 4])),
                lab.bytes.clone(),
                "img.idx",
                "magic",
            ),
            (
                raw("img.idx", img.bytes.clone()),
                encode(&[3], &[1, 2, 3]),
                "lab.idx",
                "mismatch",
            ),
            (
                raw("img.idx", img.bytes.clone()),
                encode(&[2], &[1, 10]),
                "lab.idx",
                "label 10",
            ),
        ];
        for (i, l, file, what) in cases {
            let err = read_pair(&i, &raw("lab.idx", l), 10)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(file) && err.contains(what), "{err}");
        }
    }
}
