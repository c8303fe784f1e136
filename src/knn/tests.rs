//! Unit tests of [`crate::knn`] against brute-force references.

use super::*;
use rand::{Rng, SeedableRng};

fn random(n: usize, dim: usize, seed: u64, normalize: bool) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    if normalize {
        for row in v.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
    v
}

/// Brute force by sorting all candidates under the same total order (similarity desc, index asc),
/// with similarities from [`dot`].
fn sort_reference(data: &[f32], n: usize, dim: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let (mut idx, mut sim) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut c: Vec<(f32, u32)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| (dot(row(i), row(j)), j as u32))
            .collect();
        c.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        idx.push(i as u32);
        sim.push(self_dot(row(i)));
        for &(s, j) in &c[..k] {
            idx.push(j);
            sim.push(s);
        }
    }
    (idx, sim)
}

/// Checks against f64 dot products: similarities within `tol`, and the chosen set is a valid top-k.
fn check_f64(data: &[f32], n: usize, dim: usize, k: usize, r: &KnnResult, tol: f64) {
    let dot64 = |i: usize, j: usize| -> f64 {
        (0..dim)
            .map(|d| data[i * dim + d] as f64 * data[j * dim + d] as f64)
            .sum()
    };
    for i in 0..n {
        let ids = &r.indices[i * (k + 1)..(i + 1) * (k + 1)];
        let sims = &r.similarities[i * (k + 1)..(i + 1) * (k + 1)];
        assert_eq!(ids[0] as usize, i);
        for (&j, &s) in ids.iter().zip(sims) {
            assert!(
                (s as f64 - dot64(i, j as usize)).abs() <= tol,
                "row {i} col {j}"
            );
        }
        assert!(
            sims[1..].windows(2).all(|w| w[0] >= w[1]),
            "row {i} not sorted"
        );
        let worst = sims[1..]
            .iter()
            .fold(f64::INFINITY, |m, &s| m.min(s as f64));
        for j in (0..n).filter(|j| *j != i && !ids.contains(&(*j as u32))) {
            assert!(
                dot64(i, j) <= worst + tol,
                "row {i}: {j} should be a neighbour"
            );
        }
    }
}

fn opts(threads: usize, block: usize, isa: Option<Isa>) -> CpuOptions {
    CpuOptions {
        threads,
        block,
        isa,
    }
}

#[test]
fn tournament_pairs_each_once_disjoint() {
    for nb in 0..12 {
        let rounds = tournament(nb);
        let mut seen = std::collections::BTreeSet::new();
        for round in &rounds {
            let mut used = std::collections::BTreeSet::new();
            for &(a, b) in round {
                assert!(a < b && b < nb);
                assert!(
                    used.insert(a) && used.insert(b),
                    "nb {nb}: block reused in a round"
                );
                assert!(seen.insert((a, b)));
            }
        }
        assert_eq!(seen.len(), nb * nb.saturating_sub(1) / 2, "nb {nb}");
    }
}

#[test]
fn matches_brute_force_random() {
    // n not a multiple of the block nor of any panel width; dim not a multiple of a vector.
    let (n, dim, k) = (301, 19, 7);
    let data = random(n, dim, 1, true);
    let (want_idx, want_sim) = sort_reference(&data, n, dim, k);
    let r = self_knn_cpu(&data, n, dim, k, opts(2, 48, None)).unwrap();
    assert_eq!((r.n, r.cols), (n, k + 1));
    check_f64(&data, n, dim, k, &r, 1e-5);
    assert_eq!(r.indices, want_idx);
    assert_eq!(r.similarities, want_sim);
}

#[test]
fn duplicates_tie_break_by_index_and_self_first() {
    let (base, dim, k) = (40, 8, 5);
    let mut data = random(base, dim, 2, false);
    // Rows 40.. duplicate rows 3, 3, 3, 17, 0, 0, ...: exact ties, including with self.
    let dups = [3usize, 3, 3, 17, 0, 0, 39, 3];
    for &d in &dups {
        let row = data[d * dim..(d + 1) * dim].to_vec();
        data.extend_from_slice(&row);
    }
    // An all-zero row ties with nothing but gives zero similarities everywhere.
    data.extend(std::iter::repeat_n(0.0, dim));
    let n = base + dups.len() + 1;
    let (want_idx, want_sim) = sort_reference(&data, n, dim, k);
    for block in [1, 7, 16, 64] {
        let r = self_knn_cpu(&data, n, dim, k, opts(2, block, None)).unwrap();
        assert_eq!(r.indices, want_idx, "block {block}");
        assert_eq!(r.similarities, want_sim, "block {block}");
        check_f64(&data, n, dim, k, &r, 1e-5);
    }
    // Row 3's copies: self first, then the other copies by index.
    let r = self_knn_cpu(&data, n, dim, k, opts(1, 16, None)).unwrap();
    let row40 = &r.indices[40 * (k + 1)..41 * (k + 1)];
    assert_eq!(&row40[..5], &[40, 3, 41, 42, 47]);
}

#[test]
fn identical_across_isas_threads_blocks() {
    let (n, dim, k) = (203, 33, 20);
    let data = random(n, dim, 3, true);
    let reference = self_knn_cpu(&data, n, dim, k, opts(1, 1000, Some(Isa::Portable))).unwrap();
    for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
        if !isa.supported() {
            eprintln!("note: {isa:?} not supported here, not compared");
            continue;
        }
        for (threads, block) in [(1, 8), (2, 17), (3, 64), (2, 203)] {
            let r = self_knn_cpu(&data, n, dim, k, opts(threads, block, Some(isa))).unwrap();
            assert_eq!(r, reference, "{isa:?} threads {threads} block {block}");
        }
    }
}

#[test]
fn detected_isa_is_supported() {
    assert!(Isa::detect().supported());
}

#[test]
fn bad_inputs_are_errors() {
    let data = random(5, 4, 4, false);
    let e = self_knn_cpu(&data, 5, 4, 5, CpuOptions::default()).unwrap_err();
    assert!(matches!(e, KnnError::TooFew { n: 5, k: 5 }), "{e}");
    let e = self_knn_cpu(&data, 6, 4, 2, CpuOptions::default()).unwrap_err();
    assert!(matches!(e, KnnError::Shape { .. }), "{e}");
    let mut bad = data.clone();
    bad[9] = f32::NAN;
    let e = self_knn_cpu(&bad, 5, 4, 2, CpuOptions::default()).unwrap_err();
    assert!(matches!(e, KnnError::NonFinite { row: 2 }), "{e}");
    // k = 0: only self.
    let r = self_knn_cpu(&data, 5, 4, 0, CpuOptions::default()).unwrap();
    assert_eq!(r.indices, vec![0, 1, 2, 3, 4]);
}

#[test]
fn matches_brute_force_default_options() {
    // Several default-size blocks with a partial last one, the benchmark's dimension and k.
    let (n, dim, k) = (2 * 1024 + 333, 128, 20);
    let data = random(n, dim, 5, true);
    let (want_idx, want_sim) = sort_reference(&data, n, dim, k);
    let r = self_knn_cpu(&data, n, dim, k, CpuOptions::default()).unwrap();
    assert_eq!(r.indices, want_idx);
    assert_eq!(r.similarities, want_sim);
}
