//! Stage `pretext`: SimCLR training of the ResNet-18 (METHOD.md §3). Both views of a batch go
//! through one forward pass; SGD (momentum 0.9, coupled weight decay) with a per-epoch cosine
//! schedule; drop_last; checkpoint every epoch; weighted-kNN monitor when the test split has labels.

use std::path::Path;

use tch::{Device, Tensor};

use super::common::{self, Record};
use super::engine::{self, LoopConfig, StepLoss, Task};
use super::optim::{cosine_lr, OptimKind, Optimizer};
use super::{resolve_arch, TrainError};
use crate::augment::{AugRng, Normalize, SimclrAugment};
use crate::data::Dataset;
use crate::nn::{self, Model, ModelConfig, NormMeta, WeightsMeta};

pub use scan_core::params::PretextParams;

/// Inputs of `pretext`: the train split, optionally extra unlabeled images (STL-10) and the test split.
pub struct PretextInputs<'a> {
    pub train: &'a Path,
    pub unlabeled: Option<&'a Path>,
    pub test: Option<&'a Path>,
}

pub(crate) fn normalization(data: &Dataset) -> NormMeta {
    let (mean, std) = crate::data::norm_stats(&data.meta.dataset, data.channels);
    NormMeta { mean, std }
}

fn concat(mut a: Dataset, b: Dataset) -> Result<Dataset, TrainError> {
    if (a.height, a.width, a.channels) != (b.height, b.width, b.channels) {
        return Err(TrainError::Invalid(
            "`unlabeled` images differ in size from `train`".into(),
        ));
    }
    a.images.extend_from_slice(&b.images);
    a.labels.extend(b.labels.iter().map(|_| -1));
    Ok(a)
}

/// Labelled features for the kNN monitor: L2-normalised SimCLR outputs in eval mode.
fn eval_features(model: &Model, images: &Tensor, norm: &NormMeta, device: Device) -> Tensor {
    Tensor::cat(
        &nn::map_batches(images, norm, 512, device, |x| {
            model.simclr_forward(x, false)
        }),
        0,
    )
}

/// The kNN monitor's data: labelled train images and labels, test images and labels, classes.
type MonitorData = (Tensor, Tensor, Tensor, Tensor, i64);

/// SimCLR as a [`Task`]: both views of a batch in one forward pass, the NT-Xent loss; the cosine
/// schedule; the weighted-kNN monitor at the end of an epoch.
struct PretextTask<'a> {
    p: &'a PretextParams,
    aug: SimclrAugment,
    images: Tensor,
    norm: &'a NormMeta,
    monitor_data: Option<MonitorData>,
    device: Device,
    loss_sum: f64,
    steps: usize,
}

impl Task for PretextTask<'_> {
    fn lr(&self, epoch: usize) -> f64 {
        cosine_lr(self.p.lr, epoch, self.p.epochs)
    }

    fn begin_epoch(&mut self, _epoch: usize) {
        (self.loss_sum, self.steps) = (0.0, 0);
    }

    type Input = Tensor;

    fn inputs(&mut self, batch: &[i64], rng: &mut AugRng) -> Result<Tensor, TrainError> {
        let x = engine::batch_images(&self.images, batch);
        let v0 = self.aug.apply(&x, rng);
        let v1 = self.aug.apply(&x, rng);
        Ok(Tensor::cat(&[v0, v1], 0))
    }

    type Forward = Tensor;

    fn forward(&mut self, model: &Model, views: Tensor) -> Result<Tensor, TrainError> {
        Ok(model.simclr_forward(&views, true))
    }

    fn loss(&mut self, z: Tensor, _batch: &[i64]) -> Result<StepLoss, TrainError> {
        let loss = crate::losses::simclr_loss(&engine::fp32(&z), self.p.temperature);
        let l = loss.double_value(&[]);
        self.loss_sum += l;
        self.steps += 1;
        Ok(StepLoss::Loss {
            loss,
            message: format!("loss {l:.4}"),
        })
    }

    fn end_epoch(
        &mut self,
        model: &Model,
        epoch: usize,
        rec: &mut Record,
    ) -> Result<(), TrainError> {
        let p = self.p;
        rec.insert("loss".into(), self.loss_sum / self.steps.max(1) as f64);
        if let Some((tr_img, tr_lab, te_img, te_lab, classes)) = &self.monitor_data {
            if (epoch + 1).is_multiple_of(p.knn_every) || epoch + 1 == p.epochs {
                let ftr = eval_features(model, tr_img, self.norm, self.device);
                let fte = eval_features(model, te_img, self.norm, self.device);
                // Vote weights exp(sim/τ) with the loss temperature, as the reference's memory bank.
                let acc = super::knn_monitor::weighted_knn_accuracy(
                    &ftr,
                    tr_lab,
                    &fte,
                    te_lab,
                    *classes,
                    p.knn_k,
                    p.temperature,
                );
                rec.insert("knn_acc".into(), acc);
            }
        }
        Ok(())
    }
}

