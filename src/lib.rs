//! `scan`: SCAN ("Learning to Classify Images without Labels", Van Gansbeke et al., ECCV 2020) as an
//! incremental pipeline of content-addressed stage artifacts.
//!
//! Each module owns one concern; `../shared/scan-spec.md` is the method, and each module's doc names
//! the section it implements.

pub mod stage;
pub mod util;
pub mod doctor;
pub mod store;
pub mod runner;
pub mod data;
pub mod io;
pub mod knn;
pub mod mine;
pub mod metrics;
pub mod report;
pub mod evaluate;
pub mod augment;
pub mod nn;
pub mod losses;
pub mod train;
