//! Stage binary `scan-ingest`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-ingest", |_args| anyhow::bail!("stage `ingest` is not implemented yet"))
}
