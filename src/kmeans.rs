//! Stage `kmeans`: the paper's "pretext + K-means" baseline (METHOD.md §8.1) — K-means on the
//! pretext embeddings, evaluated like the clustering models, so that the report can show what SCAN
//! adds over clustering the embeddings directly.
//!
//! Inputs `train` and `test` (embeddings Parquet from `embed`). K-means is fitted on the train
//! embeddings (k = `num_clusters`, 0 = the number of classes, i.e. the largest label + 1) with
//! scikit-learn's algorithm: greedy k-means++ seeding (2 + ⌊ln k⌋ candidates per centre, the one
//! that lowers the potential most), Lloyd iterations until the labels stop changing or the centres
//! move by at most `tol` × the mean per-dimension variance (sum of squared shifts), an empty cluster
//! re-seeded with the point farthest from its centre; the best of `restarts` seeded runs (lowest
//! inertia) is kept. The test embeddings are then assigned to their nearest centre and scored with
//! the metrics of §8 (Hungarian ACC, NMI, ARI).
//!
//! Output `metrics` (JSON): `acc`, `nmi`, `ari`, the cluster sizes and the match on the test split,
//! the train inertia and iterations of the kept run. Distances are accumulated in f64, and every
//! random draw comes from a ChaCha8 generator seeded with (`seed`, restart), so the output is
//! byte-reproducible.

use anyhow::Context;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;

use crate::io::read_embeddings;
use crate::metrics::{cluster_metrics, MetricsError};
use crate::stage::StageArgs;

pub use scan_core::params::KmeansParams;

/// Errors of the K-means fit.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KmeansError {
    #[error("K-means needs at least k = {k} samples, got {n}")]
    TooFewSamples { n: usize, k: usize },
    #[error("K-means needs k >= 1")]
    NoClusters,
    #[error("{len} values are not {n} rows of dimension {dim}")]
    Shape { len: usize, n: usize, dim: usize },
    #[error("embedding {row} has a non-finite value")]
    NotFinite { row: usize },
}

/// A fitted K-means model.
#[derive(Debug, Clone, PartialEq)]
pub struct KmeansFit {
    /// `k × dim` centres, row-major.
    pub centers: Vec<f64>,
    pub k: usize,
    pub dim: usize,
    /// Sum of squared distances of the fitted samples to their centre.
    pub inertia: f64,
    /// Lloyd iterations of the kept run.
    pub iterations: usize,
    /// Index of the kept restart.
    pub restart: usize,
    /// Cluster of every fitted sample.
    pub labels: Vec<usize>,
}

/// Settings of [`kmeans`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KmeansOptions {
    pub k: usize,
    pub restarts: usize,
    pub max_iter: usize,
    /// Relative tolerance (scikit-learn's `tol`).
    pub tol: f64,
    pub seed: u64,
}

fn sq_dist(a: &[f32], c: &[f64]) -> f64 {
    a.iter()
        .zip(c)
        .map(|(&x, &y)| {
            let d = f64::from(x) - y;
            d * d
        })
        .sum()
}

fn sq_dist_rows(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum()
}

/// Nearest centre of every row (lower index on ties) and its squared distance.
pub fn assign(x: &[f32], dim: usize, centers: &[f64]) -> Vec<(usize, f64)> {
    x.par_chunks(dim)
        .map(|row| {
            centers
                .chunks(dim)
                .enumerate()
                .map(|(j, c)| (j, sq_dist(row, c)))
                .fold(
                    (0, f64::INFINITY),
                    |best, cur| {
                        if cur.1 < best.1 {
                            cur
                        } else {
                            best
                        }
                    },
                )
        })
        .collect()
}

