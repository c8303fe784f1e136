//! The `scan` command: the runner and store commands (README "Commands").
//!
//! This binary compiles the runner's modules directly instead of linking the `scan` library: the
//! library links libtorch, whose loading costs ≈0.5 s at every start, and a no-op `scan run` must
//! take milliseconds. `scan doctor` runs the separate `scan-doctor` binary for the torch report.
// Items used only by the library's other users (stages, tests) are unused here.
#![allow(dead_code, unused_imports)]

#[path = "cli.rs"]
mod cli;
#[path = "runner/mod.rs"]
mod runner;
#[path = "stage.rs"]
mod stage;
#[path = "store/mod.rs"]
mod store;
#[path = "util.rs"]
mod util;

fn main() -> std::process::ExitCode {
    cli::main()
}
