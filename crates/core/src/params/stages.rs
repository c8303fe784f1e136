//! The params structs of the built-in stages. Defaults are the reference CIFAR-10 configuration
//! (METHOD.md §9); each field's doc says what it controls.

use serde::{Deserialize, Serialize};

use super::enums::{
    Arch, DatasetKind, Device, ImportKind, Precision, Published, Split, SubsetMode,
    ViewAugmentation,
};
use super::{check, ParamError, StageParams};

fn positive(key: &str, v: f64) -> Result<(), ParamError> {
    check(v > 0.0, key, "must be > 0")
}

fn at_least_one(key: &str, v: usize) -> Result<(), ParamError> {
    check(v >= 1, key, "must be at least 1")
}

fn unit_interval(key: &str, v: f64) -> Result<(), ParamError> {
    check((0.0..1.0).contains(&v), key, "must be in [0, 1)")
}

/// The params every training stage (`pretext`, `scan`, `selflabel`) shares, read by the one
/// training loop: [`training_params!`] puts them, defined once here, at the head of each stage's
/// params struct, and `.training()` returns them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    pub precision: Precision,
    pub deterministic: bool,
}

impl TrainingParams {
    /// Checks every training stage shares; `min_batch` is the stage's smallest batch.
    fn validate(&self, min_batch: usize) -> Result<(), ParamError> {
        at_least_one("epochs", self.epochs)?;
        check(
            self.batch_size >= min_batch,
            "batch_size",
            &format!("must be at least {min_batch}"),
        )?;
        positive("lr", self.lr)?;
        check(self.weight_decay >= 0.0, "weight_decay", "must be >= 0")
    }
}

/// A training stage's params struct: the [`TrainingParams`] fields, then the stage's own (serde
/// with defaults and `deny_unknown_fields`, flat in `pipeline.toml` as every param).
macro_rules! training_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Epochs to train.
            pub epochs: usize,
            /// Images per step (the last incomplete batch of an epoch is dropped).
            pub batch_size: usize,
            /// Learning rate (pretext: the start of the cosine schedule; otherwise constant).
            pub lr: f64,
            /// Coupled L2 weight decay.
            pub weight_decay: f64,
            /// Seed of the initialisation, the batch order and the augmentation.
            pub seed: u64,
            /// Training precision: `auto` (bf16 on CUDA, fp32 on the CPU), `fp32`, `bf16`,
            /// `fp16` (CUDA).
            pub precision: Precision,
            /// Deterministic GPU algorithms (bit-identical reruns and resumes on CUDA, slower).
            /// CPU runs are deterministic either way. Left out of the resolved params when
            /// `false`.
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            pub deterministic: bool,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The params the training loop reads.
            pub fn training(&self) -> TrainingParams {
                TrainingParams {
                    epochs: self.epochs,
                    batch_size: self.batch_size,
                    lr: self.lr,
                    weight_decay: self.weight_decay,
                    seed: self.seed,
                    precision: self.precision,
                    deterministic: self.deterministic,
                }
            }
        }
    };
}

/// Params `subset` of `ingest`: images to keep per split, and how to choose them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubsetParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unlabeled: Option<usize>,
    pub mode: SubsetMode,
    pub seed: u64,
}

impl SubsetParams {
    /// Size requested for `split`.
    pub fn size(&self, split: Split) -> Option<usize> {
        match split {
            Split::Train => self.train,
            Split::Test => self.test,
            Split::Unlabeled => self.unlabeled,
        }
    }
}

/// Params of `ingest`. The raw files come from the stage input `data_dir` (see the README,
/// "Datasets"): the runner hashes whatever directory that is. With `download`, an official archive
/// missing there is fetched into the download cache and used only once its official checksum
/// matches, so the stage key still determines the bytes read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestParams {
    pub dataset: DatasetKind,
    pub splits: Vec<Split>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetParams>,
    /// Fetch the official archive of `dataset` (CIFAR, STL-10, MNIST, Fashion-MNIST) into the
    /// download cache (`$SCAN_DATA_CACHE`, default `~/.cache/scan/datasets`) when `data_dir` does not
    /// hold the files; the archive's official MD5 is checked before it is read. Left out of the
    /// resolved params when `false`, so that pipelines not using it keep their keys.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub download: bool,
}

impl Default for IngestParams {
    fn default() -> Self {
        IngestParams {
            dataset: DatasetKind::FashionMnist,
            splits: vec![Split::Train, Split::Test],
            subset: None,
            download: false,
        }
    }
}

