//! The integration test binary: one module per concern, sharing the temp-workspace fixture.
mod augment;
mod common;
mod evaluate;
mod fidelity;
mod import;
mod ingest;
mod kmeans;
mod learning;
mod metrics;
mod mine;
mod nn;
mod pipeline;
mod runner;
mod store;
mod sweep;
mod train;
