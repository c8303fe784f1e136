//! Colour and lookup-table ops on pixel tensors with PIL's uint8 semantics (METHOD.md §3 ColorJitter's
//! brightness/contrast/saturation and grayscale; METHOD.md §7 AutoContrast, Equalize, Solarize, Color,
//! Contrast, Brightness, Sharpness, Posterize).
//!
//! A pixel tensor is float32 `[n, C, H, W]` holding integer values 0..255 (C = 1 or 3). Per-sample
//! parameters are `[n, 1, 1, 1]` tensors on the same device. Every op returns integer values again,
//! rounded/truncated exactly like PIL: `Image.blend` computes `d + α·(x − d)` in float32 and truncates
//! after clipping to 0..255 (all ImageEnhance ops are such blends); `convert("L")` is
//! `(19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`; the lookup-table ops follow `ImageOps`.

use super::div_exact;
use tch::{Kind, Tensor};

/// PIL `Image.blend(degenerate, image, alpha)`: `degenerate + α·(image − degenerate)` in float32,
/// clipped to 0..255 and truncated. `alpha` is float32 `[n, 1, 1, 1]`.
pub fn blend(degenerate: &Tensor, image: &Tensor, alpha: &Tensor) -> Tensor {
    let diff = image - degenerate;
    let scaled = diff * alpha;
    (scaled + degenerate).clamp(0.0, 255.0).floor()
}

/// PIL `convert("L")` of a 3-channel pixel tensor: `[n, 1, H, W]` (exact in float32: every
/// intermediate is an integer below 2²⁴). A 1-channel tensor is returned as is.
pub fn luma(x: &Tensor) -> Tensor {
    if x.size()[1] == 1 {
        return x.shallow_clone();
    }
    let r = x.narrow(1, 0, 1) * 19595.0;
    let g = x.narrow(1, 1, 1) * 38470.0;
    let b = x.narrow(1, 2, 1) * 7471.0;
    div_exact(&(r + g + b + 32768.0), 65536.0).floor()
}

/// torchvision `rgb_to_grayscale(img, num_output_channels=C)` on PIL: the luma replicated to every
/// channel (identity for 1 channel).
pub fn grayscale(x: &Tensor) -> Tensor {
    let c = x.size()[1];
    luma(x).expand([-1, c, -1, -1], false).contiguous()
}

/// `ImageEnhance.Brightness`: blend with black.
pub fn brightness(x: &Tensor, alpha: &Tensor) -> Tensor {
    blend(&x.zeros_like(), x, alpha)
}

/// `ImageEnhance.Contrast`: blend with the constant `int(mean(L) + 0.5)`.
pub fn contrast(x: &Tensor, alpha: &Tensor) -> Tensor {
    let (_, _, h, w) = x.size4().expect("pixel tensor is 4-D");
    let sum = luma(x).sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Double);
    let mean = div_exact(&sum, (h * w) as f64);
    let degenerate = (mean + 0.5).floor().to_kind(Kind::Float);
    blend(&degenerate, x, alpha)
}

/// `ImageEnhance.Color` (torchvision's saturation): blend with the grayscale image (identity for 1
/// channel, where PIL's degenerate image is the image itself).
pub fn color(x: &Tensor, alpha: &Tensor) -> Tensor {
    if x.size()[1] == 1 {
        return x.shallow_clone();
    }
    blend(&luma(x), x, alpha)
}

/// `ImageEnhance.Sharpness`: blend with `filter(SMOOTH)` (3×3 kernel `[[1,1,1],[1,5,1],[1,1,1]]/13`,
/// rounded; the one-pixel border keeps the original values).
pub fn sharpness(x: &Tensor, alpha: &Tensor) -> Tensor {
    let (_, _, h, w) = x.size4().expect("pixel tensor is 4-D");
    if h < 3 || w < 3 {
        return x.shallow_clone();
    }
    let mut sum = x.narrow(2, 1, h - 2).narrow(3, 1, w - 2) * 4.0;
    for dy in 0..3 {
        for dx in 0..3 {
            sum += x.narrow(2, dy, h - 2).narrow(3, dx, w - 2);
        }
    }
    // The weighted sum S is an integer; S/13 is never within 1/26 of a half, so float32 rounding
    // of S/13 + 0.5 cannot change the result.
    let smooth = (div_exact(&sum, 13.0) + 0.5).floor();
    let degenerate = x.copy();
    degenerate
        .narrow(2, 1, h - 2)
        .narrow(3, 1, w - 2)
        .copy_(&smooth);
    blend(&degenerate, x, alpha)
}

/// `ImageOps.autocontrast` (cutoff 0): per channel, `int(v·scale − lo·scale)` clipped, with
/// `scale = 255/(hi − lo)` in float64; channels with `hi ≤ lo` are left alone.
pub fn autocontrast(x: &Tensor) -> Tensor {
    let lo = x.amin([2i64, 3].as_slice(), true).to_kind(Kind::Double);
    let hi = x.amax([2i64, 3].as_slice(), true).to_kind(Kind::Double);
    let stretch = hi.gt_tensor(&lo);
    let range = (&hi - &lo).clamp_min(1.0);
    let scale = range.ones_like() * 255.0 / range;
    let offset = lo.neg() * &scale;
    let mapped = x.to_kind(Kind::Double) * scale + offset;
    let mapped = mapped.clamp(0.0, 255.0).floor().to_kind(Kind::Float);
    mapped.where_self(&stretch, x)
}

