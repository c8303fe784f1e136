//! The `scan` command: the runner and store commands, plus `scan doctor`.
fn main() -> std::process::ExitCode {
    scan::cli::main()
}
