//! Image-folder reader: a folder of PNG/JPEG files is either a class tree (one subfolder per
//! class, classes sorted by name, label = index) or flat (unlabeled, labels −1). Files are taken in
//! name order; hidden entries (`.…`) and files without a `.png`/`.jpg`/`.jpeg` extension are ignored.
//! Grey images give 1 channel, colour images 3 (alpha is dropped, 16-bit is reduced to 8-bit); all
//! images must share one size and channel count.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::raw::{relative_name, source_file};
use super::{IngestError, SourceFile};

/// The images of one folder.
#[derive(Debug)]
pub struct FolderData {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// Empty for a flat (unlabeled) folder.
    pub class_names: Vec<String>,
    pub sources: Vec<SourceFile>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Non-hidden entries of `dir`, sorted by name: `(subfolders, image files)`.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), IngestError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in fs_err::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            dirs.push(p);
        } else if p.is_file() && is_image(&p) {
            files.push(p);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}

struct Decoded {
    pixels: Vec<u8>,
    height: usize,
    width: usize,
    channels: usize,
    source: SourceFile,
}

fn decode(root: &Path, path: &Path) -> Result<Decoded, IngestError> {
    let bytes = fs_err::read(path)?;
    let img = image::load_from_memory(&bytes)
        .map_err(|e| IngestError::bad(path, format!("cannot decode image: {e}")))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let (pixels, channels) = if img.color().has_color() {
        (img.to_rgb8().into_raw(), 3)
    } else {
        (img.to_luma8().into_raw(), 1)
    };
    Ok(Decoded {
        pixels,
        height,
        width,
        channels,
        source: source_file(&relative_name(root, path), &bytes),
    })
}

/// Read the folder `dir`; source names are recorded relative to `root`.
pub fn read_folder(root: &Path, dir: &Path) -> Result<FolderData, IngestError> {
    if !dir.is_dir() {
        return Err(IngestError::bad(dir, "is not a folder"));
    }
    let (subdirs, loose) = entries(dir)?;
    let mut items: Vec<(PathBuf, i64)> = Vec::new();
    let mut class_names = Vec::new();
    if subdirs.is_empty() {
        if loose.is_empty() {
            return Err(IngestError::bad(
                dir,
                "empty folder: no PNG/JPEG images and no class subfolders",
            ));
        }
        items.extend(loose.into_iter().map(|p| (p, -1)));
    } else {
        if let Some(f) = loose.first() {
            return Err(IngestError::bad(
                f,
                "image beside class subfolders: put every image in its class folder",
            ));
        }
        for (label, sub) in subdirs.iter().enumerate() {
            let (_, files) = entries(sub)?;
            if files.is_empty() {
                return Err(IngestError::bad(sub, "class folder has no PNG/JPEG images"));
            }
            class_names.push(relative_name(dir, sub));
            items.extend(files.into_iter().map(|p| (p, label as i64)));
        }
    }
    let decoded: Vec<Decoded> = items
        .par_iter()
        .map(|(p, _)| decode(root, p))
        .collect::<Result<_, _>>()?;
    let first = &decoded[0];
    let shape = (first.height, first.width, first.channels);
    for (d, (p, _)) in decoded.iter().zip(&items) {
        if (d.height, d.width, d.channels) != shape {
            return Err(IngestError::bad(
                p,
                format!(
                    "image is {}×{} with {} channel(s), but {} is {}×{} with {}: all images must \
                     share one size and channel count",
                    d.height,
                    d.width,
                    d.channels,
                    items[0].0.display(),
                    shape.0,
                    shape.1,
                    shape.2
                ),
            ));
        }
    }
    let mut images = Vec::with_capacity(decoded.len() * shape.0 * shape.1 * shape.2);
    let mut sources = Vec::with_capacity(decoded.len());
    for d in decoded {
        images.extend_from_slice(&d.pixels);
        sources.push(d.source);
    }
    Ok(FolderData {
        images,
        labels: items.iter().map(|&(_, l)| l).collect(),
        height: shape.0,
        width: shape.1,
        channels: shape.2,
        class_names,
        sources,
    })
}
