//! The integration test binary: one module per concern, sharing the temp-workspace fixture.
mod augment;
mod common;
mod evaluate;
mod ingest;
mod metrics;
mod mine;
mod nn;
mod pipeline;
mod remote;
mod runner;
mod slurm;
mod store;
mod sweep;
mod train;
mod ui;
