//! Stage binary `scan-mine`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-mine", |_args| anyhow::bail!("stage `mine` is not implemented yet"))
}
