//! Stage `selflabel` (METHOD.md §6): from the selected SCAN weights (best head only), each step
//! takes a weak view (no augmentation) and a strong view (METHOD.md §7), both through the model in
//! train mode (weak under no-grad); confident samples (max p strictly > threshold) train the strong
//! view towards their weak argmax with the class-balanced cross-entropy. A batch without a confident
//! sample is skipped and counted (the reference raises). Optional EMA of the weights ([`Ema`]).

use std::path::Path;

use tch::{Device, Tensor};

use super::cluster::{head_probs, ViewAugment};
use super::common::{self, Checkpoint, Record};
use super::engine::{self, LoopConfig, StepLoss, Task};
use super::optim::{OptimKind, Optimizer};
use super::TrainError;
use crate::augment::AugRng;
use crate::data::Dataset;
use crate::nn::precision::Precision;
use crate::nn::{self, LoadRule, Model, WeightsMeta};

pub use scan_core::params::SelflabelParams;

pub struct SelflabelInputs<'a> {
    pub weights: &'a Path,
    pub train: &'a Path,
    /// For monitoring only (test accuracy per epoch when labelled).
    pub test: Option<&'a Path>,
}

/// Per-epoch counts of self-labeling.
#[derive(Debug, Default)]
struct EpochSums {
    loss: f64,
    used: usize,
    skipped: usize,
    confident: i64,
    seen: usize,
}

/// Self-labeling as a [`Task`]: pseudo-labels from the weak view, class-balanced cross-entropy on
/// the strong view for the confident samples; optional EMA after each step.
struct SelflabelTask<'a> {
    p: &'a SelflabelParams,
    weak: ViewAugment,
    strong: ViewAugment,
    images: Tensor,
    monitor: Option<(&'a Dataset, Tensor)>,
    norm: &'a nn::NormMeta,
    classes: usize,
    device: Device,
    ema: Option<Ema>,
    sums: EpochSums,
}

impl Task for SelflabelTask<'_> {
    fn lr(&self, _epoch: usize) -> f64 {
        self.p.lr
    }

    fn begin_epoch(&mut self, _epoch: usize) {
        self.sums = EpochSums::default();
    }

    fn loss(
        &mut self,
        model: &Model,
        batch: &[i64],
        rng: &mut AugRng,
    ) -> Result<StepLoss, TrainError> {
        let x = self
            .images
            .index_select(0, &engine::batch_index(batch, self.device));
        let weak_logits = {
            let _g = tch::no_grad_guard();
            model
                .cluster_forward(&self.weak.apply(&x, rng), true)
                .remove(0)
        };
        let strong_logits = model
            .cluster_forward(&self.strong.apply(&x, rng), true)
            .remove(0);
        self.sums.seen += batch.len();
        Ok(
            match crate::losses::selflabel_loss(&weak_logits, &strong_logits, self.p.threshold) {
                None => {
                    self.sums.skipped += 1;
                    StepLoss::Skip {
                        message: "no confident sample: batch skipped".into(),
                    }
                }
                Some((loss, k)) => {
                    let l = loss.double_value(&[]);
                    self.sums.loss += l;
                    self.sums.used += 1;
                    self.sums.confident += k;
                    StepLoss::Loss {
                        loss,
                        message: format!(
                            "loss {l:.4} confident {:.3}",
                            k as f64 / batch.len() as f64
                        ),
                    }
                }
            },
        )
    }

    fn after_step(&mut self, model: &mut Model) {
        if let Some(e) = &mut self.ema {
            e.update(model);
        }
    }

    fn end_epoch(
        &mut self,
        model: &Model,
        _epoch: usize,
        rec: &mut Record,
    ) -> Result<(), TrainError> {
        let s = &self.sums;
        rec.insert(
            "loss".into(),
            if s.used > 0 {
                s.loss / s.used as f64
            } else {
                f64::NAN
            },
        );
        rec.insert(
            "confident_fraction".into(),
            s.confident as f64 / s.seen.max(1) as f64,
        );
        rec.insert("skipped_batches".into(), s.skipped as f64);
        if let Some((t, test_images)) = &self.monitor {
            let probs = head_probs(model, test_images, self.norm, self.p.eval_batch_size);
            let pred = Vec::<i64>::try_from(&probs[0].argmax(1, false).to_device(Device::Cpu))?;
            rec.insert(
                "test_acc".into(),
                super::hungarian_acc(&pred, &t.labels, self.classes, t.num_classes()),
            );
        }
        Ok(())
    }

    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        let extra = self
            .ema
            .as_ref()
            .map(Ema::checkpoint_tensors)
            .unwrap_or_default();
        (extra, serde_json::Value::Null)
    }

    fn resume(
        &mut self,
        _model: &mut Model,
        ckpt: &Checkpoint,
        _epoch: usize,
    ) -> Result<(), TrainError> {
        if let Some(e) = &mut self.ema {
            e.restore(ckpt).map_err(|message| TrainError::Checkpoint {
                path: common::checkpoint_path().unwrap_or_default(),
                message,
            })?;
        }
        Ok(())
    }
}

