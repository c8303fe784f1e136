//! Stage binary `scan-import-weights`: a reference PyTorch checkpoint in, a weights artifact out
//! (METHOD.md §3.8; logic in `scan::import`).
fn main() -> std::process::ExitCode {
    scan::stage_main(
        scan_core::builtin::Builtin::ImportWeights,
        scan::import::run_stage,
    )
}
