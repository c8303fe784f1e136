//! Stage `embed` (METHOD.md §4): the L2-normalised 128-d SimCLR head output of every image, model
//! in eval mode, test-time transform (normalise only), for the train and test splits, as Parquet.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::TrainError;
use crate::data::Dataset;
use crate::io::{EmbeddingMeta, Embeddings};
use crate::nn;

pub use scan_core::params::EmbedParams;

fn file_hash(path: &Path) -> Result<String, TrainError> {
    let bytes = fs_err::read(path).map_err(|e| TrainError::io(path, e.to_string()))?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Embeddings of `data` by the SimCLR model `model`.
pub fn embed_dataset(
    model: &nn::Model,
    norm: &nn::NormMeta,
    data: &Dataset,
    batch_size: usize,
) -> Result<(usize, Vec<f32>), TrainError> {
    let images = nn::images_tensor(data, Device::Cpu);
    let parts = nn::map_batches(&images, norm, batch_size, model.device(), |x| {
        model.simclr_forward(x, false).to_device(Device::Cpu)
    });
    let dim = model.config.proj_dim as usize;
    if parts.is_empty() {
        return Ok((dim, Vec::new()));
    }
    let all = Tensor::cat(&parts, 0)
        .to_kind(Kind::Float)
        .contiguous()
        .view([-1]);
    Ok((dim, Vec::<f32>::try_from(&all)?))
}

/// Embed each `(name, dataset path)` split with `weights`, writing `out/<name>`.
pub fn run(
    p: &EmbedParams,
    weights: &Path,
    splits: &[(&str, &Path)],
    out: &Path,
) -> Result<(), TrainError> {
    nn::init_threads();
    let (model, meta) = nn::weights::load_model(weights, nn::device())?;
    if !matches!(model.heads, nn::Heads::Simclr { .. }) {
        return Err(TrainError::Invalid(format!(
            "{}: `embed` needs SimCLR (pretext) weights, got `{}` weights",
            weights.display(),
            meta.kind
        )));
    }
    let weights_hash = file_hash(weights)?;
    for (name, path) in splits {
        let data = Dataset::load(path)?;
        if data.channels as i64 != meta.model.in_channels {
            return Err(TrainError::Invalid(format!(
                "{}: {} channels, the weights expect {}",
                path.display(),
                data.channels,
                meta.model.in_channels
            )));
        }
        let (dim, values) = embed_dataset(&model, &meta.normalize, &data, p.batch_size)?;
        let emb = Embeddings {
            dim,
            index: (0..data.len() as u32).collect(),
            labels: data.labels.clone(),
            data: values,
            meta: EmbeddingMeta {
                dataset_hash: file_hash(path)?,
                weights_hash: weights_hash.clone(),
                normalized: true,
            },
        };
        let target = out.join(name);
        crate::io::write_embeddings(&target, &emb)
            .map_err(|e| TrainError::io(&target, e.to_string()))?;
    }
    Ok(())
}
