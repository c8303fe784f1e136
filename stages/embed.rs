//! Stage binary `scan-embed`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-embed", |_args| anyhow::bail!("stage `embed` is not implemented yet"))
}
