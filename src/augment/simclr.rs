//! SimCLR augmentation (METHOD.md §3), torchvision semantics on PIL images, batched:
//! RandomResizedCrop(size, scale, ratio, bilinear) → horizontal flip (p) → with p ColorJitter
//! (brightness, contrast, saturation, hue in a random order per sample) → RandomGrayscale (p) →
//! normalise. For 1-channel images saturation, hue and grayscale are identities (as for PIL "L").

use super::geometry::{self, CropBox};
use super::pack::Pack;
use super::{hsv, ops, to_pixels, AugRng, AugmentError, Normalize};
use tch::{Kind, Tensor};

/// Colour-jitter draw of one sample: the order of the four ops (0 brightness, 1 contrast,
/// 2 saturation, 3 hue) and their factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    pub order: [usize; 4],
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// Random parameters of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimclrParams {
    pub crop: CropBox,
    pub flip: bool,
    pub jitter: Option<Jitter>,
    pub gray: bool,
}

/// RandomResizedCrop → flip → ColorJitter (random order, p) → grayscale (p) → normalise.
#[derive(Debug, Clone)]
pub struct SimclrAugment {
    pub size: i64,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub flip_p: f64,
    pub jitter_p: f64,
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
    pub gray_p: f64,
    pub normalize: Normalize,
}

/// torchvision `RandomResizedCrop.get_params`: 10 tries of (scale, log-ratio), then the centre crop
/// with the ratio clamped to `ratio`. Python's `round` is round-half-even.
pub fn random_resized_crop_box(
    h: i64,
    w: i64,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut AugRng,
) -> CropBox {
    let area = (h * w) as f64;
    let (log_lo, log_hi) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * rng.uniform_range(scale.0, scale.1);
        let aspect = rng.uniform_range(log_lo, log_hi).exp();
        let cw = (target_area * aspect).sqrt().round_ties_even() as i64;
        let ch = (target_area / aspect).sqrt().round_ties_even() as i64;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let top = rng.int_inclusive(0, h - ch);
            let left = rng.int_inclusive(0, w - cw);
            return CropBox {
                top,
                left,
                height: ch,
                width: cw,
            };
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < ratio.0.min(ratio.1) {
        (
            ((w as f64) / ratio.0.min(ratio.1)).round_ties_even() as i64,
            w,
        )
    } else if in_ratio > ratio.0.max(ratio.1) {
        (
            h,
            ((h as f64) * ratio.0.max(ratio.1)).round_ties_even() as i64,
        )
    } else {
        (h, w)
    };
    CropBox {
        top: (h - ch) / 2,
        left: (w - cw) / 2,
        height: ch,
        width: cw,
    }
}

