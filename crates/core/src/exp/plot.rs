//! `scan exp plot`: the recorded experiments as two PNGs, drawn by the `scan-charts` crate —
//! `curves-<stage>.png`, the per-epoch curves of one training stage of every experiment overlaid
//! (one panel per field: the losses, the test accuracy, …), and `metrics.png`, the final metrics of
//! each group (a variant over its seeds) as bars of the mean with ±1 sample standard deviation.
//!
//! Curves are read from each experiment's `curves` output of the stage, metrics from the same
//! rows and groups as `scan exp show` (one definition of both, in [`super::table`]).

use std::path::{Path, PathBuf};

use scan_charts::{metrics_bars, overlay_plot, parse_curves, Bar, BarGroup, Canvas, Curves, Run};

use super::table::{groups, rows};
use super::{ExpError, ExperimentLog};
use crate::store::Store;

/// Fields of the curves not drawn by default: bookkeeping, not quantities to compare.
const SKIPPED_FIELDS: [&str; 5] = [
    "epoch",
    "lr",
    "images_per_s",
    "selection_head",
    "skipped_batches",
];

/// What to draw.
#[derive(Debug, Clone)]
pub struct PlotRequest {
    /// The training stage whose curves are overlaid.
    pub stage: String,
    /// Curve fields (empty: every field except bookkeeping).
    pub fields: Vec<String>,
    /// Metrics of the bar chart (empty: every `.acc` metric).
    pub metrics: Vec<String>,
    /// Experiments to draw (empty: all).
    pub only: Vec<String>,
    /// Directory the PNGs are written to.
    pub out: PathBuf,
}

/// Errors of `scan exp plot` beyond reading the experiments.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Exp(#[from] ExpError),
    #[error("{0}")]
    Chart(#[from] scan_charts::CanvasError),
    #[error("experiment `{experiment}`: the curves of stage `{stage}` ({hash}): {message}")]
    Curves {
        experiment: String,
        stage: String,
        hash: String,
        message: String,
    },
    #[error("no experiment has curves of stage `{stage}` (stages with curves: {known})")]
    NoCurves { stage: String, known: String },
}

/// What `plot` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Plotted {
    /// The PNGs written.
    pub files: Vec<PathBuf>,
    /// Experiments whose curves are no longer in the store (collected, or recorded with another
    /// store): left out of the overlay.
    pub left_out: Vec<String>,
}

/// Draw both charts of `log` into `req.out`.
pub fn plot(
    log: &ExperimentLog,
    log_path: &Path,
    store: &Store,
    req: &PlotRequest,
) -> Result<Plotted, PlotError> {
    for name in &req.only {
        log.find(name, log_path)?;
    }
    let selected = ExperimentLog {
        version: log.version,
        experiments: log
            .experiments
            .iter()
            .filter(|e| req.only.is_empty() || req.only.contains(&e.name))
            .cloned()
            .collect(),
    };
    let (curves, left_out) = stage_curves(&selected, store, &req.stage)?;
    let runs: Vec<Run> = curves
        .iter()
        .map(|(name, group, c)| Run {
            name: name.clone(),
            group: group.clone(),
            curves: c,
        })
        .collect();
    let fields: Vec<String> = if req.fields.is_empty() {
        let mut all: Vec<String> = Vec::new();
        for s in curves.iter().flat_map(|(_, _, c)| &c.series) {
            if !SKIPPED_FIELDS.contains(&s.field.as_str()) && !all.contains(&s.field) {
                all.push(s.field.clone());
            }
        }
        all
    } else {
        req.fields.clone()
    };
    let field_refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    let title = format!("{}: {} experiment(s)", req.stage, runs.len());
    let overlay = overlay_plot(&runs, &field_refs, &title)?;

    let rows = rows(&selected, store);
    let bar_groups: Vec<BarGroup> = groups(&rows)
        .into_iter()
        .map(|g| BarGroup {
            name: g.group.clone(),
            bars: g
                .metrics
                .iter()
                .filter(|(m, _)| {
                    if req.metrics.is_empty() {
                        m.ends_with(".acc")
                    } else {
                        req.metrics.contains(m)
                    }
                })
                .map(|(m, s)| Bar {
                    metric: m.clone(),
                    mean: s.mean,
                    std: s.std,
                    n: s.n,
                })
                .collect(),
        })
        .collect();
    let bars = metrics_bars(&bar_groups, "final metrics: mean ± std over seeds")?;

    let written = [
        (overlay, format!("curves-{}.png", req.stage)),
        (bars, "metrics.png".to_string()),
    ];
    let mut files = Vec::new();
    for (canvas, file) in written {
        files.push(save(&canvas, &req.out.join(file))?);
    }
    Ok(Plotted { files, left_out })
}

fn save(canvas: &Canvas, path: &Path) -> Result<PathBuf, PlotError> {
    canvas.save(path, crate::util::atomic_write)?;
    Ok(path.to_path_buf())
}

/// `(experiment, group, curves)` of `stage` for every experiment that ran it, and the experiments
/// whose curves are not in the store.
#[allow(clippy::type_complexity)]
fn stage_curves(
    log: &ExperimentLog,
    store: &Store,
    stage: &str,
) -> Result<(Vec<(String, String, Curves)>, Vec<String>), PlotError> {
    let (mut out, mut left_out) = (Vec::new(), Vec::new());
    for e in &log.experiments {
        let Some(o) = e.stages.get(stage).and_then(|r| r.outputs.get("curves")) else {
            continue;
        };
        if !store.has_blob(&o.hash) {
            left_out.push(e.name.clone());
            continue;
        }
        let bad = |message: String| PlotError::Curves {
            experiment: e.name.clone(),
            stage: stage.to_string(),
            hash: o.hash.to_string(),
            message,
        };
        let bytes = store
            .read_blob(&o.hash)
            .map_err(|err| bad(err.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|err| bad(err.to_string()))?;
        let curves = parse_curves(&text).map_err(bad)?;
        out.push((e.name.clone(), e.group.clone(), curves));
    }
    if out.is_empty() && left_out.is_empty() {
        let mut known: Vec<&str> = log
            .experiments
            .iter()
            .flat_map(|e| e.stages.iter())
            .filter(|(_, r)| r.outputs.contains_key("curves"))
            .map(|(s, _)| s.as_str())
            .collect();
        known.sort();
        known.dedup();
        return Err(PlotError::NoCurves {
            stage: stage.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    Ok((out, left_out))
}