/// scikit-learn's greedy k-means++ seeding: the first centre uniform, then for each next centre
/// `2 + ⌊ln k⌋` candidates drawn with probability ∝ squared distance to the closest centre so far,
/// keeping the candidate that gives the lowest potential.
pub fn kmeans_plusplus(
    x: &[f32],
    n: usize,
    dim: usize,
    k: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<f64> {
    let row = |i: usize| &x[i * dim..(i + 1) * dim];
    let trials = 2 + (k as f64).ln().floor() as usize;
    let mut centers = Vec::with_capacity(k * dim);
    let first = rng.gen_range(0..n);
    centers.extend(row(first).iter().map(|&v| f64::from(v)));
    let mut closest: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| sq_dist_rows(row(i), row(first)))
        .collect();
    let mut potential: f64 = closest.iter().sum();
    for _ in 1..k {
        let mut cumsum = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &d in &closest {
            acc += d;
            cumsum.push(acc);
        }
        let candidates: Vec<usize> = (0..trials)
            .map(|_| {
                let r = rng.gen::<f64>() * potential;
                // np.searchsorted(cumsum, r) (side left), clipped to n − 1.
                cumsum.partition_point(|&c| c < r).min(n - 1)
            })
            .collect();
        let (best, best_dist, best_pot) = candidates
            .iter()
            .map(|&c| {
                let d: Vec<f64> = (0..n)
                    .into_par_iter()
                    .map(|i| sq_dist_rows(row(i), row(c)).min(closest[i]))
                    .collect();
                let pot: f64 = d.iter().sum();
                (c, d, pot)
            })
            .fold(
                None,
                |best: Option<(usize, Vec<f64>, f64)>, cur| match best {
                    Some(b) if b.2 <= cur.2 => Some(b),
                    _ => Some(cur),
                },
            )
            .expect("at least two candidates");
        centers.extend(row(best).iter().map(|&v| f64::from(v)));
        closest = best_dist;
        potential = best_pot;
    }
    centers
}

/// One Lloyd run from `centers`: returns (labels, inertia, iterations, centres).
fn lloyd(
    x: &[f32],
    n: usize,
    dim: usize,
    mut centers: Vec<f64>,
    max_iter: usize,
    tol: f64,
) -> (Vec<usize>, f64, usize, Vec<f64>) {
    let k = centers.len() / dim;
    let mut labels: Option<Vec<usize>> = None;
    let mut iterations = 0;
    let mut converged_strict = false;
    for _ in 0..max_iter.max(1) {
        iterations += 1;
        let assigned = assign(x, dim, &centers);
        let new_labels: Vec<usize> = assigned.iter().map(|a| a.0).collect();
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &l) in new_labels.iter().enumerate() {
            counts[l] += 1;
            for (s, &v) in sums[l * dim..(l + 1) * dim]
                .iter_mut()
                .zip(&x[i * dim..(i + 1) * dim])
            {
                *s += f64::from(v);
            }
        }
        // Empty clusters take the points farthest from their centre (largest distance first).
        let empty: Vec<usize> = (0..k).filter(|&j| counts[j] == 0).collect();
        let mut new_centers = vec![0.0f64; k * dim];
        if !empty.is_empty() {
            let mut far: Vec<usize> = (0..n).collect();
            far.sort_by(|&a, &b| assigned[b].1.total_cmp(&assigned[a].1).then(a.cmp(&b)));
            for (&j, &i) in empty.iter().zip(&far) {
                let old = new_labels[i];
                for d in 0..dim {
                    let v = f64::from(x[i * dim + d]);
                    sums[old * dim + d] -= v;
                    sums[j * dim + d] = v;
                }
                counts[old] -= 1;
                counts[j] = 1;
            }
        }
        for j in 0..k {
            for d in 0..dim {
                new_centers[j * dim + d] = if counts[j] > 0 {
                    sums[j * dim + d] / counts[j] as f64
                } else {
                    centers[j * dim + d]
                };
            }
        }
        let shift: f64 = centers
            .iter()
            .zip(&new_centers)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        centers = new_centers;
        let unchanged = labels.as_ref() == Some(&new_labels);
        labels = Some(new_labels);
        if unchanged {
            converged_strict = true;
            break;
        }
        if shift <= tol {
            break;
        }
    }
    // As scikit-learn: unless the labels stopped changing, the final labels are those of the final
    // centres.
    let assigned = assign(x, dim, &centers);
    let labels: Vec<usize> = if converged_strict {
        labels.expect("at least one iteration")
    } else {
        assigned.iter().map(|a| a.0).collect()
    };
    let inertia = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| sq_dist(&x[i * dim..(i + 1) * dim], &centers[l * dim..(l + 1) * dim]))
        .sum();
    (labels, inertia, iterations, centers)
}

