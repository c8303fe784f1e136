//! Confusion-matrix heat map (METHOD.md §8), drawn with `plotters`: rows = true class, columns =
//! predicted class through the cluster → class mapping, each cell coloured by its row-normalised
//! value on a white → dark blue scale and, when cells are large enough (up to about 20 classes),
//! labelled with it in percent; the diagonal (correct predictions) outlined;
//! class names on both axes (columns rotated), axis titles, and a colour bar.
//!
//! The layout depends on the number of classes and the longest class name ([`size`]): the name
//! bands are as wide as the longest name needs, at most [`NAME_W`]; longer names are shortened
//! with `…`.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::canvas::{Canvas, CanvasError};
use crate::chart::{fit_text, render, text_width, ChartError, GlyphStyle, Label};

/// Widest band for the class names along each axis.
pub const NAME_W: usize = 150;
/// Narrowest band for the class names.
pub const NAME_MIN: usize = 40;
/// Band for an axis title.
pub const DESC_W: usize = 30;
/// Title band (title and subtitle).
pub const TITLE_H: usize = 58;
/// Outer margin.
pub const MARGIN: usize = 12;
/// Width of the colour bar with its labels, right of the matrix.
pub const BAR_W: usize = 96;

/// Side of one cell for `k` classes: 56 px up to 10 classes, smaller for more, never below 12.
pub fn cell(k: usize) -> usize {
    (560 / k.max(1)).clamp(12, 56)
}

/// Font size of the class names for `k` classes.
pub fn label_size(k: usize) -> f64 {
    if cell(k) >= 24 {
        13.0
    } else {
        10.0
    }
}

/// Width of the class-name bands: the longest name plus 12 px, within `[NAME_MIN, NAME_W]`.
pub fn name_band(k: usize, names: &[String]) -> usize {
    let widest = names
        .iter()
        .take(k)
        .map(|n| text_width(n, label_size(k)) as usize)
        .max()
        .unwrap_or(0);
    (widest + 12).clamp(NAME_MIN, NAME_W)
}

/// Pixel size of the heat map for `k` classes named `names`, with `n = name_band(k, names)`:
/// `(MARGIN + DESC_W + n + k·cell + BAR_W + MARGIN, TITLE_H + k·cell + n + DESC_W + MARGIN)`.
pub fn size(k: usize, names: &[String]) -> (usize, usize) {
    let m = k.max(1) * cell(k);
    let n = name_band(k, names);
    (
        MARGIN + DESC_W + n + m + BAR_W + MARGIN,
        TITLE_H + m + n + DESC_W + MARGIN,
    )
}

/// White → dark blue colour scale for `v` in [0, 1].
pub fn blues(v: f64) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    [lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0)]
}

fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// The top-left pixel of the matrix.
pub fn origin(k: usize, names: &[String]) -> (usize, usize) {
    (MARGIN + DESC_W + name_band(k, names), TITLE_H)
}

/// Render `confusion` (`k × k`, rows summing to 1 or 0) with `names` (`k` class names) under
/// `title`.
pub fn confusion_heatmap(
    confusion: &[Vec<f64>],
    names: &[String],
    title: &str,
) -> Result<Canvas, CanvasError> {
    let k = confusion.len();
    let (w, h) = size(k, names);
    render(w, h, "confusion matrix", |root| {
        draw(root, confusion, names, title, w)
    })
}

