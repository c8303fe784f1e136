//! Pieces every training stage shares: per-epoch curves, checkpoints for resuming, seeded per-epoch
//! shuffling, and progress reporting.
//!
//! Checkpoints live in the stage's work directory, `SCAN_WORK_DIR`, which the runner keeps per stage
//! key across attempts and deletes after success: a killed run resumes from its last finished epoch.
//! Every epoch's randomness is derived from (seed, epoch), so a resumed run continues exactly as an
//! uninterrupted one would.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::TrainError;
use crate::nn::Model;

/// One epoch's numbers; `epoch` plus named values (loss, lr, …).
pub type Record = BTreeMap<String, f64>;

/// The `curves` output: `{"stage": …, "records": [{"epoch": 0, "loss": …}, …]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Curves {
    pub stage: String,
    pub records: Vec<Record>,
}

impl Curves {
    pub fn new(stage: &str) -> Self {
        Curves {
            stage: stage.into(),
            records: Vec::new(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| TrainError::io(path, e.to_string()))?;
        crate::util::atomic_write(path, &json).map_err(|e| TrainError::io(path, e.to_string()))
    }
}

/// RNG for epoch `epoch` of a run seeded with `seed` (independent streams per purpose).
pub fn epoch_rng(seed: u64, epoch: usize, stream: u64) -> rand_chacha::ChaCha8Rng {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    rng
}

/// A seeded permutation of `0..n` cut into full batches of `batch` (drop_last, as the reference).
pub fn epoch_batches(n: usize, batch: usize, seed: u64, epoch: usize) -> Vec<Vec<i64>> {
    let mut idx: Vec<i64> = (0..n as i64).collect();
    idx.shuffle(&mut epoch_rng(seed, epoch, 1));
    idx.chunks_exact(batch).map(<[i64]>::to_vec).collect()
}

/// Where checkpoints go: `SCAN_WORK_DIR` when the runner provides one.
pub fn work_dir() -> Option<PathBuf> {
    std::env::var_os("SCAN_WORK_DIR").map(PathBuf::from)
}

/// The checkpoint file in `SCAN_WORK_DIR`, when the runner provides one.
pub fn checkpoint_path() -> Option<PathBuf> {
    work_dir().map(|w| w.join(CKPT))
}

/// A saved training state: model variables, extra tensors (optimizer state, best weights) and JSON.
pub struct Checkpoint {
    pub tensors: HashMap<String, Tensor>,
    pub json: serde_json::Value,
}

const CKPT: &str = "checkpoint.safetensors";

/// Save a checkpoint atomically into `dir`.
pub fn save_checkpoint(
    dir: &Path,
    tensors: &[(String, Tensor)],
    json: &serde_json::Value,
) -> Result<(), TrainError> {
    let path = dir.join(CKPT);
    let mut data: BTreeMap<&str, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in tensors {
        let t = t
            .detach()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let n = t.numel();
        let mut buf = vec![0u8; n * 4];
        t.f_copy_data_u8(&mut buf, n)?;
        data.insert(name, (t.size().iter().map(|&d| d as usize).collect(), buf));
    }
    let mut views = Vec::new();
    for (name, (shape, buf)) in &data {
        views.push((
            *name,
            TensorView::new(Dtype::F32, shape.clone(), buf)
                .map_err(|e| TrainError::io(&path, e.to_string()))?,
        ));
    }
    let md = HashMap::from([("state".to_string(), json.to_string())]);
    let bytes = safetensors::serialize(views, Some(md))
        .map_err(|e| TrainError::io(&path, e.to_string()))?;
    crate::util::atomic_write(&path, &bytes).map_err(|e| TrainError::io(&path, e.to_string()))
}

/// Load the checkpoint in `dir`, if there is a readable one (an unreadable one is reported and ignored).
pub fn load_checkpoint(dir: &Path, device: Device) -> Option<Checkpoint> {
    let path = dir.join(CKPT);
    let bytes = std::fs::read(&path).ok()?;
    let parsed = (|| -> Result<Checkpoint, String> {
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| e.to_string())?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("state"))
            .ok_or("no state")?;
        let json: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, Kind::Float)
                .map_err(|e| e.to_string())?;
            tensors.insert(name, t.to_device(device));
        }
        Ok(Checkpoint { tensors, json })
    })();
    match parsed {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "warning: ignoring unreadable checkpoint {}: {e}",
                path.display()
            );
            None
        }
    }
}

/// Model variables as named tensors (for checkpoints).
pub fn model_tensors(model: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("model.{n}"), t))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Copy `model.<name>` tensors of a checkpoint back into the model.
pub fn restore_model(model: &mut Model, ckpt: &Checkpoint) -> Result<(), TrainError> {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in model.vs.variables() {
        let t = ckpt
            .tensors
            .get(&format!("model.{name}"))
            .ok_or_else(|| TrainError::Invalid(format!("checkpoint lacks `{name}`")))?;
        var.f_copy_(t)?;
    }
    Ok(())
}

