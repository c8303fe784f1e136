//! The one epoch loop of every training stage (`pretext`, `scan`, `selflabel`).
//!
//! [`fit`] owns what the stages share: resuming from the checkpoint in `SCAN_WORK_DIR`, the seeded
//! per-epoch batches and augmentation RNG, the precision (autocast around the forward pass, loss
//! scaling for fp16), the optimizer step, progress, the per-epoch record and the checkpoint after
//! every epoch. A stage supplies a [`Task`]: the loss of one batch, what happens after an optimizer
//! step (EMA), the end-of-epoch monitoring and selection, and its own checkpoint state.
//!
//! Every epoch's randomness is derived from (seed, epoch), and the checkpoint holds everything the
//! loop and the task change (model, optimizer moments and step, loss scale, the task's state), so a
//! resumed run continues as an uninterrupted one would.
//!
//! Each epoch's record splits its time into `augment_s` (building the batches' inputs, [`Task::inputs`])
//! and `step_s` (forward, loss, backward, optimizer). On CUDA, where kernels run asynchronously,
//! the split is measured only when `SCAN_TIME_SPLIT=1` (it synchronises the device around each
//! batch's augmentation, which costs some throughput); on the CPU it is always exact.

use std::time::Instant;

use tch::{Device, Tensor};

use super::common::{self, Checkpoint, Curves, EpochProgress, Record};
use super::optim::Optimizer;
use super::TrainError;
use crate::augment::AugRng;
use crate::nn::precision::{LossScaler, Precision};
use crate::nn::Model;
use scan_core::params::TrainingParams;

/// What the loop needs to know about a run.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// The stage's name (progress, curves, checkpoints).
    pub stage: &'static str,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Training images (the batches are drawn from `0..n`, drop_last).
    pub n: usize,
    pub precision: Precision,
    /// Train in the channels-last memory layout ([`Model::use_channels_last`]).
    pub channels_last: bool,
}

impl LoopConfig {
    /// The loop of stage `stage` over `n` training images on `device` under the shared training
    /// params: the precision resolved for the device, channels-last where it pays.
    pub fn new(
        stage: &'static str,
        p: &TrainingParams,
        n: usize,
        device: Device,
    ) -> Result<LoopConfig, TrainError> {
        if p.batch_size == 0 || p.batch_size > n {
            return Err(TrainError::Invalid(format!(
                "parameter `batch_size` = {} must be between 1 and the number of training \
                 images ({n}) (drop_last)",
                p.batch_size
            )));
        }
        let precision = Precision::resolve(p.precision, device).map_err(TrainError::Invalid)?;
        if device.is_cuda() {
            crate::nn::precision::set_deterministic(p.deterministic)
                .map_err(TrainError::Invalid)?;
        }
        Ok(LoopConfig {
            stage,
            epochs: p.epochs,
            batch_size: p.batch_size,
            seed: p.seed,
            n,
            precision,
            channels_last: Self::channels_last_for(precision, device),
        })
    }

    /// Whether to use channels-last for `precision` on `device`: on CUDA always; on the CPU with
    /// bf16 (measured faster there, BENCHMARKS.md), not in fp32, whose results stay those of the
    /// plain layout.
    pub fn channels_last_for(precision: Precision, device: Device) -> bool {
        device.is_cuda() || precision == Precision::Bf16
    }
}

/// The loss of one batch, or a skipped batch.
pub enum StepLoss {
    /// Minimise `loss`; `message` goes to the progress line.
    Loss { loss: Tensor, message: String },
    /// No update for this batch (e.g. no confident sample); `message` says why.
    Skip { message: String },
}

/// The stage-specific part of training.
pub trait Task {
    /// Learning rate of `epoch`.
    fn lr(&self, epoch: usize) -> f64;

    /// Start of `epoch`: reset accumulators, derive the task's own per-epoch RNG streams.
    fn begin_epoch(&mut self, _epoch: usize) {}

    /// What one batch's forward pass takes: the augmented views and whatever else it needs.
    type Input;

    /// The inputs of the batch of image indices `batch`, its augmentation drawn from `rng`. Runs
    /// outside autocast; the loop times it apart from the rest of the step (`augment_s`).
    fn inputs(&mut self, batch: &[i64], rng: &mut AugRng) -> Result<Self::Input, TrainError>;

    /// What the forward pass returns (embeddings, logits) for [`Task::loss`].
    type Forward;

    /// Forward pass on one batch's inputs under the run's autocast: convolutions and matrix
    /// products in bf16/fp16 where asked.
    fn forward(&mut self, model: &Model, input: Self::Input) -> Result<Self::Forward, TrainError>;

    /// The loss of the batch from the forward outputs, outside autocast: in fp32 (outputs of a
    /// lower precision are cast up first, [`fp32`]), so similarities and probabilities keep full
    /// precision. The loop does backward and the optimizer step.
    fn loss(&mut self, forward: Self::Forward, batch: &[i64]) -> Result<StepLoss, TrainError>;

    /// After each optimizer step that was applied (e.g. the EMA of the weights).
    fn after_step(&mut self, _model: &mut Model) {}

    /// End of `epoch`: evaluate and select; fill `rec` (the loop adds `epoch`, `lr` and images/s).
    fn end_epoch(
        &mut self,
        model: &Model,
        epoch: usize,
        rec: &mut Record,
    ) -> Result<(), TrainError>;

    /// The task's checkpoint state: extra tensors and JSON fields.
    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        (Vec::new(), serde_json::Value::Null)
    }

    /// Restore the task's state from a checkpoint taken after `epoch` epochs.
    fn resume(
        &mut self,
        _model: &mut Model,
        _ckpt: &Checkpoint,
        _epoch: usize,
    ) -> Result<(), TrainError> {
        Ok(())
    }
}

