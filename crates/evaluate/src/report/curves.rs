//! Training curves (METHOD.md §8, pictures): the per-epoch records a training stage writes,
//! `{"stage": NAME, "records": [{"epoch": 0, "loss": 1.2, "lr": 0.4, ...}, ...]}`, parsed into one
//! series per numeric field other than `epoch` and drawn with `plotters` against the epoch: one
//! panel per kind of quantity ([`panels`]: the loss terms together, the accuracies together, every
//! other field alone), two panels per row, each with axis labels, readable ticks and a legend.

use plotters::element::{Circle, PathElement};
use plotters::prelude::*;

use super::canvas::{Canvas, CanvasError};
use super::chart::{fit_text, font, render, tick_label, ChartError, PALETTE};

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

/// A readable name for a field: `knn_acc` → `kNN accuracy`, `lr` → `learning rate`, others with
/// `_` as spaces.
pub fn field_label(field: &str) -> String {
    match field {
        "lr" => "learning rate".into(),
        "knn_acc" => "kNN accuracy".into(),
        "images_per_s" => "images / s".into(),
        f => f.replace('_', " "),
    }
}

/// Group the series of `curves` into panels: the loss terms (fields with `loss` in the name and the
/// SCAN terms `total`, `consistency`, `entropy`) in one panel, the accuracies and fractions (fields
/// with `acc` in the name, or ending in `fraction`) in another, every other field alone; in order of
/// first appearance. Series without points are left out.
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

/// Where the legend goes: away from where the series end (the right third of the panel).
fn legend_position(series: &[&Series], lo: f64, hi: f64) -> SeriesLabelPosition {
    let ends: Vec<f64> = series
        .iter()
        .filter_map(|s| {
            let n = s.points.len();
            s.points.get(n - n.div_ceil(3)..).map(|t| {
                t.iter().map(|p| p.1).sum::<f64>() / t.len().max(1) as f64
            })
        })
        .collect();
    let mid = (lo + hi) / 2.0;
    let mean = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
    if mean > mid {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), ChartError> {
    let points = || panel.series.iter().flat_map(|s| s.points.iter());
    let (ylo, yhi) = padded_range(points().map(|p| p.1));
    let (xmin, xmax) = points().fold((i64::MAX, i64::MIN), |(lo, hi), p| {
        let e = p.0.round() as i64;
        (lo.min(e), hi.max(e))
    });
    let (xlo, xhi) = if xmin >= xmax {
        (xmin - 1, xmin + 1)
    } else {
        (xmin, xmax)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, font(17.0))
        .margin_top(6)
        .margin_left(8)
        .margin_right(18)
        .margin_bottom(6)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(xlo..xhi, ylo..yhi)?;
    let span = yhi - ylo;
    let y_fmt = |v: &f64| tick_label(*v, span, Y_TICKS);
    let x_fmt = |v: &i64| v.to_string();
    let x_ticks = usize::try_from(xhi - xlo + 1).unwrap_or(10).min(11);
    let y_desc = if panel.series.len() == 1 {
        field_label(&panel.series[0].field)
    } else {
        panel.title.clone()
    };
    chart
        .configure_mesh()
        .x_labels(x_ticks)
        .y_labels(Y_TICKS)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("epoch")
        .y_desc(fit_text(&y_desc, 14.0, (PANEL_H - 90) as u32))
        .label_style(font(13.0))
        .axis_desc_style(font(14.0))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()?;
    for (i, s) in panel.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(i64, f64)> = s.points.iter().map(|&(x, y)| (x.round() as i64, y)).collect();
        let markers = pts.len() <= 60;
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(field_label(&s.field))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if markers {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend_position(&panel.series, ylo, yhi))
        .label_font(font(13.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .margin(8)
        .draw()?;
    Ok(())
}

/// Render all series of `curves` under the title `title`.
pub fn curves_plot(curves: &Curves, title: &str) -> Result<Canvas, CanvasError> {
    let panels = panels(curves);
    let (w, h) = size(panels.len());
    render(w, h, "training curves", |root| {
        let title_style = font(20.0).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        ));
        root.draw_text(
            &fit_text(title, 20.0, (w - 24) as u32),
            &title_style,
            (12, (TITLE_H / 2) as i32),
        )?;
        let body = root.margin(TITLE_H as u32, 0, 0, 0);
        if panels.is_empty() {
            body.draw_text(
                "no numeric fields in the curves",
                &font(16.0).color(&RGBColor(120, 120, 120)),
                (24, (PANEL_H / 2) as i32),
            )?;
            return Ok(());
        }
        let rows = panels.len().div_ceil(PANELS_PER_ROW);
        let cols = panels.len().min(PANELS_PER_ROW);
        let areas = body.split_evenly((rows, cols));
        for (area, panel) in areas.iter().zip(&panels) {
            draw_panel(area, panel)?;
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
        assert_eq!(titles, ["loss", "learning rate", "accuracy"]);
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
