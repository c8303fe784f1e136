//! The PNGs of the report (METHOD.md §8): confusion matrix, prototypes per cluster, the
//! nearest-neighbour grid of the train split and one plot per curves input.

use std::path::Path;

use super::{EvalData, EvalError, EvalParams};
use crate::report::{
    cluster_examples, confusion_heatmap, curves_plot, neighbor_rows, pick_anchors, prototype_rows,
    tile_grid, Canvas,
};
use scan::metrics::ClusterMetrics;

pub const CONFUSION_PNG: &str = "confusion.png";
pub const PROTOTYPES_PNG: &str = "prototypes.png";
pub const NEIGHBORS_PNG: &str = "neighbors.png";

fn save(c: &Canvas, dir: &Path, file: &str) -> Result<(), EvalError> {
    c.save(&dir.join(file), scan_core::util::atomic_write)
        .map_err(EvalError::Picture)
}

/// Render every picture into `dir`; returns `(caption, file name)` in report order.
pub fn render_pictures(
    params: &EvalParams,
    data: &EvalData,
    metrics: &ClusterMetrics,
    dir: &Path,
) -> Result<Vec<(String, String)>, EvalError> {
    let test = data.test;
    let p = data.predictions;
    let ds_name = &test.meta.dataset;
    let mut out = Vec::new();

    let title = format!("{ds_name} {}: confusion", test.meta.split);
    save(
        &confusion_heatmap(&metrics.confusion, &test.meta.class_names, &title)?,
        dir,
        CONFUSION_PNG,
    )?;
    out.push((
        "Confusion matrix (rows = true class, normalised by row)".into(),
        CONFUSION_PNG.into(),
    ));

    let mut examples = cluster_examples(
        &p.probs,
        p.num_clusters,
        &p.features,
        p.feat_dim,
        params.grid_top,
    );
    examples.truncate(params.grid_max_clusters);
    let rows = prototype_rows(test, &examples, &metrics.cluster_to_class);
    let title = format!("{ds_name}: per cluster the prototype, then the most confident samples");
    save(
        &tile_grid(test, &title, &rows, 1 + params.grid_top),
        dir,
        PROTOTYPES_PNG,
    )?;
    out.push((
        "Prototypes (first tile) and most confident samples per cluster; green = sample of the \
         matched class"
            .into(),
        PROTOTYPES_PNG.into(),
    ));

    if let (Some(train), Some(nb)) = (data.train, data.neighbors) {
        let skip = usize::from(nb.meta.includes_self);
        let anchors = pick_anchors(&train.labels, train.num_classes(), params.nn_anchors);
        let rows = neighbor_rows(train, &anchors, |a| &nb.row(a)[skip..], params.nn_neighbors);
        let title = format!(
            "{} {}: anchor (blue) and its mined neighbours",
            train.meta.dataset, train.meta.split
        );
        save(
            &tile_grid(train, &title, &rows, 1 + params.nn_neighbors),
            dir,
            NEIGHBORS_PNG,
        )?;
        out.push((
            "Mined nearest neighbours (train split); green = same class as the anchor".into(),
            NEIGHBORS_PNG.into(),
        ));
    }

    for (name, curves) in data.curves {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let file = format!("{safe}.png");
        let title = format!("training curves: {} ({name})", curves.stage);
        save(&curves_plot(curves, &title)?, dir, &file)?;
        out.push((format!("Training curves: {}", curves.stage), file));
    }
    Ok(out)
}