/// Train; writes `weights` and `curves` into `out`.
pub fn run(p: &PretextParams, inputs: &PretextInputs, out: &Path) -> Result<(), TrainError> {
    nn::init_threads();
    let device = nn::device();
    let mut train = Dataset::load(inputs.train)?;
    let labelled = train.clone();
    if let Some(u) = inputs.unlabeled {
        train = concat(train, Dataset::load(u)?)?;
    }
    let test = inputs.test.map(Dataset::load).transpose()?;
    let n = train.len();
    let cfg = LoopConfig::new("pretext", &p.training(), n, device)?;
    let norm = normalization(&train);
    let config = ModelConfig {
        arch: resolve_arch(p.arch, train.height),
        in_channels: train.channels as i64,
        width: p.width,
        proj_dim: p.proj_dim,
        num_heads: 0,
        num_classes: 0,
    };
    tch::manual_seed(p.seed as i64);
    let mut model = Model::simclr(config.clone(), device);
    let mut opt = Optimizer::new(
        OptimKind::Sgd {
            momentum: p.momentum,
            weight_decay: p.weight_decay,
        },
        common::trainable(&model, |_| true),
    );
    let aug = SimclrAugment::cifar(
        train.height as i64,
        Normalize {
            mean: norm.mean.clone(),
            std: norm.std.clone(),
        },
    );
    aug.validate(train.channels as i64)
        .map_err(|e| TrainError::Invalid(format!("augmentation: {e}")))?;
    let images = nn::images_tensor(&train, device);
    let monitor = test.as_ref().filter(|t| {
        p.knn_every > 0
            && t.labels.iter().all(|&l| l >= 0)
            && labelled.labels.iter().all(|&l| l >= 0)
    });
    let monitor_data = monitor.map(|t| {
        (
            nn::images_tensor(&labelled, Device::Cpu),
            Tensor::from_slice(&labelled.labels).to_device(device),
            nn::images_tensor(t, Device::Cpu),
            Tensor::from_slice(&t.labels).to_device(device),
            labelled.num_classes().max(1) as i64,
        )
    });

    let mut task = PretextTask {
        p,
        aug,
        images,
        norm: &norm,
        monitor_data,
        device,
        loss_sum: 0.0,
        steps: 0,
    };
    let curves = engine::fit(&mut task, &mut model, &mut opt, &cfg)?;
    let meta = WeightsMeta {
        format_version: nn::weights::FORMAT_VERSION,
        kind: "simclr".into(),
        model: config,
        best_head: 0,
        normalize: norm,
        dataset: train.meta.dataset.clone(),
        num_batches_tracked: opt.step,
    };
    nn::weights::save(&model, &meta, &out.join("weights"))?;
    curves.save(&out.join("curves"))?;
    Ok(())
}
