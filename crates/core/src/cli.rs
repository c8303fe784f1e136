//! Command-line interface of the `scan` binary: parses arguments and dispatches to the library
//! (README "Commands"). Progress goes to stderr, results to stdout (`--json` where a machine reads it).
//! Exit codes: 0 success, 1 a stage or command failed, 2 usage error / invalid pipeline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::exp::table::Format;
use crate::runner::graph::DagFormat;
use crate::runner::ui::Verbosity;
use crate::runner::{self, commands, run_cmd, Ctx, RunOptions, RunnerError};

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
    /// Address a recorded experiment (a variant of a sweep, see `scan exp show`) instead of the base
    /// pipeline: `run`, `status`, `explain`, `show` and `export` then act on its stages.
    #[arg(long, global = true, value_name = "NAME")]
    pub exp: Option<String>,
    /// Show only errors (no progress, no stage output).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also show the commands run and other details.
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
        /// Where stages run: `local` child processes, or one `slurm` batch job per stage (default:
        /// `[executor] kind` in pipeline.toml, else local). `-j` bounds the jobs in flight.
        #[arg(long, value_enum, value_name = "KIND")]
        executor: Option<crate::runner::executor::ExecutorKind>,
        /// GPUs of this machine to hand out (`0,1,2,3`): each running stage that declares
        /// `resources = { gpus = N }` gets N of them in CUDA_VISIBLE_DEVICES, other stages none.
        #[arg(long, value_delimiter = ',', value_name = "ID,...")]
        gpus: Option<Vec<String>>,
        /// Override a param for this run: STAGE.PARAM[.SUB]=VALUE (VALUE parsed as TOML, else a
        /// string). Several values (`=2,5,10`) or an inclusive integer range (`=0..3`) make a sweep:
        /// the grid of all `--set` values, each point an experiment.
        #[arg(long = "set", value_name = "STAGE.PARAM=VALUES")]
        sets: Vec<String>,
        /// Repeat every variant with seeds 0..N-1 (set on the `seed` param of --seed-stages).
        #[arg(long, value_name = "N")]
        seeds: Option<u64>,
        /// Stages whose `seed` param --seeds sets (default: the SCAN and self-labeling stages).
        #[arg(long, value_delimiter = ',', value_name = "STAGE,...")]
        seed_stages: Vec<String>,
        /// Name the variants PREFIX,<varying values> instead of the derived names.
        #[arg(long, value_name = "PREFIX")]
        name: Option<String>,
        /// Run the variants of the pipeline's [sweep] table.
        #[arg(long)]
        sweep: bool,
        /// Print per-stage outcomes as JSON.
        #[arg(long)]
        json: bool,
        /// Upload each stage that was built to the remote (write-through; e.g. CI on main).
        #[arg(long)]
        push: bool,
    },
    /// Upload the results of STAGE... (default: every stage built here) and of every stage
    /// upstream to the remote; only objects the remote lacks are sent.
    Push {
        /// Stages whose results to upload, with everything upstream (default: every stage built).
        stages: Vec<String>,
        /// Print per-stage results (objects and bytes sent) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download the outputs of STAGE... (default: the final stages) from the remote, verified.
    /// Keys of stages upstream are computed without running anything; a workspace input absent
    /// here (e.g. the raw dataset) enters with the hash pipeline.lock records.
    Pull {
        /// Stages whose outputs to download (default: the final stages).
        stages: Vec<String>,
        /// Print per-stage results (objects and bytes received) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Experiments: compare the recorded runs (`scan exp show`, `scan exp diff A B`).
    Exp {
        #[command(subcommand)]
        command: ExpCommand,
    },
    /// State of every stage (fresh, stale, pending) and the first reason.
    Status {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Override a param for this command: STAGE.PARAM[.SUB]=VALUE (as for `scan run`).
        #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
        sets: Vec<String>,
    },
    /// The pipeline as a graph with each stage's state: text, or Graphviz (`--dot`) / Mermaid
    /// (`--mermaid`) to render.
    Dag {
        /// Graphviz DOT (`scan dag --dot | dot -Tsvg > dag.svg`).
        #[arg(long, conflicts_with = "mermaid")]
        dot: bool,
        /// Mermaid flowchart (renders in GitHub Markdown).
        #[arg(long)]
        mermaid: bool,
    },
    /// The log of STAGE's current key (timestamped lines); `-f` follows a stage being built.
    Logs {
        /// The stage.
        stage: String,
        /// Follow the log while the stage is being built (waits for it to start).
        #[arg(short, long)]
        follow: bool,
    },
    /// Every reason STAGE is not up to date, compared with pipeline.lock.
    Explain {
        /// The stage to explain.
        stage: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Override a param for this command: STAGE.PARAM[.SUB]=VALUE (as for `scan run`).
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
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete store entries that neither pipeline.lock nor the last N runs reference.
    Gc {
        /// Print what would be removed without removing anything.
        #[arg(long)]
        dry_run: bool,
        /// Also keep what the last N runs used.
        #[arg(long, default_value_t = 3)]
        keep_runs: usize,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob; quarantine corrupt ones (exit 1 if any).
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the results of STAGE... (and everything upstream) into one portable file
    /// (`-o -`: stream it to standard output).
    Export {
        /// The stages to export (their upstream stages come along).
        #[arg(required = true)]
        stages: Vec<String>,
        /// The file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Import a file written by `scan export` (all hashes verified; all or nothing); `-` reads
    /// standard input.
    Import {
        /// A file written by `scan export`.
        file: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Report libtorch version, CUDA/cuDNN, torch threads and the artifact store.
    Doctor,
    /// Print the code identity of every built-in stage (BLAKE3 of the source compiled into it),
    /// e.g. to key a CI cache.
    Identity,
    /// Print a shell completion script (`scan completions bash > /etc/bash_completion.d/scan`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExpCommand {
    /// One table: the params that differ × the metrics, grouped over seeds (mean ± std, n).
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: crate::exp::table::Format,
        /// Shorthand for --format json.
        #[arg(long)]
        json: bool,
        /// Shorthand for --format csv.
        #[arg(long)]
        csv: bool,
        /// Shorthand for --format markdown.
        #[arg(long)]
        md: bool,
        /// Sort by a metric column (descending) or `group`.
        #[arg(long, value_name = "COLUMN")]
        sort: Option<String>,
    },
    /// Draw the experiments: one training stage's curves overlaid (`curves-STAGE.png`) and the
    /// final metrics per group as bars with ±1 std error bars (`metrics.png`).
    Plot {
        /// Experiments to draw (default: all).
        names: Vec<String>,
        /// The training stage whose per-epoch curves are overlaid.
        #[arg(long, default_value = "scan")]
        stage: String,
        /// A curve field to draw (repeatable; default: every field but bookkeeping).
        #[arg(long = "field", value_name = "FIELD")]
        fields: Vec<String>,
        /// A metric of `scan exp show` for the bar chart (repeatable; default: every `.acc`).
        #[arg(long = "metric", value_name = "METRIC")]
        metrics: Vec<String>,
        /// Directory the PNGs are written to.
        #[arg(long, default_value = "exp-plots")]
        out: std::path::PathBuf,
    },
    /// Two experiments' params and metrics side by side.
    Diff {
        /// The first experiment (a name from `scan exp show`).
        a: String,
        /// The second experiment.
        b: String,
    },
}

fn dispatch(cli: &Cli) -> Result<u8, RunnerError> {
    let store = cli.store.as_deref();
    let exp = cli.exp.as_deref();
    // The context of the base pipeline or of `--exp NAME`, plus `--set` overrides.
    let ctx = |sets: &[String]| -> Result<Ctx, RunnerError> {
        let mut all = match exp {
            Some(name) => run_cmd::experiment(&cli.pipeline, name)?.sets(),
            None => Vec::new(),
        };
        all.extend(sets.iter().cloned());
        Ctx::load(&cli.pipeline, store, &all)?
            .with_remote(cli.remote.as_deref(), cli.require_remote)
    };
    match &cli.command {
        Command::Run {
            stages,
            jobs,
            dry_run,
            executor,
            gpus,
            sets,
            seeds,
            seed_stages,
            name,
            sweep,
            json,
            push,
        } => {
            let opts = RunOptions {
                targets: stages.clone(),
                jobs: *jobs,
                dry_run: *dry_run,
                executor: *executor,
                gpus: gpus.clone(),
                push: *push,
                remote: cli.remote.clone(),
                require_remote: cli.require_remote,
            };
            let args = run_cmd::SweepArgs {
                sets: sets.clone(),
                seeds: *seeds,
                seed_stages: seed_stages.clone(),
                name: name.clone(),
                sweep: *sweep,
                exp: cli.exp.clone(),
            };
            let runs = run_cmd::run(&cli.pipeline, store, &opts, &args)?;
            let several =
                runs.len() > 1 || cli.exp.is_some() || runs.iter().any(|(n, _)| n != "base");
            if *json {
                let value = if several {
                    serde_json::to_value(
                        runs.iter()
                            .map(|(n, o)| serde_json::json!({"experiment": n, "stages": o}))
                            .collect::<Vec<_>>(),
                    )
                } else {
                    serde_json::to_value(&runs[0].1)
                };
                let text = value
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .map_err(|e| RunnerError::Failed(e.to_string()))?;
                println!("{text}");
            } else if !dry_run {
                for (name, outcomes) in &runs {
                    if several {
                        println!("== {name}");
                    }
                    for o in outcomes {
                        let key = o.key.as_ref().map(|k| k.short()).unwrap_or("-");
                        println!("{:<14} {:<8} {key}", o.stage, o.status);
                    }
                }
            }
            let bad = runs
                .iter()
                .flat_map(|(_, o)| o)
                .filter(|o| o.status == "failed" || o.status == "not run")
                .count();
            Ok(if bad > 0 { 1 } else { 0 })
        }
        Command::Push { stages, json } => runner::remote::push(&ctx(&[])?, stages, *json),
        Command::Pull { stages, json } => runner::remote::pull(&ctx(&[])?, stages, *json),
        Command::Exp { command } => {
            let base = Ctx::load(&cli.pipeline, store, &[])?;
            match command {
                ExpCommand::Show {
                    format,
                    json,
                    csv,
                    md,
                    sort,
                } => {
                    let format = match (json, csv, md) {
                        (true, _, _) => Format::Json,
                        (_, true, _) => Format::Csv,
                        (_, _, true) => Format::Markdown,
                        _ => *format,
                    };
                    commands::exp_show(&base, format, sort.as_deref())
                }
                ExpCommand::Diff { a, b } => commands::exp_diff(&base, a, b),
                ExpCommand::Plot {
                    names,
                    stage,
                    fields,
                    metrics,
                    out,
                } => commands::exp_plot(
                    &base,
                    &crate::exp::plot::PlotRequest {
                        stage: stage.clone(),
                        fields: fields.clone(),
                        metrics: metrics.clone(),
                        only: names.clone(),
                        out: out.clone(),
                    },
                ),
            }
        }
        Command::Status { json, sets } => commands::status(&ctx(sets)?, *json),
        Command::Logs { stage, follow } => runner::logs::logs(&ctx(&[])?, stage, *follow),
        Command::Dag { dot, mermaid } => {
            let ctx = ctx(&[])?;
            let plans = runner::plan::plan(&ctx)?;
            let format = match (dot, mermaid) {
                (true, _) => DagFormat::Dot,
                (_, true) => DagFormat::Mermaid,
                _ => DagFormat::Text,
            };
            print!("{}", runner::graph::render(&ctx.pipeline, &plans, format));
            Ok(0)
        }
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
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "scan", &mut std::io::stdout());
            Ok(0)
        }
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
    runner::ui::init(match (cli.quiet, cli.verbose) {
        (true, _) => Verbosity::Quiet,
        (_, true) => Verbosity::Verbose,
        _ => Verbosity::Normal,
    });
    if matches!(cli.command, Command::Run { .. }) {
        runner::ui::ui().catch_interrupts();
    }
    let result = dispatch(&cli);
    if runner::ui::ui().interrupted() {
        eprintln!("scan: interrupted");
        return ExitCode::from(130);
    }
    match result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand and every flag says what it does in `--help`.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && a.get_help().is_none() {
                    missing.push(format!("{path} --{}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "scan", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
