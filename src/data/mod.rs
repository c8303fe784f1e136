//! Datasets: readers of the official formats (CIFAR-10/100, STL-10, MNIST/Fashion-MNIST IDX, image
//! folders) and the canonical dataset artifact every later stage reads (spec section 1).
//!
//! The artifact (README, "Dataset artifact") is a safetensors file with
//! - `images`: uint8 `[N, H, W, C]` (row-major, channels last),
//! - `labels`: int64 `[N]` (−1 where unknown),
//! - `__metadata__`: a single key `scan` holding canonical JSON of [`DatasetMeta`] (one key, because
//!   safetensors writers order several keys differently, which would break content addressing).

mod artifact;

pub use artifact::{DataError, Dataset, DatasetMeta, SourceFile};
