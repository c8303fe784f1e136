//! Stage binary `scan-cluster` (see `scan::train::cluster`).
fn main() -> std::process::ExitCode {
    scan::stage_main(
        scan_core::builtin::Builtin::Cluster,
        scan::train::stages::cluster_stage,
    )
}
