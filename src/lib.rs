//! `scan`: the machine-learning library of SCAN ("Learning to Classify Images without Labels", Van
//! Gansbeke et al., ECCV 2020) and its torch stage binaries. The method as implemented is described in
//! `docs/METHOD.md`; each module's doc names the section it implements.
//!
//! The stage protocol, params schemas, store and runner live in the torch-free `scan-core` crate
//! (re-exported here as [`stage`], [`params`] and [`util`]); evaluation and the report in
//! `scan-evaluate`.

pub mod augment;
pub mod data;
pub mod doctor;
pub mod import;
pub mod io;
pub mod kmeans;
pub mod knn;
pub mod losses;
pub mod metrics;
pub mod mine;
pub mod nn;
mod stage_main;
pub mod train;

pub use scan_core::{params, stage, util};
pub use stage_main::{provenance, stage_main};
