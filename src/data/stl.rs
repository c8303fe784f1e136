//! STL-10 binary reader: `*_X.bin` holds uint8 images of 3×96×96, each channel plane
//! stored **column-major** (byte `c·9216 + x·96 + y` is pixel (y, x, c)); `*_y.bin` one label byte
//! per image, 1..10 (→ 0..9). The X files are streamed (the unlabeled one is 2.7 GB) from disk or from
//! the official archive, hashed on the way, and transposed to HWC.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;

use super::raw::RawFile;
use super::{IngestError, SourceFile};

pub const SIDE: usize = 96;
pub const PIXELS: usize = SIDE * SIDE * 3;

pub const STL10_CLASSES: [&str; 10] = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
];

/// One image: column-major channel planes → HWC.
fn colmajor_to_hwc(src: &[u8], dst: &mut [u8]) {
    let plane = SIDE * SIDE;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let o = (y * SIDE + x) * 3;
            let s = x * SIDE + y;
            dst[o] = src[s];
            dst[o + 1] = src[plane + s];
            dst[o + 2] = src[2 * plane + s];
        }
    }
}

/// Read an `*_X.bin` file (recorded as `name`): HWC images and the file's checksum record.
pub fn read_images(path: &Path, name: &str) -> Result<(Vec<u8>, SourceFile), IngestError> {
    let mut f = fs_err::File::open(path)?;
    let len = f.metadata()?.len();
    read_images_from(&mut f, len, path, name)
}

/// Read `len` bytes of `*_X.bin` content from `reader` (a file, or an archive member); `path` names
/// it in errors, `name` in the checksum record.
pub fn read_images_from(
    reader: &mut dyn Read,
    len: u64,
    path: &Path,
    name: &str,
) -> Result<(Vec<u8>, SourceFile), IngestError> {
    let len = usize::try_from(len)
        .map_err(|_| IngestError::bad(path, format!("{len} bytes do not fit in memory")))?;
    if len == 0 || !len.is_multiple_of(PIXELS) {
        return Err(IngestError::bad(
            path,
            format!(
                "wrong size: {len} bytes is not a positive multiple of the {PIXELS}-byte STL-10 \
                 image (3×96×96); truncated?"
            ),
        ));
    }
    let n = len / PIXELS;
    let mut images = vec![0u8; len];
    let mut hasher = blake3::Hasher::new();
    const CHUNK: usize = 1024;
    let mut buf = vec![0u8; CHUNK.min(n) * PIXELS];
    for out in images.chunks_mut(CHUNK * PIXELS) {
        let src = &mut buf[..out.len()];
        reader.read_exact(src)?;
        hasher.update(src);
        out.par_chunks_mut(PIXELS)
            .zip(src.par_chunks(PIXELS))
            .for_each(|(d, s)| colmajor_to_hwc(s, d));
    }
    let source = SourceFile {
        name: name.to_string(),
        blake3: hasher.finalize().to_hex().to_string(),
        bytes: len as u64,
    };
    Ok((images, source))
}

/// Labels of a `*_y.bin` file (1..10 → 0..9); `images` names the X file for the count check.
pub fn read_labels(
    file: &RawFile,
    n_images: usize,
    images: &Path,
) -> Result<Vec<i64>, IngestError> {
    if file.bytes.len() != n_images {
        return Err(IngestError::bad(
            &file.path,
            format!(
                "{} labels but {} has {n_images} images (image/label count mismatch)",
                file.bytes.len(),
                images.display()
            ),
        ));
    }
    file.bytes
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if (1..=10).contains(&l) {
                Ok(l as i64 - 1)
            } else {
                Err(IngestError::bad(
                    &file.path,
                    format!("label {l} of image {i} is out of range 1..=10"),
                ))
            }
        })
        .collect()
}

/// Class names from `class_names.txt` (one per line, 10 lines).
pub fn read_class_names(file: &RawFile) -> Result<Vec<String>, IngestError> {
    let text = std::str::from_utf8(&file.bytes)
        .map_err(|_| IngestError::bad(&file.path, "not UTF-8 text"))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != STL10_CLASSES.len() {
        return Err(IngestError::bad(
            &file.path,
            format!("{} class names, expected 10 (one per line)", names.len()),
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_major_is_transposed() {
        let src: Vec<u8> = (0..PIXELS).map(|i| (i % 251) as u8).collect();
        let mut dst = vec![0; PIXELS];
        colmajor_to_hwc(&src, &mut dst);
        let (y, x, c) = (5, 70, 2);
        assert_eq!(dst[(y * SIDE + x) * 3 + c], src[c * 9216 + x * 96 + y]);
    }
}
