//! The fused CPU kernel of [`crate::knn`]: a register-blocked inner-product micro-kernel over one
//! pair of row blocks `(I, J)` whose tiles are compared, while still in registers, against the running
//! top-k thresholds of the rows of `I` and (for off-diagonal pairs of the symmetric self-join) of the
//! rows of `J`. Only candidates reaching a threshold leave the registers.
//!
//! Each similarity is `fma`-accumulated over the dimension in order `0..dim` from zero, in every
//! variant (AVX-512, AVX2, portable), so results are bit-identical across CPUs, block sizes and
//! thread counts.

use super::heap::BlockHeaps;
use super::simd::{Portable, Simd};

/// Instruction set used by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// The best variant this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            // The AVX-512 kernel is compiled with `avx512f,fma` enabled, so both must be present.
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Whether this CPU can run the variant.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Columns per packed panel.
    pub(crate) fn panel_width(self) -> usize {
        match self {
            Isa::Avx512 => AVX512_NV * 16,
            Isa::Avx2 => AVX2_NV * 8,
            Isa::Portable => PORTABLE_NV * 8,
        }
    }
}

const AVX512_MR: usize = 8;
const AVX512_NV: usize = 2;
const AVX2_MR: usize = 4;
const AVX2_NV: usize = 2;
const PORTABLE_MR: usize = 4;
const PORTABLE_NV: usize = 1;
/// Largest panel width of any variant.
const MAX_NR: usize = 64;
/// Largest row group of any variant.
const MAX_MR: usize = 8;

/// Pack the `n` rows of `data` into panels of `nr` rows, transposed: `[panel][dim][nr]`,
/// zero-padded. The kernel reads both operands from this layout.
pub(crate) fn pack_panels(data: &[f32], n: usize, dim: usize, nr: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0.0f32; n.div_ceil(nr) * dim * nr];
    out.par_chunks_mut(dim * nr)
        .enumerate()
        .for_each(|(p, panel)| {
            for l in 0..nr.min(n - p * nr) {
                let r = p * nr + l;
                for (kk, &x) in data[r * dim..(r + 1) * dim].iter().enumerate() {
                    panel[kk * nr + l] = x;
                }
            }
        });
    out
}

/// One block pair: rows `a0..a0+a_len` (heaps `rows`, `rows.base == a0`) against rows
/// `b0..b0+b_len` (heaps `cols`, `cols.base == b0`; `None` on the diagonal, where `a0 == b0`), both
/// read from the whole data set packed by [`pack_panels`] with the variant's panel width; `a0` and
/// `b0` are multiples of that width.
pub(crate) struct Pair<'a> {
    pub packed: &'a [f32],
    pub dim: usize,
    pub a0: usize,
    pub a_len: usize,
    pub b0: usize,
    pub b_len: usize,
}

