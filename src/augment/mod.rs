//! Batched, seeded image augmentations on the training device (METHOD.md §3 and §7).
//!
//! - [`SimclrAugment`] (METHOD.md §3): RandomResizedCrop → flip → ColorJitter in random order → grayscale
//!   → normalise.
//! - [`StrongAugment`] (METHOD.md §7): flip → RandomCrop → `num_ops` RandAugment ops → normalise → Cutout.
//! - [`Normalize`]: the test-time transform (ToTensor + Normalize).
//!
//! Every random parameter is drawn per sample on the CPU from the seeded [`AugRng`]; the images are
//! then transformed as a handful of batched tensor kernels on their own device (no per-image loop of
//! kernels; the RandAugment ops are grouped by op per slot). The reference pipeline runs PIL on uint8
//! images; here the images are float tensors holding the integer values 0..255 and every op rounds,
//! truncates and clips exactly as PIL does (fixed-point resampling and affine maps, float32 blends, its
//! HSV conversion), so ops compose as on uint8 and CPU and CUDA agree bit for bit (the PIL tests
//! measure a difference of 0 for every op). Divisions by constants go through device tensors because
//! CUDA turns a division by a CPU scalar into a multiply by its reciprocal.
//!
//! Resize: PIL's bilinear resampling is reproduced including its anti-aliasing when downscaling
//! (support scaled by the reduction factor), so there is no downscaling difference; downscaling only
//! happens when `size` is below the crop. Pillow 13 (the test venv's) runs the vertical pass first
//! for some shapes (see [`geometry::vertical_pass_first`]); older Pillow, as used by the 2020
//! reference, always ran the horizontal pass first. The two orders differ by at most one grey level,
//! and they agree whenever the crop is not taller than `size`, which holds for every spec config
//! (`size` = image size).
//!
//! Tests and tools can drive single steps: [`apply_op`] (one strong op with a given magnitude),
//! `sample_params` / `apply_with_params` of both augmentations, and the op modules.

pub mod geometry;
pub mod hsv;
pub mod ops;
mod pack;
mod rng;
mod simclr;
mod strong;

pub use geometry::CropBox;
pub use rng::AugRng;
pub use simclr::{random_resized_crop_box, Jitter, SimclrAugment, SimclrParams};
pub use strong::{apply_op, Cutout, StrongAugment, StrongOp, StrongParams};

use tch::{Kind, Tensor};

/// Invalid augmentation settings (caught by `validate` before training starts).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AugmentError {
    #[error("images must have 1 or 3 channels, got {0}")]
    Channels(i64),
    #[error("normalisation has {mean} means and {std} stds for {channels} channels")]
    NormalizeLength {
        mean: usize,
        std: usize,
        channels: i64,
    },
    #[error("normalisation std {0} is not positive")]
    NonPositiveStd(f64),
    #[error("crop size {crop} does not fit images of {height}x{width}")]
    CropTooLarge { crop: i64, height: i64, width: i64 },
    #[error("invalid augmentation parameter {name} = {value}")]
    Parameter { name: &'static str, value: f64 },
}

/// Per-channel normalisation; `apply` is the test-time transform (ToTensor + Normalize).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalize {
    /// CIFAR-10 statistics (METHOD.md §2.3).
    pub fn cifar10() -> Self {
        Normalize {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2023, 0.1994, 0.2010],
        }
    }
    /// CIFAR-100 statistics (METHOD.md §2.3).
    pub fn cifar100() -> Self {
        Normalize {
            mean: vec![0.5071, 0.4867, 0.4408],
            std: vec![0.2675, 0.2565, 0.2761],
        }
    }
    /// ImageNet statistics, used for STL-10 (METHOD.md §2.3).
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Checks that there is one mean and one positive std per channel (or one for all channels).
    pub fn validate(&self, channels: i64) -> Result<(), AugmentError> {
        if channels != 1 && channels != 3 {
            return Err(AugmentError::Channels(channels));
        }
        let ok = |n: usize| n == 1 || n as i64 == channels;
        if !ok(self.mean.len()) || !ok(self.std.len()) {
            return Err(AugmentError::NormalizeLength {
                mean: self.mean.len(),
                std: self.std.len(),
                channels,
            });
        }
        match self.std.iter().find(|s| !s.is_finite() || **s <= 0.0) {
            Some(&s) => Err(AugmentError::NonPositiveStd(s)),
            None => Ok(()),
        }
    }

    /// uint8 `[B, H, W, C]` → float32 `[B, C, H, W]`: `/255`, then `(x − mean)/std` per channel.
    ///
    /// # Panics
    /// If the input is not 4-D or `validate` would fail for its channel count.
    pub fn apply(&self, images_u8_nhwc: &Tensor) -> Tensor {
        self.apply_pixels(&to_pixels(images_u8_nhwc))
    }

    /// Float `[B, C, H, W]` holding 0..255 → normalised float32 (torchvision's ToTensor + Normalize
    /// in float32).
    pub fn apply_pixels(&self, pixels: &Tensor) -> Tensor {
        let c = pixels.size()[1];
        if let Err(e) = self.validate(c) {
            panic!("Normalize: {e}");
        }
        let dev = pixels.device();
        let pick = |v: &[f64]| {
            (0..c as usize)
                .map(|i| v[i.min(v.len() - 1)] as f32)
                .collect::<Vec<f32>>()
        };
        // One transfer for both vectors.
        let stats =
            Tensor::from_slice(&[pick(&self.mean), pick(&self.std)].concat()).to_device(dev);
        let mean = stats.narrow(0, 0, c).view([1, c, 1, 1]);
        let std = stats.narrow(0, c, c).view([1, c, 1, 1]);
        let x = div_exact(&pixels.to_kind(Kind::Float), 255.0);
        (x - mean) / std
    }
}

/// uint8 `[B, H, W, C]` → float32 `[B, C, H, W]` holding the integer values 0..255.
///
/// # Panics
/// If the input is not 4-D with 1 or 3 channels.
pub fn to_pixels(images_u8_nhwc: &Tensor) -> Tensor {
    let size = images_u8_nhwc.size();
    assert!(
        size.len() == 4,
        "augment: expected uint8 images [B, H, W, C], got shape {size:?}"
    );
    assert!(
        size[3] == 1 || size[3] == 3,
        "augment: expected 1 or 3 channels, got shape {size:?}"
    );
    images_u8_nhwc
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        .contiguous()
}

/// Float `[B, C, H, W]` holding 0..255 → uint8 `[B, H, W, C]` (values are rounded and clipped).
pub fn to_u8_nhwc(pixels: &Tensor) -> Tensor {
    pixels
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .permute([0, 2, 3, 1])
        .contiguous()
}

/// `t / d` as a true IEEE division on every device (a divisor tensor on the device, never a CPU
/// scalar, which CUDA would turn into a multiplication by the reciprocal).
pub(crate) fn div_exact(t: &Tensor, d: f64) -> Tensor {
    t / Tensor::full([1], d, (t.kind(), t.device()))
}
