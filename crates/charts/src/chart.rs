//! What the `plotters` charts of the report share: the embedded font (DejaVu Sans, committed under
//! `crates/charts/fonts/` with its licence: no system fonts), rendering into an RGB buffer that
//! [`Canvas`] encodes (so the PNG bytes depend only on the data), the colour palette, tick-label
//! formatting and text fitting.
//!
//! Visible text is drawn by [`Label`], a plotters element whose [`GlyphStyle`] lays glyphs out with
//! `ab_glyph` itself (side bearings, kerning, sub-pixel advances): plotters' own `ab_glyph` text
//! path drops each glyph's side bearing and rounds every advance, which makes letters collide
//! ("Trouser", "T-shirt"). Plotters still lays out its axes with the registered font; its own
//! labels are made transparent and drawn again as [`Label`]s.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::coord::Shift;
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;
use plotters_backend::{
    BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind, FontFamily as BackendFamily,
};
use plotters_bitmap::BitMapBackendError;

use crate::canvas::{Canvas, CanvasError};

/// The family name every chart text uses.
pub const FONT: &str = "DejaVu Sans";

static FONT_BYTES: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The error of a plotters drawing call on the bitmap backend.
pub type ChartError = DrawingAreaErrorKind<BitMapBackendError>;

/// Register the embedded font (once per process) under [`FONT`] and `sans-serif` (plotters'
/// default family). Fails only if the embedded file were not a font.
fn register_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for name in [FONT, "sans-serif"] {
            plotters::style::register_font(name, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded DejaVu Sans font does not parse".to_string())?;
        }
        Ok(())
    })
    .clone()
}

/// Draw a `width × height` chart with `draw` on a white background and return its pixels.
pub fn render(
    width: usize,
    height: usize,
    what: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), ChartError>,
) -> Result<Canvas, CanvasError> {
    let chart_err = |message: String| CanvasError::Chart {
        chart: what.to_string(),
        message,
    };
    register_font().map_err(chart_err)?;
    let mut pixels = vec![255u8; width * height * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width as u32, height as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(|e| chart_err(e.to_string()))?;
        draw(&root).map_err(|e| chart_err(e.to_string()))?;
        root.present().map_err(|e| chart_err(e.to_string()))?;
    }
    Ok(Canvas {
        width,
        height,
        pixels,
    })
}

/// A text style of the chart font (for plotters' own layout; see the module doc).
pub fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

/// The same style, invisible: plotters lays its labels out with it and draws nothing.
pub fn hidden(size: f64) -> TextStyle<'static> {
    font(size).color(&TRANSPARENT)
}

/// The embedded font, parsed once.
fn face() -> Option<&'static FontRef<'static>> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// The error of [`GlyphStyle`]: the embedded font does not parse (never with the committed file).
#[derive(Debug, thiserror::Error)]
#[error("the embedded DejaVu Sans font does not parse")]
pub struct FontUnavailable;

/// How a [`Label`] is drawn: size in pixels (the same scale as plotters' font sizes), colour,
/// anchor, and whether it reads bottom to top.
#[derive(Clone, Copy)]
pub struct GlyphStyle {
    pub size: f64,
    pub color: RGBColor,
    pub anchor: Pos,
    pub vertical: bool,
}

impl GlyphStyle {
    /// Black text of `size`, anchored at its left end, vertically centred.
    pub fn new(size: f64) -> Self {
        GlyphStyle {
            size,
            color: BLACK,
            anchor: Pos::new(HPos::Left, VPos::Center),
            vertical: false,
        }
    }
    pub fn color(mut self, color: RGBColor) -> Self {
        self.color = color;
        self
    }
    pub fn anchor(mut self, h: HPos, v: VPos) -> Self {
        self.anchor = Pos::new(h, v);
        self
    }
    /// Rotated 90° counter-clockwise (reads bottom to top).
    pub fn vertical(mut self) -> Self {
        self.vertical = true;
        self
    }

    /// Glyph positions of `text`: (glyph, x of its origin); and the total advance.
    fn layout(&self, font: &FontRef<'static>, text: &str) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
        let scaled = font.as_scaled(PxScale::from(self.size as f32));
        let mut x = 0f32;
        let mut prev = None;
        let mut out = Vec::new();
        for ch in text.chars() {
            let id = font.glyph_id(ch);
            if let Some(p) = prev {
                x += scaled.kern(p, id);
            }
            out.push((id, x));
            x += scaled.h_advance(id);
            prev = Some(id);
        }
        (out, x)
    }
}

impl BackendTextStyle for GlyphStyle {
    type FontError = FontUnavailable;

    fn color(&self) -> BackendColor {
        BackendColor {
            alpha: 1.0,
            rgb: (self.color.0, self.color.1, self.color.2),
        }
    }

    fn size(&self) -> f64 {
        self.size
    }

    fn transform(&self) -> FontTransform {
        if self.vertical {
            FontTransform::Rotate270
        } else {
            FontTransform::None
        }
    }

