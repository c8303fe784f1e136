//! Stage binary `scan-evaluate` (METHOD.md §8): metrics, predictions, pictures and report of a
//! weights artifact on the test split; all logic in [`scan_evaluate`].
fn main() -> std::process::ExitCode {
    scan::stage_main(
        scan_core::builtin::Builtin::Evaluate,
        scan_evaluate::run_stage,
    )
}