/// K-means of the `n = x.len() / dim` rows of `x`: the best of `restarts` runs (see the module doc).
pub fn kmeans(x: &[f32], dim: usize, opts: &KmeansOptions) -> Result<KmeansFit, KmeansError> {
    let k = opts.k;
    if k == 0 {
        return Err(KmeansError::NoClusters);
    }
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(KmeansError::Shape {
            len: x.len(),
            n: x.len() / dim.max(1),
            dim,
        });
    }
    let n = x.len() / dim;
    if n < k {
        return Err(KmeansError::TooFewSamples { n, k });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(KmeansError::NotFinite { row: i / dim });
    }
    // scikit-learn's absolute tolerance: tol × the mean of the per-dimension variances.
    let mean_var = (0..dim)
        .map(|d| {
            let mean = (0..n).map(|i| f64::from(x[i * dim + d])).sum::<f64>() / n as f64;
            (0..n)
                .map(|i| {
                    let v = f64::from(x[i * dim + d]) - mean;
                    v * v
                })
                .sum::<f64>()
                / n as f64
        })
        .sum::<f64>()
        / dim as f64;
    let tol = opts.tol * mean_var;
    let mut best: Option<KmeansFit> = None;
    for restart in 0..opts.restarts.max(1) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_stream(restart as u64);
        let init = kmeans_plusplus(x, n, dim, k, &mut rng);
        let (labels, inertia, iterations, centers) = lloyd(x, n, dim, init, opts.max_iter, tol);
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(KmeansFit {
                centers,
                k,
                dim,
                inertia,
                iterations,
                restart,
                labels,
            });
        }
    }
    Ok(best.expect("at least one restart"))
}

/// The `metrics` output.
#[derive(Debug, Serialize)]
struct KmeansMetrics {
    method: &'static str,
    fit_split: &'static str,
    eval_split: &'static str,
    k: usize,
    restarts: usize,
    train_inertia: f64,
    iterations: usize,
    kept_restart: usize,
    num_samples: usize,
    num_classes: usize,
    acc: f64,
    nmi: f64,
    ari: f64,
    cluster_sizes: Vec<u64>,
    hungarian_match: Vec<Option<usize>>,
}