impl StageParams for IngestParams {
    fn validate(&self) -> Result<(), ParamError> {
        check(!self.splits.is_empty(), "splits", "is empty")?;
        for (i, s) in self.splits.iter().enumerate() {
            if self.splits[..i].contains(s) {
                return Err(ParamError::new(
                    "splits",
                    format!("split `{}` is listed twice", s.name()),
                ));
            }
            if *s == Split::Unlabeled && self.dataset != DatasetKind::Stl10 {
                return Err(ParamError::new(
                    "splits",
                    format!(
                        "split `unlabeled` exists only for stl10, not {}",
                        self.dataset.name()
                    ),
                ));
            }
        }
        check(
            !(self.download && self.dataset == DatasetKind::Folder),
            "download",
            "there is nothing to download for dataset `folder`",
        )?;
        if let Some(sub) = &self.subset {
            for s in [Split::Train, Split::Test, Split::Unlabeled] {
                let key = format!("subset.{}", s.name());
                match sub.size(s) {
                    Some(0) => return Err(ParamError::new(key, "must be at least 1")),
                    Some(_) if !self.splits.contains(&s) => {
                        return Err(ParamError::new(
                            key,
                            format!("is given but split `{}` is not in `splits`", s.name()),
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Params of `import-weights`: a reference PyTorch checkpoint (`.pth.tar`) turned into a weights
/// artifact (METHOD.md §3.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportParams {
    /// What the checkpoint holds; `auto` decides from its keys.
    pub kind: ImportKind,
    /// The dataset the model was trained on: its normalisation statistics (METHOD.md §2.3) go into
    /// the weights' metadata.
    pub dataset: DatasetKind,
    /// The backbone stem, which a state_dict does not record: `auto` = `stl` for `stl10`, else
    /// `cifar`.
    pub arch: Arch,
    /// The head to predict with; default: the checkpoint's `head` entry (SCAN), else 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_head: Option<usize>,
}

impl Default for ImportParams {
    fn default() -> Self {
        ImportParams {
            kind: ImportKind::Auto,
            dataset: DatasetKind::Cifar10,
            arch: Arch::Auto,
            best_head: None,
        }
    }
}

impl StageParams for ImportParams {}

training_params! {
    /// Params of `pretext` (SimCLR, METHOD.md §3).
    pub struct PretextParams {
        pub momentum: f64,
        pub temperature: f64,
        /// Base width of the ResNet-18 (64 = the paper).
        pub width: i64,
        pub proj_dim: i64,
        pub arch: Arch,
        /// Run the weighted-kNN monitor every N epochs (0 = never); needs labelled train and test.
        pub knn_every: usize,
        pub knn_k: i64,
    }
}

impl Default for PretextParams {
    fn default() -> Self {
        PretextParams {
            epochs: 500,
            batch_size: 512,
            lr: 0.4,
            momentum: 0.9,
            weight_decay: 1e-4,
            temperature: 0.1,
            width: 64,
            proj_dim: 128,
            arch: Arch::Auto,
            seed: 0,
            precision: Precision::Auto,
            deterministic: false,
            knn_every: 1,
            knn_k: 100,
        }
    }
}

impl StageParams for PretextParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.training().validate(2)?;
        unit_interval("momentum", self.momentum)?;
        positive("temperature", self.temperature)?;
        check(self.width >= 1, "width", "must be at least 1")?;
        check(self.proj_dim >= 1, "proj_dim", "must be at least 1")?;
        check(self.knn_k >= 1, "knn_k", "must be at least 1")
    }
}

/// Params of `embed` (METHOD.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedParams {
    pub batch_size: usize,
}

impl Default for EmbedParams {
    fn default() -> Self {
        EmbedParams { batch_size: 512 }
    }
}

impl StageParams for EmbedParams {
    fn validate(&self) -> Result<(), ParamError> {
        at_least_one("batch_size", self.batch_size)
    }
}

/// Params of `mine` (METHOD.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MineParams {
    /// Neighbours per train sample, self excluded.
    pub k_train: usize,
    /// Neighbours per test sample, self excluded.
    pub k_test: usize,
    pub device: Device,
    /// L2-normalise every row before the search (inner product = cosine similarity), for embeddings
    /// made elsewhere that are not normalised; `embed`'s own output already is. Left out of the
    /// resolved params when `false`, so that pipelines not using it keep their keys.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub normalize: bool,
}

impl Default for MineParams {
    fn default() -> Self {
        MineParams {
            k_train: 20,
            k_test: 5,
            device: Device::Auto,
            normalize: false,
        }
    }
}

impl StageParams for MineParams {
    fn validate(&self) -> Result<(), ParamError> {
        at_least_one("k_train", self.k_train)?;
        at_least_one("k_test", self.k_test)
    }
}

/// Params of `kmeans`, the pretext + K-means baseline (METHOD.md §8.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KmeansParams {
    /// Clusters; 0 = the number of classes (the largest label + 1).
    pub num_clusters: usize,
    /// Seeded k-means++ restarts; the run with the lowest inertia is kept.
    pub restarts: usize,
    /// Lloyd iterations per restart at most.
    pub max_iter: usize,
    /// Convergence tolerance relative to the mean per-dimension variance (scikit-learn's `tol`).
    pub tol: f64,
    pub seed: u64,
}

impl Default for KmeansParams {
    fn default() -> Self {
        KmeansParams {
            num_clusters: 0,
            restarts: 10,
            max_iter: 300,
            tol: 1e-4,
            seed: 0,
        }
    }
}

impl StageParams for KmeansParams {
    fn validate(&self) -> Result<(), ParamError> {
        at_least_one("restarts", self.restarts)?;
        at_least_one("max_iter", self.max_iter)?;
        check(self.tol >= 0.0, "tol", "must be >= 0")
    }
}

training_params! {
    /// Params of `scan` (METHOD.md §5).
    pub struct ScanParams {
        /// λ of the entropy term.
        pub entropy_weight: f64,
        pub num_heads: usize,
        /// Clusters per head; 0 = the number of classes of the train split.
        pub num_clusters: i64,
        /// Freeze the backbone (eval mode) and train only the heads (ImageNet setting).
        pub update_cluster_head_only: bool,
        /// Augmentation of both views: `strong` (METHOD.md §7) or `simclr` (the ablation).
        pub augmentation: ViewAugmentation,
        /// Cutout side length of the strong augmentation (16; STL-10 32).
        pub cutout: i64,
        pub num_ops: usize,
        pub eval_batch_size: usize,
    }
}

impl Default for ScanParams {
    fn default() -> Self {
        ScanParams {
            epochs: 50,
            batch_size: 128,
            lr: 1e-4,
            weight_decay: 1e-4,
            entropy_weight: 5.0,
            num_heads: 1,
            num_clusters: 0,
            update_cluster_head_only: false,
            augmentation: ViewAugmentation::Strong,
            cutout: 16,
            num_ops: 4,
            seed: 0,
            precision: Precision::Auto,
            deterministic: false,
            eval_batch_size: 512,
        }
    }
}

/// Checks shared by the strong-augmentation settings of `scan` and `selflabel`.
fn check_strong(cutout: i64, num_ops: usize) -> Result<(), ParamError> {
    check(cutout >= 0, "cutout", "must be >= 0")?;
    check(
        num_ops <= 14,
        "num_ops",
        "must be at most 14 (the RandAugment ops)",
    )
}

impl StageParams for ScanParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.training().validate(2)?;
        check(self.entropy_weight >= 0.0, "entropy_weight", "must be >= 0")?;
        at_least_one("num_heads", self.num_heads)?;
        check(self.num_clusters >= 0, "num_clusters", "must be >= 0")?;
        check(
            self.augmentation != ViewAugmentation::None,
            "augmentation",
            "must be `strong` or `simclr`",
        )?;
        check_strong(self.cutout, self.num_ops)?;
        at_least_one("eval_batch_size", self.eval_batch_size)
    }
}

