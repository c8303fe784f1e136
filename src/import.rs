//! Stage `import-weights` (METHOD.md §3.8): a reference PyTorch checkpoint (`.pth.tar`) becomes a
//! weights artifact of this project, so that a pipeline can start from the reference's published
//! pretext or SCAN models instead of training them.
//!
//! Input `checkpoint`: a `torch.save` file (zip or legacy format, [`crate::nn::torch_file`]) holding
//! one of the forms the reference writes:
//! - a plain state_dict (the pretext model, the self-labeled model);
//! - `{'model': state_dict, 'head': h}` (the selected SCAN model);
//! - `{'model': state_dict, 'optimizer': …, 'epoch': …, …}` (a training checkpoint; a SCAN one may
//!   carry `best_loss_head`).
//!
//! Keys may carry DataParallel's `module.` prefix. The architecture is read off the tensors (width
//! and input channels from `backbone.conv1.weight`, the projection size from
//! `contrastive_head.2.weight`, the number of heads and clusters from `cluster_head.{h}.weight`);
//! the stem (`arch`) and the normalisation (`dataset`) come from the params. The check is as strict
//! as PyTorch's `load_state_dict(strict=True)`: every tensor of the model must be present with its
//! shape, and every tensor of the checkpoint must belong to the model (BatchNorm's
//! `num_batches_tracked` included); each violation is named in the error. Tensors are copied bit for
//! bit (float16/bfloat16/float64 checkpoints are converted to float32).
//!
//! Output `weights`: safetensors with the reference names and this project's metadata.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use tch::{Device, Kind, Tensor};

use crate::data::pickle::Value;
use crate::nn::torch_file::{DType, RawTensor, TorchFile};
use crate::nn::{self, Arch, Model, ModelConfig, NormMeta, WeightsMeta};
use crate::stage::StageArgs;

pub use scan_core::params::ImportParams;
use scan_core::params::{self, ImportKind};

/// What the checkpoint held.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Tensor name (without `module.`) → tensor.
    pub tensors: BTreeMap<String, RawTensor>,
    /// The checkpoint's selected head (`head` or `best_loss_head`), if it has one.
    pub head: Option<usize>,
    /// Which form it was: `state_dict`, `model+head` or `training checkpoint`.
    pub form: &'static str,
}

fn is_tensor_dict(file: &TorchFile, v: &Value) -> bool {
    matches!(v, Value::Dict(items) if !items.is_empty()
        && items.iter().all(|(_, x)| file.tensor(x).is_some()))
}

fn int_entry(v: &Value, key: &str) -> Option<usize> {
    match v.get(key) {
        Some(Value::Int(i)) if *i >= 0 => Some(*i as usize),
        _ => None,
    }
}

/// Read the state_dict (and selected head) out of a reference checkpoint.
pub fn read_checkpoint(path: &Path) -> anyhow::Result<Imported> {
    let file = TorchFile::open(path)?;
    let root = &file.root;
    let (dict, head, form) = if is_tensor_dict(&file, root) {
        (root, None, "state_dict")
    } else if let Some(model) = root.get("model") {
        if !is_tensor_dict(&file, model) {
            bail!(
                "{}: entry `model` is not a state_dict (a dict of tensors)",
                path.display()
            );
        }
        let head = int_entry(root, "head").or_else(|| int_entry(root, "best_loss_head"));
        let form = if root.get("optimizer").is_some() {
            "training checkpoint"
        } else {
            "model+head"
        };
        (model, head, form)
    } else {
        bail!(
            "{}: neither a state_dict nor a dict with a `model` state_dict",
            path.display()
        );
    };
    let Value::Dict(items) = dict else {
        unreachable!("checked to be a dict")
    };
    let mut tensors = BTreeMap::new();
    for (k, v) in items {
        let key = k
            .text()
            .with_context(|| format!("{}: a state_dict key is not a string", path.display()))?;
        let name = key.strip_prefix("module.").unwrap_or(&key).to_string();
        let t = file
            .tensor(v)
            .expect("checked to be a tensor")
            .map_err(|m| anyhow::anyhow!("{}: `{key}`: {m}", path.display()))?;
        if tensors.insert(name.clone(), t).is_some() {
            bail!(
                "{}: `{name}` is there both with and without the `module.` prefix",
                path.display()
            );
        }
    }
    Ok(Imported {
        tensors,
        head,
        form,
    })
}

fn dims(imported: &Imported, name: &str) -> anyhow::Result<Vec<usize>> {
    imported
        .tensors
        .get(name)
        .map(|t| t.shape.clone())
        .with_context(|| format!("`{name}` is missing"))
}

