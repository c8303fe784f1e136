//! Stage `evaluate` (METHOD.md §8–§9): predict the test split with a SCAN or self-label weights
//! artifact, then compute the metrics ([`crate::metrics`]), write the predictions Parquet, the
//! `metrics.json` and a report directory (`report.md` plus PNGs, [`crate::report`]).
//!
//! [`run`] does the I/O and the prediction; everything after the prediction is the pure
//! [`evaluate_predictions`], driven by the tests with synthetic predictions.
//!
//! Inputs: `weights`, `test` (dataset artifact); optional `train` + `neighbors` (train neighbours
//! Parquet) for the nearest-neighbour grid, `mine_metrics` (the mine stage's metrics JSON: its
//! accuracy fields are carried over), any number of `curves_*` (training curves JSON) and any number
//! of `compare_*` (the metrics JSON of `kmeans` or of another `evaluate` on the same test split,
//! shown as rows beside this run: K-means, SCAN, self-labeling).
//! Outputs: `predictions` (Parquet), `metrics` (JSON), `report` (directory).

mod inputs;
mod params;
mod pictures;
mod predictions;
pub mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use inputs::{input_role, neighbor_accuracy_fields, InputRole, CURVES_PREFIX};
pub use params::{EvalInputs, EvalParams};
pub use pictures::{CONFUSION_PNG, NEIGHBORS_PNG, PROTOTYPES_PNG};
pub use predictions::{write_predictions, PredictionsError};

use crate::report::{render_markdown, Comparison, Curves, Published, PublishedTables, ReportInput};
use scan::data::Dataset;
use scan::io::Neighbors;
use scan::metrics::{cluster_metrics, ClusterMetrics};
use scan::nn::Predictions;
use scan_core::stage::StageArgs;

