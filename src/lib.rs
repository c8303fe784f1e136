//! `scan`: SCAN ("Learning to Classify Images without Labels", Van Gansbeke et al., ECCV 2020) as an
//! incremental pipeline of content-addressed stage artifacts.
//!
//! Each module owns one concern; `../shared/scan-spec.md` is the method, and each module's doc names
//! the section it implements.

pub mod augment;
pub mod data;
pub mod doctor;
pub mod evaluate;
pub mod io;
pub mod knn;
pub mod losses;
pub mod metrics;
pub mod mine;
pub mod nn;
pub mod report;
pub mod runner;
pub mod stage;
pub mod store;
pub mod train;
pub mod util;
