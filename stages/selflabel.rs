//! Stage binary `scan-selflabel` (see `scan::train::selflabel`).
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-selflabel", scan::train::stages::selflabel_stage)
}
