//! Bounded per-row top-k selection for [`crate::knn`]: a binary heap whose root is the *worst* kept
//! candidate, plus a running threshold (the root's similarity once the heap is full) so that most
//! candidates are rejected by one comparison in the kernel.
//!
//! The order is total and deterministic: `(s, i)` beats `(t, j)` iff `s > t`, or `s == t` and `i < j`
//! (lower index first on ties). The kept set is therefore independent of insertion order.

/// `(s, i)` is better than `(t, j)`.
#[inline(always)]
pub(crate) fn better(s: f32, i: u32, t: f32, j: u32) -> bool {
    s > t || (s == t && i < j)
}

/// Top-k heaps of a contiguous block of rows.
pub(crate) struct BlockHeaps {
    k: usize,
    /// Global index of the block's first row (used to skip self).
    pub base: u32,
    sims: Vec<f32>,
    ids: Vec<u32>,
    count: Vec<u32>,
    /// Per row: similarity a candidate must reach (`>=`) to possibly enter; `-inf` until full.
    pub thr: Vec<f32>,
}

impl BlockHeaps {
    pub fn new(base: u32, rows: usize, k: usize) -> Self {
        BlockHeaps {
            k,
            base,
            sims: vec![f32::NEG_INFINITY; rows * k],
            ids: vec![u32::MAX; rows * k],
            count: vec![0; rows],
            thr: vec![f32::NEG_INFINITY; rows],
        }
    }

    /// Offer candidate `id` with similarity `s` to local row `r`. Self (`id == base + r`) is ignored.
    #[inline]
    pub fn push(&mut self, r: usize, s: f32, id: u32) {
        if id == self.base + r as u32 || self.k == 0 {
            return;
        }
        let k = self.k;
        let sims = &mut self.sims[r * k..(r + 1) * k];
        let ids = &mut self.ids[r * k..(r + 1) * k];
        let c = self.count[r] as usize;
        if c < k {
            // Sift up: the parent must stay worse than (or equal to) its children.
            let mut pos = c;
            while pos > 0 {
                let parent = (pos - 1) / 2;
                if better(sims[parent], ids[parent], s, id) {
                    sims[pos] = sims[parent];
                    ids[pos] = ids[parent];
                    pos = parent;
                } else {
                    break;
                }
            }
            sims[pos] = s;
            ids[pos] = id;
            self.count[r] = (c + 1) as u32;
            if c + 1 == k {
                self.thr[r] = sims[0];
            }
            return;
        }
        if !better(s, id, sims[0], ids[0]) {
            return;
        }
        // Replace the root, sift down towards the worse child.
        let mut pos = 0;
        loop {
            let l = 2 * pos + 1;
            if l >= k {
                break;
            }
            let r2 = l + 1;
            let worse = if r2 < k && better(sims[l], ids[l], sims[r2], ids[r2]) {
                r2
            } else {
                l
            };
            if better(s, id, sims[worse], ids[worse]) {
                sims[pos] = sims[worse];
                ids[pos] = ids[worse];
                pos = worse;
            } else {
                break;
            }
        }
        sims[pos] = s;
        ids[pos] = id;
        self.thr[r] = sims[0];
    }

    /// Number of candidates kept for row `r`.
    pub fn count(&self, r: usize) -> usize {
        self.count[r] as usize
    }

    /// Row `r`'s kept candidates, best first, as `(similarity, id)`.
    pub fn sorted_row(&self, r: usize) -> Vec<(f32, u32)> {
        let k = self.k;
        let c = self.count[r] as usize;
        let mut v: Vec<(f32, u32)> = (r * k..r * k + c)
            .map(|p| (self.sims[p], self.ids[p]))
            .collect();
        v.sort_by(|a, b| {
            if better(a.0, a.1, b.0, b.1) {
                std::cmp::Ordering::Less
            } else if better(b.0, b.1, a.0, a.1) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_with_index_tie_break() {
        let mut h = BlockHeaps::new(100, 1, 3);
        // Self is ignored even if best.
        h.push(0, 9.0, 100);
        for (s, i) in [(1.0, 7), (2.0, 5), (2.0, 3), (0.5, 1), (2.0, 4), (1.5, 0)] {
            h.push(0, s, i);
        }
        assert_eq!(h.sorted_row(0), vec![(2.0, 3), (2.0, 4), (2.0, 5)]);
        assert_eq!(h.thr[0], 2.0);
    }

    #[test]
    fn order_independent() {
        let items: Vec<(f32, u32)> = (0..50).map(|i| (((i * 37) % 11) as f32, i)).collect();
        let mut a = BlockHeaps::new(1000, 1, 7);
        let mut b = BlockHeaps::new(1000, 1, 7);
        for &(s, i) in &items {
            a.push(0, s, i);
        }
        for &(s, i) in items.iter().rev() {
            b.push(0, s, i);
        }
        let mut want = items.clone();
        want.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap().then(x.1.cmp(&y.1)));
        want.truncate(7);
        assert_eq!(a.sorted_row(0), want);
        assert_eq!(b.sorted_row(0), want);
    }
}
