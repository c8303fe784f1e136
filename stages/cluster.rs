//! Stage binary `scan-cluster` (see `scan::train::cluster`).
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-cluster", scan::train::stages::cluster_stage)
}
