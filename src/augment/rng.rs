//! The seeded random source of the augmentations (METHOD.md §3 and §7): every per-sample parameter
//! is drawn on the CPU from a ChaCha8 stream, so the same seed and the same input give the same
//! output on any device.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seeded RNG for augmentation parameters (same seed + same input → identical output).
#[derive(Debug, Clone)]
pub struct AugRng {
    rng: ChaCha8Rng,
}

impl AugRng {
    pub fn new(seed: u64) -> Self {
        AugRng {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Uniform in [0, 1) (Python's `random.random()`).
    pub fn uniform(&mut self) -> f64 {
        self.rng.gen::<f64>()
    }

    /// Uniform in [lo, hi) (torch's `uniform_(lo, hi)`); `lo` when the interval is empty.
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// `true` with probability `p` (`rand < p`).
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Uniform integer in `lo..=hi` (Python's `random.randint`); `lo` when `hi < lo`.
    pub fn int_inclusive(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.gen_range(lo..=hi)
        }
    }

    /// Uniform index in `0..n` (`n ≥ 1`).
    pub fn index(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    /// A uniformly random permutation of `0..4` (torch's `randperm(4)`).
    pub fn perm4(&mut self) -> [usize; 4] {
        let mut p = [0, 1, 2, 3];
        p.shuffle(&mut self.rng);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ranges() {
        let (mut a, mut b, mut c) = (AugRng::new(7), AugRng::new(7), AugRng::new(8));
        let va: Vec<f64> = (0..16).map(|_| a.uniform()).collect();
        let vb: Vec<f64> = (0..16).map(|_| b.uniform()).collect();
        let vc: Vec<f64> = (0..16).map(|_| c.uniform()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        for _ in 0..1000 {
            let k = a.int_inclusive(1, 3);
            assert!((1..=3).contains(&k));
            let u = a.uniform_range(-2.0, 5.0);
            assert!((-2.0..5.0).contains(&u));
            let mut p = a.perm4();
            p.sort();
            assert_eq!(p, [0, 1, 2, 3]);
        }
    }
}
