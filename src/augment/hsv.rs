//! torchvision's `adjust_hue` on PIL images (METHOD.md §3 ColorJitter hue): convert to PIL's 8-bit HSV,
//! add `trunc(hue·255)` to H modulo 256, convert back. PIL's `rgb2hsv_row`/`hsv2rgb` (Convert.c)
//! mix float32 and float64 arithmetic; every step is reproduced in float64 with explicit rounding to
//! float32 where PIL stores into a `float`, so the result is PIL's exactly.

use super::div_exact;
use tch::{Kind, Tensor};

/// Rounds float64 values to float32 precision (PIL storing into a `float`), staying in float64.
fn f32r(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Float).to_kind(Kind::Double)
}

/// C's `round` (half away from zero) for non-negative float64 values.
fn c_round(t: &Tensor) -> Tensor {
    let whole = t.trunc();
    let half_up = (t - &whole).ge(0.5).to_kind(Kind::Double);
    whole + half_up
}

/// PIL `convert("HSV")` of a 3-channel pixel tensor: (H, S, V), each float64 `[n, 1, H, W]`.
pub fn rgb_to_hsv(x: &Tensor) -> (Tensor, Tensor, Tensor) {
    let x32 = x.to_kind(Kind::Float);
    let (r, g, b) = (
        x32.narrow(1, 0, 1),
        x32.narrow(1, 1, 1),
        x32.narrow(1, 2, 1),
    );
    let maxc = r.maximum(&g).maximum(&b);
    let minc = r.minimum(&g).minimum(&b);
    let grey = maxc.eq_tensor(&minc);
    // float32 quotients, as in C (cr = maxc − minc; guarded against 0 where the pixel is grey).
    let cr = (&maxc - &minc).clamp_min(1.0);
    let s = (&maxc - &minc) / maxc.clamp_min(1.0);
    let rc = (&maxc - &r) / &cr;
    let gc = (&maxc - &g) / &cr;
    let bc = (&maxc - &b) / &cr;
    // h = bc − gc (float32); 2.0 + rc − bc and 4.0 + gc − rc in double, stored to float32.
    let h_r = (&bc - &gc).to_kind(Kind::Double);
    let (rc, gc, bc) = (
        rc.to_kind(Kind::Double),
        gc.to_kind(Kind::Double),
        bc.to_kind(Kind::Double),
    );
    let h_g = f32r(&(&rc + 2.0 - &bc));
    let h_b = f32r(&(&gc + 4.0 - &rc));
    let h = h_g.where_self(&g.eq_tensor(&maxc), &h_b);
    let h = h_r.where_self(&r.eq_tensor(&maxc), &h);
    // h = fmod(h/6.0 + 1.0, 1.0) in double, stored to float32; uh = (int)(h·255.0).
    let h = f32r(&(div_exact(&h, 6.0) + 1.0).fmod(1.0));
    let uh = (h * 255.0).trunc();
    let us = (s.to_kind(Kind::Double) * 255.0).trunc();
    let zero = uh.zeros_like();
    let uh = zero.where_self(&grey, &uh);
    let us = zero.where_self(&grey, &us);
    (uh, us, maxc.to_kind(Kind::Double))
}

/// PIL `convert("RGB")` of an 8-bit HSV image given as float64 `[n, 1, H, W]` planes: a 3-channel
/// float32 pixel tensor.
pub fn hsv_to_rgb(h: &Tensor, s: &Tensor, v: &Tensor) -> Tensor {
    // i = floor(h·6.0/255.0); f = (float)(h·6.0/255.0 − i); fs = (float)(s/255.0).
    let a = div_exact(&(h * 6.0), 255.0);
    let i = a.floor();
    let f = f32r(&(&a - &i));
    let fs = f32r(&div_exact(s, 255.0));
    let p = c_round(&(v * (fs.neg() + 1.0)));
    // fs·f is a float32 product; 1.0 − f and the rest are double.
    let fsf = f32r(&(&fs * &f));
    let q = c_round(&(v * (fsf.neg() + 1.0)));
    let t = c_round(&(v * ((&fs * (f.neg() + 1.0)).neg() + 1.0)));
    let sector = i.to_kind(Kind::Int64).remainder(6);
    let pick = |opts: [&Tensor; 6]| Tensor::cat(&opts, 1).gather(1, &sector, false);
    let red = pick([v, &q, &p, &p, &t, v]);
    let green = pick([&t, v, v, &q, &p, &p]);
    let blue = pick([&p, &p, &t, v, v, &q]);
    let rgb = Tensor::cat(&[red, green, blue], 1);
    let grey = s.eq(0.0);
    v.expand_as(&rgb)
        .where_self(&grey, &rgb)
        .to_kind(Kind::Float)
}

/// torchvision `adjust_hue` on PIL images: `shift` holds `trunc(hue_factor·255)` mod 256 per sample
/// (float64 `[n, 1, 1, 1]`, values 0..255). 1-channel images are returned unchanged.
pub fn adjust_hue(x: &Tensor, shift: &Tensor) -> Tensor {
    if x.size()[1] == 1 {
        return x.shallow_clone();
    }
    let (h, s, v) = rgb_to_hsv(x);
    let h = (h + shift).fmod(256.0);
    hsv_to_rgb(&h, &s, &v)
}

/// `trunc(hue_factor·255)` modulo 256 (numpy's float → int8 → uint8 cast in torchvision).
pub fn hue_shift(hue_factor: f64) -> f64 {
    ((hue_factor * 255.0).trunc() as i64).rem_euclid(256) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hue_shift_truncates_and_wraps() {
        assert_eq!(hue_shift(-0.1), 231.0);
        assert_eq!(hue_shift(0.07), 17.0);
        assert_eq!(hue_shift(0.0), 0.0);
    }

    #[test]
    fn primaries_round_trip_and_rotate() {
        let x =
            Tensor::from_slice(&[255f32, 0., 0., 0., 255., 0., 0., 0., 255.]).view([3, 3, 1, 1]);
        let zero = Tensor::zeros([3, 1, 1, 1], (Kind::Double, tch::Device::Cpu));
        assert!(adjust_hue(&x, &zero).equal(&x));
        let (h, s, v) = rgb_to_hsv(&x);
        // PIL: red H 0, green H 85, blue H 170; S and V 255.
        assert_eq!(
            Vec::<f64>::try_from(&h.view([-1])).unwrap(),
            vec![0.0, 85.0, 170.0]
        );
        assert!(s.eq(255.0).all().int64_value(&[]) == 1 && v.eq(255.0).all().int64_value(&[]) == 1);
    }
}
