//! Stage binary `scan-selflabel`.
fn main() -> std::process::ExitCode {
    scan::stage::stage_main("scan-selflabel", |_args| anyhow::bail!("stage `selflabel` is not implemented yet"))
}
