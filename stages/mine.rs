//! Stage binary `scan-mine` (spec section 4; logic in `scan::mine`).
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-mine", scan::mine::run_stage)
}
