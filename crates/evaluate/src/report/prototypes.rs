//! Per-cluster example images (METHOD.md §8, "Prototypes"): each sample belongs to its argmax
//! cluster with confidence = its largest probability; per cluster the most confident samples, and
//! the prototype = among the cluster's 10 most confident samples the one nearest (Euclidean) to their
//! mean backbone feature (as the reference implementation's `get_prototypes`).

use scan::metrics::argmax;

/// How many of the most confident samples define a prototype.
pub const PROTOTYPE_TOPK: usize = 10;

/// Examples of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterExamples {
    pub cluster: usize,
    /// Samples predicted in this cluster.
    pub size: usize,
    /// `None` for an empty cluster.
    pub prototype: Option<usize>,
    /// The `top` most confident samples, most confident first (ties: lower index first).
    pub top: Vec<usize>,
}

/// Examples of every cluster from `probs` (`N × num_clusters`) and `features` (`N × feat_dim`;
/// with `feat_dim == 0` the prototype is the most confident sample).
pub fn cluster_examples(
    probs: &[f32],
    num_clusters: usize,
    features: &[f32],
    feat_dim: usize,
    top: usize,
) -> Vec<ClusterExamples> {
    let n = probs.len().checked_div(num_clusters).unwrap_or(0);
    let mut members: Vec<Vec<(f32, usize)>> = vec![Vec::new(); num_clusters];
    for i in 0..n {
        let row = &probs[i * num_clusters..(i + 1) * num_clusters];
        let k = argmax(row);
        members[k].push((row[k], i));
    }
    members
        .into_iter()
        .enumerate()
        .map(|(cluster, mut m)| {
            m.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let ranked: Vec<usize> = m.iter().map(|&(_, i)| i).collect();
            let best = &ranked[..ranked.len().min(PROTOTYPE_TOPK)];
            ClusterExamples {
                cluster,
                size: ranked.len(),
                prototype: nearest_to_mean(best, features, feat_dim),
                top: ranked.iter().take(top).copied().collect(),
            }
        })
        .collect()
}

/// The sample of `ids` nearest to the mean of their features (first on ties).
fn nearest_to_mean(ids: &[usize], features: &[f32], d: usize) -> Option<usize> {
    let first = *ids.first()?;
    if d == 0 || features.len() < (ids.iter().max()? + 1) * d {
        return Some(first);
    }
    let row = |i: usize| &features[i * d..(i + 1) * d];
    let mut mean = vec![0f64; d];
    for &i in ids {
        for (m, &x) in mean.iter_mut().zip(row(i)) {
            *m += x as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= ids.len() as f64);
    let dist = |i: usize| -> f64 {
        row(i)
            .iter()
            .zip(&mean)
            .map(|(&x, m)| (x as f64 - m).powi(2))
            .sum()
    };
    ids.iter()
        .copied()
        .fold(None::<(usize, f64)>, |best, i| {
            let di = dist(i);
            match best {
                Some((_, bd)) if bd <= di => best,
                _ => Some((i, di)),
            }
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prototype_is_nearest_to_mean_of_most_confident() {
        // Cluster 0 has 3 samples; the mean feature of all three is 1.3, sample 2 (0.9) is nearest.
        let probs = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.4, 0.6];
        let feats = [0.0, 3.0, 0.9, 5.0];
        let ex = cluster_examples(&probs, 2, &feats, 1, 2);
        assert_eq!(ex[0].size, 3);
        assert_eq!(ex[0].top, vec![0, 1]);
        assert_eq!(ex[0].prototype, Some(2));
        assert_eq!(ex[1].prototype, Some(3));
        // Empty cluster.
        let ex = cluster_examples(&[1.0, 0.0, 0.0], 3, &[], 0, 5);
        assert_eq!(ex[1].prototype, None);
        assert!(ex[2].top.is_empty());
        assert_eq!(ex[0].prototype, Some(0));
    }

    #[test]
    fn only_the_ten_most_confident_define_the_mean() {
        // 11 samples in cluster 0; the least confident one has a huge feature that would move the
        // mean if it were included.
        let mut probs = Vec::new();
        let mut feats = Vec::new();
        for i in 0..11 {
            probs.extend([1.0 - i as f32 * 0.01, 0.0]);
            feats.push(if i == 10 { 1000.0 } else { i as f32 });
        }
        let ex = cluster_examples(&probs, 2, &feats, 1, 3);
        // Mean of 0..9 is 4.5: samples 4 and 5 tie, the more confident (4) wins.
        assert_eq!(ex[0].prototype, Some(4));
    }
}
