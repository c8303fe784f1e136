//! Stage `scan`: SCAN clustering (METHOD.md §5). Backbone from the pretext weights (every backbone
//! key must load) plus `num_heads` linear heads; each sample = anchor + one neighbour drawn uniformly
//! from all k+1 mined columns; both strongly augmented; two train-mode forward passes; loss summed over
//! heads; Adam with coupled L2, constant lr; after every epoch the head and weights with the lowest
//! test-split selection loss (entropy weight 1) are kept.

use std::path::Path;

use rand::Rng;
use tch::{Device, Kind, Tensor};

use super::common::{self, Checkpoint, Record};
use super::engine::{self, LoopConfig, StepLoss, Task};
use super::optim::{OptimKind, Optimizer};
use super::TrainError;
use crate::augment::{AugRng, Normalize};
use crate::data::Dataset;
use crate::nn::{self, LoadRule, Model, WeightsMeta};
use scan_core::params::ViewAugmentation;

pub use scan_core::params::ScanParams;

pub struct ScanInputs<'a> {
    pub weights: &'a Path,
    pub train: &'a Path,
    pub test: &'a Path,
    pub neighbors_train: &'a Path,
    pub neighbors_test: &'a Path,
}

/// The augmentation of the training views, chosen by name.
pub enum ViewAugment {
    Strong(crate::augment::StrongAugment),
    Simclr(crate::augment::SimclrAugment),
    None(Normalize),
}

impl ViewAugment {
    pub fn new(
        kind: ViewAugmentation,
        size: i64,
        norm: &nn::NormMeta,
        cutout: i64,
        num_ops: usize,
    ) -> Result<Self, TrainError> {
        let normalize = Normalize {
            mean: norm.mean.clone(),
            std: norm.std.clone(),
        };
        match kind {
            ViewAugmentation::Strong => Ok(ViewAugment::Strong(crate::augment::StrongAugment {
                crop_size: size,
                num_ops,
                cutout,
                flip_p: 0.5,
                normalize,
            })),
            ViewAugmentation::Simclr => Ok(ViewAugment::Simclr(
                crate::augment::SimclrAugment::cifar(size, normalize),
            )),
            ViewAugmentation::None => Ok(ViewAugment::None(normalize)),
        }
    }

    /// The view augmentation of stage `scan` under its params: `augmentation` with `cutout` and
    /// `num_ops`, cropping to `size` (METHOD.md §5.2).
    pub fn for_scan(p: &ScanParams, size: i64, norm: &nn::NormMeta) -> Result<Self, TrainError> {
        ViewAugment::new(p.augmentation, size, norm, p.cutout, p.num_ops)
    }

    /// Check the settings against the images (channels, crop size) before training starts: a
    /// mismatch is a clear error here instead of a failure inside a tensor op.
    pub fn validate(&self, channels: usize, height: usize, width: usize) -> Result<(), TrainError> {
        let (c, h, w) = (channels as i64, height as i64, width as i64);
        match self {
            ViewAugment::Strong(a) => a.validate(c, h, w),
            ViewAugment::Simclr(a) => a.validate(c),
            ViewAugment::None(n) => n.validate(c),
        }
        .map_err(|e| TrainError::Invalid(format!("augmentation: {e}")))
    }

    pub fn apply(&self, x: &Tensor, rng: &mut AugRng) -> Tensor {
        match self {
            ViewAugment::Strong(a) => a.apply(x, rng),
            ViewAugment::Simclr(a) => a.apply(x, rng),
            ViewAugment::None(n) => n.apply(x),
        }
    }
}

/// Softmax probabilities of every head on every image (eval mode, test-time transform).
pub fn head_probs(
    model: &Model,
    images: &Tensor,
    norm: &nn::NormMeta,
    batch: usize,
) -> Vec<Tensor> {
    let mut per_head: Vec<Vec<Tensor>> = Vec::new();
    for batch in nn::map_batches(images, norm, batch, model.device(), |x| {
        model.cluster_forward(x, false)
    }) {
        for (h, logits) in batch.into_iter().enumerate() {
            if per_head.len() <= h {
                per_head.push(Vec::new());
            }
            per_head[h].push(logits.softmax(1, Kind::Float));
        }
    }
    per_head.into_iter().map(|v| Tensor::cat(&v, 0)).collect()
}

