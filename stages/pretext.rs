//! Stage binary `scan-pretext` (see `scan::train::pretext`).
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-pretext", scan::train::stages::pretext_stage)
}
