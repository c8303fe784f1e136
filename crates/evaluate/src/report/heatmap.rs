//! Confusion-matrix heat map (METHOD.md §8): rows = true class, columns = predicted class through
//! the cluster → class mapping, each cell coloured by its row-normalised value and labelled with it
//! in percent; class names on both axes.

use super::canvas::{truncate, Canvas, BLACK, GLYPH, WHITE};

/// Side of one cell in pixels.
pub const CELL: usize = 36;
/// Class names are cut to this many characters.
pub const NAME_CHARS: usize = 14;
/// Space for the names along each axis.
pub const NAME_W: usize = NAME_CHARS * GLYPH + 8;
/// Outer margin.
pub const MARGIN: usize = 8;
/// Height of the title band.
pub const TITLE_H: usize = 24;

/// Pixel size of the heat map for `k` classes: `(2·MARGIN + NAME_W + k·CELL, TITLE_H + NAME_W +
/// k·CELL + MARGIN)`.
pub fn size(k: usize) -> (usize, usize) {
    (
        2 * MARGIN + NAME_W + k * CELL,
        TITLE_H + NAME_W + k * CELL + MARGIN,
    )
}

/// White → dark blue colour scale for `v` in [0, 1].
pub fn blues(v: f64) -> [u8; 3] {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    [lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0)]
}

/// Render `confusion` (`k × k`, rows summing to 1 or 0) with `names` (`k` class names); `title`
/// goes on the first line, the axis legend on the second.
pub fn confusion_heatmap(confusion: &[Vec<f64>], names: &[String], title: &str) -> Canvas {
    let k = confusion.len();
    let (w, h) = size(k);
    let mut c = Canvas::new(w, h, WHITE);
    let chars = (w - 2 * MARGIN) / GLYPH;
    c.text(MARGIN, 4, &truncate(title, chars), 1, BLACK);
    c.text(
        MARGIN,
        14,
        &truncate("rows true, cols predicted, %", chars),
        1,
        BLACK,
    );
    let (x0, y0) = (MARGIN + NAME_W, TITLE_H + NAME_W);
    let name = |i: usize| truncate(names.get(i).map_or("?", |s| s.as_str()), NAME_CHARS);
    for i in 0..k {
        // Row label (true class), right-aligned next to the row.
        let n = name(i);
        let tx = x0 - 4 - n.chars().count() * GLYPH;
        c.text(tx, y0 + i * CELL + (CELL - GLYPH) / 2, &n, 1, BLACK);
        // Column label (predicted class), vertical above the column.
        c.text_up(x0 + i * CELL + (CELL - GLYPH) / 2, y0 - 4, &n, BLACK);
    }
    for (i, row) in confusion.iter().enumerate() {
        for j in 0..k {
            let v = row.get(j).copied().unwrap_or(0.0);
            let v = if v.is_finite() { v } else { 0.0 };
            let (cx, cy) = (x0 + j * CELL, y0 + i * CELL);
            c.fill_rect(cx, cy, CELL, CELL, blues(v));
            let label = format!("{}", (v * 100.0).round() as i64);
            let ink = if v > 0.5 { WHITE } else { BLACK };
            let tx = cx + (CELL - label.len() * GLYPH) / 2;
            c.text(tx, cy + (CELL - GLYPH) / 2, &label, 1, ink);
        }
    }
    c.frame(x0, y0, k * CELL, k * CELL, 1, BLACK);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_is_dark_and_size_matches() {
        let conf = vec![vec![1.0, 0.0], vec![0.25, 0.75]];
        let c = confusion_heatmap(&conf, &["cat".into(), "dog".into()], "confusion");
        assert_eq!((c.width, c.height), size(2));
        let (x0, y0) = (MARGIN + NAME_W, TITLE_H + NAME_W);
        // Cell corners (no text there).
        assert_eq!(c.get(x0 + 2, y0 + 2), blues(1.0));
        assert_eq!(c.get(x0 + CELL + 2, y0 + 2), blues(0.0));
        assert_eq!(c.get(x0 + 2, y0 + CELL + 2), blues(0.25));
    }
}