fn neighbors_tensor(path: &Path, n: usize, device: Device) -> Result<(Tensor, i64), TrainError> {
    let nb = crate::io::read_neighbors(path).map_err(|e| TrainError::io(path, e.to_string()))?;
    if nb.n != n {
        return Err(TrainError::Invalid(format!(
            "{}: {} rows of neighbours for {n} images",
            path.display(),
            nb.n
        )));
    }
    if let Some(&bad) = nb.indices.iter().find(|&&i| i as usize >= n) {
        return Err(TrainError::Invalid(format!(
            "{}: neighbour index {bad} out of range for {n} images",
            path.display()
        )));
    }
    let idx: Vec<i64> = nb.indices.iter().map(|&i| i as i64).collect();
    Ok((
        Tensor::from_slice(&idx)
            .view([n as i64, nb.cols as i64])
            .to_device(device),
        nb.cols as i64,
    ))
}

/// The selected state so far: (selection loss, head, CPU copy of every variable).
type Best = (f64, usize, Vec<(String, Tensor)>);

fn snapshot(model: &Model) -> Vec<(String, Tensor)> {
    model
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().to_device(Device::Cpu).copy()))
        .collect()
}

/// The model's variables that `state` lacks, sorted by name.
fn missing_variables(model: &Model, state: &[(String, Tensor)]) -> Vec<String> {
    let mut missing: Vec<String> = model
        .vs
        .variables()
        .into_keys()
        .filter(|n| !state.iter().any(|(s, _)| s == n))
        .collect();
    missing.sort_unstable();
    missing
}

/// Copy a snapshot back into the model. Every variable of the model must be in it: a partial
/// restore would mix the selected epoch's weights with the last epoch's.
fn restore(model: &mut Model, state: &[(String, Tensor)]) -> Result<(), TrainError> {
    let _guard = tch::no_grad_guard();
    let missing = missing_variables(model, state);
    let mut vars = model.vs.variables();
    if !missing.is_empty() {
        return Err(TrainError::Invalid(format!(
            "the selected snapshot lacks {} variable(s), e.g. {}",
            missing.len(),
            missing[..missing.len().min(5)].join(", ")
        )));
    }
    for (name, t) in state {
        let v = vars.get_mut(name).ok_or_else(|| {
            TrainError::Invalid(format!(
                "the selected snapshot has unknown variable `{name}`"
            ))
        })?;
        v.f_copy_(t)?;
    }
    Ok(())
}

/// The head to select in one epoch: the lowest selection loss among the heads whose loss is finite
/// (first index on ties, as `np.argmin`); `None` when no head has a finite loss.
pub fn select_head(losses: &[f64]) -> Option<(usize, f64)> {
    losses
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .fold(None, |best, (h, l)| match best {
            Some((_, b)) if b <= l => best,
            _ => Some((h, l)),
        })
}

/// Per-head losses of one step: (total, consistency, entropy).
pub type StepLosses = Vec<(f64, f64, f64)>;

/// The SCAN forward pass of one batch (METHOD.md §5.2, §5.6) on already augmented anchor and
/// neighbour images: per head, the anchor and neighbour logits, from two forward passes in train
/// mode (with `head_only`, the backbone runs in eval mode under no-grad and only the heads get
/// gradients).
pub fn scan_forward(
    model: &Model,
    anchors: &Tensor,
    neighbors: &Tensor,
    head_only: bool,
) -> (Vec<Tensor>, Vec<Tensor>) {
    if head_only {
        let (fa, fnb) = {
            let _g = tch::no_grad_guard();
            (
                model.features(anchors, false),
                model.features(neighbors, false),
            )
        };
        (model.head_logits(&fa), model.head_logits(&fnb))
    } else {
        (
            model.cluster_forward(anchors, true),
            model.cluster_forward(neighbors, true),
        )
    }
}

