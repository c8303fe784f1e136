//! Charts that compare experiments (`scan exp plot`): the training curves of several runs overlaid
//! on one chart ([`overlay_plot`]: one panel per field, one line per run), and the final metrics of
//! each group of runs as bars of the mean with ±1 standard deviation error bars ([`metrics_bars`]).
//!
//! Colours: with one group, every run has its own colour and legend entry; with several groups the
//! runs of a group (its seeds) share the group's colour and one legend entry, so a sweep over seeds
//! reads as a band per setting.

use plotters::coord::ranged1d::BoldPoints;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::canvas::{Canvas, CanvasError};
use crate::chart::{fit_text, hidden, render, tick_label, ChartError, GlyphStyle, Label, PALETTE};
use crate::curves::{field_label, panels_plot, Curves, Line, LinePanel};

/// One run's curves: the experiment's name, its group (the variant without the seed) and the
/// curves of the stage being compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<'a> {
    pub name: String,
    pub group: String,
    pub curves: &'a Curves,
}

/// The runs' `fields` overlaid, one panel per field that at least one run has (in the order
/// given), under `title`.
pub fn overlay_plot(runs: &[Run], fields: &[&str], title: &str) -> Result<Canvas, CanvasError> {
    let mut groups: Vec<&str> = Vec::new();
    for r in runs {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    let per_run = groups.len() <= 1;
    let mut panels = Vec::new();
    for field in fields {
        let mut lines = Vec::new();
        let mut labelled: Vec<&str> = Vec::new();
        for (i, r) in runs.iter().enumerate() {
            let Some(s) = r.curves.series.iter().find(|s| s.field == *field) else {
                continue;
            };
            if s.points.is_empty() {
                continue;
            }
            let g = groups.iter().position(|g| *g == r.group).unwrap_or(0);
            let (color, label) = if per_run {
                (PALETTE[i % PALETTE.len()], r.name.clone())
            } else if labelled.contains(&r.group.as_str()) {
                (PALETTE[g % PALETTE.len()], String::new())
            } else {
                labelled.push(&r.group);
                let n = runs.iter().filter(|o| o.group == r.group).count();
                (PALETTE[g % PALETTE.len()], format!("{} (n = {n})", r.group))
            };
            lines.push(Line {
                label,
                color,
                points: &s.points,
            });
        }
        if !lines.is_empty() {
            panels.push(LinePanel {
                title: field_label(field),
                y_desc: field_label(field),
                lines,
            });
        }
    }
    panels_plot(
        &panels,
        title,
        "experiment curves",
        "none of the runs has curves with these fields",
    )
}

/// One bar: a metric's mean, sample standard deviation and number of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub metric: String,
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

/// The bars of one group of runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    pub name: String,
    pub bars: Vec<Bar>,
}

const BAR_PANEL_H: u32 = 420;
const BAR_TITLE_H: u32 = 40;
const LEGEND_H: u32 = 26;
const GROUP_LABEL_H: u32 = 44;

/// Width of the bar chart of `groups` groups of `metrics` bars each.
fn bars_width(groups: usize, metrics: usize) -> u32 {
    let per_group = (metrics.max(1) as u32 * 34 + 40).max(120);
    (150 + groups.max(1) as u32 * per_group).max(520)
}

/// Grouped bars: one cluster of bars per group (one bar per metric, coloured by metric), each with
/// an error bar of ±1 standard deviation; the group's label and n below it.
pub fn metrics_bars(groups: &[BarGroup], title: &str) -> Result<Canvas, CanvasError> {
    let mut metrics: Vec<&str> = Vec::new();
    for b in groups.iter().flat_map(|g| &g.bars) {
        if !metrics.contains(&b.metric.as_str()) {
            metrics.push(&b.metric);
        }
    }
    let w = bars_width(groups.len(), metrics.len());
    let h = BAR_TITLE_H + LEGEND_H + BAR_PANEL_H;
    render(w as usize, h as usize, "experiment metrics", |root| {
        root.draw(&Label::new(
            fit_text(title, 20.0, w - 24),
            (12, (BAR_TITLE_H / 2) as i32),
            GlyphStyle::new(20.0),
        ))?;
        if metrics.is_empty() {
            root.draw(&Label::new(
                "no metrics to compare",
                (24, (h / 2) as i32),
                GlyphStyle::new(16.0).color(RGBColor(120, 120, 120)),
            ))?;
            return Ok(());
        }
        draw_bars(root, groups, &metrics, w)
    })
}

