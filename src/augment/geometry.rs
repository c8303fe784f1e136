//! Geometry on pixel tensors with PIL's integer semantics (METHOD.md §3 RandomResizedCrop and flip;
//! METHOD.md §7 Rotate, ShearX/Y, TranslateX/Y, RandomCrop, Cutout).
//!
//! - Affine maps with nearest-neighbour sampling and black fill are PIL's `Image.transform(AFFINE)`:
//!   a map with a shear/rotation part runs PIL's 16.16 fixed-point engine (`affine_fixed`), a pure
//!   translation runs `ImagingScaleAffine` (float64 accumulation, `COORD` truncation). Both are
//!   reproduced exactly as integer source-index maps, then one gather per batch.
//! - The bilinear resize is PIL's two-pass `ImagingResample` with its 22-bit fixed-point weights
//!   (including its anti-aliasing support when downscaling) and rounding to uint8 after each pass;
//!   the weights of every sample form dense `[out, in]` matrices, so the resize is two batched
//!   float64 matmuls whose integer sums are exact in any summation order. Pillow's anti-aliased
//!   downscaling is therefore reproduced too (only reachable when `size` is below the crop size).

use super::div_exact;
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// PIL affine data `(a, b, c, d, e, f)`: the output pixel centre (x, y) samples the input at
/// `(a·x + b·y + c, d·x + e·y + f)`.
pub type Affine = [f64; 6];

/// Nearest-neighbour gather with black fill: `out[b, :, y, x] = img[b, :, yin, xin]` where the
/// source indices (int64 `[n, Ho, Wo]`) are inside the image, else 0.
pub fn gather_nearest(img: &Tensor, yin: &Tensor, xin: &Tensor) -> Tensor {
    let (n, c, h, w) = img.size4().expect("pixel tensor is 4-D");
    let (ho, wo) = (yin.size()[1], yin.size()[2]);
    let inside = xin
        .ge(0)
        .logical_and(&xin.lt(w))
        .logical_and(&yin.ge(0))
        .logical_and(&yin.lt(h));
    let flat = yin.clamp(0, h - 1) * w + xin.clamp(0, w - 1);
    let idx = flat.view([n, 1, ho * wo]).expand([n, c, ho * wo], false);
    let out = img
        .reshape([n, c, h * w])
        .gather(2, &idx, false)
        .view([n, c, ho, wo]);
    out.masked_fill(&inside.logical_not().unsqueeze(1), 0.0)
}

/// PIL `Image.rotate(angle)` (about the centre, no expand) as affine data, computed as Pillow does
/// (`angle % 360`, `-radians`, `round(·, 15)`).
pub fn rotate_matrix(angle_deg: f64, width: i64, height: i64) -> Affine {
    let round15 = |v: f64| format!("{v:.15}").parse::<f64>().unwrap_or(v);
    let angle = -angle_deg.rem_euclid(360.0).to_radians();
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let mut m = [
        round15(angle.cos()),
        round15(angle.sin()),
        0.0,
        round15(-angle.sin()),
        round15(angle.cos()),
        0.0,
    ];
    let (x, y) = (-cx, -cy);
    // Pillow: `a·x + b·y + c` with c = 0.
    m[2] = m[0] * x + m[1] * y;
    m[5] = m[3] * x + m[4] * y;
    m[2] += cx;
    m[5] += cy;
    m
}

/// PIL's 16.16 fixed-point coefficients of `affine_fixed` (Geometry.c): `[a0, a1, a2, a3, a4, a5]`
/// with `xin = (a2 + y·a1 + x·a0) >> 16`, `yin = (a5 + y·a4 + x·a3) >> 16`.
pub fn fixed_coefficients(a: &Affine) -> [i64; 6] {
    let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i64;
    [
        fix(a[0]),
        fix(a[1]),
        fix(a[2] + a[0] * 0.5 + a[1] * 0.5),
        fix(a[3]),
        fix(a[4]),
        fix(a[5] + a[3] * 0.5 + a[4] * 0.5),
    ]
}

/// Source-index maps `[n, h, w]` of PIL's fixed-point affine engine for int64 coefficients
/// `[n, 6]` (from [`fixed_coefficients`]).
pub fn fixed_affine_maps(coeffs: &Tensor, h: i64, w: i64) -> (Tensor, Tensor) {
    let dev = coeffs.device();
    let n = coeffs.size()[0];
    let k = |i: i64| coeffs.narrow(1, i, 1).view([n, 1, 1]);
    let ys = Tensor::arange(h, (Kind::Int64, dev)).view([1, h, 1]);
    let xs = Tensor::arange(w, (Kind::Int64, dev)).view([1, 1, w]);
    let xx = k(2) + &ys * k(1) + &xs * k(0);
    let yy = k(5) + ys * k(4) + xs * k(3);
    (
        yy.bitwise_right_shift_tensor_scalar(16),
        xx.bitwise_right_shift_tensor_scalar(16),
    )
}

