//! Parquet I/O of the `embed` and `mine` artifacts (METHOD.md §4; README, "Artifacts").
//!
//! * Embeddings: columns `index` (uint32), `label` (int64, -1 = unknown) and `embedding`
//!   (FixedSizeList<float32, dim>, non-null items); provenance in the file's key-value metadata.
//! * Neighbours: columns `index` (uint32), `neighbors` (FixedSizeList<uint32, k+1>) and
//!   `similarities` (FixedSizeList<float32, k+1>); k, metric, includes-self and the embeddings' hash in
//!   the key-value metadata.
//!
//! Files are uncompressed, plain-encoded and written by an exactly pinned parquet crate, so the same
//! data always gives the same bytes (the store is content-addressed). Writes are atomic (temp file +
//! rename). Every error names the file.
//!
//! Reading is more liberal: the parquet crate is built with the snappy, zstd, lz4 and gzip codecs,
//! and [`read_embeddings`] also takes embeddings written by other tools (any Parquet file with one
//! list-of-float column, or a NumPy `.npy` float matrix, [`npy`]).

mod common;
mod embeddings;
mod neighbors;
pub mod npy;

pub use common::IoError;
pub use embeddings::{
    read_embeddings, rows_normalized, write_embeddings, EmbeddingMeta, Embeddings,
};
pub use neighbors::{read_neighbors, write_neighbors, NeighborMeta, Neighbors};
