//! A tiny RGB raster with the drawing the image grids need (rectangles, nearest-neighbour upscaled
//! image tiles, captions in the public-domain 8×8 bitmap font of the `font8x8` crate) and the
//! deterministic PNG encoding every picture of the report goes through, the `plotters` charts
//! included (METHOD.md §8). No system fonts, no external renderer.

use std::path::{Path, PathBuf};

/// An sRGB colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const GRAY: Rgb = [160, 160, 160];
pub const LIGHT: Rgb = [225, 225, 225];
pub const GREEN: Rgb = [30, 160, 60];
pub const RED: Rgb = [210, 40, 40];
pub const BLUE: Rgb = [40, 90, 200];

/// Glyph size of the bitmap font at scale 1.
pub const GLYPH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum CanvasError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: PNG encoding: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("drawing the {chart} chart: {message}")]
    Chart { chart: String, message: String },
}

/// `width × height` RGB pixels, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Bitmap of a character: 8 rows, bit `x` of a row = column `x` (left to right). Characters outside
/// ASCII are drawn as `?`.
pub fn glyph(ch: char) -> [u8; 8] {
    let code = if ch.is_ascii() {
        ch as usize
    } else {
        '?' as usize
    };
    font8x8::legacy::BASIC_LEGACY[code]
}

/// Width in pixels of `text` at `scale`.
pub fn text_width(text: &str, scale: usize) -> usize {
    text.chars().count() * GLYPH * scale
}

/// `text` cut to at most `max` characters (with a trailing `.` when cut).
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('.');
        s
    }
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: Rgb) -> Self {
        Canvas {
            width,
            height,
            pixels: background.repeat(width * height),
        }
    }

    /// Set one pixel; coordinates outside the canvas are ignored.
    pub fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let o = 3 * (y as usize * self.width + x as usize);
            self.pixels[o..o + 3].copy_from_slice(&c);
        }
    }

    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let o = 3 * (y * self.width + x);
        [self.pixels[o], self.pixels[o + 1], self.pixels[o + 2]]
    }

    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        for yy in y..(y + h).min(self.height) {
            for xx in x..(x + w).min(self.width) {
                self.put(xx as i64, yy as i64, c);
            }
        }
    }

    /// Outline of thickness `t` inside the rectangle.
    pub fn frame(&mut self, x: usize, y: usize, w: usize, h: usize, t: usize, c: Rgb) {
        self.fill_rect(x, y, w, t, c);
        self.fill_rect(x, (y + h).saturating_sub(t), w, t, c);
        self.fill_rect(x, y, t, h, c);
        self.fill_rect((x + w).saturating_sub(t), y, t, h, c);
    }

    /// Horizontal text with its top-left corner at `(x, y)`.
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, c: Rgb) {
        for (i, ch) in text.chars().enumerate() {
            let g = glyph(ch);
            let ox = x + i * GLYPH * scale;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..GLYPH {
                    if bits >> col & 1 == 1 {
                        self.fill_rect(ox + col * scale, y + row * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    /// Draw an `h × w × channels` uint8 image (1 channel = gray, else the first three are RGB)
    /// enlarged `scale` times (nearest neighbour) at `(x, y)`.
    #[allow(clippy::too_many_arguments)]
    pub fn image(
        &mut self,
        x: usize,
        y: usize,
        img: &[u8],
        h: usize,
        w: usize,
        ch: usize,
        scale: usize,
    ) {
        for iy in 0..h {
            for ix in 0..w {
                let o = (iy * w + ix) * ch;
                let c = if ch >= 3 {
                    [img[o], img[o + 1], img[o + 2]]
                } else {
                    [img[o]; 3]
                };
                self.fill_rect(x + ix * scale, y + iy * scale, scale, scale, c);
            }
        }
    }

    /// PNG bytes (8-bit RGB, default compression: the same pixels always give the same bytes).
    pub fn to_png(&self) -> Result<Vec<u8>, png::EncodingError> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&self.pixels)?;
        w.finish()?;
        Ok(out)
    }

    /// Encode the PNG and write it to `path` with `write` (the caller's atomic write: this crate
    /// does no file I/O of its own).
    pub fn save(
        &self,
        path: &Path,
        write: impl FnOnce(&Path, &[u8]) -> std::io::Result<()>,
    ) -> Result<(), CanvasError> {
        let bytes = self.to_png().map_err(|e| CanvasError::Encode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        write(path, &bytes).map_err(|source| CanvasError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_pixels_inside_its_box_only() {
        let mut c = Canvas::new(40, 12, WHITE);
        c.text(2, 2, "Ab", 1, BLACK);
        let dark: Vec<(usize, usize)> = (0..12)
            .flat_map(|y| (0..40).map(move |x| (x, y)))
            .filter(|&(x, y)| c.get(x, y) == BLACK)
            .collect();
        assert!(!dark.is_empty());
        assert!(dark
            .iter()
            .all(|&(x, y)| (2..18).contains(&x) && (2..10).contains(&y)));
        assert_eq!(text_width("Ab", 2), 32);
        assert_eq!(truncate("airplane", 4), "air.");
    }

    #[test]
    fn image_is_upscaled_and_png_round_trips() {
        let mut c = Canvas::new(6, 4, WHITE);
        c.image(0, 0, &[10, 200], 1, 2, 1, 3);
        assert_eq!(c.get(2, 2), [10; 3]);
        assert_eq!(c.get(3, 0), [200; 3]);
        let bytes = c.to_png().unwrap();
        let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (6, 4));
        assert_eq!(img.into_raw(), c.pixels);
    }
}
