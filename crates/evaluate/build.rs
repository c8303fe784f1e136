//! `scan-evaluate` runs torch: the same link fixes as the root package's binaries.
include!("../../build.rs");