/// The stage entry point (`scan-kmeans`).
pub fn run_stage(args: &StageArgs) -> anyhow::Result<()> {
    let p: KmeansParams = args.load_params()?;
    crate::nn::init_threads();
    let train_path = args.input("train")?;
    let test_path = args.input("test")?;
    let train = read_embeddings(&train_path)?;
    let test = read_embeddings(&test_path)?;
    anyhow::ensure!(
        train.dim == test.dim,
        "train embeddings have dimension {}, test embeddings {}",
        train.dim,
        test.dim
    );
    let labelled: Vec<usize> = (0..test.len()).filter(|&i| test.labels[i] >= 0).collect();
    anyhow::ensure!(
        !labelled.is_empty(),
        "{}: the test embeddings have no labels to evaluate against",
        test_path.display()
    );
    let num_classes = train
        .labels
        .iter()
        .chain(&test.labels)
        .copied()
        .max()
        .map_or(0, |m| (m + 1).max(0) as usize);
    let k = if p.num_clusters > 0 {
        p.num_clusters
    } else {
        anyhow::ensure!(
            num_classes >= 2,
            "the embeddings carry no class labels; set `num_clusters`"
        );
        num_classes
    };
    let opts = KmeansOptions {
        k,
        restarts: p.restarts,
        max_iter: p.max_iter,
        tol: p.tol,
        seed: p.seed,
    };
    let fit = kmeans(&train.data, train.dim, &opts)
        .with_context(|| format!("K-means of {}", train_path.display()))?;
    let assigned = assign(&test.data, test.dim, &fit.centers);
    // One-hot "probabilities" of the labelled test samples for the shared metrics.
    let mut probs = vec![0.0f32; labelled.len() * k];
    for (r, &i) in labelled.iter().enumerate() {
        probs[r * k + assigned[i].0] = 1.0;
    }
    let truth: Vec<usize> = labelled.iter().map(|&i| test.labels[i] as usize).collect();
    let m = cluster_metrics(&probs, k, &truth, num_classes.max(1))
        .map_err(|e: MetricsError| anyhow::anyhow!(e))?;
    eprintln!(
        "kmeans: k {k}, {} restarts, train inertia {:.4} ({} iterations, restart {}); test ACC {:.4} NMI {:.4} ARI {:.4}",
        opts.restarts, fit.inertia, fit.iterations, fit.restart, m.acc, m.nmi, m.ari
    );
    let out = KmeansMetrics {
        method: "kmeans",
        fit_split: "train",
        eval_split: "test",
        k,
        restarts: opts.restarts,
        train_inertia: fit.inertia,
        iterations: fit.iterations,
        kept_restart: fit.restart,
        num_samples: m.num_samples,
        num_classes: m.num_classes,
        acc: m.acc,
        nmi: m.nmi,
        ari: m.ari,
        cluster_sizes: m.cluster_sizes,
        hungarian_match: m.hungarian_match,
    };
    let path = args.output("metrics");
    let text = serde_json::to_string_pretty(&out)? + "\n";
    crate::util::atomic_write(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (Vec<f32>, usize) {
        // Three well-separated 2-d blobs of 4 points each.
        let mut x = Vec::new();
        for (cx, cy) in [(0.0f32, 0.0f32), (10.0, 0.0), (0.0, 10.0)] {
            for (dx, dy) in [(0.1, 0.0), (-0.1, 0.0), (0.0, 0.1), (0.0, -0.1)] {
                x.extend([cx + dx, cy + dy]);
            }
        }
        (x, 2)
    }

    #[test]
    fn separated_blobs_are_found() {
        let (x, dim) = blobs();
        let opts = KmeansOptions {
            k: 3,
            restarts: 3,
            max_iter: 100,
            tol: 1e-4,
            seed: 0,
        };
        let fit = kmeans(&x, dim, &opts).unwrap();
        // Inertia: 12 points at distance 0.1 from their blob centre. The points are f32 (10.1 and 0.1
        // are not exact in binary): measured 0.12000031, so 3.1e-7 from the closed form.
        assert!((fit.inertia - 12.0 * 0.01).abs() < 1e-6, "{}", fit.inertia);
        for b in 0..3 {
            let l = fit.labels[b * 4];
            assert!(fit.labels[b * 4..b * 4 + 4].iter().all(|&x| x == l));
        }
        assert_eq!(kmeans(&x, dim, &opts).unwrap(), fit, "deterministic");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let opts = KmeansOptions {
            k: 3,
            restarts: 1,
            max_iter: 10,
            tol: 1e-4,
            seed: 0,
        };
        assert_eq!(
            kmeans(&[0.0; 4], 2, &opts),
            Err(KmeansError::TooFewSamples { n: 2, k: 3 })
        );
        assert_eq!(
            kmeans(&[0.0, f32::NAN, 0.0, 0.0, 1.0, 1.0], 2, &opts),
            Err(KmeansError::NotFinite { row: 0 })
        );
        assert!(matches!(
            kmeans(&[0.0; 5], 2, &opts),
            Err(KmeansError::Shape { .. })
        ));
    }
}
