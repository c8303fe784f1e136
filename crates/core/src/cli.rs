//! Command-line interface of the `scan` binary: parses arguments and dispatches to the library
//! (README "Commands"). Progress goes to stderr, results to stdout (`--json` where a machine reads it).
//! Exit codes: 0 success, 1 a stage or command failed, 2 usage error / invalid pipeline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runner::{self, commands, Ctx, RunOptions, RunnerError};

#[derive(Debug, Parser)]
#[command(
    name = "scan",
    version,
    about = "SCAN image clustering as an incremental, content-addressed pipeline"
)]
pub struct Cli {
    /// Artifact store directory (default: `artifacts/` in the workspace).
    #[arg(long, global = true, env = "SCAN_STORE")]
    pub store: Option<PathBuf>,
    /// Pipeline file; its directory is the workspace.
    #[arg(long, global = true, default_value = runner::PIPELINE_FILE)]
    pub pipeline: PathBuf,
    /// Remote store URL (s3://bucket/prefix, gs://…, az://…, https://host/path, file:///dir);
    /// overrides `[remote] url` of the pipeline file; `none` disables it. Credentials come from
    /// the service's environment (AWS_*, GOOGLE_*, AZURE_*, SCAN_REMOTE_HTTP_AUTHORIZATION).
    #[arg(long, global = true, env = "SCAN_REMOTE", value_name = "URL")]
    pub remote: Option<String>,
    /// Fail when the remote cannot be reached (by default `scan run` warns and builds locally).
    #[arg(long, global = true)]
    pub require_remote: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the stale stages among STAGE... (default: all) and what they need, in DAG order.
    Run {
        /// Target stages (default: every stage).
        stages: Vec<String>,
        /// Stages to run in parallel.
        #[arg(long, short = 'j', default_value_t = 1)]
        jobs: usize,
        /// Print the plan (what would run and why) without running anything.
        #[arg(long)]
        dry_run: bool,
        /// Override a param for this run: STAGE.PARAM[.SUB]=VALUE (VALUE parsed as TOML, else a string).
        #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
        sets: Vec<String>,
        /// Print per-stage outcomes as JSON.
        #[arg(long)]
        json: bool,
        /// Upload each stage that was built to the remote (write-through; e.g. CI on main).
        #[arg(long)]
        push: bool,
    },
    /// Upload the results of STAGE... (default: all) and of every stage upstream to the remote;
    /// only objects the remote lacks are sent.
    Push {
        stages: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Download the outputs of STAGE... (default: the final stages) from the remote, verified.
    /// Keys of stages upstream are computed without running anything; a workspace input absent
    /// here (e.g. the raw dataset) enters with the hash pipeline.lock records.
    Pull {
        stages: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// State of every stage (fresh, stale, pending) and the first reason.
    Status {
        #[arg(long)]
        json: bool,
        #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
        sets: Vec<String>,
    },
    /// Every reason STAGE is not up to date, compared with pipeline.lock.
    Explain {
        stage: String,
        #[arg(long)]
        json: bool,
        #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
        sets: Vec<String>,
    },
    /// Print the store path of a stage output (STAGE.OUTPUT), or with `--info STAGE` where and how
    /// the stage's current result was made (host, device, libtorch, threads, precision, wall time).
    Show {
        /// STAGE.OUTPUT (or STAGE with --info).
        output: String,
        /// Show the provenance of the stage's current result instead of a path.
        #[arg(long)]
        info: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete store entries that neither pipeline.lock nor the last N runs reference.
    Gc {
        #[arg(long)]
        dry_run: bool,
        /// Also keep what the last N runs used.
        #[arg(long, default_value_t = 3)]
        keep_runs: usize,
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob; quarantine corrupt ones (exit 1 if any).
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write the results of STAGE... (and everything upstream) into one portable file
    /// (`-o -`: stream it to standard output).
    Export {
        #[arg(required = true)]
        stages: Vec<String>,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Import a file written by `scan export` (all hashes verified; all or nothing); `-` reads
    /// standard input.
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Report libtorch version, CUDA/cuDNN, torch threads and the artifact store.
    Doctor,
    /// Print the code identity of every built-in stage (BLAKE3 of the source compiled into it),
    /// e.g. to key a CI cache.
    Identity,
}

fn dispatch(cli: &Cli) -> Result<u8, RunnerError> {
    let store = cli.store.as_deref();
    let ctx = |sets: &[String]| {
        Ctx::load(&cli.pipeline, store, sets)?.with_remote(cli.remote.as_deref(), cli.require_remote)
    };
    match &cli.command {
        Command::Run {
            stages,
            jobs,
            dry_run,
            sets,
            json,
            push,
        } => {
            let ctx = ctx(sets)?;
            if *push && ctx.remote.is_none() {
                return Err(RunnerError::Usage(
                    "--push: no remote configured ([remote] url in the pipeline file, --remote or SCAN_REMOTE)".into(),
                ));
            }
            let opts = RunOptions {
                targets: stages.clone(),
                jobs: *jobs,
                dry_run: *dry_run,
                push: *push,
            };
            let outcomes = runner::schedule::run(&ctx, &opts)?;
            if *json {
                let text = serde_json::to_string_pretty(&outcomes)
                    .map_err(|e| RunnerError::Failed(e.to_string()))?;
                println!("{text}");
            } else if !dry_run {
                for o in &outcomes {
                    let key = o.key.as_deref().map(crate::store::short).unwrap_or("-");
                    println!("{:<14} {:<8} {key}", o.stage, o.status);
                }
            }
            let bad = outcomes
                .iter()
                .filter(|o| o.status == "failed" || o.status == "not run")
                .count();
            Ok(if bad > 0 { 1 } else { 0 })
        }
        Command::Push { stages, json } => runner::remote::push(&ctx(&[])?, stages, *json),
        Command::Pull { stages, json } => runner::remote::pull(&ctx(&[])?, stages, *json),
        Command::Status { json, sets } => commands::status(&ctx(sets)?, *json),
        Command::Explain { stage, json, sets } => commands::explain(&ctx(sets)?, stage, *json),
        Command::Show {
            output,
            info: false,
            ..
        } => commands::show(&ctx(&[])?, output),
        Command::Show {
            output,
            info: true,
            json,
        } => commands::show_info(&ctx(&[])?, output, *json),
        Command::Identity => {
            for b in crate::builtin::Builtin::ALL {
                println!("{} {}", b.binary(), b.identity());
            }
            Ok(0)
        }
        Command::Gc {
            dry_run,
            keep_runs,
            json,
        } => commands::gc(&ctx(&[])?, *dry_run, *keep_runs, *json),
        Command::Verify { json } => {
            commands::verify(&runner::store_for(&cli.pipeline, store), *json)
        }
        Command::Export { stages, output } => commands::export(&ctx(&[])?, stages, output),
        Command::Import { file, json } => {
            commands::import(&runner::store_for(&cli.pipeline, store), file, *json)
        }
        Command::Doctor => {
            let default_store = runner::store_for(&cli.pipeline, None);
            exec_doctor(store.unwrap_or(default_store.root()))
                .map_err(|err| RunnerError::Failed(format!("{err:#}")))
        }
    }
}

/// `scan doctor` runs the `scan-doctor` binary (next to `scan`, else on PATH) so that the `scan`
/// runner itself never loads libtorch (≈0.5 s per start) — a no-op `scan run` stays fast.
fn exec_doctor(store: &Path) -> anyhow::Result<u8> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("scan-doctor")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("scan-doctor"));
    let status = std::process::Command::new(&exe)
        .arg("--store")
        .arg(store)
        .status()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    Ok(status.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(1))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("scan: error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::from(err.exit_code())
        }
    }
}
