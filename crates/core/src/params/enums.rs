//! Enum-valued params. Each serialises to the lowercase name used in `pipeline.toml`.

use serde::{Deserialize, Serialize};

/// ResNet-18 stem: `cifar` (3×3 conv, no max-pool), `stl` (with max-pool, METHOD.md §3) or `auto`
/// (`stl` for images of 64 pixels or more).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    #[default]
    Auto,
    Cifar,
    Stl,
}

impl Arch {
    /// The stem for images of `height` pixels.
    pub fn for_height(self, height: usize) -> Arch {
        match self {
            Arch::Auto if height >= 64 => Arch::Stl,
            Arch::Auto => Arch::Cifar,
            other => other,
        }
    }
}

/// What a reference checkpoint holds (stage `import-weights`): a SimCLR model, a SCAN model (any
/// number of heads) or a self-labeled model (one head); `auto` decides from the checkpoint's keys
/// (`contrastive_head.*` → simclr; `cluster_head.*` → scan, or selflabel for a plain state_dict
/// with one head).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportKind {
    #[default]
    Auto,
    Simclr,
    Scan,
    Selflabel,
}

/// Augmentation of a training view: the strong RandAugment + Cutout (METHOD.md §7), the SimCLR one
/// (§3), or none (normalisation only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewAugmentation {
    Strong,
    Simclr,
    None,
}

/// Where a computation runs: `auto` = CUDA when available, else the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// Training precision (METHOD.md §9): `auto` = bf16 autocast on CUDA, fp32 on the CPU; `bf16` =
/// autocast to bfloat16 (CPU or CUDA); `fp16` = autocast to float16 with dynamic loss scaling
/// (CUDA only); `fp32` = no autocast. Weights are saved in fp32 whatever the precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Auto,
    Fp32,
    Bf16,
    Fp16,
}

/// The supported datasets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetKind {
    #[default]
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    #[serde(rename = "mnist")]
    Mnist,
    #[serde(rename = "cifar10")]
    Cifar10,
    /// CIFAR-100 with its 20 superclasses.
    #[serde(rename = "cifar100-20")]
    Cifar100Coarse,
    #[serde(rename = "cifar100")]
    Cifar100,
    #[serde(rename = "stl10")]
    Stl10,
    /// An image folder tree.
    #[serde(rename = "folder")]
    Folder,
}

impl DatasetKind {
    /// The params / metadata name.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100Coarse => "cifar100-20",
            DatasetKind::Cifar100 => "cifar100",
            DatasetKind::Stl10 => "stl10",
            DatasetKind::Folder => "folder",
        }
    }

    /// Where a system package installs the dataset, if one does (Debian's `dataset-fashion-mnist`).
    pub fn system_dir(self) -> Option<&'static str> {
        match self {
            DatasetKind::FashionMnist => Some("/usr/share/datasets/fashion-mnist"),
            _ => None,
        }
    }
}

/// A split, which is also the name of its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
    /// STL-10's 100 000 unlabeled images.
    Unlabeled,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
            Split::Unlabeled => "unlabeled",
        }
    }
}

/// How to choose a subset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubsetMode {
    /// Seeded random, stratified by label.
    #[default]
    Random,
    /// The first N images of the split.
    First,
}

/// Which published table the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Published {
    #[serde(rename = "cifar10")]
    Cifar10,
    #[serde(rename = "cifar100-20")]
    Cifar100_20,
    #[serde(rename = "stl10")]
    Stl10,
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    /// Show no published numbers.
    #[serde(rename = "none")]
    None,
}