/// Output names.
pub const OUT_PREDICTIONS: &str = "predictions";
pub const OUT_METRICS: &str = "metrics";
pub const OUT_REPORT: &str = "report";
/// The Markdown file inside the report directory.
pub const REPORT_MD: &str = "report.md";

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadInput { path: PathBuf, message: String },
    #[error("{0}")]
    Inputs(String),
    #[error("predictions: {0}")]
    Predictions(String),
    #[error(transparent)]
    Metrics(#[from] scan::metrics::MetricsError),
    #[error(transparent)]
    Picture(#[from] crate::report::CanvasError),
    #[error(transparent)]
    Parquet(#[from] PredictionsError),
    #[error(transparent)]
    Data(#[from] scan::data::DataError),
    #[error(transparent)]
    Neighbors(#[from] scan::io::IoError),
    #[error(transparent)]
    Nn(#[from] scan::nn::NnError),
    #[error(transparent)]
    Stage(#[from] scan_core::stage::StageError),
}

/// Everything [`evaluate_predictions`] needs, already loaded.
#[derive(Debug, Clone)]
pub struct EvalData<'a> {
    pub test: &'a Dataset,
    pub predictions: &'a Predictions,
    /// Shown in the report (the weights file's name).
    pub weights_name: String,
    pub weights_blake3: String,
    /// Train split and its neighbours, for the nearest-neighbour grid.
    pub train: Option<&'a Dataset>,
    pub neighbors: Option<&'a Neighbors>,
    /// The mine stage's metrics JSON.
    pub mine_metrics: Option<&'a serde_json::Value>,
    /// `(input name, curves)`.
    pub curves: &'a [(String, Curves)],
    /// What the weights are (`scan`, `selflabel`), from their metadata.
    pub weights_kind: String,
    /// Other evaluations of the same test split shown beside this run (`compare_*` inputs).
    pub comparisons: Vec<(u8, Comparison)>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Summary {
    pub metrics: ClusterMetrics,
    pub predictions: PathBuf,
    pub metrics_json: PathBuf,
    pub report_dir: PathBuf,
    /// Every PNG written, in report order.
    pub pictures: Vec<PathBuf>,
}

/// The stage entry point of `scan-evaluate`.
pub fn run_stage(args: &StageArgs) -> anyhow::Result<()> {
    let params: EvalParams = args.load_params()?;
    let inputs = EvalInputs::from_args(args)?;
    let s = run(&params, &inputs, &args.out)?;
    eprintln!(
        "scan-evaluate: ACC {:.4} NMI {:.4} ARI {:.4} top-{} {:.4} ({} samples)",
        s.metrics.acc,
        s.metrics.nmi,
        s.metrics.ari,
        s.metrics.top_k,
        s.metrics.top5,
        s.metrics.num_samples
    );
    Ok(())
}

/// Load the inputs, predict the test split, evaluate; outputs go into `out`.
pub fn run(params: &EvalParams, inputs: &EvalInputs, out: &Path) -> Result<Summary, EvalError> {
    if inputs.train.is_some() != inputs.neighbors.is_some() {
        return Err(EvalError::Inputs(
            "inputs `train` and `neighbors` go together (the nearest-neighbour grid needs both)"
                .into(),
        ));
    }
    let test = Dataset::load(&inputs.test)?;
    let train = inputs.train.as_deref().map(Dataset::load).transpose()?;
    let neighbors = inputs
        .neighbors
        .as_deref()
        .map(scan::io::read_neighbors)
        .transpose()?;
    let mine = inputs
        .mine_metrics
        .as_deref()
        .map(inputs::read_mine_metrics)
        .transpose()?;
    let curves = inputs
        .curves
        .iter()
        .map(|(n, p)| Ok((n.clone(), inputs::read_curves(p)?)))
        .collect::<Result<Vec<_>, EvalError>>()?;
    let comparisons = inputs
        .compare
        .iter()
        .map(|(n, p)| inputs::read_comparison(n, p))
        .collect::<Result<Vec<_>, EvalError>>()?;
    let weights_blake3 = inputs::file_blake3(&inputs.weights)?;
    let weights_kind = scan::nn::weights::read_meta(&inputs.weights)?.kind;
    let predictions = scan::nn::predict(&inputs.weights, &test, params.batch_size.max(1))?;
    let data = EvalData {
        test: &test,
        predictions: &predictions,
        weights_name: inputs.weights.file_name().map_or_else(
            || inputs.weights.display().to_string(),
            |n| n.to_string_lossy().into(),
        ),
        weights_blake3,
        train: train.as_ref(),
        neighbors: neighbors.as_ref(),
        mine_metrics: mine.as_ref(),
        curves: &curves,
        weights_kind,
        comparisons,
    };
    evaluate_predictions(params, &data, out)
}

fn check(data: &EvalData) -> Result<(), EvalError> {
    let (p, n) = (data.predictions, data.test.len());
    let bad = |m: String| Err(EvalError::Predictions(m));
    if p.num_clusters == 0 {
        return bad("no clusters".into());
    }
    if p.probs.len() != n * p.num_clusters {
        return bad(format!(
            "{} probabilities for {n} images of {} clusters",
            p.probs.len(),
            p.num_clusters
        ));
    }
    if p.features.len() != n * p.feat_dim {
        return bad(format!(
            "{} features for {n} images of dimension {}",
            p.features.len(),
            p.feat_dim
        ));
    }
    if data.test.num_classes() == 0 {
        return Err(EvalError::Inputs(
            "the test split has no class names".into(),
        ));
    }
    if let (Some(train), Some(nb)) = (data.train, data.neighbors) {
        if nb.n != train.len() {
            return Err(EvalError::Inputs(format!(
                "{} neighbour rows for {} train images",
                nb.n,
                train.len()
            )));
        }
    }
    Ok(())
}

/// Metrics, predictions Parquet, `metrics.json`, pictures and report from given predictions.
pub fn evaluate_predictions(
    params: &EvalParams,
    data: &EvalData,
    out: &Path,
) -> Result<Summary, EvalError> {
    check(data)?;
    let (test, p) = (data.test, data.predictions);
    let c = p.num_clusters;
    // Metrics over the labelled samples.
    let labelled: Vec<usize> = (0..test.len()).filter(|&i| test.labels[i] >= 0).collect();
    if labelled.is_empty() {
        return Err(EvalError::Inputs(
            "the test split has no labels to evaluate against".into(),
        ));
    }
    let probs: Vec<f32> = labelled
        .iter()
        .flat_map(|&i| p.probs[i * c..(i + 1) * c].iter().copied())
        .collect();
    let truth: Vec<usize> = labelled.iter().map(|&i| test.labels[i] as usize).collect();
    let metrics = cluster_metrics(&probs, c, &truth, test.num_classes())?;
    let neighbor_acc = data
        .mine_metrics
        .map(neighbor_accuracy_fields)
        .unwrap_or_default();

    fs_err::create_dir_all(out).map_err(|source| EvalError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let pred_path = out.join(OUT_PREDICTIONS);
    let kv = BTreeMap::from([
        ("scan.kind".to_string(), "predictions".to_string()),
        ("scan.format_version".to_string(), "1".to_string()),
        ("scan.num_clusters".to_string(), c.to_string()),
        (
            "scan.weights_blake3".to_string(),
            data.weights_blake3.clone(),
        ),
    ]);
    write_predictions(&pred_path, &p.probs, c, &test.labels, &kv)?;

    let metrics_path = out.join(OUT_METRICS);
    let doc = MetricsDoc {
        dataset: &test.meta.dataset,
        split: &test.meta.split,
        weights_blake3: &data.weights_blake3,
        weights_kind: &data.weights_kind,
        num_images: test.len(),
        num_unlabeled: test.len() - labelled.len(),
        class_names: &test.meta.class_names,
        metrics: &metrics,
        neighbors: neighbor_acc
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&doc)
        .map_err(|e| EvalError::Predictions(format!("metrics JSON: {e}")))?;
    json.push(b'\n');
    scan_core::util::atomic_write(&metrics_path, &json).map_err(|source| EvalError::Io {
        path: metrics_path.clone(),
        source,
    })?;

    let report_dir = out.join(OUT_REPORT);
    let pics = pictures::render_pictures(params, data, &metrics, &report_dir)?;
    let published = params
        .published
        .unwrap_or_else(|| Published::from_dataset(&test.meta.dataset))
        .table();
    let md = render_markdown(&ReportInput {
        dataset: &test.meta.dataset,
        split: &test.meta.split,
        num_images: test.len(),
        image_shape: (test.height, test.width, test.channels),
        num_unlabeled: test.len() - labelled.len(),
        weights_name: &data.weights_name,
        weights_blake3: &data.weights_blake3,
        weights_kind: &data.weights_kind,
        metrics: &metrics,
        comparisons: &data.comparisons,
        class_names: &test.meta.class_names,
        published,
        neighbor_acc: &neighbor_acc,
        pictures: &pics,
    });
    let md_path = report_dir.join(REPORT_MD);
    scan_core::util::atomic_write(&md_path, md.as_bytes()).map_err(|source| EvalError::Io {
        path: md_path,
        source,
    })?;
    Ok(Summary {
        metrics,
        predictions: pred_path,
        metrics_json: metrics_path,
        pictures: pics.iter().map(|(_, f)| report_dir.join(f)).collect(),
        report_dir,
    })
}

/// Layout of `metrics.json`.
#[derive(Serialize)]
struct MetricsDoc<'a> {
    dataset: &'a str,
    split: &'a str,
    weights_blake3: &'a str,
    /// What the weights are (`scan`, `selflabel`): names this evaluation's row in other reports.
    weights_kind: &'a str,
    num_images: usize,
    num_unlabeled: usize,
    class_names: &'a [String],
    #[serde(flatten)]
    metrics: &'a ClusterMetrics,
    /// Neighbour-accuracy fields carried over from the mine stage.
    neighbors: serde_json::Map<String, serde_json::Value>,
}
