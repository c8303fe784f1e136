//! Stage binary `scan-evaluate`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-evaluate", |_args| anyhow::bail!("stage `evaluate` is not implemented yet"))
}