/// Backward pass and optimizer step for `loss` in `precision`: plain in fp32/bf16; in fp16 with
/// loss scaling, and skipped (returns false) when a gradient is not finite.
pub fn optimize(
    opt: &mut Optimizer,
    scaler: Option<&mut LossScaler>,
    loss: &Tensor,
    lr: f64,
) -> bool {
    opt.zero_grad();
    match scaler {
        None => {
            loss.backward();
            opt.step(lr);
            true
        }
        Some(s) => {
            s.scale_loss(loss).backward();
            if s.unscale_and_update(&mut opt.params) {
                opt.step(lr);
                true
            } else {
                false
            }
        }
    }
}

/// Train `model` with `opt` for the epochs of `cfg` that are not done yet; returns the curves of
/// every epoch. Checkpoints after every epoch when the runner gave a work directory.
pub fn fit<T: Task>(
    task: &mut T,
    model: &mut Model,
    opt: &mut Optimizer,
    cfg: &LoopConfig,
) -> Result<Curves, TrainError> {
    let device = model.device();
    if cfg.channels_last {
        model.use_channels_last();
    }
    let mut scaler = (cfg.precision == Precision::Fp16).then(LossScaler::default);
    let mut curves = Curves::new(cfg.stage);
    let mut start_epoch = 0;
    if let Some((ckpt, epoch, c)) = common::resume(cfg.stage, model, opt)? {
        (start_epoch, curves) = (epoch, c);
        if let Some(s) = &mut scaler {
            s.restore(&ckpt.json["loss_scaler"])
                .map_err(|message| TrainError::Checkpoint {
                    path: common::checkpoint_path().unwrap_or_default(),
                    message,
                })?;
        }
        task.resume(model, &ckpt, epoch)?;
    }
    for epoch in start_epoch..cfg.epochs {
        let lr = task.lr(epoch);
        let batches = common::epoch_batches(cfg.n, cfg.batch_size, cfg.seed, epoch);
        let mut rng = AugRng::new(rand::RngCore::next_u64(&mut common::epoch_rng(
            cfg.seed, epoch, 2,
        )));
        task.begin_epoch(epoch);
        let mut progress = EpochProgress::new(cfg.stage, epoch, cfg.epochs, batches.len());
        let mut overflows = 0usize;
        let mut split = TimeSplit::new(device);
        for batch in &batches {
            let input = split.augment(|| task.inputs(batch, &mut rng))?;
            let forward = cfg
                .precision
                .autocast(device, || task.forward(model, input))?;
            let step = task.loss(forward, batch)?;
            match step {
                StepLoss::Skip { message } => progress.step(batch.len(), &message),
                StepLoss::Loss { loss, message } => {
                    if optimize(opt, scaler.as_mut(), &loss, lr) {
                        task.after_step(model);
                    } else {
                        overflows += 1;
                    }
                    progress.step(batch.len(), &message);
                }
            }
        }
        let mut rec = Record::new();
        rec.insert("epoch".into(), epoch as f64);
        rec.insert("lr".into(), lr);
        split.record(&mut rec);
        if let Some(s) = &scaler {
            rec.insert("loss_scale".into(), s.scale);
            rec.insert("overflow_steps".into(), overflows as f64);
        }
        task.end_epoch(model, epoch, &mut rec)?;
        common::end_epoch(progress, rec, &mut curves);
        let (extra, mut json) = task.checkpoint();
        if let Some(s) = &scaler {
            if !json.is_object() {
                json = serde_json::json!({});
            }
            json["loss_scaler"] = s.state();
        }
        common::save_epoch(model, opt, epoch, &curves, extra, json)?;
    }
    Ok(curves)
}

/// An epoch's time split: seconds spent in [`Task::inputs`] and in the rest of the batches.
struct TimeSplit {
    start: Instant,
    augment_s: f64,
    /// The device to synchronise around the augmentation (CUDA with `SCAN_TIME_SPLIT=1`).
    sync: Option<Device>,
    /// Whether the split is measured at all (not on CUDA without `SCAN_TIME_SPLIT=1`).
    measured: bool,
}

impl TimeSplit {
    fn new(device: Device) -> Self {
        let requested = std::env::var("SCAN_TIME_SPLIT").is_ok_and(|v| v == "1");
        TimeSplit {
            start: Instant::now(),
            augment_s: 0.0,
            sync: (device.is_cuda() && requested).then_some(device),
            measured: !device.is_cuda() || requested,
        }
    }

    fn synchronize(&self) {
        if let Some(Device::Cuda(i)) = self.sync {
            tch::Cuda::synchronize(i as i64);
        }
    }

    /// Runs `f` (a batch's inputs), adding its time to `augment_s`.
    fn augment<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.synchronize();
        let t = Instant::now();
        let out = f();
        self.synchronize();
        self.augment_s += t.elapsed().as_secs_f64();
        out
    }

    /// `augment_s` and `step_s` (the rest of the epoch's batches) into `rec`.
    fn record(&self, rec: &mut Record) {
        if self.measured {
            let total = self.start.elapsed().as_secs_f64();
            rec.insert("augment_s".into(), self.augment_s);
            rec.insert("step_s".into(), (total - self.augment_s).max(0.0));
        }
    }
}

/// `t` in fp32 (a no-op for fp32 tensors): forward outputs made under autocast are bf16/fp16.
pub fn fp32(t: &Tensor) -> Tensor {
    t.to_kind(tch::Kind::Float)
}

/// Indices of `batch` as a tensor on `device`.
pub fn batch_index(batch: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(batch).to_device(device)
}

/// The rows `batch` of `images` (on the images' device).
pub fn batch_images(images: &Tensor, batch: &[i64]) -> Tensor {
    images.index_select(0, &batch_index(batch, images.device()))
}
