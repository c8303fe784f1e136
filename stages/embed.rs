//! Stage binary `scan-embed` (see `scan::train::embed`).
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-embed", scan::train::stages::embed_stage)
}
