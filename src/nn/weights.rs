//! Weights as safetensors with the reference state_dict names (METHOD.md §3.1), so files move
//! between this project and the reference PyTorch model (`load_state_dict(strict=True)`).
//!
//! Each BatchNorm also gets `num_batches_tracked` (int64 scalar) as PyTorch expects. Metadata is one
//! `scan` key of canonical JSON ([`WeightsMeta`]): several keys would be written in varying order and
//! break content addressing (measured with safetensors 0.3 and 0.8). Loading is strict: every required variable must be present
//! with the right shape; a `module.` prefix (multi-GPU checkpoints) is accepted.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::model::{Model, ModelConfig};
use super::NnError;

pub const FORMAT_VERSION: u32 = 1;

/// Normalisation the model was trained with (applied by the test-time transform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormMeta {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// What a weights file is, stored in its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsMeta {
    pub format_version: u32,
    /// `simclr`, `scan` or `selflabel`.
    pub kind: String,
    pub model: ModelConfig,
    /// Index of the head to predict with (clustering models).
    pub best_head: usize,
    pub normalize: NormMeta,
    /// Dataset name of the training data (e.g. `fashion-mnist`).
    pub dataset: String,
    /// Written as every BatchNorm's `num_batches_tracked`.
    pub num_batches_tracked: i64,
}

/// Which variables a load must find in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadRule {
    /// Every variable of the model.
    All,
    /// Every `backbone.` variable; the heads keep their fresh initialisation.
    Backbone,
}

fn werr(path: &Path, message: impl Into<String>) -> NnError {
    NnError::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Save `model` with `meta` atomically; byte-stable for equal weights.
pub fn save(model: &Model, meta: &WeightsMeta, path: &Path) -> Result<(), NnError> {
    let mut blobs: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in model.vs.variables() {
        let t = t
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let n = t.numel();
        let mut buf = vec![0u8; n * 4];
        t.f_copy_data_u8(&mut buf, n)?;
        if let Some(prefix) = name.strip_suffix(".running_mean") {
            let nbt = meta.num_batches_tracked.to_le_bytes().to_vec();
            blobs.insert(
                format!("{prefix}.num_batches_tracked"),
                (Dtype::I64, vec![], nbt),
            );
        }
        blobs.insert(name, (Dtype::F32, shape, buf));
    }
    let mut views = Vec::with_capacity(blobs.len());
    for (name, (dtype, shape, data)) in &blobs {
        let view =
            TensorView::new(*dtype, shape.clone(), data).map_err(|e| werr(path, e.to_string()))?;
        views.push((name.as_str(), view));
    }
    let json = serde_json::to_string(meta).map_err(|e| werr(path, e.to_string()))?;
    let md = HashMap::from([("scan".to_string(), json)]);
    let bytes = safetensors::serialize(views, Some(md)).map_err(|e| werr(path, e.to_string()))?;
    crate::util::atomic_write(path, &bytes).map_err(|e| werr(path, e.to_string()))
}

/// Read the metadata of a weights file written by [`save`].
pub fn read_meta(path: &Path) -> Result<WeightsMeta, NnError> {
    let bytes = fs_err::read(path).map_err(|e| werr(path, e.to_string()))?;
    meta_of(path, &bytes)
}

fn meta_of(path: &Path, bytes: &[u8]) -> Result<WeightsMeta, NnError> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| werr(path, format!("not safetensors: {e}")))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("scan"))
        .ok_or_else(|| {
            werr(
                path,
                "no `scan` metadata: not a weights file of this project",
            )
        })?;
    let meta: WeightsMeta =
        serde_json::from_str(json).map_err(|e| werr(path, format!("metadata: {e}")))?;
    if meta.format_version != FORMAT_VERSION {
        return Err(werr(
            path,
            format!(
                "weights format version {} (this build reads {FORMAT_VERSION})",
                meta.format_version
            ),
        ));
    }
    let m = &meta.model;
    if m.width < 1 || m.in_channels < 1 || m.proj_dim < 1 {
        return Err(werr(path, format!("invalid model config {m:?}")));
    }
    if meta.kind != "simclr"
        && (m.num_heads < 1 || m.num_classes < 1 || meta.best_head >= m.num_heads)
    {
        return Err(werr(
            path,
            format!(
                "invalid heads: {} heads of {} clusters, best head {}",
                m.num_heads, m.num_classes, meta.best_head
            ),
        ));
    }
    if meta.normalize.mean.len() != m.in_channels as usize
        || meta.normalize.std.len() != m.in_channels as usize
    {
        return Err(werr(
            path,
            format!(
                "normalisation has {} means and {} stds for {} channels",
                meta.normalize.mean.len(),
                meta.normalize.std.len(),
                m.in_channels
            ),
        ));
    }
    Ok(meta)
}

