//! Training curves (METHOD.md §8, pictures): the per-epoch records a training stage writes,
//! `{"stage": NAME, "records": [{"epoch": 0, "loss": 1.2, "lr": 0.4, ...}, ...]}`, parsed into one
//! series per numeric field other than `epoch` and drawn as a grid of line plots (one panel per
//! field, two panels per row) against the epoch.

use super::canvas::{truncate, Canvas, BLACK, BLUE, GLYPH, GRAY, LIGHT, WHITE};

pub const PANEL_W: usize = 420;
pub const PANEL_H: usize = 260;
pub const PANELS_PER_ROW: usize = 2;
pub const TITLE_H: usize = 24;
/// Plot area insets inside a panel.
const LEFT: usize = 76;
const RIGHT: usize = 16;
const TOP: usize = 24;
const BOTTOM: usize = 36;
const TICKS: usize = 5;

/// One numeric field of the records against the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub field: String,
    /// `(epoch, value)`, sorted by epoch; non-finite values left out.
    pub points: Vec<(f64, f64)>,
}

/// The curves of one training stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    pub stage: String,
    pub series: Vec<Series>,
}

/// Parse a curves JSON document. Errors say what is wrong (the caller adds the file name).
pub fn parse_curves(text: &str) -> Result<Curves, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let stage = v
        .get("stage")
        .and_then(|s| s.as_str())
        .ok_or("no string field `stage`")?
        .to_string();
    let records = v
        .get("records")
        .and_then(|r| r.as_array())
        .ok_or("no array field `records`")?;
    let mut series: Vec<Series> = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        let obj = rec
            .as_object()
            .ok_or_else(|| format!("record {i} is not an object"))?;
        let epoch = obj
            .get("epoch")
            .and_then(|e| e.as_f64())
            .ok_or_else(|| format!("record {i} has no numeric `epoch`"))?;
        for (key, val) in obj {
            let Some(x) = val.as_f64().filter(|_| key != "epoch") else {
                continue;
            };
            let pos = match series.iter().position(|s| &s.field == key) {
                Some(p) => p,
                None => {
                    series.push(Series {
                        field: key.clone(),
                        points: Vec::new(),
                    });
                    series.len() - 1
                }
            };
            if x.is_finite() {
                series[pos].points.push((epoch, x));
            }
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(Curves { stage, series })
}

/// Pixel size of the plot of `fields` series: `(min(f, 2)·PANEL_W, TITLE_H + ⌈f/2⌉·PANEL_H)` with
/// `f = max(fields, 1)`.
pub fn size(fields: usize) -> (usize, usize) {
    let f = fields.max(1);
    (
        f.min(PANELS_PER_ROW) * PANEL_W,
        TITLE_H + f.div_ceil(PANELS_PER_ROW) * PANEL_H,
    )
}

/// Compact number label (at most 9 characters).
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    } else {
        (lo, hi)
    }
}

/// Render all series of `curves` under the title `title`.
pub fn curves_plot(curves: &Curves, title: &str) -> Canvas {
    let (w, h) = size(curves.series.len());
    let mut c = Canvas::new(w, h, WHITE);
    c.text(8, 8, &truncate(title, (w - 16) / GLYPH), 1, BLACK);
    if curves.series.is_empty() {
        c.text(LEFT, TITLE_H + PANEL_H / 2, "no numeric fields", 1, GRAY);
    }
    for (i, s) in curves.series.iter().enumerate() {
        let px = (i % PANELS_PER_ROW) * PANEL_W;
        let py = TITLE_H + (i / PANELS_PER_ROW) * PANEL_H;
        panel(&mut c, px, py, s);
    }
    c
}

fn panel(c: &mut Canvas, px: usize, py: usize, s: &Series) {
    let (x0, y0) = (px + LEFT, py + TOP);
    let (pw, ph) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    c.text(x0, py + 6, &truncate(&s.field, pw / GLYPH), 1, BLACK);
    let (xlo, xhi) = range(s.points.iter().map(|p| p.0));
    let (ylo, yhi) = range(s.points.iter().map(|p| p.1));
    let sx = |x: f64| x0 as f64 + (x - xlo) / (xhi - xlo) * (pw - 1) as f64;
    let sy = |y: f64| (y0 + ph - 1) as f64 - (y - ylo) / (yhi - ylo) * (ph - 1) as f64;
    for t in 0..TICKS {
        let f = t as f64 / (TICKS - 1) as f64;
        // Horizontal grid line and y label.
        let yv = ylo + f * (yhi - ylo);
        let gy = sy(yv).round() as usize;
        c.fill_rect(x0, gy, pw, 1, LIGHT);
        let label = fmt_num(yv);
        let lx = x0.saturating_sub(6 + label.len() * GLYPH);
        c.text(lx, gy.saturating_sub(GLYPH / 2), &label, 1, BLACK);
        // Vertical grid line and x label.
        let xv = xlo + f * (xhi - xlo);
        let gx = sx(xv).round() as usize;
        c.fill_rect(gx, y0, 1, ph, LIGHT);
        let label = if xv.fract() == 0.0 {
            format!("{xv}")
        } else {
            format!("{xv:.1}")
        };
        let lx = gx.saturating_sub(label.len() * GLYPH / 2);
        c.text(lx, y0 + ph + 6, &label, 1, BLACK);
    }
    c.text(x0 + pw / 2 - 20, y0 + ph + 20, "epoch", 1, GRAY);
    c.frame(x0, y0, pw, ph, 1, BLACK);
    let pts: Vec<(i64, i64)> = s
        .points
        .iter()
        .map(|&(x, y)| (sx(x).round() as i64, sy(y).round() as i64))
        .collect();
    for pair in pts.windows(2) {
        c.line(pair[0], pair[1], BLUE);
    }
    if pts.len() <= 60 {
        for &(x, y) in &pts {
            c.fill_rect((x - 2).max(0) as usize, (y - 2).max(0) as usize, 5, 5, BLUE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_numeric_field_but_epoch() {
        let text = r#"{"stage": "pretext", "records": [
            {"epoch": 1, "loss": 2.0, "lr": 0.4, "note": "x"},
            {"epoch": 0, "loss": 3.0, "lr": 0.4, "knn_acc": 0.5}]}"#;
        let c = parse_curves(text).unwrap();
        assert_eq!(c.stage, "pretext");
        let fields: Vec<&str> = c.series.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(fields, ["loss", "lr", "knn_acc"]);
        assert_eq!(c.series[0].points, vec![(0.0, 3.0), (1.0, 2.0)]);
        let img = curves_plot(&c, "pretext");
        assert_eq!((img.width, img.height), size(3));
        assert_eq!(size(3), (2 * PANEL_W, TITLE_H + 2 * PANEL_H));
    }

    #[test]
    fn bad_documents_are_errors_and_degenerate_ones_plot() {
        assert!(parse_curves("[]").is_err());
        assert!(parse_curves(r#"{"stage": "s", "records": [{"loss": 1}]}"#)
            .unwrap_err()
            .contains("record 0"));
        let one = parse_curves(r#"{"stage": "s", "records": [{"epoch": 0, "loss": 1}]}"#).unwrap();
        let img = curves_plot(&one, "s");
        assert_eq!((img.width, img.height), size(1));
        let none = parse_curves(r#"{"stage": "s", "records": []}"#).unwrap();
        assert_eq!(curves_plot(&none, "s").width, PANEL_W);
        assert_eq!(fmt_num(0.0001234), "1.23e-4");
        assert_eq!(fmt_num(2.5), "2.500");
    }
}