fn draw(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    confusion: &[Vec<f64>],
    names: &[String],
    title: &str,
    w: usize,
) -> Result<(), ChartError> {
    let k = confusion.len();
    let c = cell(k) as i32;
    let m = k as i32 * c;
    let band = name_band(k, names) as i32;
    let (x0, y0) = (origin(k, names).0 as i32, origin(k, names).1 as i32);
    let text_w = (w - 2 * MARGIN) as u32;
    let label = |text: String, pos: (i32, i32), style: GlyphStyle| Label::new(text, pos, style);
    root.draw(&label(
        fit_text(title, 19.0, text_w),
        (MARGIN as i32, 18),
        GlyphStyle::new(19.0),
    ))?;
    root.draw(&label(
        fit_text(
            "share of each true class (row) per predicted class, in %",
            14.0,
            text_w,
        ),
        (MARGIN as i32, 42),
        GlyphStyle::new(14.0).color(RGBColor(90, 90, 90)),
    ))?;
    // Class names: rows right-aligned beside the matrix; columns read bottom to top, ending just
    // below it.
    let size = label_size(k);
    let name = |i: usize| {
        fit_text(
            names.get(i).map_or("?", String::as_str),
            size,
            (band - 10) as u32,
        )
    };
    for i in 0..k {
        let mid = i as i32 * c + c / 2;
        root.draw(&label(
            name(i),
            (x0 - 6, y0 + mid),
            GlyphStyle::new(size).anchor(HPos::Right, VPos::Center),
        ))?;
        root.draw(&label(
            name(i),
            (x0 + mid, y0 + m + 6),
            GlyphStyle::new(size)
                .anchor(HPos::Right, VPos::Center)
                .vertical(),
        ))?;
    }
    // Axis titles.
    root.draw(&label(
        "true class".into(),
        (MARGIN as i32 + DESC_W as i32 / 2, y0 + m / 2),
        GlyphStyle::new(15.0)
            .anchor(HPos::Center, VPos::Center)
            .vertical(),
    ))?;
    root.draw(&label(
        "predicted class (cluster matched to a class)".into(),
        (x0 + m / 2, y0 + m + band + DESC_W as i32 / 2),
        GlyphStyle::new(15.0).anchor(HPos::Center, VPos::Center),
    ))?;
    // Cells.
    let show_values = c >= 26;
    let value_size = if c >= 40 { 13.0 } else { 10.0 };
    for (i, row) in confusion.iter().enumerate() {
        for j in 0..k {
            let v = row.get(j).copied().filter(|v| v.is_finite()).unwrap_or(0.0);
            let (cx, cy) = (x0 + j as i32 * c, y0 + i as i32 * c);
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + c, cy + c)],
                rgb(blues(v)).filled(),
            ))?;
            if show_values {
                let ink = if v > 0.5 { WHITE } else { BLACK };
                root.draw(&label(
                    format!("{}", (v * 100.0).round() as i64),
                    (cx + c / 2, cy + c / 2),
                    GlyphStyle::new(value_size)
                        .color(ink)
                        .anchor(HPos::Center, VPos::Center),
                ))?;
            }
        }
    }
    // Diagonal outline (correct predictions) and the frame.
    for i in 0..k as i32 {
        root.draw(&Rectangle::new(
            [
                (x0 + i * c, y0 + i * c),
                (x0 + (i + 1) * c, y0 + (i + 1) * c),
            ],
            RGBColor(255, 127, 14).stroke_width(if c >= 24 { 2 } else { 1 }),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(x0, y0), (x0 + m, y0 + m)],
        BLACK.stroke_width(1),
    ))?;
    // Colour bar: 0 % at the bottom, 100 % at the top.
    let (bx, bw) = (x0 + m + 18, 18);
    for y in 0..m {
        let v = 1.0 - f64::from(y) / f64::from((m - 1).max(1));
        root.draw(&Rectangle::new(
            [(bx, y0 + y), (bx + bw, y0 + y + 1)],
            rgb(blues(v)).filled(),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(bx, y0), (bx + bw, y0 + m)],
        BLACK.stroke_width(1),
    ))?;
    let ticks = if m >= 120 { 5 } else { 3 };
    for t in 0..ticks {
        let v = t as f64 / (ticks - 1) as f64;
        let y = y0 + ((1.0 - v) * f64::from(m - 1)).round() as i32;
        root.draw(&PathElement::new(
            vec![(bx + bw, y), (bx + bw + 4, y)],
            BLACK.stroke_width(1),
        ))?;
        root.draw(&label(
            format!("{}%", (v * 100.0).round() as i64),
            (bx + bw + 7, y),
            GlyphStyle::new(12.0),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_have_their_colour_and_size_matches() {
        let conf = vec![vec![1.0, 0.0], vec![0.25, 0.75]];
        let img = confusion_heatmap(&conf, &["cat".into(), "dog".into()], "confusion").unwrap();
        let names: Vec<String> = vec!["cat".into(), "dog".into()];
        assert_eq!((img.width, img.height), size(2, &names));
        let (x0, y0) = origin(2, &names);
        let c = cell(2);
        // Away from the value text and the outlines.
        assert_eq!(img.get(x0 + c + 6, y0 + 6), blues(0.0));
        assert_eq!(img.get(x0 + 6, y0 + c + 6), blues(0.25));
        assert_eq!(img.get(x0 + c - 6, y0 + c - 6), blues(1.0));
        // Larger k: smaller cells, no values.
        assert_eq!(cell(100), 12);
        let long: Vec<String> = (0..20)
            .map(|i| format!("a very long class name {i}"))
            .collect();
        assert_eq!(
            size(20, &long).0,
            MARGIN + DESC_W + NAME_W + 20 * 28 + BAR_W + MARGIN
        );
        assert_eq!(name_band(2, &names), NAME_MIN);
    }
}