/// Run the kernel variant `isa` (which must be [`Isa::supported`]) on one block pair.
pub(crate) fn run_pair(isa: Isa, p: &Pair, rows: &mut BlockHeaps, cols: Option<&mut BlockHeaps>) {
    assert!(
        isa.supported(),
        "kernel variant {isa:?} not supported by this CPU"
    );
    let nr = isa.panel_width();
    assert!(p.a0.is_multiple_of(nr) && p.b0.is_multiple_of(nr));
    let end = (p.a0 + p.a_len).max(p.b0 + p.b_len);
    assert!(p.packed.len() >= end.div_ceil(nr) * p.dim * nr);
    // SAFETY: the CPU supports the variant (checked above); slice bounds checked above.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => pair_avx512(p, rows, cols),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => pair_avx2(p, rows, cols),
            _ => pair_generic::<Portable, PORTABLE_MR, PORTABLE_NV>(p, rows, cols),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn pair_avx512(p: &Pair, rows: &mut BlockHeaps, cols: Option<&mut BlockHeaps>) {
    pair_generic::<super::simd::Avx512, AVX512_MR, AVX512_NV>(p, rows, cols)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pair_avx2(p: &Pair, rows: &mut BlockHeaps, cols: Option<&mut BlockHeaps>) {
    pair_generic::<super::simd::Avx2, AVX2_MR, AVX2_NV>(p, rows, cols)
}

#[inline(always)]
unsafe fn pair_generic<S: Simd, const MR: usize, const NV: usize>(
    p: &Pair,
    rows: &mut BlockHeaps,
    mut cols: Option<&mut BlockHeaps>,
) {
    let (dim, w) = (p.dim, S::W);
    let nr = NV * w;
    debug_assert!(nr <= MAX_NR && MR <= MAX_MR && nr <= 64);
    debug_assert!(nr.is_multiple_of(MR));
    let mut tile = [[0.0f32; MAX_NR]; MAX_MR];
    let mut cthr = [f32::INFINITY; MAX_NR];
    for pi in 0..p.b_len.div_ceil(nr) {
        let bp = p.packed.as_ptr().add((p.b0 / nr + pi) * dim * nr);
        let c0 = pi * nr;
        let c_valid = nr.min(p.b_len - c0);
        let lane_valid: u64 = if c_valid == 64 {
            u64::MAX
        } else {
            (1u64 << c_valid) - 1
        };
        for g in (0..p.a_len).step_by(MR) {
            let m_valid = MR.min(p.a_len - g);
            let (ga, ga_lane) = ((p.a0 + g) / nr, (p.a0 + g) % nr);
            let ap = p.packed.as_ptr().add(ga * dim * nr + ga_lane);
            let acc = micro::<S, MR, NV>(ap, bp, dim);
            for (m, accm) in acc.iter().enumerate() {
                for (v, &x) in accm.iter().enumerate() {
                    S::store(tile[m].as_mut_ptr().add(v * w), x);
                }
            }
            // Rows of I: one compare per vector against the row's threshold.
            for (m, row) in tile.iter().enumerate().take(m_valid) {
                let t = S::splat(*rows.thr.get_unchecked(g + m));
                let mut hit = 0u64;
                for v in 0..NV {
                    hit |= u64::from(S::ge_mask(S::load(row.as_ptr().add(v * w)), t)) << (v * w);
                }
                hit &= lane_valid;
                while hit != 0 {
                    let l = hit.trailing_zeros() as usize;
                    hit &= hit - 1;
                    rows.push(g + m, row[l], (p.b0 + c0 + l) as u32);
                }
            }
            // Rows of J (off-diagonal pairs): the tile's transpose.
            if let Some(cols) = cols.as_deref_mut() {
                cthr[..c_valid].copy_from_slice(&cols.thr[c0..c0 + c_valid]);
                let mut hit = 0u64;
                for v in 0..NV {
                    let ct = S::load(cthr.as_ptr().add(v * w));
                    for row in tile.iter().take(m_valid) {
                        hit |=
                            u64::from(S::ge_mask(S::load(row.as_ptr().add(v * w)), ct)) << (v * w);
                    }
                }
                hit &= lane_valid;
                while hit != 0 {
                    let l = hit.trailing_zeros() as usize;
                    hit &= hit - 1;
                    for (m, row) in tile.iter().enumerate().take(m_valid) {
                        cols.push(c0 + l, row[l], (p.a0 + g + m) as u32);
                    }
                }
            }
        }
    }
}

/// The register-blocked micro-kernel: `MR x (NV*W)` dot products over `dim`; `a` and `b` point into
/// panels packed `[dim][NV*W]` (`a` at the group's first lane).
#[inline(always)]
unsafe fn micro<S: Simd, const MR: usize, const NV: usize>(
    a: *const f32,
    b: *const f32,
    dim: usize,
) -> [[S::V; NV]; MR] {
    let nr = NV * S::W;
    let mut acc = [[S::zero(); NV]; MR];
    macro_rules! step {
        ($kk:expr) => {{
            let kk = $kk;
            let bv: [S::V; NV] = std::array::from_fn(|v| S::load(b.add(kk * nr + v * S::W)));
            for (m, accm) in acc.iter_mut().enumerate() {
                let av = S::splat(*a.add(kk * nr + m));
                for v in 0..NV {
                    accm[v] = S::fmadd(av, bv[v], accm[v]);
                }
            }
        }};
    }
    let mut kk = 0;
    while kk + 4 <= dim {
        step!(kk);
        step!(kk + 1);
        step!(kk + 2);
        step!(kk + 3);
        kk += 4;
    }
    while kk < dim {
        step!(kk);
        kk += 1;
    }
    acc
}
