//! Stage binary `scan-mine` (METHOD.md §4; logic in `scan::mine`).
fn main() -> std::process::ExitCode {
    scan::stage_main(scan_core::builtin::Builtin::Mine, scan::mine::run_stage)
}
