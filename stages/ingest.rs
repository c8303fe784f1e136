//! Stage binary `scan-ingest`: raw dataset files in, one dataset artifact per split out.
fn main() -> std::process::ExitCode {
    scan::stage_main(scan_core::builtin::Builtin::Ingest, scan::data::run_stage)
}
