//! The integration test binary: one module per concern, sharing the temp-workspace fixture.
mod common;
mod runner;
mod store;
mod ingest;
mod mine;
mod metrics;
mod evaluate;
mod augment;
mod nn;
mod train;
mod pipeline;
