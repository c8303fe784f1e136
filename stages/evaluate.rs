//! Stage binary `scan-evaluate` (spec section 8): metrics, predictions, pictures and report of a
//! weights artifact on the test split; all logic in [`scan::evaluate`].
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-evaluate", scan::evaluate::run_stage)
}
