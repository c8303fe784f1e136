//! Training curves (METHOD.md §8, pictures): the per-epoch records a training stage writes,
//! `{"stage": NAME, "records": [{"epoch": 0, "loss": 1.2, "lr": 0.4, ...}, ...]}`, parsed into one
//! series per numeric field other than `epoch` and drawn with `plotters` against the epoch: one
//! panel per kind of quantity ([`panels`]: the loss terms together, the accuracies together, every
//! other field alone), two panels per row, each with axis labels, readable ticks and a legend strip
//! above the plot (so that it never hides a curve).

use plotters::coord::ranged1d::BoldPoints;
use plotters::element::{Circle, PathElement};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::canvas::{Canvas, CanvasError};
use crate::chart::{
    fit_text, hidden, render, text_width, tick_label, ChartError, GlyphStyle, Label, PALETTE,
};

pub const PANEL_W: usize = 560;
pub const PANEL_H: usize = 340;
pub const PANELS_PER_ROW: usize = 2;
pub const TITLE_H: usize = 40;
/// Y tick labels per panel (about).
const Y_TICKS: usize = 6;

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

/// One panel: a title (also the y-axis label) and the series drawn in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel<'a> {
    pub title: String,
    pub series: Vec<&'a Series>,
}

fn is_loss(field: &str) -> bool {
    field.contains("loss") || matches!(field, "total" | "consistency" | "entropy")
}

fn is_accuracy(field: &str) -> bool {
    field.contains("acc") || field.ends_with("fraction")
}

/// A readable name for a field: `lr` → `learning rate`, `images_per_s` → `images / s`, otherwise
/// the words between `_` with `acc` → `accuracy` and `knn` → `kNN` (`knn_acc` → `kNN accuracy`).
pub fn field_label(field: &str) -> String {
    match field {
        "lr" => "learning rate".into(),
        "images_per_s" => "images / s".into(),
        f => f
            .split('_')
            .map(|w| match w {
                "acc" => "accuracy",
                "knn" => "kNN",
                w => w,
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Group the series of `curves` into panels: the loss terms (fields with `loss` in the name and the
/// SCAN terms `total`, `consistency`, `entropy`) in one panel, the accuracies and fractions (fields
/// with `acc` in the name, or ending in `fraction`) in another, every other field alone. Panels in
/// the order loss, accuracy, the other fields as they first appear, throughput (`images_per_s`)
/// last. Series without points are left out.
pub fn panels(curves: &Curves) -> Vec<Panel<'_>> {
    let mut out: Vec<Panel> = Vec::new();
    let (mut loss, mut acc): (Option<usize>, Option<usize>) = (None, None);
    for s in curves.series.iter().filter(|s| !s.points.is_empty()) {
        let slot = if is_loss(&s.field) {
            Some((&mut loss, "loss"))
        } else if is_accuracy(&s.field) {
            Some((&mut acc, "accuracy"))
        } else {
            None
        };
        match slot {
            Some((Some(i), _)) => out[*i].series.push(s),
            Some((idx, title)) => {
                *idx = Some(out.len());
                out.push(Panel {
                    title: title.into(),
                    series: vec![s],
                });
            }
            None => out.push(Panel {
                title: field_label(&s.field),
                series: vec![s],
            }),
        }
    }
    // Losses first, then accuracies, the other fields, and throughput last.
    let rank = |p: &Panel| match p.title.as_str() {
        "loss" => 0,
        "accuracy" => 1,
        "images / s" => 3,
        _ => 2,
    };
    out.sort_by_key(rank);
    out
}

/// Pixel size of the plot of `panels` panels: `(min(p, 2)·PANEL_W, TITLE_H + ⌈p/2⌉·PANEL_H)` with
/// `p = max(panels, 1)`.
pub fn size(panels: usize) -> (usize, usize) {
    let p = panels.max(1);
    (
        p.min(PANELS_PER_ROW) * PANEL_W,
        TITLE_H + p.div_ceil(PANELS_PER_ROW) * PANEL_H,
    )
}

/// `(lo, hi)` of `values` with 6 % headroom on both sides (a flat series gets ±10 % or ±1).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * lo.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    let pad = 0.06 * (hi - lo);
    (lo - pad, hi + pad)
}

/// Height of one legend row.
const LEGEND_ROW: i32 = 18;
/// Space for the panel caption above the legend.
const CAPTION_H: i32 = 30;

/// Legend entries packed into rows of at most `width` pixels: `(row, x offset)` per entry and the
/// number of rows. An entry is a 24 px line sample, a gap and its text.
fn legend_rows(entries: &[String], width: i32) -> (Vec<(i32, i32)>, i32) {
    let mut out = Vec::new();
    let (mut row, mut x) = (0, 0);
    for e in entries {
        let w = 30 + text_width(e, 13.0) as i32;
        if x > 0 && x + w > width {
            row += 1;
            x = 0;
        }
        out.push((row, x));
        x += w + 18;
    }
    (out, row + 1)
}

/// One line of a panel: its legend text, colour and `(epoch, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub label: String,
    pub color: RGBColor,
    pub points: &'a [(f64, f64)],
}

/// A panel ready to draw: caption, y-axis description and lines.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel<'a> {
    pub title: String,
    pub y_desc: String,
    pub lines: Vec<Line<'a>>,
}

impl<'a> From<&Panel<'a>> for LinePanel<'a> {
    fn from(panel: &Panel<'a>) -> Self {
        LinePanel {
            title: panel.title.clone(),
            y_desc: if panel.series.len() == 1 {
                field_label(&panel.series[0].field)
            } else {
                panel.title.clone()
            },
            lines: panel
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| Line {
                    label: field_label(&s.field),
                    color: PALETTE[i % PALETTE.len()],
                    points: &s.points,
                })
                .collect(),
        }
    }
}

