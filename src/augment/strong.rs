//! Strong augmentation "ours" (METHOD.md §7), the reference's PIL semantics, batched: horizontal flip
//! (p) → RandomCrop(crop_size, no padding) → `num_ops` ops drawn with replacement from the 14
//! RandAugment ops, each always applied with magnitude `v = U(0,1)·(max − min) + min` (random sign
//! for Rotate, ShearX/Y, TranslateX/Y) → normalise → Cutout (side `randint(1, L)`, centre uniform,
//! square `[y − ℓ//2, y + ℓ//2) × [x − ℓ//2, x + ℓ//2)` clipped, zeroed after normalisation).
//!
//! Per op slot the samples are grouped by op (one gather, one op, one scatter per group; the five
//! geometric ops share one group, since they are all one per-sample affine map).

use super::geometry::{self, Affine};
use super::pack::{Pack, Packed, Slot};
use super::{ops, to_pixels, to_u8_nhwc, AugRng, AugmentError, Normalize};
use tch::{Kind, Tensor};

/// The 14 ops, in the reference's `augment_list` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrongOp {
    Identity,
    AutoContrast,
    Equalize,
    Rotate,
    Solarize,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    TranslateX,
    TranslateY,
    Posterize,
    ShearY,
}

impl StrongOp {
    /// All ops in the reference's order.
    pub const ALL: [StrongOp; 14] = [
        StrongOp::Identity,
        StrongOp::AutoContrast,
        StrongOp::Equalize,
        StrongOp::Rotate,
        StrongOp::Solarize,
        StrongOp::Color,
        StrongOp::Contrast,
        StrongOp::Brightness,
        StrongOp::Sharpness,
        StrongOp::ShearX,
        StrongOp::TranslateX,
        StrongOp::TranslateY,
        StrongOp::Posterize,
        StrongOp::ShearY,
    ];

    /// The magnitude range (min, max) of METHOD.md §7.
    pub fn range(self) -> (f64, f64) {
        match self {
            StrongOp::Identity | StrongOp::AutoContrast | StrongOp::Equalize => (0.0, 1.0),
            StrongOp::Rotate => (-30.0, 30.0),
            StrongOp::Solarize => (0.0, 256.0),
            StrongOp::Color | StrongOp::Contrast | StrongOp::Brightness | StrongOp::Sharpness => {
                (0.05, 0.95)
            }
            StrongOp::ShearX | StrongOp::ShearY | StrongOp::TranslateX | StrongOp::TranslateY => {
                (-0.1, 0.1)
            }
            StrongOp::Posterize => (4.0, 8.0),
        }
    }

    /// Whether the reference flips the sign of the magnitude with probability 1/2.
    pub fn random_sign(self) -> bool {
        matches!(
            self,
            StrongOp::Rotate
                | StrongOp::ShearX
                | StrongOp::ShearY
                | StrongOp::TranslateX
                | StrongOp::TranslateY
        )
    }

    /// The PIL affine data of a geometric op with (signed) magnitude `v` on `w × h` images.
    pub fn affine(self, v: f64, w: i64, h: i64) -> Option<Affine> {
        match self {
            StrongOp::Rotate => Some(geometry::rotate_matrix(v, w, h)),
            StrongOp::ShearX => Some([1.0, v, 0.0, 0.0, 1.0, 0.0]),
            StrongOp::ShearY => Some([1.0, 0.0, 0.0, v, 1.0, 0.0]),
            StrongOp::TranslateX => Some([1.0, 0.0, v * w as f64, 0.0, 1.0, 0.0]),
            StrongOp::TranslateY => Some([1.0, 0.0, 0.0, 0.0, 1.0, v * h as f64]),
            _ => None,
        }
    }
}

/// Cutout square of one sample: side `len` centred at (`cy`, `cx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutout {
    pub len: i64,
    pub cy: i64,
    pub cx: i64,
}

