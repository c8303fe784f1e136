//! Stage binary `scan-embed` (see `scan::train::embed`).
fn main() -> std::process::ExitCode {
    scan::stage_main(
        scan_core::builtin::Builtin::Embed,
        scan::train::stages::embed_stage,
    )
}