/// Copy the file's tensors into `model`'s variables under `rule`. Extra tensors in the file (e.g.
/// the SimCLR head when loading a clustering model, `num_batches_tracked`) are ignored.
pub fn load_into(model: &mut Model, path: &Path, rule: LoadRule) -> Result<(), NnError> {
    let bytes = fs_err::read(path).map_err(|e| werr(path, e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| werr(path, format!("not safetensors: {e}")))?;
    let names: HashMap<String, String> = st
        .names()
        .into_iter()
        .map(|n| {
            (
                n.strip_prefix("module.").unwrap_or(n).to_string(),
                n.to_string(),
            )
        })
        .collect();
    let mut missing = Vec::new();
    let _guard = tch::no_grad_guard();
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        let required = match rule {
            LoadRule::All => true,
            LoadRule::Backbone => name.starts_with("backbone."),
        };
        let Some(file_name) = names.get(&name) else {
            if required {
                missing.push(name);
            }
            continue;
        };
        if !required {
            continue;
        }
        let view = st
            .tensor(file_name)
            .map_err(|e| werr(path, e.to_string()))?;
        copy_into(path, &name, &view, &mut var)?;
    }
    if !missing.is_empty() {
        let shown: Vec<_> = missing.iter().take(5).cloned().collect();
        return Err(werr(
            path,
            format!(
                "{} required weight(s) missing, e.g. {}",
                missing.len(),
                shown.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Build the model a weights file describes and load every variable.
pub fn load_model(path: &Path, device: Device) -> Result<(Model, WeightsMeta), NnError> {
    let meta = read_meta(path)?;
    let mut model = match meta.kind.as_str() {
        "simclr" => Model::simclr(meta.model.clone(), device),
        "scan" | "selflabel" => Model::cluster(meta.model.clone(), device),
        other => return Err(werr(path, format!("unknown weights kind `{other}`"))),
    };
    load_into(&mut model, path, LoadRule::All)?;
    Ok((model, meta))
}

/// Copy head `src_head` of a clustering weights file into head 0 of `model` (self-labeling starts
/// from the selected SCAN head only, METHOD.md §6).
pub fn load_head(model: &mut Model, path: &Path, src_head: usize) -> Result<(), NnError> {
    let bytes = fs_err::read(path).map_err(|e| werr(path, e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| werr(path, format!("not safetensors: {e}")))?;
    let _guard = tch::no_grad_guard();
    let mut vars = model.vs.variables();
    for part in ["weight", "bias"] {
        let name = format!("cluster_head.{src_head}.{part}");
        let view = st
            .tensor(&name)
            .or_else(|_| st.tensor(&format!("module.{name}")))
            .map_err(|_| werr(path, format!("`{name}` missing")))?;
        let var = vars
            .get_mut(&format!("cluster_head.0.{part}"))
            .ok_or_else(|| werr(path, "the model has no cluster head 0"))?;
        copy_into(path, &name, &view, var)?;
    }
    Ok(())
}

/// Copy the file tensor `name` into `var`: the shapes must match; float16/bfloat16/float64 files are
/// converted to the model's float32.
fn copy_into(path: &Path, name: &str, view: &TensorView, var: &mut Tensor) -> Result<(), NnError> {
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    if shape != var.size() {
        return Err(werr(
            path,
            format!(
                "`{name}` has shape {shape:?}, the model expects {:?}",
                var.size()
            ),
        ));
    }
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        other => {
            return Err(werr(
                path,
                format!("`{name}` has unsupported dtype {other:?}"),
            ));
        }
    };
    let t = Tensor::f_from_data_size(view.data(), &shape, kind)?.to_kind(Kind::Float);
    var.f_copy_(&t.to_device(var.device()))?;
    Ok(())
}
