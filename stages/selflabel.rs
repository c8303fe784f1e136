//! Stage binary `scan-selflabel` (see `scan::train::selflabel`).
fn main() -> std::process::ExitCode {
    scan::stage_main(
        scan_core::builtin::Builtin::Selflabel,
        scan::train::stages::selflabel_stage,
    )
}