/// Train; writes `weights` (the last epoch, one head) and `curves` into `out`.
pub fn run(p: &SelflabelParams, inputs: &SelflabelInputs, out: &Path) -> Result<(), TrainError> {
    nn::init_threads();
    let device = nn::device();
    let train = Dataset::load(inputs.train)?;
    let test = inputs.test.map(Dataset::load).transpose()?;
    let n = train.len();
    if p.batch_size == 0 || p.batch_size > n {
        return Err(TrainError::Invalid(format!(
            "parameter `batch_size` = {} must be between 1 and {n} (drop_last)",
            p.batch_size
        )));
    }
    if !(0.0..1.0).contains(&p.threshold) {
        return Err(TrainError::Invalid(format!(
            "parameter `threshold` = {} must be in [0, 1)",
            p.threshold
        )));
    }
    let precision = Precision::resolve(p.precision, device).map_err(TrainError::Invalid)?;
    let scan = nn::weights::read_meta(inputs.weights)?;
    if scan.kind == "simclr" {
        return Err(TrainError::Invalid(format!(
            "{}: `selflabel` needs SCAN weights, got SimCLR weights",
            inputs.weights.display()
        )));
    }
    let mut config = scan.model.clone();
    config.num_heads = 1;
    tch::manual_seed(p.seed as i64);
    let mut model = Model::cluster(config.clone(), device);
    nn::weights::load_into(&mut model, inputs.weights, LoadRule::Backbone)?;
    nn::weights::load_head(&mut model, inputs.weights, scan.best_head)?;
    let mut opt = Optimizer::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: p.weight_decay,
        },
        common::trainable(&model, |_| true),
    );
    let size = train.height.min(train.width) as i64;
    let (weak, strong) = views(p, size, &scan.normalize)?;
    weak.validate(train.channels, train.height, train.width)?;
    strong.validate(train.channels, train.height, train.width)?;
    let images = nn::images_tensor(&train, device);
    // Monitoring data, built once: the labelled test split and its images.
    let monitor = test
        .as_ref()
        .filter(|t| t.labels.iter().all(|&l| l >= 0))
        .map(|t| (t, nn::images_tensor(t, Device::Cpu)));

    let ema = p.ema.then(|| Ema::new(&model, p.ema_alpha));
    let mut task = SelflabelTask {
        p,
        weak,
        strong,
        images,
        monitor,
        norm: &scan.normalize,
        classes: config.num_classes as usize,
        device,
        ema,
        sums: EpochSums::default(),
    };
    let cfg = LoopConfig {
        stage: "selflabel",
        epochs: p.epochs,
        batch_size: p.batch_size,
        seed: p.seed,
        n,
        precision,
        channels_last: LoopConfig::channels_last_for(precision, device),
    };
    let curves = engine::fit(&mut task, &mut model, &mut opt, &cfg)?;
    let meta = WeightsMeta {
        format_version: nn::weights::FORMAT_VERSION,
        kind: "selflabel".into(),
        model: config,
        best_head: 0,
        normalize: scan.normalize.clone(),
        dataset: train.meta.dataset.clone(),
        num_batches_tracked: scan.num_batches_tracked + 2 * opt.step,
    };
    nn::weights::save(&model, &meta, &out.join("weights"))?;
    curves.save(&out.join("curves"))
}

