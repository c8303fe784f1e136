//! Command-line interface of the `scan` binary: parses arguments and dispatches to the library.
//! Exit codes: 0 success, 1 a stage or command failed, 2 usage error / invalid pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "scan", version, about = "SCAN image clustering as an incremental, content-addressed pipeline")]
pub struct Cli {
    /// Artifact store directory (default: `artifacts/` in the workspace).
    #[arg(long, global = true, env = "SCAN_STORE")]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report libtorch version, CUDA/cuDNN, torch threads and the artifact store.
    Doctor,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Doctor => crate::doctor::run(cli.store.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("scan: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
