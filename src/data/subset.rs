//! Subsets for small runs: the first N images, or a seeded random N, stratified by label.
//!
//! Random rule (exact, so that it can be reproduced): group the images by label value (−1, i.e.
//! unknown, is a group of its own; an unlabeled split is a single group); group c with m_c of the M
//! images gets ⌊N·m_c/M⌋ places, and the N − Σ⌊·⌋ remaining places go one each to the groups with the
//! largest remainders N·m_c mod M, ties to the smaller label (largest-remainder apportionment). One
//! ChaCha8 generator seeded with `seed` then draws, group by group in ascending label order, each
//! group's places by a partial Fisher–Yates shuffle of its indices (ascending) with unbiased
//! rejection sampling on `next_u64`. The kept indices are returned in their original order.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dataset;

pub use scan_core::params::{SubsetMode, SubsetParams};

/// Uniform integer in `0..bound` (`bound > 0`), without modulo bias.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return x % bound;
        }
    }
}

/// Places per group by largest-remainder apportionment (see the module doc).
pub fn apportion(counts: &[usize], n: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    let mut quota: Vec<usize> = counts.iter().map(|&m| n * m / total).collect();
    let left = n - quota.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&c| (std::cmp::Reverse(n * counts[c] % total), c));
    for &c in order.iter().take(left) {
        quota[c] += 1;
    }
    quota
}

/// Indices (ascending) of the `n` images to keep out of `labels.len()` (`n` ≤ the length).
pub fn select(labels: &[i64], n: usize, mode: SubsetMode, seed: u64) -> Vec<usize> {
    if mode == SubsetMode::First {
        return (0..n.min(labels.len())).collect();
    }
    let mut values: Vec<i64> = labels.to_vec();
    values.sort_unstable();
    values.dedup();
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); values.len()];
    for (i, l) in labels.iter().enumerate() {
        // `values` holds every label, so the search always succeeds.
        if let Ok(g) = values.binary_search(l) {
            groups[g].push(i);
        }
    }
    let counts: Vec<usize> = groups.iter().map(Vec::len).collect();
    let quota = apportion(&counts, n);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut kept = Vec::with_capacity(n);
    for (mut g, q) in groups.into_iter().zip(quota) {
        for i in 0..q {
            let j = i + below(&mut rng, (g.len() - i) as u64) as usize;
            g.swap(i, j);
        }
        kept.extend_from_slice(&g[..q]);
    }
    kept.sort_unstable();
    kept
}

/// The images at `indices` (in that order).
pub fn take(ds: &Dataset, indices: &[usize]) -> Dataset {
    let sz = ds.image_bytes();
    let mut images = Vec::with_capacity(indices.len() * sz);
    for &i in indices {
        images.extend_from_slice(&ds.images[i * sz..(i + 1) * sz]);
    }
    Dataset {
        images,
        labels: indices.iter().map(|&i| ds.labels[i]).collect(),
        height: ds.height,
        width: ds.width,
        channels: ds.channels,
        meta: ds.meta.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportionment_closed_forms() {
        assert_eq!(apportion(&[50, 30, 20], 10), vec![5, 3, 2]);
        // quotas 2.0, 1.2, 0.8 → 2, 1, 0 plus the one left to the largest remainder (0.8).
        assert_eq!(apportion(&[5, 3, 2], 4), vec![2, 1, 1]);
        // equal remainders: the smaller label wins.
        assert_eq!(apportion(&[1, 1, 1], 2), vec![1, 1, 0]);
        assert_eq!(apportion(&[7, 3], 10), vec![7, 3]);
    }

    #[test]
    fn random_is_stratified_seeded_and_ordered() {
        let labels: Vec<i64> = (0..1000)
            .map(|i| [0, 0, 0, 1, 1, 2, 2, 2, 2, 2][i % 10])
            .collect();
        let a = select(&labels, 100, SubsetMode::Random, 7);
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let count = |l: i64| a.iter().filter(|&&i| labels[i] == l).count();
        assert_eq!((count(0), count(1), count(2)), (30, 20, 50));
        assert_eq!(a, select(&labels, 100, SubsetMode::Random, 7));
        assert_ne!(a, select(&labels, 100, SubsetMode::Random, 8));
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        assert_eq!(
            select(&labels, 5, SubsetMode::First, 7),
            vec![0, 1, 2, 3, 4]
        );
        // Keeping everything keeps everything.
        assert_eq!(
            select(&labels, 1000, SubsetMode::Random, 1),
            (0..1000).collect::<Vec<_>>()
        );
    }

    #[test]
    fn unlabeled_draws_are_uniform_enough() {
        // Each of 10 indices drawn 3 of 10 times over many seeds: frequency ≈ 0.3.
        let labels = vec![-1i64; 10];
        let mut hits = [0usize; 10];
        for seed in 0..2000 {
            for i in select(&labels, 3, SubsetMode::Random, seed) {
                hits[i] += 1;
            }
        }
        for h in hits {
            assert!((540..=660).contains(&h), "{hits:?}");
        }
    }
}
