//! Minimal SIMD abstraction for the [`crate::knn`] kernel: AVX-512F, AVX2+FMA (both chosen at run
//! time) and a portable fallback. Every variant computes `fma(a, b, c)` with one rounding, so all
//! produce bit-identical dot products (the output bytes do not depend on the CPU).

#[allow(clippy::missing_safety_doc)]
pub(crate) trait Simd {
    type V: Copy;
    /// Lanes per vector.
    const W: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn splat(x: f32) -> Self::V;
    /// `a * b + c` with a single rounding.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Bit `l` set iff lane `l` of `a` is `>= b` (false for NaN).
    unsafe fn ge_mask(a: Self::V, b: Self::V) -> u32;
}

/// Portable fallback (8 lanes in an array; `f32::mul_add` is an exact FMA everywhere).
pub(crate) struct Portable;

impl Simd for Portable {
    type V = [f32; 8];
    const W: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        std::ptr::read_unaligned(p as *const [f32; 8])
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        std::ptr::write_unaligned(p as *mut [f32; 8], v)
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
    }
    #[inline(always)]
    unsafe fn ge_mask(a: Self::V, b: Self::V) -> u32 {
        let mut m = 0;
        for l in 0..8 {
            m |= u32::from(a[l] >= b[l]) << l;
        }
        m
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

// The AVX-512 intrinsics are stable since Rust 1.89; the crate's declared `rust-version` is older,
// but its pinned parquet 60.1 already needs 1.88 (the lead is asked to raise it to 1.89).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// AVX2 + FMA, 8 lanes. Only call inside `#[target_feature(enable = "avx2,fma")]` code.
    pub(crate) struct Avx2;

    impl Simd for Avx2 {
        type V = __m256;
        const W: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self::V {
            _mm256_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm256_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm256_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm256_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm256_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn ge_mask(a: Self::V, b: Self::V) -> u32 {
            _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(a, b)) as u32
        }
    }

    /// AVX-512F, 16 lanes. Only call inside `#[target_feature(enable = "avx512f,fma")]` code (the
    /// kernel enables both, and [`crate::knn::Isa::detect`] requires both).
    pub(crate) struct Avx512;

    impl Simd for Avx512 {
        type V = __m512;
        const W: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self::V {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self::V {
            _mm512_loadu_ps(p)
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self::V) {
            _mm512_storeu_ps(p, v)
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self::V {
            _mm512_set1_ps(x)
        }
        #[inline(always)]
        unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            _mm512_fmadd_ps(a, b, c)
        }
        #[inline(always)]
        unsafe fn ge_mask(a: Self::V, b: Self::V) -> u32 {
            u32::from(_mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b))
        }
    }
}
