//! Clustering metrics of METHOD.md §8: Hungarian-matched accuracy (own linear assignment),
//! NMI (arithmetic normalisation) and ARI on the raw cluster ids, top-5 accuracy through the match,
//! per-class accuracy, the confusion matrix (rows = true class, normalised by the row sum) and the
//! majority-vote accuracy for overclustering. Degenerate inputs (one cluster, empty clusters, one
//! class, no samples) give finite numbers, never NaN or a panic.

pub mod assignment;
pub mod clustering;

pub use assignment::{max_weight_assignment, min_cost_assignment, AssignmentError};
pub use clustering::{ari, nmi, Contingency};

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("{probs} probabilities for {samples} samples of {clusters} clusters")]
    Shape {
        probs: usize,
        samples: usize,
        clusters: usize,
    },
    #[error("probability {value} of sample {sample}, cluster {cluster} is not finite")]
    NotFinite {
        sample: usize,
        cluster: usize,
        value: f32,
    },
    #[error("label {label} of sample {sample} is out of range for {classes} classes")]
    Label {
        sample: usize,
        label: usize,
        classes: usize,
    },
    #[error("no clusters")]
    NoClusters,
}

/// Hungarian match of clusters to classes maximising the number of matched samples: `match[k]`
/// is the class of cluster `k` (`None` for clusters left over when there are more clusters than
/// classes), and the matched accuracy (0 without samples).
pub fn hungarian(t: &Contingency) -> (Vec<Option<usize>>, f64) {
    let w: Vec<f64> = t.counts.iter().map(|&c| c as f64).collect();
    let pairs = max_weight_assignment(&w, t.clusters, t.classes)
        .expect("a count matrix has the right shape and finite entries");
    let mut m = vec![None; t.clusters];
    let mut hits = 0u64;
    for (k, c) in pairs {
        m[k] = Some(c);
        hits += t.get(k, c);
    }
    (m, ratio(hits, t.total()))
}

/// Majority vote: each cluster maps to its most frequent class (lowest index on ties; `None` for
/// empty clusters), and the resulting accuracy.
pub fn majority(t: &Contingency) -> (Vec<Option<usize>>, f64) {
    let mut hits = 0u64;
    let m = (0..t.clusters)
        .map(|k| {
            let best = (0..t.classes).fold(None::<(usize, u64)>, |best, c| match best {
                Some((_, n)) if n >= t.get(k, c) => best,
                _ => Some((c, t.get(k, c))),
            });
            best.filter(|&(_, n)| n > 0).map(|(c, n)| {
                hits += n;
                c
            })
        })
        .collect();
    (m, ratio(hits, t.total()))
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Everything `metrics.json` reports about the clustering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterMetrics {
    pub num_samples: usize,
    pub num_clusters: usize,
    pub num_classes: usize,
    /// Hungarian-matched accuracy.
    pub acc: f64,
    pub nmi: f64,
    pub ari: f64,
    /// Accuracy of the `top_k` most probable clusters mapped through `cluster_to_class`.
    pub top5: f64,
    /// `min(5, num_clusters)`.
    pub top_k: usize,
    /// Majority-vote accuracy, present when there are more clusters than classes.
    pub acc_majority: Option<f64>,
    /// Hungarian match, cluster → class.
    pub hungarian_match: Vec<Option<usize>>,
    /// `"hungarian"`, or `"majority"` when there are more clusters than classes.
    pub mapping: &'static str,
    /// The mapping used for top-5, per-class accuracy and the confusion matrix.
    pub cluster_to_class: Vec<Option<usize>>,
    pub cluster_sizes: Vec<u64>,
    pub class_sizes: Vec<u64>,
    /// Per true class: fraction mapped to that class (`None` for classes without samples).
    pub per_class_acc: Vec<Option<f64>>,
    /// `classes × classes`, rows = true class, columns = mapped prediction, rows sum to 1 (or 0).
    pub confusion: Vec<Vec<f64>>,
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Cluster ids ordered by decreasing probability (lower id first on ties), the first `k`.
pub fn top_clusters(row: &[f32], k: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..row.len()).collect();
    ids.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    ids.truncate(k);
    ids
}

/// All metrics of `probs` (`N × num_clusters` row-major) against `truth` (`N` class ids).
pub fn cluster_metrics(
    probs: &[f32],
    num_clusters: usize,
    truth: &[usize],
    num_classes: usize,
) -> Result<ClusterMetrics, MetricsError> {
    if num_clusters == 0 {
        return Err(MetricsError::NoClusters);
    }
    let n = truth.len();
    if probs.len() != n * num_clusters {
        return Err(MetricsError::Shape {
            probs: probs.len(),
            samples: n,
            clusters: num_clusters,
        });
    }
    if let Some(i) = probs.iter().position(|p| !p.is_finite()) {
        return Err(MetricsError::NotFinite {
            sample: i / num_clusters,
            cluster: i % num_clusters,
            value: probs[i],
        });
    }
    if let Some((i, &l)) = truth.iter().enumerate().find(|(_, &l)| l >= num_classes) {
        return Err(MetricsError::Label {
            sample: i,
            label: l,
            classes: num_classes,
        });
    }
    let rows: Vec<&[f32]> = probs.chunks_exact(num_clusters).collect();
    let pred: Vec<usize> = rows.iter().map(|r| argmax(r)).collect();
    let t = Contingency::new(&pred, truth, num_clusters, num_classes);
    let (hungarian_match, acc) = hungarian(&t);
    let overclustered = num_clusters > num_classes;
    let (majority_map, acc_majority) = majority(&t);
    let (mapping, cluster_to_class) = if overclustered {
        ("majority", majority_map)
    } else {
        ("hungarian", hungarian_match.clone())
    };

    let top_k = num_clusters.min(5);
    let top_hits = rows
        .iter()
        .zip(truth)
        .filter(|(r, &y)| {
            top_clusters(r, top_k)
                .iter()
                .any(|&k| cluster_to_class[k] == Some(y))
        })
        .count();

    let mut confusion = vec![vec![0u64; num_classes]; num_classes];
    for (&k, &y) in pred.iter().zip(truth) {
        if let Some(c) = cluster_to_class[k] {
            confusion[y][c] += 1;
        }
    }
    let class_sizes = t.class_sizes();
    let per_class_acc = (0..num_classes)
        .map(|c| (class_sizes[c] > 0).then(|| ratio(confusion[c][c], class_sizes[c])))
        .collect();
    let confusion = confusion
        .iter()
        .map(|row| {
            let s: u64 = row.iter().sum();
            row.iter().map(|&x| ratio(x, s)).collect()
        })
        .collect();
    Ok(ClusterMetrics {
        num_samples: n,
        num_clusters,
        num_classes,
        acc,
        nmi: nmi(&t),
        ari: ari(&t),
        top5: ratio(top_hits as u64, n as u64),
        top_k,
        acc_majority: overclustered.then_some(acc_majority),
        hungarian_match,
        mapping,
        cluster_to_class,
        cluster_sizes: t.cluster_sizes(),
        class_sizes,
        per_class_acc,
        confusion,
    })
}

#[cfg(test)]
mod tests;
