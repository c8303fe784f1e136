//! Label-agreement scores on the raw cluster ids (METHOD.md §8): the contingency table, normalised
//! mutual information with arithmetic normalisation and the adjusted Rand index, both with
//! scikit-learn's conventions (`normalized_mutual_info_score`, `adjusted_rand_score`), including
//! their degenerate cases. Only labels that occur count, so empty clusters change nothing.

/// Counts of (cluster, class) pairs, `clusters × classes` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Contingency {
    pub clusters: usize,
    pub classes: usize,
    pub counts: Vec<u64>,
}

impl Contingency {
    /// Count `pred[i]` (cluster) against `truth[i]` (class). Ids must be below the given sizes.
    pub fn new(pred: &[usize], truth: &[usize], clusters: usize, classes: usize) -> Self {
        let mut counts = vec![0u64; clusters * classes];
        for (&p, &t) in pred.iter().zip(truth) {
            counts[p * classes + t] += 1;
        }
        Contingency {
            clusters,
            classes,
            counts,
        }
    }

    pub fn get(&self, cluster: usize, class: usize) -> u64 {
        self.counts[cluster * self.classes + class]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples per cluster.
    pub fn cluster_sizes(&self) -> Vec<u64> {
        (0..self.clusters)
            .map(|k| (0..self.classes).map(|c| self.get(k, c)).sum())
            .collect()
    }

    /// Samples per class.
    pub fn class_sizes(&self) -> Vec<u64> {
        (0..self.classes)
            .map(|c| (0..self.clusters).map(|k| self.get(k, c)).sum())
            .collect()
    }
}

/// Entropy (nats) of a labelling given its nonzero label counts; 0 for a single label.
fn entropy(sizes: &[u64]) -> f64 {
    let nz: Vec<f64> = sizes
        .iter()
        .filter(|&&s| s > 0)
        .map(|&s| s as f64)
        .collect();
    if nz.len() <= 1 {
        return 0.0;
    }
    let sum: f64 = nz.iter().sum();
    -nz.iter()
        .map(|&p| (p / sum) * (p.ln() - sum.ln()))
        .sum::<f64>()
}

/// Mutual information (nats), as `sklearn.metrics.mutual_info_score` computes it.
fn mutual_info(t: &Contingency) -> f64 {
    let a = t.cluster_sizes();
    let b = t.class_sizes();
    let used_a = a.iter().filter(|&&s| s > 0).count();
    let used_b = b.iter().filter(|&&s| s > 0).count();
    if used_a <= 1 || used_b <= 1 {
        return 0.0;
    }
    let n = t.total() as f64;
    let log_n = n.ln();
    let mut mi = 0.0;
    for (k, &ak) in a.iter().enumerate() {
        for (c, &bc) in b.iter().enumerate() {
            let nij = t.get(k, c);
            if nij == 0 {
                continue;
            }
            let p = nij as f64 / n;
            let outer = (ak as f64) * (bc as f64);
            let term = p * ((nij as f64).ln() - log_n) + p * (-outer.ln() + log_n + log_n);
            if term.abs() >= f64::EPSILON {
                mi += term;
            }
        }
    }
    mi.max(0.0)
}

/// Normalised mutual information, arithmetic mean normalisation (scikit-learn's default):
/// 1 when both labellings have a single label (or no samples), 0 when the MI is 0.
pub fn nmi(t: &Contingency) -> f64 {
    let a = t.cluster_sizes();
    let b = t.class_sizes();
    let used_a = a.iter().filter(|&&s| s > 0).count();
    let used_b = b.iter().filter(|&&s| s > 0).count();
    if used_a == used_b && used_a <= 1 {
        return 1.0;
    }
    let mi = mutual_info(t);
    if mi == 0.0 {
        return 0.0;
    }
    let norm = (entropy(&a) + entropy(&b)) / 2.0;
    mi / norm
}

/// Adjusted Rand index via the pair confusion matrix (scikit-learn's formula): 1 when no pair
/// disagrees (including no samples), else `2(tp·tn − fn·fp) / ((tp+fn)(fn+tn) + (tp+fp)(fp+tn))`.
pub fn ari(t: &Contingency) -> f64 {
    let n = t.total() as i128;
    let sq = |v: &[u64]| v.iter().map(|&x| (x as i128) * (x as i128)).sum::<i128>();
    let sum_squares = sq(&t.counts);
    let sum_clusters = sq(&t.cluster_sizes());
    let sum_classes = sq(&t.class_sizes());
    // Pairs together in the prediction only (fp) / in the truth only (fn).
    let fp = sum_clusters - sum_squares;
    let fn_ = sum_classes - sum_squares;
    let tp = sum_squares - n;
    let tn = n * n - fp - fn_ - sum_squares;
    if fp == 0 && fn_ == 0 {
        return 1.0;
    }
    let num = 2 * (tp * tn - fn_ * fp);
    let den = (tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn);
    num as f64 / den as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pred: &[usize], truth: &[usize]) -> Contingency {
        let k = pred.iter().max().map_or(0, |m| m + 1);
        let c = truth.iter().max().map_or(0, |m| m + 1);
        Contingency::new(pred, truth, k, c)
    }

    #[test]
    fn perfect_and_permuted_labelings_score_one() {
        let t = table(&[2, 2, 0, 0, 1, 1], &[0, 0, 1, 1, 2, 2]);
        assert!((nmi(&t) - 1.0).abs() < 1e-12);
        assert!((ari(&t) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_cases_follow_sklearn() {
        // One cluster, one class: both 1.
        let t = table(&[0, 0, 0], &[0, 0, 0]);
        assert_eq!((nmi(&t), ari(&t)), (1.0, 1.0));
        // One cluster, several classes: NMI 0, ARI 0.
        let t = table(&[0, 0, 0, 0], &[0, 1, 0, 1]);
        assert_eq!((nmi(&t), ari(&t)), (0.0, 0.0));
        // No samples.
        let t = Contingency::new(&[], &[], 3, 2);
        assert_eq!((nmi(&t), ari(&t)), (1.0, 1.0));
        // Empty clusters do not change anything.
        let a = table(&[0, 0, 1, 1, 1], &[0, 1, 1, 1, 0]);
        let b = Contingency::new(&[0, 0, 3, 3, 3], &[0, 1, 1, 1, 0], 5, 2);
        assert_eq!((nmi(&a), ari(&a)), (nmi(&b), ari(&b)));
    }

    #[test]
    fn ari_closed_form_small_case() {
        // Hubert & Arabie: ARI = (Σ C(n_ij,2) − E) / (½(Σa + Σb) − E), E = Σa·Σb / C(n,2).
        let t = table(&[0, 0, 1, 1, 1, 2], &[0, 0, 0, 1, 1, 1]);
        let c2 = |x: u64| (x * x.saturating_sub(1) / 2) as f64;
        let sij: f64 = t.counts.iter().map(|&x| c2(x)).sum();
        let sa: f64 = t.cluster_sizes().iter().map(|&x| c2(x)).sum();
        let sb: f64 = t.class_sizes().iter().map(|&x| c2(x)).sum();
        let e = sa * sb / c2(6);
        let expected = (sij - e) / (0.5 * (sa + sb) - e);
        assert!((ari(&t) - expected).abs() < 1e-12);
    }
}
