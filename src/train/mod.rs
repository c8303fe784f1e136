//! Training stages: SimCLR pretext (spec section 3), embedding (section 4), SCAN clustering
//! (section 5) and self-labeling (section 6), plus their shared optimizer/checkpoint machinery.

pub mod cluster;
pub mod common;
pub mod embed;
pub mod knn_monitor;
pub mod optim;
pub mod pretext;
pub mod selflabel;
pub mod stages;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Nn(#[from] crate::nn::NnError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl TrainError {
    pub fn io(path: &Path, message: impl Into<String>) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// `auto` picks the STL stem for images of 64 pixels or more, else the CIFAR stem.
pub fn resolve_arch(arch: &str, height: usize) -> Result<crate::nn::Arch, TrainError> {
    match arch {
        "cifar" => Ok(crate::nn::Arch::Cifar),
        "stl" => Ok(crate::nn::Arch::Stl),
        "auto" if height >= 64 => Ok(crate::nn::Arch::Stl),
        "auto" => Ok(crate::nn::Arch::Cifar),
        other => Err(TrainError::Invalid(format!(
            "parameter `arch`: unknown value `{other}` (cifar, stl, auto)"
        ))),
    }
}

/// Hungarian-matched accuracy of cluster ids `pred` against labels `truth` (all ≥ 0), for monitoring.
pub fn hungarian_acc(pred: &[i64], truth: &[i64], clusters: usize, classes: usize) -> f64 {
    let pred: Vec<usize> = pred.iter().map(|&p| p as usize).collect();
    let truth: Vec<usize> = truth.iter().map(|&t| t as usize).collect();
    let table = crate::metrics::Contingency::new(&pred, &truth, clusters, classes.max(1));
    crate::metrics::hungarian(&table).1
}
