//! Stage binary `scan-kmeans`: the pretext + K-means baseline (METHOD.md §8.1; logic in
//! `scan::kmeans`).
fn main() -> std::process::ExitCode {
    scan::stage_main(scan_core::builtin::Builtin::Kmeans, scan::kmeans::run_stage)
}