/// One axis of PIL's `ImagingScaleAffine` (used when `b = d = 0`, e.g. translations): the source
/// index of each of `out_size` pixels for `in = scale·x + offset`, accumulated in float64 as PIL does;
/// −1 where outside `0..in_size`.
pub fn scale_affine_table(scale: f64, offset: f64, out_size: i64, in_size: i64) -> Vec<i64> {
    let mut pos = offset + scale * 0.5;
    (0..out_size)
        .map(|_| {
            let idx = if pos < 0.0 { -1 } else { pos as i64 };
            pos += scale;
            if idx < in_size {
                idx
            } else {
                -1
            }
        })
        .collect()
}

/// Applies one PIL affine transform per sample (nearest, black fill, output size = input size).
/// Samples whose data has `b = d = 0` take PIL's ScaleAffine path, the others its fixed-point path.
pub fn affine(x: &Tensor, mats: &[Affine]) -> Tensor {
    let (_, _, h, w) = x.size4().expect("pixel tensor is 4-D");
    let plan = affine_plan(mats, h, w);
    affine_planned(x, &Tensor::from_slice(&plan).to_device(x.device()))
}

/// The int64 description of a batch of affine transforms for [`affine_planned`]: per sample the six
/// fixed-point coefficients, then the ScaleAffine column and row tables, then the path flags.
pub fn affine_plan(mats: &[Affine], h: i64, w: i64) -> Vec<i64> {
    let n = mats.len();
    let mut plan = Vec::with_capacity(n * (6 + (w + h) as usize + 1));
    for a in mats {
        plan.extend_from_slice(&fixed_coefficients(a));
    }
    for a in mats {
        plan.extend(scale_affine_table(a[0], a[2], w, w));
    }
    for a in mats {
        plan.extend(scale_affine_table(a[4], a[5], h, h));
    }
    plan.extend(mats.iter().map(|a| i64::from(a[1] == 0.0 && a[3] == 0.0)));
    plan
}

/// Applies the transforms described by `plan` (from [`affine_plan`], on the device).
pub fn affine_planned(x: &Tensor, plan: &Tensor) -> Tensor {
    let (n, _, h, w) = x.size4().expect("pixel tensor is 4-D");
    let coeffs = plan.narrow(0, 0, 6 * n).view([n, 6]);
    let xt = plan
        .narrow(0, 6 * n, n * w)
        .view([n, 1, w])
        .expand([n, h, w], false);
    let yt = plan
        .narrow(0, 6 * n + n * w, n * h)
        .view([n, h, 1])
        .expand([n, h, w], false);
    let scale_path = plan.narrow(0, 6 * n + n * (w + h), n).view([n, 1, 1]).gt(0);
    let (yf, xf) = fixed_affine_maps(&coeffs, h, w);
    gather_nearest(
        x,
        &yt.where_self(&scale_path, &yf),
        &xt.where_self(&scale_path, &xf),
    )
}

/// Per-sample crop (and optional resample) box in pixels: rows `top..top+height`, columns
/// `left..left+width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub top: i64,
    pub left: i64,
    pub height: i64,
    pub width: i64,
}

/// Integer crop of `size_h × size_w` at per-sample offsets (int64 `[n]` tensors on the device).
pub fn crop(x: &Tensor, top: &Tensor, left: &Tensor, size_h: i64, size_w: i64) -> Tensor {
    let dev = x.device();
    let n = x.size()[0];
    let ys = top.view([n, 1, 1]) + Tensor::arange(size_h, (Kind::Int64, dev)).view([1, size_h, 1]);
    let xs = left.view([n, 1, 1]) + Tensor::arange(size_w, (Kind::Int64, dev)).view([1, 1, size_w]);
    gather_nearest(
        x,
        &ys.expand([n, size_h, size_w], false),
        &xs.expand([n, size_h, size_w], false),
    )
}

/// Horizontal flip of the samples where `mask` (bool `[n]`) is set.
pub fn flip_where(x: &Tensor, mask: &Tensor) -> Tensor {
    x.flip([3i64].as_slice())
        .where_self(&mask.view([-1, 1, 1, 1]), x)
}

