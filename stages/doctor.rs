//! Binary `scan-doctor` (run by `scan doctor`): libtorch, CUDA and store report; see `scan::doctor`.
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "scan-doctor",
    about = "Report libtorch version, CUDA/cuDNN, torch threads and the store"
)]
struct Args {
    /// Artifact store directory.
    #[arg(long, default_value = "artifacts")]
    store: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match scan::doctor::run(Some(&args.store)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("scan-doctor: error: {err:#}");
            std::process::ExitCode::from(1)
        }
    }
}
