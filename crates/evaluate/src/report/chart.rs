//! What the `plotters` charts of the report share: the embedded font (DejaVu Sans, committed under
//! `crates/evaluate/fonts/` with its licence, rasterised by `ab_glyph`: no system fonts), rendering
//! into an RGB buffer that [`Canvas`] encodes (so the PNG bytes depend only on the data), the
//! colour palette, tick-label formatting and text fitting.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters_bitmap::BitMapBackendError;

use super::canvas::{Canvas, CanvasError};

/// The family name every chart text uses.
pub const FONT: &str = "DejaVu Sans";

static FONT_BYTES: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

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
        let root =
            BitMapBackend::with_buffer(&mut pixels, (width as u32, height as u32)).into_drawing_area();
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

/// A text style of the chart font.
pub fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
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
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// Width in pixels of `text` in the chart font at `size`.
pub fn text_width(text: &str, size: f64) -> u32 {
    if register_font().is_err() {
        return (text.chars().count() as f64 * size * 0.6) as u32;
    }
    (FONT, size)
        .into_font()
        .box_size(text)
        .map(|(w, _)| w)
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
