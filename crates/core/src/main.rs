//! The `scan` command: the runner and store commands (README "Commands"); see [`scan_core::cli`].

fn main() -> std::process::ExitCode {
    scan_core::cli::main()
}