fn draw_panel(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &LinePanel,
) -> Result<(), ChartError> {
    let points = || panel.lines.iter().flat_map(|s| s.points.iter());
    let (ylo, yhi) = padded_range(points().map(|p| p.1));
    let (xmin, xmax) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (xlo, xhi) = if xmin >= xmax {
        (xmin - 1.0, xmin + 1.0)
    } else {
        let pad = 0.03 * (xmax - xmin);
        (xmin - pad, xmax + pad)
    };
    // The legend is a strip between the caption and the plot, so it never hides a curve.
    // Lines with an empty label share the legend entry of an earlier line of their colour.
    let legend: Vec<&Line> = panel.lines.iter().filter(|l| !l.label.is_empty()).collect();
    let entries: Vec<String> = legend.iter().map(|l| l.label.clone()).collect();
    let (slots, rows) = legend_rows(&entries, PANEL_W as i32 - 110);
    let mut chart = ChartBuilder::on(area)
        .margin_top((CAPTION_H + rows * LEGEND_ROW + 4) as u32)
        .margin_left(8)
        .margin_right(18)
        .margin_bottom(6)
        .x_label_area_size(46)
        .y_label_area_size(78)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
    // Integer epochs only: at most 10 ticks, at least one epoch apart.
    let x_ticks = ((xmax - xmin).round() as usize + 1).clamp(2, 10);
    chart
        .configure_mesh()
        .x_labels(x_ticks)
        .y_labels(Y_TICKS)
        .label_style(hidden(13.0))
        .axis_desc_style(hidden(14.0))
        .max_light_lines(4)
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    // Series.
    for line in &panel.lines {
        let color = line.color;
        chart.draw_series(LineSeries::new(
            line.points.iter().copied(),
            color.stroke_width(2),
        ))?;
        if line.points.len() <= 60 {
            chart.draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )?;
        }
    }
    // Text, drawn by us (module doc of `chart`): positions in the root's pixels.
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let base = root.get_base_pixel();
    let at = |(x, y): (i32, i32)| (x - base.0, y - base.1);
    let spec = chart.as_coord_spec();
    for x in spec.x_spec().key_points(BoldPoints(x_ticks)) {
        if (x - x.round()).abs() > 1e-6 {
            continue;
        }
        let (px, _) = chart.backend_coord(&(x, ylo));
        root.draw(&Label::new(
            format!("{}", x.round() as i64),
            at((px, yr.end + 8)),
            GlyphStyle::new(13.0).anchor(HPos::Center, VPos::Top),
        ))?;
    }
    let span = yhi - ylo;
    for y in spec.y_spec().key_points(BoldPoints(Y_TICKS)) {
        let (_, py) = chart.backend_coord(&(xlo, y));
        root.draw(&Label::new(
            tick_label(y, span, Y_TICKS),
            at((xr.start - 8, py)),
            GlyphStyle::new(13.0).anchor(HPos::Right, VPos::Center),
        ))?;
    }
    let mid_x = (xr.start + xr.end) / 2;
    root.draw(&Label::new(
        "epoch",
        at((mid_x, yr.end + 28)),
        GlyphStyle::new(14.0)
            .color(RGBColor(60, 60, 60))
            .anchor(HPos::Center, VPos::Top),
    ))?;
    let y_desc = &panel.y_desc;
    let area_x = area.get_base_pixel().0;
    root.draw(&Label::new(
        fit_text(y_desc, 14.0, (yr.end - yr.start) as u32),
        at((area_x + 18, (yr.start + yr.end) / 2)),
        GlyphStyle::new(14.0)
            .color(RGBColor(60, 60, 60))
            .anchor(HPos::Center, VPos::Center)
            .vertical(),
    ))?;
    root.draw(&Label::new(
        panel.title.clone(),
        at((mid_x, area.get_base_pixel().1 + CAPTION_H / 2 + 2)),
        GlyphStyle::new(17.0).anchor(HPos::Center, VPos::Center),
    ))?;
    // Legend strip, left-aligned with the plot.
    let top = area.get_base_pixel().1 + CAPTION_H;
    for ((e, &(row, dx)), line) in entries.iter().zip(&slots).zip(&legend) {
        let color = line.color;
        let (x, y) = at((xr.start + dx, top + row * LEGEND_ROW + LEGEND_ROW / 2));
        root.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            color.stroke_width(2),
        ))?;
        root.draw(&Circle::new((x + 12, y), 3, color.filled()))?;
        root.draw(&Label::new(e.clone(), (x + 30, y), GlyphStyle::new(13.0)))?;
    }
    Ok(())
}