impl SimclrAugment {
    /// The spec defaults (scale (0.2, 1), ratio (3/4, 4/3), flip 0.5, jitter 0.8 with 0.4/0.4/0.4/0.1,
    /// grayscale 0.2).
    pub fn cifar(size: i64, normalize: Normalize) -> Self {
        SimclrAugment {
            size,
            scale: (0.2, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            gray_p: 0.2,
            normalize,
        }
    }

    /// Checks the settings for images with `channels` channels.
    pub fn validate(&self, channels: i64) -> Result<(), AugmentError> {
        self.normalize.validate(channels)?;
        let bad = |name: &'static str, value: f64, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(AugmentError::Parameter { name, value })
            }
        };
        bad("size", self.size as f64, self.size > 0)?;
        bad(
            "scale",
            self.scale.0,
            0.0 < self.scale.0 && self.scale.0 <= self.scale.1,
        )?;
        bad(
            "ratio",
            self.ratio.0,
            0.0 < self.ratio.0 && self.ratio.0 <= self.ratio.1,
        )?;
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            bad(name, v, v >= 0.0)?;
        }
        bad("hue", self.hue, (0.0..=0.5).contains(&self.hue))?;
        for (name, p) in [
            ("flip_p", self.flip_p),
            ("jitter_p", self.jitter_p),
            ("gray_p", self.gray_p),
        ] {
            bad(name, p, (0.0..=1.0).contains(&p))?;
        }
        Ok(())
    }

    /// Draws the parameters of `n` samples of `h × w` images.
    pub fn sample_params(&self, n: usize, h: i64, w: i64, rng: &mut AugRng) -> Vec<SimclrParams> {
        let factor = |v: f64, rng: &mut AugRng| {
            if v > 0.0 {
                rng.uniform_range((1.0 - v).max(0.0), 1.0 + v)
            } else {
                1.0
            }
        };
        (0..n)
            .map(|_| {
                let crop = random_resized_crop_box(h, w, self.scale, self.ratio, rng);
                let flip = rng.bernoulli(self.flip_p);
                let jitter = if rng.bernoulli(self.jitter_p) {
                    let order = rng.perm4();
                    let brightness = factor(self.brightness, rng);
                    let contrast = factor(self.contrast, rng);
                    let saturation = factor(self.saturation, rng);
                    let hue = if self.hue > 0.0 {
                        rng.uniform_range(-self.hue, self.hue)
                    } else {
                        0.0
                    };
                    Some(Jitter {
                        order,
                        brightness,
                        contrast,
                        saturation,
                        hue,
                    })
                } else {
                    None
                };
                let gray = rng.bernoulli(self.gray_p);
                SimclrParams {
                    crop,
                    flip,
                    jitter,
                    gray,
                }
            })
            .collect()
    }

    /// uint8 `[B, H, W, C]` → float32 `[B, C, size, size]`, normalised.
    pub fn apply(&self, images_u8_nhwc: &Tensor, rng: &mut AugRng) -> Tensor {
        let (n, h, w, _) = images_u8_nhwc
            .size4()
            .expect("augment: images must be [B, H, W, C]");
        let params = self.sample_params(n as usize, h, w, rng);
        self.apply_with_params(images_u8_nhwc, &params)
    }

    /// The augmentation with given parameters (one per sample), before normalisation: a pixel tensor.
    pub fn pixels_with_params(&self, images_u8_nhwc: &Tensor, params: &[SimclrParams]) -> Tensor {
        let x = to_pixels(images_u8_nhwc);
        let c = x.size()[1];
        assert_eq!(
            params.len() as i64,
            x.size()[0],
            "SimclrAugment: one parameter set per image"
        );
        let boxes: Vec<CropBox> = params.iter().map(|p| p.crop).collect();
        let flips: Vec<bool> = params.iter().map(|p| p.flip).collect();
        let mut x = geometry::resized_crop(&x, &boxes, &flips, self.size);
        // An op is skipped when torchvision's ColorJitter would skip it (parameter 0) and for the
        // identities on 1-channel images.
        let enabled = [
            self.brightness > 0.0,
            self.contrast > 0.0,
            self.saturation > 0.0 && c == 3,
            self.hue > 0.0 && c == 3,
        ];
        let mut pack = Pack::default();
        let mut groups = Vec::new();
        for slot in 0..4 {
            for (op, &on) in enabled.iter().enumerate() {
                let (idx, vals): (Vec<i64>, Vec<f64>) = params
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| {
                        p.jitter
                            .filter(|j| on && j.order[slot] == op)
                            .map(|j| (i as i64, jitter_value(&j, op)))
                    })
                    .unzip();
                if !idx.is_empty() {
                    groups.push((op, pack.push_i(&idx), pack.push_f(&vals)));
                }
            }
        }
        let gray: Vec<i64> = params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.gray && c == 3)
            .map(|(i, _)| i as i64)
            .collect();
        let gray_slot = pack.push_i(&gray);
        let packed = pack.upload(x.device());
        for (op, idx, vals) in groups {
            let idx = packed.i(idx);
            let sub = x.index_select(0, &idx);
            let sub = match op {
                0 => ops::brightness(&sub, &packed.per_sample(vals, Kind::Float)),
                1 => ops::contrast(&sub, &packed.per_sample(vals, Kind::Float)),
                2 => ops::color(&sub, &packed.per_sample(vals, Kind::Float)),
                _ => hsv::adjust_hue(&sub, &packed.per_sample(vals, Kind::Double)),
            };
            let _ = x.index_copy_(0, &idx, &sub);
        }
        if !gray.is_empty() {
            let idx = packed.i(gray_slot);
            let sub = ops::grayscale(&x.index_select(0, &idx));
            let _ = x.index_copy_(0, &idx, &sub);
        }
        x
    }

    /// The augmentation with given parameters (one per sample), normalised.
    pub fn apply_with_params(&self, images_u8_nhwc: &Tensor, params: &[SimclrParams]) -> Tensor {
        self.normalize
            .apply_pixels(&self.pixels_with_params(images_u8_nhwc, params))
    }
}

/// The factor of jitter op `op` (the hue as its integer shift of PIL's 8-bit H channel).
fn jitter_value(j: &Jitter, op: usize) -> f64 {
    match op {
        0 => j.brightness,
        1 => j.contrast,
        2 => j.saturation,
        _ => hsv::hue_shift(j.hue),
    }
}