/// Trainable parameters of a model as (name, tensor), sorted by name.
pub fn trainable(model: &Model, filter: impl Fn(&str) -> bool) -> Vec<(String, Tensor)> {
    let trainable: Vec<Tensor> = model.vs.trainable_variables();
    let mut v: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(n, t)| filter(n) && trainable.iter().any(|x| x.data_ptr() == t.data_ptr()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Progress of one epoch: an indicatif bar on a terminal, one summary line on stderr always.
pub struct EpochProgress {
    bar: indicatif::ProgressBar,
    start: Instant,
    images: usize,
    label: String,
    /// 0-based epoch, epochs, steps per epoch and steps done, for the runner's progress events.
    epoch: usize,
    epochs: usize,
    steps: usize,
    step: usize,
}

impl EpochProgress {
    pub fn new(stage: &str, epoch: usize, epochs: usize, steps: usize) -> Self {
        // Under the runner, progress goes to it as events and the runner draws the bar.
        let bar = if scan_core::progress::reporter().active() {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(steps as u64)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let label = format!("{stage} epoch {}/{epochs}", epoch + 1);
        bar.set_prefix(label.clone());
        EpochProgress {
            bar,
            start: Instant::now(),
            images: 0,
            label,
            epoch,
            epochs,
            steps,
            step: 0,
        }
    }

    fn event(&self, rate: f64) -> scan_core::progress::ProgressEvent {
        scan_core::progress::ProgressEvent {
            done: (self.epoch * self.steps + self.step) as u64,
            total: (self.epochs * self.steps) as u64,
            epoch: Some(self.epoch as u64 + 1),
            epochs: Some(self.epochs as u64),
            images_per_s: Some(rate),
            ..Default::default()
        }
    }

    /// After a step over `images` images; `msg` e.g. "loss 4.12".
    pub fn step(&mut self, images: usize, msg: &str) {
        self.images += images;
        let rate = self.images as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!("{msg} {rate:.0} img/s"));
        self.bar.inc(1);
        self.step += 1;
        scan_core::progress::reporter().send(&self.event(rate));
    }

    /// Finish: prints `summary` and returns images/s.
    pub fn finish(self, summary: &str) -> f64 {
        self.bar.finish_and_clear();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = self.images as f64 / secs.max(1e-9);
        eprintln!("{}: {summary} ({rate:.0} img/s, {secs:.1} s)", self.label);
        rate
    }
}

/// Resume from the checkpoint in `SCAN_WORK_DIR`, if any: restores the model and optimizer state and
/// returns (checkpoint, epochs done, curves so far); the caller restores its own extra state.
///
/// A checkpoint whose tensors load but whose bookkeeping is missing or inconsistent (no epoch or
/// step count, curves that do not match the epoch count, a missing model or optimizer tensor) is an
/// error, [`TrainError::Checkpoint`]: resuming from it would silently restart the epoch count or the
/// optimizer's bias correction with restored moments.
pub fn resume(
    stage: &str,
    model: &mut Model,
    opt: &mut super::optim::Optimizer,
) -> Result<Option<(Checkpoint, usize, Curves)>, TrainError> {
    let Some(dir) = work_dir() else {
        return Ok(None);
    };
    let Some(ckpt) = load_checkpoint(&dir, model.device()) else {
        return Ok(None);
    };
    let path = dir.join(CKPT);
    let damaged = |message: String| TrainError::Checkpoint {
        path: path.clone(),
        message,
    };
    let epoch = ckpt.json["epoch"]
        .as_u64()
        .ok_or_else(|| damaged("no epoch count".into()))? as usize;
    let step = ckpt.json["step"]
        .as_i64()
        .filter(|&s| s >= 0)
        .ok_or_else(|| damaged("no optimizer step count".into()))?;
    let curves: Curves = serde_json::from_value(ckpt.json["curves"].clone())
        .map_err(|e| damaged(format!("curves: {e}")))?;
    if curves.stage != stage || curves.records.len() != epoch {
        return Err(damaged(format!(
            "curves of stage `{}` with {} record(s) for {epoch} epoch(s) of `{stage}`",
            curves.stage,
            curves.records.len()
        )));
    }
    restore_model(model, &ckpt).map_err(|e| damaged(e.to_string()))?;
    opt.load_state(&|k| ckpt.tensors.get(k).map(Tensor::shallow_clone), step)
        .map_err(damaged)?;
    eprintln!("{stage}: resuming from checkpoint after epoch {epoch}");
    Ok(Some((ckpt, epoch, curves)))
}

/// Save the end-of-epoch checkpoint (model, optimizer, `extra` tensors, `extra_json` fields) when
/// the runner gave a work directory.
pub fn save_epoch(
    model: &Model,
    opt: &super::optim::Optimizer,
    epoch: usize,
    curves: &Curves,
    extra: Vec<(String, Tensor)>,
    extra_json: serde_json::Value,
) -> Result<(), TrainError> {
    let Some(w) = work_dir() else { return Ok(()) };
    let mut tensors = model_tensors(model);
    tensors.extend(opt.state_tensors());
    tensors.extend(extra);
    let mut json = serde_json::json!({"epoch": epoch + 1, "step": opt.step, "curves": curves});
    if let (Some(obj), serde_json::Value::Object(more)) = (json.as_object_mut(), extra_json) {
        obj.extend(more);
    }
    save_checkpoint(&w, &tensors, &json)
}

/// Close an epoch: print its record, add images/s, append it to the curves.
pub fn end_epoch(progress: EpochProgress, mut rec: Record, curves: &mut Curves) {
    let summary: Vec<String> = rec
        .iter()
        .filter(|(k, _)| *k != "epoch")
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    let mut event = progress.event(0.0);
    event.done = ((progress.epoch + 1) * progress.steps) as u64;
    event.epoch_end = true;
    event.loss = rec.get("loss").copied();
    event.metric = rec
        .iter()
        .find(|(k, _)| k.contains("acc"))
        .map(|(k, v)| (k.clone(), *v));
    let rate = progress.finish(&summary.join(", "));
    event.images_per_s = Some(rate);
    scan_core::progress::reporter().send(&event);
    rec.insert("images_per_s".into(), rate);
    curves.records.push(rec);
}