/// Render all series of `curves` under the title `title`.
pub fn curves_plot(curves: &Curves, title: &str) -> Result<Canvas, CanvasError> {
    let panels: Vec<LinePanel> = panels(curves).iter().map(LinePanel::from).collect();
    panels_plot(
        &panels,
        title,
        "training curves",
        "no numeric fields in the curves",
    )
}

/// Render `panels` two per row under the title `title`; `what` names the chart in errors, `empty`
/// is shown when there is no panel.
pub fn panels_plot(
    panels: &[LinePanel],
    title: &str,
    what: &str,
    empty: &str,
) -> Result<Canvas, CanvasError> {
    let (w, h) = size(panels.len());
    render(w, h, what, |root| {
        root.draw(&Label::new(
            fit_text(title, 20.0, (w - 24) as u32),
            (12, (TITLE_H / 2) as i32),
            GlyphStyle::new(20.0),
        ))?;
        let body = root.margin(TITLE_H as u32, 0, 0, 0);
        if panels.is_empty() {
            root.draw(&Label::new(
                empty.to_string(),
                (24, (TITLE_H + PANEL_H / 2) as i32),
                GlyphStyle::new(16.0).color(RGBColor(120, 120, 120)),
            ))?;
            return Ok(());
        }
        let rows = panels.len().div_ceil(PANELS_PER_ROW);
        let cols = panels.len().min(PANELS_PER_ROW);
        let areas = body.split_evenly((rows, cols));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(root, area, panel)?;
        }
        Ok(())
    })
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
        let titles: Vec<String> = panels(&c).into_iter().map(|p| p.title).collect();
        assert_eq!(titles, ["loss", "accuracy", "learning rate"]);
        let img = curves_plot(&c, "pretext").unwrap();
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
        let img = curves_plot(&one, "s").unwrap();
        assert_eq!((img.width, img.height), size(1));
        let none = parse_curves(r#"{"stage": "s", "records": []}"#).unwrap();
        assert_eq!(curves_plot(&none, "s").unwrap().width, PANEL_W);
    }
}