impl Cutout {
    /// The zeroed rows `y1..y2` and columns `x1..x2` in an `h × w` image.
    pub fn bounds(&self, h: i64, w: i64) -> (i64, i64, i64, i64) {
        let half = self.len / 2;
        (
            (self.cy - half).clamp(0, h),
            (self.cy + half).clamp(0, h),
            (self.cx - half).clamp(0, w),
            (self.cx + half).clamp(0, w),
        )
    }
}

/// Random parameters of one sample; `ops` holds each op with its signed magnitude.
#[derive(Debug, Clone, PartialEq)]
pub struct StrongParams {
    pub flip: bool,
    pub crop_top: i64,
    pub crop_left: i64,
    pub ops: Vec<(StrongOp, f64)>,
    pub cutout: Cutout,
}

/// Flip → RandomCrop → `num_ops` RandAugment ops → normalise → Cutout.
#[derive(Debug, Clone)]
pub struct StrongAugment {
    pub crop_size: i64,
    pub num_ops: usize,
    pub cutout: i64,
    pub flip_p: f64,
    pub normalize: Normalize,
}

impl StrongAugment {
    /// Checks the settings for `channels`-channel images of `height × width`.
    pub fn validate(&self, channels: i64, height: i64, width: i64) -> Result<(), AugmentError> {
        self.normalize.validate(channels)?;
        if self.crop_size < 1 || self.crop_size > height || self.crop_size > width {
            return Err(AugmentError::CropTooLarge {
                crop: self.crop_size,
                height,
                width,
            });
        }
        if self.cutout < 1 {
            return Err(AugmentError::Parameter {
                name: "cutout",
                value: self.cutout as f64,
            });
        }
        if !(0.0..=1.0).contains(&self.flip_p) {
            return Err(AugmentError::Parameter {
                name: "flip_p",
                value: self.flip_p,
            });
        }
        Ok(())
    }

    /// Draws the parameters of `n` samples of `h × w` images.
    pub fn sample_params(&self, n: usize, h: i64, w: i64, rng: &mut AugRng) -> Vec<StrongParams> {
        let size = self.crop_size;
        (0..n)
            .map(|_| {
                let flip = rng.bernoulli(self.flip_p);
                let crop_top = rng.int_inclusive(0, h - size);
                let crop_left = rng.int_inclusive(0, w - size);
                let ops = (0..self.num_ops)
                    .map(|_| {
                        let op = StrongOp::ALL[rng.index(StrongOp::ALL.len())];
                        let (lo, hi) = op.range();
                        let mut v = rng.uniform() * (hi - lo) + lo;
                        if op.random_sign() && rng.uniform() > 0.5 {
                            v = -v;
                        }
                        (op, v)
                    })
                    .collect();
                let len = rng.int_inclusive(1, self.cutout);
                let cy = rng.int_inclusive(0, size - 1);
                let cx = rng.int_inclusive(0, size - 1);
                StrongParams {
                    flip,
                    crop_top,
                    crop_left,
                    ops,
                    cutout: Cutout { len, cy, cx },
                }
            })
            .collect()
    }

    /// uint8 `[B, H, W, C]` → float32 `[B, C, crop_size, crop_size]`, normalised, with Cutout.
    ///
    /// # Panics
    /// If the images are smaller than `crop_size` (see [`StrongAugment::validate`]).
    pub fn apply(&self, images_u8_nhwc: &Tensor, rng: &mut AugRng) -> Tensor {
        let (n, h, w, _) = images_u8_nhwc
            .size4()
            .expect("augment: images must be [B, H, W, C]");
        assert!(
            self.crop_size <= h && self.crop_size <= w,
            "StrongAugment: crop {} > image {h}x{w}",
            self.crop_size
        );
        let params = self.sample_params(n as usize, h, w, rng);
        self.apply_with_params(images_u8_nhwc, &params)
    }