training_params! {
    /// Params of `selflabel` (METHOD.md §6).
    pub struct SelflabelParams {
        /// Confidence threshold (strict).
        pub threshold: f64,
        /// Exponential moving average of the weights after every step (reference: ImageNet only).
        pub ema: bool,
        pub ema_alpha: f64,
        /// View giving the pseudo-labels: `none` (the reference) or `strong`/`simclr` (ablations).
        pub weak_augmentation: ViewAugmentation,
        /// View being trained: `strong` (the reference) or `none`/`simclr` (ablations).
        pub strong_augmentation: ViewAugmentation,
        pub cutout: i64,
        pub num_ops: usize,
        pub eval_batch_size: usize,
    }
}

impl Default for SelflabelParams {
    fn default() -> Self {
        SelflabelParams {
            epochs: 200,
            batch_size: 1000,
            lr: 1e-4,
            weight_decay: 1e-4,
            threshold: 0.99,
            ema: false,
            ema_alpha: 0.999,
            weak_augmentation: ViewAugmentation::None,
            strong_augmentation: ViewAugmentation::Strong,
            cutout: 16,
            num_ops: 4,
            seed: 0,
            precision: Precision::Auto,
            deterministic: false,
            eval_batch_size: 512,
        }
    }
}

impl StageParams for SelflabelParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.training().validate(1)?;
        check(
            self.threshold > 0.0 && self.threshold < 1.0,
            "threshold",
            "must be in (0, 1)",
        )?;
        unit_interval("ema_alpha", self.ema_alpha)?;
        check_strong(self.cutout, self.num_ops)?;
        at_least_one("eval_batch_size", self.eval_batch_size)
    }
}

/// Params of `evaluate` (METHOD.md §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalParams {
    /// Prediction batch size.
    pub batch_size: usize,
    /// Most confident samples shown per cluster beside its prototype.
    pub grid_top: usize,
    /// Clusters shown in the prototype grid (the first ones).
    pub grid_max_clusters: usize,
    /// Anchors in the nearest-neighbour grid.
    pub nn_anchors: usize,
    /// Neighbours shown per anchor.
    pub nn_neighbors: usize,
    /// Published numbers to show; default: from the test split's dataset name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
}

impl Default for EvalParams {
    fn default() -> Self {
        EvalParams {
            batch_size: 256,
            grid_top: 8,
            grid_max_clusters: 20,
            nn_anchors: 8,
            nn_neighbors: 10,
            published: None,
        }
    }
}

impl StageParams for EvalParams {
    fn validate(&self) -> Result<(), ParamError> {
        at_least_one("batch_size", self.batch_size)
    }
}