/// `ImageOps.equalize`: per channel, PIL's lookup table `lut[i] = (step//2 + Σ_{j<i} h[j]) // step`
/// with `step = (N − h[max]) // 255`; channels with one grey level or `step = 0` are left alone.
pub fn equalize(x: &Tensor) -> Tensor {
    let (n, c, h, w) = x.size4().expect("pixel tensor is 4-D");
    let dev = x.device();
    let rows = n * c;
    let v = x.to_kind(Kind::Int64).reshape([rows, h * w]);
    let mut hist = Tensor::zeros([rows, 256], (Kind::Int64, dev));
    let _ = hist.scatter_add_(1, &v, &v.ones_like());
    let levels = hist.gt(0).sum_dim_intlist(1, true, Kind::Int64);
    let top = v.amax(1, true);
    let top_count = hist.gather(1, &top, false);
    let step = (top_count.neg() + h * w).floor_divide_scalar(255);
    let valid = levels.gt(1).logical_and(&step.gt(0));
    let safe_step = step.clamp_min(1);
    let before = hist.cumsum(1, Kind::Int64) - &hist;
    let lut = (before + safe_step.floor_divide_scalar(2))
        .floor_divide(&safe_step)
        .clamp_max(255);
    let identity = Tensor::arange(256, (Kind::Int64, dev)).view([1, 256]);
    let lut = lut.where_self(&valid, &identity);
    lut.gather(1, &v, false)
        .to_kind(Kind::Float)
        .view([n, c, h, w])
}

/// `ImageOps.solarize(threshold)`: values `≥ threshold` are inverted. Pass `threshold` already
/// rounded up (`ceil(v)`), which is equivalent for integer pixels and exact in float32.
pub fn solarize(x: &Tensor, threshold: &Tensor) -> Tensor {
    let keep = x.lt_tensor(threshold);
    x.where_self(&keep, &(x.neg() + 255.0))
}

/// `ImageOps.posterize(bits)`: keep the `bits` high bits, i.e. `⌊x/u⌋·u` with `u = 2^(8 − bits)`
/// given as float32 `[n, 1, 1, 1]` (a power of two, so the division is exact).
pub fn posterize(x: &Tensor, unit: &Tensor) -> Tensor {
    (x / unit).floor() * unit
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn px(v: &[f32], c: i64) -> Tensor {
        Tensor::from_slice(v).view([1, c, 1, -1])
    }

    #[test]
    fn luma_is_pil_convert_l() {
        // Pure red, green, blue and white: PIL gives 76, 150, 29, 255.
        let x = px(
            &[255., 0., 0., 255., 0., 255., 0., 255., 0., 0., 255., 255.],
            3,
        );
        assert_eq!(
            Vec::<f32>::try_from(&luma(&x).view([-1])).unwrap(),
            vec![76., 150., 29., 255.]
        );
    }

    #[test]
    fn lut_ops() {
        let x = px(&[0., 100., 127., 128., 200., 255.], 1);
        let t = Tensor::from_slice(&[128f32]).view([1, 1, 1, 1]);
        let s = Vec::<f32>::try_from(&solarize(&x, &t).view([-1])).unwrap();
        assert_eq!(s, vec![0., 100., 127., 127., 55., 0.]);
        let u = Tensor::from_slice(&[16f32]).view([1, 1, 1, 1]);
        let p = Vec::<f32>::try_from(&posterize(&x, &u).view([-1])).unwrap();
        assert_eq!(p, vec![0., 96., 112., 128., 192., 240.]);
        // Autocontrast stretches 100..200 with scale 2.55: 200·2.55 − 100·2.55 is 254.99999999999997
        // in float64, so PIL maps 200 to 254 (checked with Pillow), not 255.
        let y = px(&[100., 150., 200.], 1);
        let a = Vec::<f32>::try_from(&autocontrast(&y).view([-1])).unwrap();
        assert_eq!(a, vec![0., 127., 254.]);
        // A single grey level is left alone by equalize and autocontrast.
        let flat = Tensor::full([1, 1, 2, 2], 7.0, (Kind::Float, Device::Cpu));
        assert!(equalize(&flat).equal(&flat) && autocontrast(&flat).equal(&flat));
    }

    #[test]
    fn blend_truncates_like_pil() {
        let x = px(&[10., 101., 255.], 1);
        let alpha = Tensor::from_slice(&[0.5f32]).view([1, 1, 1, 1]);
        let b = Vec::<f32>::try_from(&brightness(&x, &alpha).view([-1])).unwrap();
        assert_eq!(b, vec![5., 50., 127.]);
        let two = Tensor::from_slice(&[2f32]).view([1, 1, 1, 1]);
        let b = Vec::<f32>::try_from(&brightness(&x, &two).view([-1])).unwrap();
        assert_eq!(b, vec![20., 202., 255.]);
    }
}
