//! Stage binary `scan-pretext` (see `scan::train::pretext`).
fn main() -> std::process::ExitCode {
    scan::stage_main(
        scan_core::builtin::Builtin::Pretext,
        scan::train::stages::pretext_stage,
    )
}