fn draw_bars(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    groups: &[BarGroup],
    metrics: &[&str],
    w: u32,
) -> Result<(), ChartError> {
    let top = |b: &Bar| b.mean + if b.std.is_finite() { b.std } else { 0.0 };
    let ymax = groups
        .iter()
        .flat_map(|g| &g.bars)
        .map(top)
        .fold(0.0f64, f64::max);
    // Fractions (accuracies) on their whole range 0–1; anything larger with 8 % headroom.
    let ymax = if ymax <= 1.0 || !ymax.is_finite() {
        1.0
    } else {
        ymax * 1.08
    };
    // Legend: one entry per metric.
    let mut x = 90;
    let y = (BAR_TITLE_H + LEGEND_H / 2) as i32;
    for (i, m) in metrics.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        root.draw(&Rectangle::new(
            [(x, y - 6), (x + 14, y + 6)],
            color.filled(),
        ))?;
        root.draw(&Label::new(
            m.to_string(),
            (x + 20, y),
            GlyphStyle::new(13.0),
        ))?;
        x += 40 + crate::chart::text_width(m, 13.0) as i32;
    }
    let area = root.margin(BAR_TITLE_H + LEGEND_H, 0, 0, 0);
    let g = groups.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&area)
        .margin_top(10)
        .margin_left(8)
        .margin_right(18)
        .x_label_area_size(GROUP_LABEL_H)
        .y_label_area_size(78)
        .build_cartesian_2d(0.0..g, 0.0..ymax)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .label_style(hidden(13.0))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    let k = metrics.len() as f64;
    let slot = 0.8 / k;
    for (gi, group) in groups.iter().enumerate() {
        for b in &group.bars {
            let mi = metrics.iter().position(|m| *m == b.metric).unwrap_or(0);
            let color = PALETTE[mi % PALETTE.len()];
            let x0 = gi as f64 + 0.1 + mi as f64 * slot;
            let (x1, xc) = (x0 + slot * 0.9, x0 + slot * 0.45);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x1, b.mean.max(0.0))],
                color.filled(),
            )))?;
            if b.n > 1 && b.std.is_finite() && b.std > 0.0 {
                let (lo, hi) = ((b.mean - b.std).max(0.0), b.mean + b.std);
                let cap = slot * 0.2;
                let black = RGBColor(30, 30, 30).stroke_width(2);
                chart.draw_series([
                    PathElement::new(vec![(xc, lo), (xc, hi)], black),
                    PathElement::new(vec![(xc - cap, lo), (xc + cap, lo)], black),
                    PathElement::new(vec![(xc - cap, hi), (xc + cap, hi)], black),
                ])?;
            }
        }
    }
    // Text in the root's pixels: y ticks, group labels, axis description.
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let base = root.get_base_pixel();
    let at = |(x, y): (i32, i32)| (x - base.0, y - base.1);
    for v in chart.as_coord_spec().y_spec().key_points(BoldPoints(6)) {
        let (_, py) = chart.backend_coord(&(0.0, v));
        root.draw(&Label::new(
            tick_label(v, ymax, 6),
            at((xr.start - 8, py)),
            GlyphStyle::new(13.0).anchor(HPos::Right, VPos::Center),
        ))?;
    }
    let group_w = ((xr.end - xr.start) as f64 / g) as u32;
    for (gi, group) in groups.iter().enumerate() {
        let (px, _) = chart.backend_coord(&(gi as f64 + 0.5, 0.0));
        let n = group.bars.iter().map(|b| b.n).max().unwrap_or(0);
        root.draw(&Label::new(
            fit_text(&group.name, 13.0, group_w.saturating_sub(6)),
            at((px, yr.end + 8)),
            GlyphStyle::new(13.0).anchor(HPos::Center, VPos::Top),
        ))?;
        root.draw(&Label::new(
            format!("n = {n}"),
            at((px, yr.end + 26)),
            GlyphStyle::new(12.0)
                .color(RGBColor(90, 90, 90))
                .anchor(HPos::Center, VPos::Top),
        ))?;
    }
    root.draw(&Label::new(
        "mean ± std",
        at((area.get_base_pixel().0 + 18, (yr.start + yr.end) / 2)),
        GlyphStyle::new(14.0)
            .color(RGBColor(60, 60, 60))
            .anchor(HPos::Center, VPos::Center)
            .vertical(),
    ))?;
    let _ = w;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curves::Series;

    fn curves(acc: &[f64]) -> Curves {
        Curves {
            stage: "scan".into(),
            series: vec![Series {
                field: "test_acc".into(),
                points: acc
                    .iter()
                    .enumerate()
                    .map(|(i, &a)| (i as f64, a))
                    .collect(),
            }],
        }
    }

    fn decode(c: &Canvas) -> image::RgbImage {
        image::load_from_memory(&c.to_png().unwrap())
            .unwrap()
            .to_rgb8()
    }

    #[test]
    fn overlay_draws_every_run_in_its_colour() {
        let (a, b) = (curves(&[0.2, 0.5, 0.7]), curves(&[0.3, 0.4, 0.6]));
        let runs = [
            Run {
                name: "seed=0".into(),
                group: "base".into(),
                curves: &a,
            },
            Run {
                name: "seed=1".into(),
                group: "base".into(),
                curves: &b,
            },
        ];
        let png = decode(&overlay_plot(&runs, &["test_acc", "absent"], "t").unwrap());
        // One panel (the absent field is left out), both runs' colours present.
        assert_eq!(png.width() as usize, crate::curves::PANEL_W);
        for c in &PALETTE[..2] {
            assert!(
                png.pixels().any(|p| p.0 == [c.0, c.1, c.2]),
                "colour {c:?} missing"
            );
        }
    }

    #[test]
    fn bars_have_error_bars_and_stable_bytes() {
        let groups = vec![
            BarGroup {
                name: "entropy_weight=2".into(),
                bars: vec![Bar {
                    metric: "evaluate.acc".into(),
                    mean: 0.6,
                    std: 0.05,
                    n: 3,
                }],
            },
            BarGroup {
                name: "entropy_weight=5".into(),
                bars: vec![Bar {
                    metric: "evaluate.acc".into(),
                    mean: 0.7,
                    std: 0.0,
                    n: 1,
                }],
            },
        ];
        let a = metrics_bars(&groups, "final metrics")
            .unwrap()
            .to_png()
            .unwrap();
        let b = metrics_bars(&groups, "final metrics")
            .unwrap()
            .to_png()
            .unwrap();
        assert_eq!(a, b, "PNG bytes depend only on the data");
        let img = image::load_from_memory(&a).unwrap().to_rgb8();
        let dark = img.pixels().filter(|p| p.0 == [30, 30, 30]).count();
        assert!(dark > 20, "error bar drawn ({dark} px)");
        let bar = PALETTE[0];
        assert!(img.pixels().any(|p| p.0 == [bar.0, bar.1, bar.2]));
    }
}
