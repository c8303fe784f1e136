//! `scan-core`: the torch-free core of `scan` — the content-addressed [`store`], the make-like
//! [`runner`], the [`stage`] protocol every stage binary speaks, the [`params`] schema of every
//! built-in stage and the [`builtin`] stage registry with code identities computed from the source.
//!
//! Nothing here links libtorch: the `scan` binary (this crate's) starts in milliseconds, and the ML
//! crates depend on this one, never the other way round.

pub mod builtin;
pub mod cli;
pub mod exp;
pub mod params;
pub mod progress;
pub mod runner;
pub mod stage;
pub mod store;
pub mod util;
