//! Datasets: readers of the official formats (CIFAR-10/100, STL-10, MNIST/Fashion-MNIST IDX, image
//! folders) and the canonical dataset artifact every later stage reads (METHOD.md §2).
//!
//! The artifact (README, "Dataset artifact") is a safetensors file with
//! - `images`: uint8 `[N, H, W, C]` (row-major, channels last),
//! - `labels`: int64 `[N]` (−1 where unknown),
//! - `__metadata__`: a single key `scan` holding canonical JSON of [`DatasetMeta`] (one key, because
//!   safetensors writers order several keys differently, which would break content addressing).
//!
//! The `ingest` stage ([`ingest`]) is the only code that knows the raw formats; it reads the
//! official archives in place ([`archive`]) and can fetch them ([`download`]).

pub mod archive;
mod artifact;
pub mod cifar;
pub mod download;
mod error;
pub mod folder;
pub mod idx;
pub mod ingest;
mod norm;
pub mod numpy;
pub mod pickle;
pub mod raw;
pub mod sources;
pub mod stl;
pub mod subset;

pub use artifact::{DataError, Dataset, DatasetMeta, SourceFile, FORMAT_VERSION};
pub use download::{DownloadError, Downloader};
pub use error::IngestError;
pub use ingest::{ingest, ingest_with, load_split, run_stage, DatasetKind, IngestParams, Split};
pub use norm::norm_stats;
pub use subset::{SubsetMode, SubsetParams};
