//! Stage binary `scan-pretext`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-pretext", |_args| anyhow::bail!("stage `pretext` is not implemented yet"))
}