    /// The augmentation with given parameters (one per sample).
    pub fn apply_with_params(&self, images_u8_nhwc: &Tensor, params: &[StrongParams]) -> Tensor {
        let x = to_pixels(images_u8_nhwc);
        let (n, _, _, _) = x.size4().expect("4-D");
        assert_eq!(
            params.len() as i64,
            n,
            "StrongAugment: one parameter set per image"
        );
        let size = self.crop_size;
        let mut pack = Pack::default();
        let flips = pack.push_i(&params.iter().map(|p| i64::from(p.flip)).collect::<Vec<_>>());
        let tops = pack.push_i(&params.iter().map(|p| p.crop_top).collect::<Vec<_>>());
        let lefts = pack.push_i(&params.iter().map(|p| p.crop_left).collect::<Vec<_>>());
        let slots = (0..params.iter().map(|p| p.ops.len()).max().unwrap_or(0))
            .map(|s| {
                let ops: Vec<Option<(StrongOp, f64)>> =
                    params.iter().map(|p| p.ops.get(s).copied()).collect();
                plan_slot(&ops, size, size, &mut pack)
            })
            .collect::<Vec<_>>();
        let bounds: Vec<(i64, i64, i64, i64)> =
            params.iter().map(|p| p.cutout.bounds(size, size)).collect();
        let cut: Vec<Slot> = (0..4)
            .map(|k| {
                let v: Vec<i64> = bounds.iter().map(|b| [b.0, b.1, b.2, b.3][k]).collect();
                pack.push_i(&v)
            })
            .collect();
        let packed = pack.upload(x.device());
        let x = geometry::flip_where(&x, &packed.i(flips).gt(0));
        let mut x = geometry::crop(&x, &packed.i(tops), &packed.i(lefts), size, size);
        for slot in &slots {
            for g in slot {
                let idx = packed.i(g.idx);
                let sub = run_group(&x.index_select(0, &idx), g, &packed);
                let _ = x.index_copy_(0, &idx, &sub);
            }
        }
        let x = self.normalize.apply_pixels(&x);
        geometry::cutout(
            &x,
            &packed.i(cut[0]),
            &packed.i(cut[1]),
            &packed.i(cut[2]),
            &packed.i(cut[3]),
        )
    }
}

/// One group of samples of an op slot: all samples drawing the same colour/LUT op, or all samples
/// drawing any of the five geometric ops (one batched affine map with per-sample matrices).
struct Group {
    /// `None` for the geometric group.
    op: Option<StrongOp>,
    idx: Slot,
    /// Float64 per-sample values (alpha, threshold or posterize unit), or the int64 affine plan.
    vals: Slot,
}

/// Groups the samples of one op slot and stages their indices and parameters.
fn plan_slot(ops: &[Option<(StrongOp, f64)>], h: i64, w: i64, pack: &mut Pack) -> Vec<Group> {
    let members = |keep: &dyn Fn(StrongOp) -> bool| -> Vec<(i64, StrongOp, f64)> {
        ops.iter()
            .enumerate()
            .filter_map(|(i, o)| o.filter(|(k, _)| keep(*k)).map(|(k, v)| (i as i64, k, v)))
            .collect()
    };
    let mut groups = Vec::new();
    for op in StrongOp::ALL {
        if op == StrongOp::Identity || op.affine(0.0, w, h).is_some() {
            continue;
        }
        let m = members(&|k| k == op);
        if !m.is_empty() {
            let idx = pack.push_i(&m.iter().map(|m| m.0).collect::<Vec<_>>());
            let vals = pack.push_f(&m.iter().map(|m| op_value(op, m.2)).collect::<Vec<_>>());
            groups.push(Group {
                op: Some(op),
                idx,
                vals,
            });
        }
    }
    let m = members(&|k| k.affine(0.0, w, h).is_some());
    if !m.is_empty() {
        let mats: Vec<Affine> = m.iter().filter_map(|m| m.1.affine(m.2, w, h)).collect();
        let idx = pack.push_i(&m.iter().map(|m| m.0).collect::<Vec<_>>());
        let vals = pack.push_i(&geometry::affine_plan(&mats, h, w));
        groups.push(Group {
            op: None,
            idx,
            vals,
        });
    }
    groups
}

/// The staged per-sample value of a non-geometric op with magnitude `v`.
fn op_value(op: StrongOp, v: f64) -> f64 {
    match op {
        // `i < v` ⇔ `i < ceil(v)` for integer pixels.
        StrongOp::Solarize => v.ceil(),
        // bits = max(1, int(v)); unit = 2^(8 − bits).
        StrongOp::Posterize => 2f64.powi(8 - (v.trunc() as i32).clamp(1, 8)),
        _ => v,
    }
}