    fn anchor(&self) -> Pos {
        self.anchor
    }

    fn family(&self) -> BackendFamily<'_> {
        BackendFamily::Name(FONT)
    }

    fn layout_box(&self, text: &str) -> Result<((i32, i32), (i32, i32)), FontUnavailable> {
        let font = face().ok_or(FontUnavailable)?;
        let scaled = font.as_scaled(PxScale::from(self.size as f32));
        let (_, width) = self.layout(font, text);
        let height = scaled.ascent() - scaled.descent();
        Ok(((0, 0), (width.ceil() as i32, height.ceil() as i32)))
    }

    fn draw<E, DrawFunc: FnMut(i32, i32, BackendColor) -> Result<(), E>>(
        &self,
        text: &str,
        pos: BackendCoord,
        mut draw: DrawFunc,
    ) -> Result<Result<(), E>, FontUnavailable> {
        let font = face().ok_or(FontUnavailable)?;
        let scale = PxScale::from(self.size as f32);
        let ascent = font.as_scaled(scale).ascent();
        let (glyphs, _) = self.layout(font, text);
        let rgb = (self.color.0, self.color.1, self.color.2);
        let mut result = Ok(());
        for (id, x) in glyphs {
            let glyph = id.with_scale_and_position(scale, point(x, ascent));
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let b = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                if result.is_ok() && coverage > 0.0 {
                    result = draw(
                        pos.0 + b.min.x as i32 + gx as i32,
                        pos.1 + b.min.y as i32 + gy as i32,
                        BackendColor {
                            alpha: f64::from(coverage.min(1.0)),
                            rgb,
                        },
                    );
                }
            });
        }
        Ok(result)
    }
}

/// A piece of text drawn with [`GlyphStyle`] at one point of a drawing area.
pub struct Label {
    pub text: String,
    pub pos: (i32, i32),
    pub style: GlyphStyle,
}

impl Label {
    pub fn new(text: impl Into<String>, pos: (i32, i32), style: GlyphStyle) -> Self {
        Label {
            text: text.into(),
            pos,
            style,
        }
    }
}

impl<'a> PointCollection<'a, (i32, i32)> for &'a Label {
    type Point = &'a (i32, i32);
    type IntoIter = std::iter::Once<&'a (i32, i32)>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.pos)
    }
}

impl<DB: DrawingBackend> Drawable<DB> for Label {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        match points.next() {
            Some(pos) => backend.draw_text(&self.text, &self.style, pos),
            None => Ok(()),
        }
    }
}

/// Series colours (the "tab10" palette: distinguishable, colour-blind friendlier than primaries).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Decimals that tell ticks `step` apart (0 for steps ≥ 1).
pub fn tick_decimals(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) || step >= 1.0 {
        0
    } else {
        (-step.log10().floor()).clamp(0.0, 8.0) as usize
    }
}

/// A tick label for `v` on an axis spanning `span` with about `ticks` ticks: fixed-point with just
/// enough decimals, scientific for very small or very large magnitudes, never `-0`.
pub fn tick_label(v: f64, span: f64, ticks: usize) -> String {
    let step = span / ticks.max(1) as f64;
    let mag = v.abs().max(span.abs());
    let s = if mag != 0.0 && !(1e-3..1e6).contains(&mag) {
        format!("{v:.1e}")
    } else {
        format!("{v:.*}", tick_decimals(step))
    };
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// Width in pixels of `text` in the chart font at `size`.
pub fn text_width(text: &str, size: f64) -> u32 {
    GlyphStyle::new(size)
        .layout_box(text)
        .map(|((x0, _), (x1, _))| (x1 - x0).max(0) as u32)
        .unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// `text` shortened (with `…`) so that it is at most `max_px` wide at `size`.
pub fn fit_text(text: &str, size: f64, max_px: u32) -> String {
    if text_width(text, size) <= max_px {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (1..chars.len()).rev() {
        let s: String = chars[..keep].iter().collect::<String>() + "…";
        if text_width(&s, size) <= max_px {
            return s;
        }
    }
    "…".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short_and_exact() {
        assert_eq!(tick_label(0.7, 0.4, 5), "0.70");
        assert_eq!(tick_label(0.75, 0.4, 5), "0.75");
        assert_eq!(tick_label(1500.0, 800.0, 5), "1500");
        assert_eq!(tick_label(-0.0, 1.0, 5), "0.0");
        assert_eq!(tick_label(0.0005, 0.0004, 5), "5.0e-4");
        assert_eq!(tick_label(2.5, 4.0, 8), "2.5");
    }

    #[test]
    fn text_is_measured_and_fitted() {
        let w = text_width("airplane", 14.0);
        assert!((30..90).contains(&w), "{w}");
        assert!(text_width("airplane airplane", 14.0) > w);
        let s = fit_text("large_man-made_outdoor_things", 14.0, 80);
        assert!(s.ends_with('…') && text_width(&s, 14.0) <= 80, "{s}");
        assert_eq!(fit_text("cat", 14.0, 80), "cat");
    }
}