/// The two views of stage `selflabel` under its params: (weak, strong), each named by
/// `weak_augmentation` / `strong_augmentation` with `cutout` and `num_ops`, cropping to `size`
/// (METHOD.md §6.2).
pub fn views(
    p: &SelflabelParams,
    size: i64,
    norm: &nn::NormMeta,
) -> Result<(ViewAugment, ViewAugment), TrainError> {
    Ok((
        ViewAugment::new(p.weak_augmentation, size, norm, p.cutout, p.num_ops)?,
        ViewAugment::new(p.strong_augmentation, size, norm, p.cutout, p.num_ops)?,
    ))
}

/// Exponential moving average of the weights (METHOD.md §6.5), applied after every optimizer step:
/// shadow θ̃ ← α·θ̃ + (1−α)·θ for the trainable parameters, the BN buffers (running statistics)
/// copied from the model as they are now, then the model takes the shadow.
///
/// The parameter update is the reference's (`utils/ema.py`). The buffers are not: the reference's
/// shadow keeps the buffers it captured when the EMA was created, and `apply_shadow` loads them back
/// after every step, so its BN running statistics are reset to their starting values at every
/// step. Here they keep evolving (METHOD.md §10).
pub struct Ema {
    alpha: f64,
    /// (variable name, shadow copy), every variable of the model.
    shadow: Vec<(String, Tensor)>,
}

impl Ema {
    /// A shadow of every variable of `model` as it is now.
    pub fn new(model: &Model, alpha: f64) -> Self {
        let mut shadow: Vec<(String, Tensor)> = model
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.detach().copy()))
            .collect();
        shadow.sort_by(|a, b| a.0.cmp(&b.0));
        Ema { alpha, shadow }
    }

    /// Update the shadow from `model` and load it into `model`.
    pub fn update(&mut self, model: &mut Model) {
        let _guard = tch::no_grad_guard();
        let trainable = model.vs.trainable_variables();
        let mut vars = model.vs.variables();
        for (name, s) in self.shadow.iter_mut() {
            let Some(v) = vars.get_mut(name) else {
                continue;
            };
            let is_param = trainable.iter().any(|t| t.data_ptr() == v.data_ptr());
            if is_param {
                let new = &*s * self.alpha + &*v * (1.0 - self.alpha);
                s.copy_(&new);
            } else {
                s.copy_(v);
            }
            v.copy_(s);
        }
    }

    /// The shadow as named checkpoint tensors (`ema.<name>`).
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        self.shadow
            .iter()
            .map(|(n, t)| (format!("ema.{n}"), t.shallow_clone()))
            .collect()
    }

    /// Restore the shadow from a checkpoint; every variable's shadow must be there.
    pub fn restore(&mut self, ckpt: &common::Checkpoint) -> Result<(), String> {
        for (name, t) in self.shadow.iter_mut() {
            let s = ckpt
                .tensors
                .get(&format!("ema.{name}"))
                .ok_or_else(|| format!("the EMA shadow of `{name}` is missing"))?;
            if s.size() != t.size() {
                return Err(format!(
                    "the EMA shadow of `{name}` has shape {:?}",
                    s.size()
                ));
            }
            *t = s.to_device(t.device()).copy();
        }
        Ok(())
    }

    /// The shadow tensors, sorted by name.
    pub fn shadow(&self) -> &[(String, Tensor)] {
        &self.shadow
    }
}