/// Runs one group's op on the pixel tensor of its samples.
fn run_group(x: &Tensor, g: &Group, packed: &Packed) -> Tensor {
    let alpha = || packed.per_sample(g.vals, Kind::Float);
    match g.op {
        None => geometry::affine_planned(x, &packed.i(g.vals)),
        Some(StrongOp::AutoContrast) => ops::autocontrast(x),
        Some(StrongOp::Equalize) => ops::equalize(x),
        Some(StrongOp::Solarize) => ops::solarize(x, &alpha()),
        Some(StrongOp::Posterize) => ops::posterize(x, &alpha()),
        Some(StrongOp::Color) => ops::color(x, &alpha()),
        Some(StrongOp::Contrast) => ops::contrast(x, &alpha()),
        Some(StrongOp::Brightness) => ops::brightness(x, &alpha()),
        Some(StrongOp::Sharpness) => ops::sharpness(x, &alpha()),
        Some(_) => x.shallow_clone(),
    }
}

/// Applies one op with the given (signed) magnitude to every image of a uint8 `[B, H, W, C]` batch and
/// returns uint8 `[B, H, W, C]`: the reference's `op(img, v)` on PIL images (for tests and tools).
pub fn apply_op(images_u8_nhwc: &Tensor, op: StrongOp, magnitude: f64) -> Tensor {
    let x = to_pixels(images_u8_nhwc);
    let (n, _, h, w) = x.size4().expect("4-D");
    let ops: Vec<Option<(StrongOp, f64)>> = vec![Some((op, magnitude)); n as usize];
    let mut pack = Pack::default();
    let groups = plan_slot(&ops, h, w, &mut pack);
    let packed = pack.upload(x.device());
    let out = groups.iter().fold(x, |acc, g| run_group(&acc, g, &packed));
    to_u8_nhwc(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutout_bounds_are_clipped_half_open() {
        assert_eq!(
            Cutout {
                len: 16,
                cy: 3,
                cx: 30
            }
            .bounds(32, 32),
            (0, 11, 22, 32)
        );
        assert_eq!(
            Cutout {
                len: 5,
                cy: 10,
                cx: 10
            }
            .bounds(32, 32),
            (8, 12, 8, 12)
        );
        assert_eq!(
            Cutout {
                len: 1,
                cy: 10,
                cx: 10
            }
            .bounds(32, 32),
            (10, 10, 10, 10)
        );
    }

    #[test]
    fn op_values_follow_pil() {
        assert_eq!(op_value(StrongOp::Solarize, 127.2), 128.0);
        assert_eq!(op_value(StrongOp::Posterize, 5.9), 8.0);
        assert_eq!(op_value(StrongOp::Posterize, 4.0), 16.0);
        let signed: Vec<StrongOp> = StrongOp::ALL
            .into_iter()
            .filter(|o| o.random_sign())
            .collect();
        assert_eq!(signed.len(), 5);
        assert!(signed.iter().all(|o| o.affine(0.05, 8, 8).is_some()));
    }

    #[test]
    fn sampled_params_stay_in_range() {
        let aug = StrongAugment {
            crop_size: 20,
            num_ops: 4,
            cutout: 8,
            flip_p: 0.5,
            normalize: Normalize::cifar10(),
        };
        for p in aug.sample_params(500, 24, 28, &mut AugRng::new(3)) {
            assert!(
                (0..=4).contains(&p.crop_top) && (0..=8).contains(&p.crop_left) && p.ops.len() == 4
            );
            assert!(
                (1..=8).contains(&p.cutout.len)
                    && (0..20).contains(&p.cutout.cy)
                    && (0..20).contains(&p.cutout.cx)
            );
            for (op, v) in p.ops {
                // The signed ranges are symmetric, so a flipped sign stays inside.
                let (lo, hi) = op.range();
                assert!(lo <= v && v <= hi, "{op:?} {v}");
            }
        }
    }
}
