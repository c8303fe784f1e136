//! ResNet-18 backbone (CIFAR and STL variants), SimCLR and cluster heads, strict safetensors weights
//! I/O with the reference state_dict names (METHOD.md §3.1), and batched prediction (METHOD.md §8:
//! prediction = argmax of the chosen head, probabilities = softmax).

pub mod batch_norm;
mod model;
pub mod precision;
mod resnet;
pub mod torch_file;
pub mod weights;

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

pub use model::{l2_normalize, Heads, Model, ModelConfig};
pub use resnet::{Arch, ResNet18};
pub use weights::{LoadRule, NormMeta, WeightsMeta};

use crate::data::Dataset;

#[derive(Debug, thiserror::Error)]
pub enum NnError {
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The training device: CUDA when available unless `SCAN_DEVICE=cpu`.
pub fn device() -> Device {
    match std::env::var("SCAN_DEVICE").as_deref() {
        Ok("cpu") => Device::Cpu,
        _ => Device::cuda_if_available(),
    }
}

/// Use `scan::util::num_threads()` threads for libtorch's intra-op pool and rayon alike.
pub fn init_threads() {
    let n = crate::util::num_threads();
    tch::set_num_threads(n as i32);
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// Images of `data` at `indices` as a uint8 `[B, H, W, C]` tensor on `device`.
pub fn images_tensor(data: &Dataset, device: Device) -> Tensor {
    Tensor::from_slice(&data.images)
        .view([
            data.len() as i64,
            data.height as i64,
            data.width as i64,
            data.channels as i64,
        ])
        .to_device(device)
}

/// Test-time transform: uint8 `[B, H, W, C]` → float `[B, C, H, W]`, `/255`, normalised — the same
/// [`crate::augment::Normalize`] the training views end with.
pub fn to_input(images_u8: &Tensor, norm: &NormMeta) -> Tensor {
    crate::augment::Normalize {
        mean: norm.mean.clone(),
        std: norm.std.clone(),
    }
    .apply(images_u8)
}

/// Eval-time pass over uint8 `images` (any device) in batches of `batch`: each batch is moved to
/// `device`, put through the test-time transform and given to `f`, under no-grad. Returns `f`'s
/// results in order.
pub fn map_batches<T>(
    images: &Tensor,
    norm: &NormMeta,
    batch: usize,
    device: Device,
    mut f: impl FnMut(&Tensor) -> T,
) -> Vec<T> {
    let _guard = tch::no_grad_guard();
    let n = images.size()[0];
    let bs = batch.max(1) as i64;
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = bs.min(n - start);
        out.push(f(&to_input(
            &images.narrow(0, start, len).to_device(device),
            norm,
        )));
        start += len;
    }
    out
}

/// Cluster predictions of a dataset by the best head of a weights artifact.
#[derive(Debug, Clone)]
pub struct Predictions {
    pub num_clusters: usize,
    /// `N × num_clusters` softmax probabilities, row-major.
    pub probs: Vec<f32>,
    pub feat_dim: usize,
    /// `N × feat_dim` backbone features (before the heads), row-major.
    pub features: Vec<f32>,
}

fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>, NnError> {
    let t = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view([-1]);
    Ok(Vec::<f32>::try_from(&t)?)
}

/// Predict every image of `data` (eval mode, test-time transform) with the best head of `weights`.
pub fn predict(weights: &Path, data: &Dataset, batch_size: usize) -> Result<Predictions, NnError> {
    let dev = device();
    let (model, meta) = weights::load_model(weights, dev)?;
    if !matches!(model.heads, Heads::Cluster(_)) {
        return Err(NnError::Weights {
            path: weights.to_path_buf(),
            message: format!(
                "`{}` weights have no cluster head to predict with",
                meta.kind
            ),
        });
    }
    if data.channels as i64 != meta.model.in_channels {
        return Err(NnError::Invalid(format!(
            "dataset has {} channels, the weights expect {}",
            data.channels, meta.model.in_channels
        )));
    }
    let images = images_tensor(data, Device::Cpu);
    let (probs, feats): (Vec<Tensor>, Vec<Tensor>) =
        map_batches(&images, &meta.normalize, batch_size, dev, |x| {
            let f = model.features(x, false);
            let probs = model.head_logits(&f)[meta.best_head].softmax(1, Kind::Float);
            (probs, f)
        })
        .into_iter()
        .unzip();
    let probs = if probs.is_empty() {
        Tensor::zeros([0, meta.model.num_classes], (Kind::Float, dev))
    } else {
        Tensor::cat(&probs, 0)
    };
    let feats = if feats.is_empty() {
        Tensor::zeros([0, model.backbone.feat_dim()], (Kind::Float, dev))
    } else {
        Tensor::cat(&feats, 0)
    };
    Ok(Predictions {
        num_clusters: meta.model.num_classes as usize,
        probs: to_vec_f32(&probs)?,
        feat_dim: model.backbone.feat_dim() as usize,
        features: to_vec_f32(&feats)?,
    })
}