/// PIL's bilinear resampling weights (Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc`):
/// for each output pixel, its first input pixel and its 22-bit fixed-point weights.
pub fn bilinear_coefficients(in_size: i64, out_size: i64) -> Vec<(i64, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0
    let ss = 1.0 / filterscale;
    let tri = |v: f64| {
        let v = v.abs();
        if v < 1.0 {
            1.0 - v
        } else {
            0.0
        }
    };
    (0..out_size)
        .map(|xx| {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size) - xmin;
            let mut k: Vec<f64> = (0..xmax)
                .map(|x| tri(((x + xmin) as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            for v in k.iter_mut() {
                if ww != 0.0 {
                    *v /= ww;
                }
                *v = if *v < 0.0 {
                    (-0.5 + *v * 4194304.0) as i64 as f64
                } else {
                    (0.5 + *v * 4194304.0) as i64 as f64
                };
            }
            (xmin, k)
        })
        .collect()
}

/// `(2²¹ + Σ) >> 22` clipped to 0..255: PIL's rounding of a fixed-point resampling sum.
fn pil_round(t: &Tensor) -> Tensor {
    div_exact(&(t + 2097152.0), 4194304.0)
        .floor()
        .clamp(0.0, 255.0)
}

/// Sparse per-sample resampling rows, flattened for one upload: the first input pixel of every
/// output pixel, and `k` weights each (zero-padded).
fn flatten_rows(
    rows: &[Vec<(i64, Vec<f64>)>],
    k: usize,
    starts: &mut Vec<i64>,
    vals: &mut Vec<f64>,
) {
    for (start, w) in rows.iter().flatten() {
        starts.push(*start);
        vals.extend_from_slice(w);
        vals.extend(std::iter::repeat_n(0.0, k - w.len()));
    }
}

/// Dense resampling matrices `[n, out, in]` (float64) from flattened sparse rows on the device.
fn dense_weights(starts: &Tensor, vals: &Tensor, n: i64, out: i64, k: i64, in_size: i64) -> Tensor {
    let dev = starts.device();
    let idx = (starts.view([n, out, 1]) + Tensor::arange(k, (Kind::Int64, dev)).view([1, 1, k]))
        .clamp_max(in_size - 1);
    let mut dense = Tensor::zeros([n, out, in_size], (Kind::Double, dev));
    let _ = dense.scatter_add_(2, &idx, &vals.view([n, out, k]));
    dense
}

/// torchvision `resized_crop` on PIL images (crop, then `resize((size, size), BILINEAR)`), followed
/// by a horizontal flip where `flips[i]`: PIL's result exactly, as a pixel tensor `[n, C, size, size]`.
pub fn resized_crop(x: &Tensor, boxes: &[CropBox], flips: &[bool], size: i64) -> Tensor {
    let (n, _, h, w) = x.size4().expect("pixel tensor is 4-D");
    assert!(
        boxes.len() == n as usize && flips.len() == n as usize,
        "resized_crop: one box and flip per sample"
    );
    let mut cache: HashMap<i64, Vec<(i64, Vec<f64>)>> = HashMap::new();
    let mut coeffs = |len: i64| {
        cache
            .entry(len)
            .or_insert_with(|| bilinear_coefficients(len, size))
            .clone()
    };
    let mut cols = Vec::with_capacity(n as usize);
    let mut rows = Vec::with_capacity(n as usize);
    for (b, &flip) in boxes.iter().zip(flips) {
        let mut cx: Vec<(i64, Vec<f64>)> = coeffs(b.width)
            .into_iter()
            .map(|(s, k)| (s + b.left, k))
            .collect();
        if flip {
            cx.reverse();
        }
        cols.push(cx);
        rows.push(
            coeffs(b.height)
                .into_iter()
                .map(|(s, k)| (s + b.top, k))
                .collect(),
        );
    }
    let vertical_first: Vec<bool> = boxes
        .iter()
        .map(|b| vertical_pass_first(b.height, b.width, size))
        .collect();
    // Everything the device needs, in one float64 and one int64 transfer.
    let k = cols
        .iter()
        .chain(&rows)
        .flatten()
        .map(|(_, w)| w.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let (mut starts, mut vals) = (Vec::new(), Vec::new());
    flatten_rows(&cols, k, &mut starts, &mut vals);
    flatten_rows(&rows, k, &mut starts, &mut vals);
    starts.extend(vertical_first.iter().map(|&v| i64::from(v)));
    let dev = x.device();
    let starts = Tensor::from_slice(&starts).to_device(dev);
    let vals = Tensor::from_slice(&vals).to_device(dev);
    let (m, k) = (n * size, k as i64);
    let wxt = dense_weights(
        &starts.narrow(0, 0, m),
        &vals.narrow(0, 0, m * k),
        n,
        size,
        k,
        w,
    );
    let wxt = wxt.transpose(1, 2).unsqueeze(1);
    let wy = dense_weights(
        &starts.narrow(0, m, m),
        &vals.narrow(0, m * k, m * k),
        n,
        size,
        k,
        h,
    )
    .unsqueeze(1);
    let x = x.to_kind(Kind::Double);
    let out = pil_round(&wy.matmul(&pil_round(&x.matmul(&wxt))));
    if !vertical_first.iter().any(|&v| v) {
        return out.to_kind(Kind::Float);
    }
    let other = pil_round(&pil_round(&wy.matmul(&x)).matmul(&wxt));
    let mask = starts.narrow(0, 2 * m, n).view([n, 1, 1, 1]).gt(0);
    other.where_self(&mask, &out).to_kind(Kind::Float)
}

/// Whether Pillow resamples an `h × w` image to `size × size` vertical pass first. Its order matters
/// because each pass rounds to uint8. Measured against Pillow 13 on 2 000+ random shapes (Pillow ≤ 10
/// always ran the horizontal pass first; the two orders differ by at most one grey level): the
/// vertical pass goes first exactly when it downscales and `2w < h + size`.
pub fn vertical_pass_first(h: i64, w: i64, size: i64) -> bool {
    h > size && 2 * w < h + size
}

/// Cutout: zero (after normalisation) rows `y1..y2`, columns `x1..x2` of each sample; the bounds are
/// int64 `[n]` tensors, already clipped to the image.
pub fn cutout(x: &Tensor, y1: &Tensor, y2: &Tensor, x1: &Tensor, x2: &Tensor) -> Tensor {
    let (n, _, h, w) = x.size4().expect("image tensor is 4-D");
    let dev = x.device();
    let ys = Tensor::arange(h, (Kind::Int64, dev)).view([1, h, 1]);
    let xs = Tensor::arange(w, (Kind::Int64, dev)).view([1, 1, w]);
    let col = |t: &Tensor| t.view([n, 1, 1]);
    let inside = ys
        .ge_tensor(&col(y1))
        .logical_and(&ys.lt_tensor(&col(y2)))
        .logical_and(&xs.ge_tensor(&col(x1)))
        .logical_and(&xs.lt_tensor(&col(x2)));
    x.masked_fill(&inside.unsqueeze(1), 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn pil_fixed_point_and_scale_tables() {
        // Identity: 1.0 → 65536; the pixel-centre offset 0.5 → 32768.
        assert_eq!(
            fixed_coefficients(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            [65536, 0, 32768, 0, 65536, 32768]
        );
        // Source positions x + 0.5 + c, truncated; negative → outside (−1), ≥ size → outside.
        assert_eq!(scale_affine_table(1.0, 2.4, 5, 5), vec![2, 3, 4, -1, -1]);
        assert_eq!(scale_affine_table(1.0, -1.6, 5, 5), vec![-1, -1, 0, 1, 2]);
        // A rotation by 0 degrees is the identity matrix.
        let m = rotate_matrix(0.0, 7, 5);
        assert_eq!(m.map(|v| v + 0.0), [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn bilinear_weights_and_pass_order() {
        // Same size: each output pixel takes its own input pixel with weight 1 (2²² in fixed point).
        for (xx, (start, k)) in bilinear_coefficients(6, 6).into_iter().enumerate() {
            assert_eq!(start, xx as i64);
            assert_eq!(k[0], 4194304.0);
            assert!(k[1..].iter().all(|&v| v == 0.0));
        }
        // 2× upscale: output 1 sits at input 0.25 → weights 3/4, 1/4 of pixels 0 and 1.
        let c = bilinear_coefficients(4, 8);
        assert_eq!(c[1], (0, vec![3145728.0, 1048576.0]));
        assert!(
            !vertical_pass_first(20, 30, 32)
                && vertical_pass_first(24, 15, 20)
                && !vertical_pass_first(16, 13, 8)
        );
    }

    #[test]
    fn crop_flip_and_identity_resize() {
        let x = Tensor::arange(2 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 1, 4, 5]);
        let boxes = [CropBox {
            top: 0,
            left: 0,
            height: 4,
            width: 5,
        }; 2];
        let r = resized_crop(
            &x.narrow(3, 0, 4).narrow(2, 0, 4).contiguous(),
            &boxes.map(|b| CropBox { width: 4, ..b }),
            &[false, true],
            4,
        );
        let src = x.narrow(3, 0, 4).narrow(2, 0, 4);
        assert!(r.get(0).equal(&src.get(0)) && r.get(1).equal(&src.get(1).flip([2i64].as_slice())));
        let top = Tensor::from_slice(&[1i64, 0]);
        let left = Tensor::from_slice(&[2i64, 0]);
        let c = crop(&x, &top, &left, 2, 3);
        assert!(c.get(0).equal(&x.get(0).narrow(1, 1, 2).narrow(2, 2, 3)));
        assert!(c.get(1).equal(&x.get(1).narrow(1, 0, 2).narrow(2, 0, 3)));
    }
}