/// The SCAN losses (METHOD.md §5.3) of every head from its anchor and neighbour logits, in fp32:
/// consistency − λ·entropy.
pub fn scan_losses(
    logits: &(Vec<Tensor>, Vec<Tensor>),
    entropy_weight: f64,
) -> Vec<crate::losses::ScanLoss> {
    logits
        .0
        .iter()
        .zip(&logits.1)
        .map(|(a, b)| crate::losses::scan_loss(&engine::fp32(a), &engine::fp32(b), entropy_weight))
        .collect()
}

/// The sum over heads of the total losses (what is minimised).
fn summed(losses: &[crate::losses::ScanLoss]) -> Tensor {
    losses
        .iter()
        .map(|l| l.total.shallow_clone())
        .reduce(|a, b| a + b)
        .expect("at least one head")
}

fn loss_values(losses: &[crate::losses::ScanLoss]) -> StepLosses {
    losses
        .iter()
        .map(|l| {
            (
                l.total.double_value(&[]),
                l.consistency.double_value(&[]),
                l.entropy.double_value(&[]),
            )
        })
        .collect()
}

/// One SCAN step in fp32: [`scan_losses`], backward of their sum over heads, and one optimizer
/// step with learning rate `lr` (the loop's [`engine::optimize`]). Returns each head's loss values.
pub fn scan_step(
    model: &Model,
    opt: &mut Optimizer,
    anchors: &Tensor,
    neighbors: &Tensor,
    entropy_weight: f64,
    head_only: bool,
    lr: f64,
) -> StepLosses {
    let logits = scan_forward(model, anchors, neighbors, head_only);
    let losses = scan_losses(&logits, entropy_weight);
    engine::optimize(opt, None, &summed(&losses), lr);
    loss_values(&losses)
}

/// SCAN as a [`Task`]: anchor + one uniformly drawn neighbour column per sample, both augmented;
/// after every epoch the selection on the test split keeps the best head and weights.
struct ScanTask<'a> {
    p: &'a ScanParams,
    aug: ViewAugment,
    images: Tensor,
    test: &'a Dataset,
    test_images: Tensor,
    nb_train: Tensor,
    nb_test: Tensor,
    cols: i64,
    norm: &'a nn::NormMeta,
    num_heads: usize,
    classes: i64,
    head_only: bool,
    device: Device,
    col_rng: rand_chacha::ChaCha8Rng,
    /// Per-epoch sums of (total, consistency, entropy) means over heads.
    sums: (f64, f64, f64),
    steps: usize,
    best: Option<Best>,
}