/// The model a checkpoint holds, from its tensors and the params.
pub fn model_config(
    imported: &Imported,
    kind: ImportKind,
    arch: Arch,
) -> anyhow::Result<(ImportKind, ModelConfig)> {
    let conv1 = dims(imported, "backbone.conv1.weight")?;
    let [width, in_channels, 3, 3] = conv1[..] else {
        bail!("`backbone.conv1.weight` has shape {conv1:?}, expected [width, channels, 3, 3]");
    };
    let has = |prefix: &str| imported.tensors.keys().any(|k| k.starts_with(prefix));
    let kind = match kind {
        ImportKind::Auto if has("contrastive_head.") => ImportKind::Simclr,
        ImportKind::Auto if has("cluster_head.") => {
            let heads = (0..)
                .take_while(|h| has(&format!("cluster_head.{h}.")))
                .count();
            if imported.head.is_none() && heads == 1 {
                ImportKind::Selflabel
            } else {
                ImportKind::Scan
            }
        }
        ImportKind::Auto => {
            bail!("neither `contrastive_head.*` nor `cluster_head.*` tensors: set param `kind`")
        }
        k => k,
    };
    let mut config = ModelConfig {
        arch,
        in_channels: in_channels as i64,
        width: width as i64,
        proj_dim: 128,
        num_heads: 0,
        num_classes: 0,
    };
    if kind == ImportKind::Simclr {
        let fc2 = dims(imported, "contrastive_head.2.weight")?;
        config.proj_dim = *fc2
            .first()
            .context("`contrastive_head.2.weight` is a scalar")? as i64;
    } else {
        let heads = (0..)
            .take_while(|h| {
                imported
                    .tensors
                    .contains_key(&format!("cluster_head.{h}.weight"))
            })
            .count();
        if heads == 0 {
            bail!("`cluster_head.0.weight` is missing");
        }
        if kind == ImportKind::Selflabel && heads != 1 {
            bail!("a self-labeled model has one head, the checkpoint has {heads}");
        }
        let w = dims(imported, "cluster_head.0.weight")?;
        config.num_heads = heads;
        config.num_classes = *w.first().context("`cluster_head.0.weight` is a scalar")? as i64;
    }
    if config.width < 1 || config.in_channels < 1 || config.proj_dim < 1 {
        bail!("invalid model: {config:?}");
    }
    Ok((kind, config))
}

fn to_tensor(name: &str, t: &RawTensor) -> anyhow::Result<Tensor> {
    let kind = match t.dtype {
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        other => bail!("`{name}` has dtype {other:?}, expected a float tensor"),
    };
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Ok(Tensor::f_from_data_size(&t.data, &shape, kind)?.to_kind(Kind::Float))
}

/// Copy the checkpoint's tensors into `model`, strictly: every model variable present with its
/// shape, no tensor of the checkpoint left over (`num_batches_tracked` of the model's BatchNorms
/// allowed). Returns the `num_batches_tracked` of `backbone.bn1`, if present.
pub fn load_strict(model: &mut Model, imported: &Imported) -> anyhow::Result<Option<i64>> {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut problems = Vec::new();
    for (name, var) in &vars {
        match imported.tensors.get(name) {
            None => problems.push(format!("missing `{name}` {:?}", var.size())),
            Some(t) if t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>() != var.size() => {
                problems.push(format!(
                    "`{name}` has shape {:?}, the model expects {:?}",
                    t.shape,
                    var.size()
                ))
            }
            Some(_) => {}
        }
    }
    let bn_counters: Vec<String> = vars
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".running_mean"))
        .map(|p| format!("{p}.num_batches_tracked"))
        .collect();
    for name in imported.tensors.keys() {
        if !vars.iter().any(|(n, _)| n == name) && !bn_counters.contains(name) {
            problems.push(format!("unexpected `{name}`"));
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(12);
        bail!(
            "the checkpoint does not match the model ({n} problem(s)): {}",
            problems.join("; ")
        );
    }
    let _guard = tch::no_grad_guard();
    for (name, var) in &mut vars {
        let t = to_tensor(name, &imported.tensors[name.as_str()])?;
        var.f_copy_(&t.to_device(var.device()))?;
    }
    let nbt = match imported.tensors.get("backbone.bn1.num_batches_tracked") {
        Some(t) if t.dtype == DType::I64 && t.data.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(&t.data);
            Some(i64::from_le_bytes(a))
        }
        _ => None,
    };
    Ok(nbt)
}

/// The stage entry point (`scan-import-weights`).
pub fn run_stage(args: &StageArgs) -> anyhow::Result<()> {
    let p: ImportParams = args.load_params()?;
    let path = args.input("checkpoint")?;
    let imported = read_checkpoint(&path)?;
    let arch = match p.arch {
        params::Arch::Stl => Arch::Stl,
        params::Arch::Cifar => Arch::Cifar,
        params::Arch::Auto if p.dataset == params::DatasetKind::Stl10 => Arch::Stl,
        params::Arch::Auto => Arch::Cifar,
    };
    let (kind, config) = model_config(&imported, p.kind, arch)
        .with_context(|| format!("{}: {}", path.display(), imported.form))?;
    let mut model = match kind {
        ImportKind::Simclr => Model::simclr(config.clone(), Device::Cpu),
        _ => Model::cluster(config.clone(), Device::Cpu),
    };
    let nbt = load_strict(&mut model, &imported)
        .with_context(|| format!("{} ({})", path.display(), imported.form))?;
    let best_head = p.best_head.or(imported.head).unwrap_or(0);
    if kind != ImportKind::Simclr && best_head >= config.num_heads {
        bail!(
            "best head {best_head} of a model with {} head(s)",
            config.num_heads
        );
    }
    let (mean, std) = crate::data::norm_stats(p.dataset.name(), config.in_channels as usize);
    let meta = WeightsMeta {
        format_version: nn::weights::FORMAT_VERSION,
        kind: match kind {
            ImportKind::Simclr => "simclr",
            ImportKind::Selflabel => "selflabel",
            _ => "scan",
        }
        .into(),
        model: config.clone(),
        best_head: if kind == ImportKind::Simclr {
            0
        } else {
            best_head
        },
        normalize: NormMeta { mean, std },
        dataset: p.dataset.name().into(),
        num_batches_tracked: nbt.unwrap_or(0),
    };
    nn::weights::save(&model, &meta, &args.output("weights"))?;
    eprintln!(
        "import-weights: {} ({}): {} model, width {}, {} channel(s), {:?} stem{}; {} tensors",
        path.display(),
        imported.form,
        meta.kind,
        config.width,
        config.in_channels,
        config.arch,
        if kind == ImportKind::Simclr {
            String::new()
        } else {
            format!(
                ", {} head(s) of {} clusters, best head {best_head}",
                config.num_heads, config.num_classes
            )
        },
        imported.tensors.len()
    );
    Ok(())
}
