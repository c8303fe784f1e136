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
    /// (pseudo-label, true label) of every confident sample, when the train split is labelled:
    /// how right the pseudo-labels are (METHOD.md §6, "Why self-labeling may not help").
    pairs: Vec<(i64, i64)>,
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
    ema: Option<Ema>,
    sums: EpochSums,
    /// Train labels, for the confident set's precision and balance (monitoring only).
    train_labels: Option<Vec<i64>>,
}

impl SelflabelTask<'_> {
    /// Record the confident samples of a batch: pseudo-label (weak argmax) and true label.
    fn record_confident(&mut self, weak_logits: &Tensor, batch: &[i64]) -> Result<(), TrainError> {
        let Some(labels) = &self.train_labels else {
            return Ok(());
        };
        let probs = weak_logits.softmax(1, tch::Kind::Float);
        let (max_prob, target) = probs.max_dim(1, false);
        let mask = Vec::<bool>::try_from(&max_prob.gt(self.p.threshold).to_device(Device::Cpu))?;
        let target = Vec::<i64>::try_from(&target.to_device(Device::Cpu))?;
        for ((&i, &confident), &t) in batch.iter().zip(&mask).zip(&target) {
            if confident {
                self.sums.pairs.push((t, labels[i as usize]));
            }
        }
        Ok(())
    }
}

/// Precision of the confident set (Hungarian-matched accuracy of its pseudo-labels) and its
/// balance (smallest over largest pseudo-label count among the `classes` clusters; 0 when a
/// cluster has no confident sample).
fn confident_quality(pairs: &[(i64, i64)], classes: usize, label_classes: usize) -> (f64, f64) {
    let pred: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let truth: Vec<i64> = pairs.iter().map(|p| p.1).collect();
    let precision = super::hungarian_acc(&pred, &truth, classes, label_classes);
    let mut counts = vec![0usize; classes];
    for &p in &pred {
        if let Some(c) = counts.get_mut(p as usize) {
            *c += 1;
        }
    }
    let (min, max) = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    (
        precision,
        if max == 0 {
            0.0
        } else {
            min as f64 / max as f64
        },
    )
}

impl Task for SelflabelTask<'_> {
    fn lr(&self, _epoch: usize) -> f64 {
        self.p.lr
    }

    fn begin_epoch(&mut self, _epoch: usize) {
        self.sums = EpochSums::default();
    }

    /// The weak and the strong view of the batch.
    type Input = (Tensor, Tensor);

    fn inputs(&mut self, batch: &[i64], rng: &mut AugRng) -> Result<(Tensor, Tensor), TrainError> {
        let x = engine::batch_images(&self.images, batch);
        let weak = self.weak.apply(&x, rng);
        Ok((weak, self.strong.apply(&x, rng)))
    }

    type Forward = (Tensor, Tensor);

    fn forward(
        &mut self,
        model: &Model,
        (weak, strong): (Tensor, Tensor),
    ) -> Result<(Tensor, Tensor), TrainError> {
        let weak_logits = {
            let _g = tch::no_grad_guard();
            model.cluster_forward(&weak, true).remove(0)
        };
        let strong_logits = model.cluster_forward(&strong, true).remove(0);
        Ok((weak_logits, strong_logits))
    }

    fn loss(&mut self, logits: (Tensor, Tensor), batch: &[i64]) -> Result<StepLoss, TrainError> {
        let (weak_logits, strong_logits) = (engine::fp32(&logits.0), engine::fp32(&logits.1));
        self.sums.seen += batch.len();
        self.record_confident(&weak_logits, batch)?;
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
        if let (Some(labels), false) = (&self.train_labels, s.pairs.is_empty()) {
            let label_classes = labels.iter().copied().max().unwrap_or(0).max(0) as usize + 1;
            let (precision, balance) = confident_quality(&s.pairs, self.classes, label_classes);
            rec.insert("confident_precision".into(), precision);
            rec.insert("confident_balance".into(), balance);
        }
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
    let cfg = LoopConfig::new("selflabel", &p.training(), n, device)?;
    if !(0.0..1.0).contains(&p.threshold) {
        return Err(TrainError::Invalid(format!(
            "parameter `threshold` = {} must be in [0, 1)",
            p.threshold
        )));
    }
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
        ema,
        sums: EpochSums::default(),
        train_labels: train
            .labels
            .iter()
            .all(|&l| l >= 0)
            .then(|| train.labels.clone()),
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

#[cfg(test)]
mod tests {
    use super::confident_quality;

    #[test]
    fn confident_set_precision_is_matched_and_balance_is_min_over_max() {
        // Clusters 0 → class 1 and 1 → class 0 under the best matching: 3 of 4 right.
        let pairs = [(0, 1), (0, 1), (1, 0), (1, 1), (1, 0)];
        let (precision, balance) = confident_quality(&pairs, 2, 2);
        assert!((precision - 4.0 / 5.0).abs() < 1e-12, "{precision}");
        assert!((balance - 2.0 / 3.0).abs() < 1e-12, "{balance}");
        // A cluster without a confident sample: balance 0.
        assert_eq!(confident_quality(&[(0, 0)], 3, 3).1, 0.0);
    }
}