impl Task for ScanTask<'_> {
    fn lr(&self, _epoch: usize) -> f64 {
        self.p.lr
    }

    fn begin_epoch(&mut self, epoch: usize) {
        self.col_rng = common::epoch_rng(self.p.seed, epoch, 3);
        (self.sums, self.steps) = ((0.0, 0.0, 0.0), 0);
    }

    /// The augmented anchors and their augmented drawn neighbours.
    type Input = (Tensor, Tensor);

    fn inputs(&mut self, batch: &[i64], rng: &mut AugRng) -> Result<(Tensor, Tensor), TrainError> {
        let idx = engine::batch_index(batch, self.device);
        let cols_drawn: Vec<i64> = batch
            .iter()
            .map(|_| self.col_rng.gen_range(0..self.cols))
            .collect();
        let nidx = self
            .nb_train
            .index_select(0, &idx)
            .gather(
                1,
                &Tensor::from_slice(&cols_drawn)
                    .view([-1, 1])
                    .to_device(self.device),
                false,
            )
            .view([-1]);
        let xa = self.aug.apply(&self.images.index_select(0, &idx), rng);
        let xn = self.aug.apply(&self.images.index_select(0, &nidx), rng);
        Ok((xa, xn))
    }

    type Forward = (Vec<Tensor>, Vec<Tensor>);

    fn forward(
        &mut self,
        model: &Model,
        (xa, xn): (Tensor, Tensor),
    ) -> Result<Self::Forward, TrainError> {
        Ok(scan_forward(model, &xa, &xn, self.head_only))
    }

    fn loss(&mut self, logits: Self::Forward, _batch: &[i64]) -> Result<StepLoss, TrainError> {
        let losses = scan_losses(&logits, self.p.entropy_weight);
        let values = loss_values(&losses);
        let h = values.len() as f64;
        let mean = |f: fn(&(f64, f64, f64)) -> f64| values.iter().map(f).sum::<f64>() / h;
        self.sums.0 += mean(|l| l.0);
        self.sums.1 += mean(|l| l.1);
        self.sums.2 += mean(|l| l.2);
        self.steps += 1;
        Ok(StepLoss::Loss {
            loss: summed(&losses),
            message: format!(
                "total {:.4} consistency {:.4} entropy {:.4}",
                mean(|l| l.0),
                values[0].1,
                values[0].2
            ),
        })
    }

    fn end_epoch(
        &mut self,
        model: &Model,
        epoch: usize,
        rec: &mut Record,
    ) -> Result<(), TrainError> {
        let steps = self.steps.max(1) as f64;
        // Selection on the test split: lowest consistency − 1·entropy over heads and epochs.
        let probs = head_probs(model, &self.test_images, self.norm, self.p.eval_batch_size);
        let totals: Vec<f64> = probs
            .iter()
            .map(|pr| crate::losses::scan_selection_loss(pr, &self.nb_test).0)
            .collect();
        // A non-finite selection loss would make every later comparison false and keep whatever
        // was selected first: a head whose loss is not finite cannot be selected, and an epoch
        // without any finite head is an error.
        let (head, sel_total) = select_head(&totals).ok_or_else(|| {
            TrainError::Diverged(format!(
                "scan epoch {}: the selection loss is not finite for any head ({totals:?}); \
                 training diverged (try a lower `lr`)",
                epoch + 1
            ))
        })?;
        if totals.iter().any(|l| !l.is_finite()) {
            eprintln!(
                "scan epoch {}: warning: heads with a non-finite selection loss are not \
                 selectable ({totals:?})",
                epoch + 1
            );
        }
        if self.best.as_ref().is_none_or(|(l, _, _)| sel_total < *l) {
            self.best = Some((sel_total, head, snapshot(model)));
        }
        rec.insert("total".into(), self.sums.0 / steps);
        rec.insert("consistency".into(), self.sums.1 / steps);
        rec.insert("entropy".into(), self.sums.2 / steps);
        rec.insert("selection_loss".into(), sel_total);
        rec.insert("selection_head".into(), head as f64);
        if self.test.labels.iter().all(|&l| l >= 0) {
            let pred = probs[head].argmax(1, false).to_device(Device::Cpu);
            let pred: Vec<i64> = Vec::<i64>::try_from(&pred)?;
            rec.insert(
                "test_acc".into(),
                super::hungarian_acc(
                    &pred,
                    &self.test.labels,
                    self.classes as usize,
                    self.test.num_classes(),
                ),
            );
        }
        Ok(())
    }

    fn checkpoint(&self) -> (Vec<(String, Tensor)>, serde_json::Value) {
        match &self.best {
            Some((loss, head, state)) => (
                state
                    .iter()
                    .map(|(n, t)| (format!("best.{n}"), t.shallow_clone()))
                    .collect(),
                serde_json::json!({"best_loss": loss, "best_head": head}),
            ),
            None => (Vec::new(), serde_json::Value::Null),
        }
    }

    /// The selected snapshot: absent before the first epoch ended, otherwise complete.
    fn resume(
        &mut self,
        model: &mut Model,
        ckpt: &Checkpoint,
        epoch: usize,
    ) -> Result<(), TrainError> {
        let damaged = |message: String| TrainError::Checkpoint {
            path: common::checkpoint_path().unwrap_or_default(),
            message,
        };
        match (
            ckpt.json["best_loss"].as_f64(),
            ckpt.json["best_head"].as_u64(),
        ) {
            (Some(loss), Some(head)) => {
                let state: Vec<(String, Tensor)> = ckpt
                    .tensors
                    .iter()
                    .filter_map(|(k, t)| {
                        k.strip_prefix("best.")
                            .map(|n| (n.to_string(), t.to_device(Device::Cpu)))
                    })
                    .collect();
                let missing = missing_variables(model, &state);
                if !missing.is_empty() || head as usize >= self.num_heads {
                    return Err(damaged(format!(
                        "the selected snapshot (head {head}) lacks {} variable(s) {:?}",
                        missing.len(),
                        &missing[..missing.len().min(5)]
                    )));
                }
                self.best = Some((loss, head as usize, state));
                Ok(())
            }
            _ if epoch > 0 => Err(damaged(format!(
                "{epoch} epoch(s) done but no selected snapshot"
            ))),
            _ => Ok(()),
        }
    }
}

