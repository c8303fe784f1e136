//! Stage binary `scan-cluster`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-cluster", |_args| anyhow::bail!("stage `cluster` is not implemented yet"))
}
