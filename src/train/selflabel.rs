//! Stage `selflabel` (METHOD.md §6): from the selected SCAN weights (best head only), each step
//! takes a weak view (no augmentation) and a strong view (METHOD.md §7), both through the model in
//! train mode (weak under no-grad); confident samples (max p strictly > threshold) train the strong
//! view towards their weak argmax with the class-balanced cross-entropy. A batch without a confident
//! sample is skipped and counted (the reference raises). Optional EMA of the weights ([`Ema`]).

use std::path::Path;

use tch::{Device, Tensor};

use super::cluster::{head_probs, ViewAugment};
use super::common::{self, Curves, EpochProgress, Record};
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
    let mut ema = p.ema.then(|| Ema::new(&model, p.ema_alpha));

    let mut curves = Curves::new("selflabel");
    let mut start_epoch = 0;
    if let Some((ckpt, epoch, c)) = common::resume("selflabel", &mut model, &mut opt)? {
        (start_epoch, curves) = (epoch, c);
        if let Some(e) = &mut ema {
            e.restore(&ckpt).map_err(|message| TrainError::Checkpoint {
                path: common::checkpoint_path().unwrap_or_default(),
                message,
            })?;
        }
    }

    for epoch in start_epoch..p.epochs {
        let batches = common::epoch_batches(n, p.batch_size, p.seed, epoch);
        let mut rng = AugRng::new(rand::RngCore::next_u64(&mut common::epoch_rng(
            p.seed, epoch, 2,
        )));
        let mut progress = EpochProgress::new("selflabel", epoch, p.epochs, batches.len());
        let (mut loss_sum, mut used, mut skipped, mut confident) = (0.0, 0usize, 0usize, 0i64);
        for batch in &batches {
            let x = images.index_select(0, &Tensor::from_slice(batch).to_device(device));
            let weak_logits = {
                let _g = tch::no_grad_guard();
                model
                    .cluster_forward(&weak.apply(&x, &mut rng), true)
                    .remove(0)
            };
            let strong_logits = model
                .cluster_forward(&strong.apply(&x, &mut rng), true)
                .remove(0);
            match crate::losses::selflabel_loss(&weak_logits, &strong_logits, p.threshold) {
                None => {
                    skipped += 1;
                    progress.step(batch.len(), "no confident sample: batch skipped");
                }
                Some((loss, k)) => {
                    opt.zero_grad();
                    loss.backward();
                    opt.step(p.lr);
                    if let Some(e) = &mut ema {
                        e.update(&mut model);
                    }
                    let l = loss.double_value(&[]);
                    loss_sum += l;
                    used += 1;
                    confident += k;
                    progress.step(
                        batch.len(),
                        &format!("loss {l:.4} confident {:.3}", k as f64 / batch.len() as f64),
                    );
                }
            }
        }
        let seen = (batches.len() * p.batch_size) as f64;
        let mut rec = Record::new();
        rec.insert("epoch".into(), epoch as f64);
        rec.insert(
            "loss".into(),
            if used > 0 {
                loss_sum / used as f64
            } else {
                f64::NAN
            },
        );
        rec.insert("confident_fraction".into(), confident as f64 / seen);
        rec.insert("skipped_batches".into(), skipped as f64);
        if let Some((t, test_images)) = &monitor {
            let probs = head_probs(&model, test_images, &scan.normalize, p.eval_batch_size);
            let pred = Vec::<i64>::try_from(&probs[0].argmax(1, false).to_device(Device::Cpu))?;
            rec.insert(
                "test_acc".into(),
                super::hungarian_acc(
                    &pred,
                    &t.labels,
                    config.num_classes as usize,
                    t.num_classes(),
                ),
            );
        }
        common::end_epoch(progress, rec, &mut curves);
        let extra = ema
            .as_ref()
            .map(Ema::checkpoint_tensors)
            .unwrap_or_default();
        common::save_epoch(&model, &opt, epoch, &curves, extra, serde_json::Value::Null)?;
    }
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