/// Train; writes `weights` (the selected head and weights) and `curves` into `out`.
pub fn run(p: &ScanParams, inputs: &ScanInputs, out: &Path) -> Result<(), TrainError> {
    nn::init_threads();
    let device = nn::device();
    let train = Dataset::load(inputs.train)?;
    let test = Dataset::load(inputs.test)?;
    let n = train.len();
    let cfg = LoopConfig::new("scan", &p.training(), n, device)?;
    let pre = nn::weights::read_meta(inputs.weights)?;
    let classes = if p.num_clusters > 0 {
        p.num_clusters
    } else {
        train.num_classes() as i64
    };
    if classes < 2 {
        return Err(TrainError::Invalid(
            "parameter `num_clusters`: the train split has no classes; set num_clusters".into(),
        ));
    }
    let mut config = pre.model.clone();
    config.num_heads = p.num_heads.max(1);
    config.num_classes = classes;
    tch::manual_seed(p.seed as i64);
    let mut model = Model::cluster(config.clone(), device);
    nn::weights::load_into(&mut model, inputs.weights, LoadRule::Backbone)?;
    let head_only = p.update_cluster_head_only;
    let mut opt = Optimizer::new(
        OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: p.weight_decay,
        },
        common::trainable(&model, |name| {
            !head_only || name.starts_with("cluster_head.")
        }),
    );
    let (nb_train, cols) = neighbors_tensor(inputs.neighbors_train, n, device)?;
    let (nb_test, _) = neighbors_tensor(inputs.neighbors_test, test.len(), device)?;
    // At native size RandomCrop is a no-op (METHOD.md §7); the smaller side for non-square images.
    let size = train.height.min(train.width) as i64;
    let aug = ViewAugment::for_scan(p, size, &pre.normalize)?;
    aug.validate(train.channels, train.height, train.width)?;
    let images = nn::images_tensor(&train, device);
    let test_images = nn::images_tensor(&test, Device::Cpu);

    let mut task = ScanTask {
        p,
        aug,
        images,
        test: &test,
        test_images,
        nb_train,
        nb_test,
        cols,
        norm: &pre.normalize,
        num_heads: config.num_heads,
        classes,
        head_only,
        device,
        col_rng: common::epoch_rng(p.seed, 0, 3),
        sums: (0.0, 0.0, 0.0),
        steps: 0,
        best: None,
    };
    let curves = engine::fit(&mut task, &mut model, &mut opt, &cfg)?;
    let best = task.best.take();
    let best_head = match &best {
        Some((_, head, state)) => {
            restore(&mut model, state)?;
            *head
        }
        None => 0,
    };
    let meta = WeightsMeta {
        format_version: nn::weights::FORMAT_VERSION,
        kind: "scan".into(),
        model: config,
        best_head,
        normalize: pre.normalize.clone(),
        dataset: train.meta.dataset.clone(),
        num_batches_tracked: pre.num_batches_tracked + opt.step * if head_only { 0 } else { 2 },
    };
    nn::weights::save(&model, &meta, &out.join("weights"))?;
    curves.save(&out.join("curves"))
}
