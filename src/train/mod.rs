//! Training stages: SimCLR pretext (METHOD.md §3), embedding (§4), SCAN clustering
//! (§5) and self-labeling (§6), plus their shared optimizer/checkpoint machinery.

pub mod cluster;
pub mod common;
pub mod embed;
pub mod engine;
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
    /// A checkpoint in the work directory that cannot be resumed from.
    #[error("damaged checkpoint {path}: {message}; delete it to run the stage from the start")]
    Checkpoint { path: PathBuf, message: String },
    /// Training produced a non-finite value where a decision depends on it.
    #[error("{0}")]
    Diverged(String),
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

/// The ResNet stem for images of `height` pixels (`auto`: STL stem from 64 pixels on).
pub fn resolve_arch(arch: scan_core::params::Arch, height: usize) -> crate::nn::Arch {
    match arch.for_height(height) {
        scan_core::params::Arch::Stl => crate::nn::Arch::Stl,
        _ => crate::nn::Arch::Cifar,
    }
}

/// Hungarian-matched accuracy of cluster ids `pred` against labels `truth` (all ≥ 0), for monitoring.
pub fn hungarian_acc(pred: &[i64], truth: &[i64], clusters: usize, classes: usize) -> f64 {
    let pred: Vec<usize> = pred.iter().map(|&p| p as usize).collect();
    let truth: Vec<usize> = truth.iter().map(|&t| t as usize).collect();
    let table = crate::metrics::Contingency::new(&pred, &truth, clusters, classes.max(1));
    crate::metrics::hungarian(&table).1
}
