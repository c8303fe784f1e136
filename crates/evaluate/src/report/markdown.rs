//! The human-readable report (METHOD.md §8–§9): `report.md` with the run's metrics next to the
//! published numbers, per-class accuracy, cluster sizes, the carried-over neighbour accuracy and
//! links to every picture.

use std::fmt::Write;

use super::published::PublishedTable;
use scan::metrics::ClusterMetrics;

/// A row of the results table besides this run: another evaluation of the same test split (the
/// `metrics` output of `kmeans` or of another `evaluate`), passed as a `compare_*` input.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What the row is, e.g. "pretext + K-means".
    pub label: String,
    pub acc: f64,
    pub nmi: f64,
    pub ari: f64,
    pub top5: Option<f64>,
}

/// Label and table position of a method: `kmeans`, `scan` or `selflabel` (the kind of the weights
/// an `evaluate` predicted with); the rows read K-means, SCAN, self-labeling from top to bottom.
pub fn method_label(method: &str) -> (u8, String) {
    match method {
        "kmeans" => (0, "pretext + K-means".into()),
        "scan" => (1, "SCAN".into()),
        "selflabel" => (2, "SCAN + self-labeling".into()),
        other => (3, other.to_string()),
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub dataset: &'a str,
    pub split: &'a str,
    pub num_images: usize,
    /// `(height, width, channels)`.
    pub image_shape: (usize, usize, usize),
    /// Samples left out of the metrics because their label is unknown.
    pub num_unlabeled: usize,
    pub weights_name: &'a str,
    pub weights_blake3: &'a str,
    /// What the weights are (`scan`, `selflabel`): labels this run's row.
    pub weights_kind: &'a str,
    pub metrics: &'a ClusterMetrics,
    /// Other evaluations shown beside this run, in the order of [`method_label`].
    pub comparisons: &'a [(u8, Comparison)],
    pub class_names: &'a [String],
    pub published: Option<PublishedTable>,
    /// Neighbour-accuracy fields of the mine stage's metrics, as given.
    pub neighbor_acc: &'a [(String, f64)],
    /// `(caption, file name)` of each picture, relative to the report.
    pub pictures: &'a [(String, String)],
}

fn pct(v: f64) -> String {
    format!("{:.2}", 100.0 * v)
}

/// Escape text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Render `report.md`.
pub fn render_markdown(r: &ReportInput) -> String {
    let m = r.metrics;
    let mut s = String::new();
    let (h, w, c) = r.image_shape;
    let _ = writeln!(s, "# SCAN evaluation: {}\n", cell(r.dataset));
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| dataset | {} ({} split) |",
        cell(r.dataset),
        cell(r.split)
    );
    let _ = writeln!(s, "| images | {} of {h}×{w}×{c} |", r.num_images);
    if r.num_unlabeled > 0 {
        let _ = writeln!(s, "| left out (no label) | {} |", r.num_unlabeled);
    }
    let _ = writeln!(s, "| weights | `{}` |", cell(r.weights_name));
    let _ = writeln!(s, "| weights BLAKE3 | `{}` |", r.weights_blake3);
    let _ = writeln!(
        s,
        "| clusters / classes | {} / {} |",
        m.num_clusters, m.num_classes
    );
    let _ = writeln!(s);

    let _ = writeln!(s, "## Results (percent)\n");
    if let Some(t) = &r.published {
        let _ = writeln!(
            s,
            "Below this run: published numbers for {} (METHOD.md §9.3).\n",
            t.dataset
        );
    }
    let _ = writeln!(
        s,
        "| | ACC | NMI | ARI | top-{} |\n|---|---|---|---|---|",
        m.top_k
    );
    let (rank, label) = method_label(r.weights_kind);
    let mut rows: Vec<(u8, String)> = r
        .comparisons
        .iter()
        .map(|(k, c)| {
            let top5 = c.top5.map_or("–".into(), pct);
            let row = format!(
                "| {} | {} | {} | {} | {top5} |",
                cell(&c.label),
                pct(c.acc),
                pct(c.nmi),
                pct(c.ari)
            );
            (*k, row)
        })
        .collect();
    rows.push((
        rank,
        format!(
            "| **this run: {}** | **{}** | **{}** | **{}** | **{}** |",
            cell(&label),
            pct(m.acc),
            pct(m.nmi),
            pct(m.ari),
            pct(m.top5)
        ),
    ));
    rows.sort_by_key(|(k, _)| *k);
    for (_, row) in rows {
        let _ = writeln!(s, "{row}");
    }
    if let Some(t) = &r.published {
        for p in &t.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | – |",
                p.method, p.acc, p.nmi, p.ari
            );
        }
    }
    let _ = writeln!(s);
    if let Some(t) = r.published.as_ref().filter(|t| !t.note.is_empty()) {
        let _ = writeln!(s, "{}\n", t.note);
    }
    let _ = writeln!(
        s,
        "ACC: Hungarian match of clusters to classes; NMI (arithmetic normalisation) and ARI on the \
         raw cluster ids; top-{}: the {} most probable clusters through the match.\n",
        m.top_k, m.top_k
    );
    if let Some(a) = m.acc_majority {
        let _ = writeln!(
            s,
            "Overclustering ({} clusters > {} classes): majority-vote ACC **{}**; the per-class \
             accuracy, confusion matrix and top-{} use the majority-vote mapping.\n",
            m.num_clusters,
            m.num_classes,
            pct(a),
            m.top_k
        );
    }
    if !r.neighbor_acc.is_empty() {
        let _ = writeln!(s, "## Mined-neighbour accuracy (mine stage)\n");
        let _ = writeln!(s, "| field | value |\n|---|---|");
        for (k, v) in r.neighbor_acc {
            let _ = writeln!(s, "| {} | {} |", cell(k), v);
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Per-class accuracy\n");
    let _ = writeln!(s, "| class | samples | accuracy (%) |\n|---|---|---|");
    for (i, name) in r.class_names.iter().enumerate() {
        let acc = m
            .per_class_acc
            .get(i)
            .copied()
            .flatten()
            .map_or("–".into(), pct);
        let n = m.class_sizes.get(i).copied().unwrap_or(0);
        let _ = writeln!(s, "| {} | {n} | {acc} |", cell(name));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Clusters\n");
    let _ = writeln!(s, "| cluster | samples | mapped class |\n|---|---|---|");
    for (k, size) in m.cluster_sizes.iter().enumerate() {
        let class = match m.cluster_to_class.get(k).copied().flatten() {
            Some(c) => cell(r.class_names.get(c).map_or("?", |s| s.as_str())),
            None => "–".into(),
        };
        let _ = writeln!(s, "| {k} | {size} | {class} |");
    }
    let _ = writeln!(s);
    if !r.pictures.is_empty() {
        let _ = writeln!(s, "## Pictures\n");
        for (caption, file) in r.pictures {
            let _ = writeln!(
                s,
                "### {}\n\n![{}]({})\n",
                cell(caption),
                cell(caption),
                file
            );
        }
    }
    s
}
