//! Exact k-nearest-neighbour search by inner product (METHOD.md §4: top-(k+1) including the sample
//! itself at column 0).
//!
//! A self-join of `n` vectors: row `i` of the result is `i` itself (similarity `x_i·x_i`) followed
//! by the `k` other rows of largest `x_i·x_j`, best first, ties broken by lower index. Similarities are
//! `fma`-accumulated in dimension order in f32 on every code path, so the output is bit-identical for
//! any thread count, block size or CPU.
//!
//! CPU: the similarity matrix is symmetric, so only block pairs `I <= J` are computed; each tile feeds
//! the running top-k of both its rows and its columns ([`kernel`]). Pairs are scheduled as a
//! round-robin tournament: the pairs of one round touch disjoint blocks and run in parallel without
//! contention. Memory is `O(n·(k + dim))` (one packed copy of the data): never an `n × n` matrix.
//! CUDA ([`cuda`]): blocked tch matmul + top-k proposes candidates that are re-scored and selected
//! exactly as on the CPU.

pub mod cuda;
mod heap;
mod kernel;
mod simd;

use std::sync::Mutex;

use rayon::prelude::*;

use heap::BlockHeaps;
pub use kernel::Isa;
use kernel::{run_pair, Pair};

/// Errors of the k-NN search; each carries the offending value.
#[derive(Debug, thiserror::Error)]
pub enum KnnError {
    #[error("{len} values do not form {n} rows of dimension {dim}")]
    Shape { len: usize, n: usize, dim: usize },
    #[error("k = {k} neighbours need at least {} rows, got {n}", k + 1)]
    TooFew { n: usize, k: usize },
    #[error("{n} rows exceed the uint32 index range")]
    TooMany { n: usize },
    #[error("row {row} has a non-finite value or squared norm")]
    NonFinite { row: usize },
    #[error("kernel variant {0:?} is not supported by this CPU")]
    Unsupported(Isa),
    #[error("thread pool: {0}")]
    ThreadPool(String),
    #[error("CUDA search: {0}")]
    Cuda(String),
}

/// Result of a self-join: `n` rows of `cols = k + 1` (self first).
#[derive(Debug, Clone, PartialEq)]
pub struct KnnResult {
    pub n: usize,
    pub cols: usize,
    pub indices: Vec<u32>,
    pub similarities: Vec<f32>,
}

/// Tuning of the CPU search (the result does not depend on it).
#[derive(Debug, Clone, Copy)]
pub struct CpuOptions {
    /// Worker threads.
    pub threads: usize,
    /// Rows per block.
    pub block: usize,
    /// Kernel variant; `None` = best supported.
    pub isa: Option<Isa>,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            threads: crate::util::num_threads(),
            block: 1024,
            isa: None,
        }
    }
}

/// `x·x` accumulated exactly as the kernels do (fma, dimension order, from zero).
pub fn self_dot(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |acc, &v| v.mul_add(v, acc))
}

/// `x·y` accumulated exactly as the kernels do.
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    x.iter()
        .zip(y)
        .fold(0.0f32, |acc, (&a, &b)| a.mul_add(b, acc))
}

/// Check shapes and values; returns the self-similarities.
pub(crate) fn validate(data: &[f32], n: usize, dim: usize, k: usize) -> Result<Vec<f32>, KnnError> {
    if dim == 0 || data.len() != n.saturating_mul(dim) {
        return Err(KnnError::Shape {
            len: data.len(),
            n,
            dim,
        });
    }
    if n <= k {
        return Err(KnnError::TooFew { n, k });
    }
    if u32::try_from(n).is_err() {
        return Err(KnnError::TooMany { n });
    }
    let selfs: Vec<f32> = data.par_chunks(dim).map(self_dot).collect();
    for (row, (x, s)) in data.chunks(dim).zip(&selfs).enumerate() {
        if !s.is_finite() || x.iter().any(|v| !v.is_finite()) {
            return Err(KnnError::NonFinite { row });
        }
    }
    Ok(selfs)
}

/// Exact top-(k+1) self-join of `n` rows of `dim` values (row-major) on the CPU.
pub fn self_knn_cpu(
    data: &[f32],
    n: usize,
    dim: usize,
    k: usize,
    opts: CpuOptions,
) -> Result<KnnResult, KnnError> {
    let isa = opts.isa.unwrap_or_else(Isa::detect);
    if !isa.supported() {
        return Err(KnnError::Unsupported(isa));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()
        .map_err(|e| KnnError::ThreadPool(e.to_string()))?;
    pool.install(|| {
        let selfs = validate(data, n, dim, k)?;
        let nr = isa.panel_width();
        // Blocks are whole panels.
        let bs = opts.block.max(1).div_ceil(nr) * nr;
        let nb = n.div_ceil(bs);
        let span = |b: usize| (b * bs, bs.min(n - b * bs));
        let heaps: Vec<Mutex<BlockHeaps>> = (0..nb)
            .map(|b| {
                let (start, len) = span(b);
                Mutex::new(BlockHeaps::new(start as u32, len, k))
            })
            .collect();
        let packed = kernel::pack_panels(data, n, dim, nr);
        let lock = |b: usize| heaps[b].lock().unwrap_or_else(|e| e.into_inner());
        let run = |i: usize, j: usize| {
            let (a0, a_len) = span(i);
            let (b0, b_len) = span(j);
            let pair = Pair {
                packed: &packed,
                dim,
                a0,
                a_len,
                b0,
                b_len,
            };
            let mut rows = lock(i);
            if i == j {
                run_pair(isa, &pair, &mut rows, None);
            } else {
                let mut cols = lock(j);
                run_pair(isa, &pair, &mut rows, Some(&mut cols));
            }
        };
        (0..nb).into_par_iter().for_each(|b| run(b, b));
        for round in tournament(nb) {
            round.into_par_iter().for_each(|(i, j)| run(i, j));
        }
        let cols = k + 1;
        let mut indices = vec![0u32; n * cols];
        let mut similarities = vec![0f32; n * cols];
        indices
            .par_chunks_mut(bs * cols)
            .zip(similarities.par_chunks_mut(bs * cols))
            .enumerate()
            .for_each(|(b, (idx, sim))| {
                let h = lock(b);
                let (start, len) = span(b);
                for r in 0..len {
                    debug_assert_eq!(h.count(r), k);
                    idx[r * cols] = (start + r) as u32;
                    sim[r * cols] = selfs[start + r];
                    for (c, (s, id)) in h.sorted_row(r).into_iter().enumerate() {
                        idx[r * cols + 1 + c] = id;
                        sim[r * cols + 1 + c] = s;
                    }
                }
            });
        Ok(KnnResult {
            n,
            cols,
            indices,
            similarities,
        })
    })
}

/// All pairs `i < j` of `0..nb`, grouped in rounds of disjoint pairs (circle method).
fn tournament(nb: usize) -> Vec<Vec<(usize, usize)>> {
    let m = nb + nb % 2; // a dummy block when odd
    let mut rounds = Vec::with_capacity(m.saturating_sub(1));
    for r in 0..m.saturating_sub(1) {
        let mut pairs = vec![(r, m - 1)];
        for i in 1..m / 2 {
            pairs.push(((r + i) % (m - 1), (r + m - 1 - i) % (m - 1)));
        }
        let pairs: Vec<(usize, usize)> = pairs
            .into_iter()
            .filter(|&(a, b)| a < nb && b < nb)
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        rounds.push(pairs);
    }
    rounds
}

#[cfg(test)]
mod tests;
