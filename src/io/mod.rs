//! Parquet I/O of embeddings and neighbour indices.
