//! The store-facing commands: `scan status`, `explain`, `show`, `gc`, `verify`, `export`, `import`.
//! Results go to stdout (JSON with `--json`), progress and warnings to stderr.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use super::plan::{self, DirtyReason, State};
use super::{Ctx, RunnerError};
use crate::exp::table::{self, Format};
use crate::exp::ExperimentLog;
use crate::store::{OutputKind, OutputRef, StageKey, Store};

#[derive(Debug, Serialize)]
struct StatusRow {
    stage: String,
    state: State,
    key: Option<StageKey>,
    locked_key: Option<StageKey>,
    waiting_on: Vec<String>,
    #[serde(serialize_with = "reasons_json")]
    reasons: Vec<DirtyReason>,
}

/// Reasons as `{kind, message, ...fields}`: the typed fields plus the rendered sentence.
fn reasons_json<S: serde::Serializer>(reasons: &[DirtyReason], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(reasons.len()))?;
    for r in reasons {
        let mut v = serde_json::to_value(r).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("message".into(), r.to_string().into());
        }
        seq.serialize_element(&v)?;
    }
    seq.end()
}

fn rows(ctx: &Ctx) -> Result<Vec<StatusRow>, RunnerError> {
    let plans = plan::plan(ctx)?;
    Ok(ctx
        .pipeline
        .stages
        .iter()
        .zip(&plans)
        .map(|(stage, p)| StatusRow {
            stage: stage.name.clone(),
            state: p.state,
            key: p.key.clone(),
            locked_key: ctx.lock.stages.get(&stage.name).map(|e| e.key.clone()),
            waiting_on: p.waiting_on.clone(),
            reasons: plan::reasons(ctx, stage, p),
        })
        .collect())
}

fn print_json(v: &impl Serialize) -> Result<(), RunnerError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| RunnerError::Failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// `scan status [--json]`.
pub fn status(ctx: &Ctx, json: bool) -> Result<u8, RunnerError> {
    let rows = rows(ctx)?;
    if json {
        print_json(&rows)?;
    } else {
        for r in &rows {
            let key = r.key.as_ref().map(StageKey::short).unwrap_or("-");
            let first = r
                .reasons
                .first()
                .map(|s| format!("  {s}"))
                .unwrap_or_default();
            let more = if r.reasons.len() > 1 {
                format!(" (+{} more: scan explain {})", r.reasons.len() - 1, r.stage)
            } else {
                String::new()
            };
            println!(
                "{:<14} {:<8} {key:<12}{first}{more}",
                r.stage,
                r.state.as_str()
            );
        }
    }
    Ok(0)
}

/// `scan explain STAGE [--json]`: every reason the stage is not up to date.
pub fn explain(ctx: &Ctx, stage: &str, json: bool) -> Result<u8, RunnerError> {
    if ctx.pipeline.stage(stage).is_none() {
        super::schedule::select(ctx, &[stage.to_string()])?;
    }
    let row = rows(ctx)?
        .into_iter()
        .find(|r| r.stage == stage)
        .ok_or_else(|| RunnerError::Usage(format!("no stage `{stage}`")))?;
    if json {
        print_json(&row)?;
    } else if row.reasons.is_empty() {
        println!(
            "{stage}: up to date (key {})",
            row.key.as_ref().map(StageKey::short).unwrap_or("-")
        );
    } else {
        println!("{stage}: {}", row.state.as_str());
        for r in &row.reasons {
            println!("  - {r}");
        }
    }
    Ok(0)
}

/// `scan show STAGE.OUTPUT`: path of the current artifact.
pub fn show(ctx: &Ctx, spec: &str) -> Result<u8, RunnerError> {
    let (stage, output) = spec
        .split_once('.')
        .ok_or_else(|| RunnerError::Usage(format!("`{spec}`: expected STAGE.OUTPUT")))?;
    let s = ctx
        .pipeline
        .stage(stage)
        .ok_or_else(|| RunnerError::Usage(format!("no stage `{stage}`")))?;
    if !s.outputs.iter().any(|o| o == output) {
        return Err(RunnerError::Usage(format!(
            "stage `{stage}` has no output `{output}` (it declares: {})",
            s.outputs.join(", ")
        )));
    }
    let plans = plan::plan(ctx)?;
    let p = plans
        .iter()
        .find(|p| p.name == stage)
        .ok_or_else(|| RunnerError::Usage(format!("no stage `{stage}`")))?;
    if p.state == State::Remote {
        return Err(RunnerError::Failed(format!(
            "stage `{stage}` is on the remote, not in this store: `scan pull {stage}` downloads it"
        )));
    }
    let current: Option<OutputRef> = p
        .outputs
        .as_ref()
        .filter(|_| p.state == State::Fresh)
        .and_then(|o| o.get(output).cloned());
    let o = match current {
        Some(o) => o,
        None => {
            let locked = ctx
                .lock
                .stages
                .get(stage)
                .and_then(|e| e.outputs.get(output))
                .filter(|o| ctx.store.has_output(o));
            match locked {
                Some(o) => {
                    eprintln!("scan: warning: stage `{stage}` is {}; showing its last built output (pipeline.lock)", p.state.as_str());
                    o.clone()
                }
                None => {
                    return Err(RunnerError::Failed(format!(
                        "stage `{stage}` is not built (run `scan run {stage}`)"
                    )))
                }
            }
        }
    };
    println!("{}", ctx.store.output_path(&o)?.display());
    Ok(0)
}

/// `scan show --info STAGE`: where and how the stage's current result was made.
pub fn show_info(ctx: &Ctx, stage: &str, json: bool) -> Result<u8, RunnerError> {
    if ctx.pipeline.stage(stage).is_none() {
        super::schedule::select(ctx, &[stage.to_string()])?;
    }
    let plans = plan::plan(ctx)?;
    let p = plans
        .iter()
        .find(|p| p.name == stage)
        .ok_or_else(|| RunnerError::Usage(format!("no stage `{stage}`")))?;
    let key = match (&p.key, p.state) {
        (Some(k), State::Fresh) => k.clone(),
        _ => {
            return Err(RunnerError::Failed(format!(
                "stage `{stage}` is {} (run `scan run {stage}` first)",
                p.state.as_str()
            )))
        }
    };
    let rec = ctx
        .store
        .read_action(&key)
        .ok_or_else(|| RunnerError::Failed(format!("no action record for key {key}")))?;
    if json {
        print_json(&serde_json::json!({
            "stage": stage,
            "key": rec.key,
            "host": rec.host,
            "started_at": rec.started_at,
            "duration_s": rec.duration_s,
            "provenance": rec.provenance,
        }))?;
        return Ok(0);
    }
    println!("stage:       {stage}");
    println!("key:         {key}");
    println!("host:        {}", rec.host);
    println!("started at:  {} (unix)", rec.started_at);
    println!("wall time:   {:.2} s", rec.duration_s);
    match &rec.provenance {
        Some(p) => {
            println!(
                "device:      {}{}",
                p.device,
                p.device_name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
            println!("libtorch:    {}", p.libtorch.as_deref().unwrap_or("-"));
            println!("cuda:        {}", p.cuda.as_deref().unwrap_or("-"));
            println!("threads:     {}", p.threads);
            println!("precision:   {}", p.precision.as_deref().unwrap_or("-"));
        }
        None => {
            println!("provenance:  not recorded (not a built-in stage, or built by an older scan)")
        }
    }
    Ok(0)
}

/// `scan exp show`: every recorded experiment, grouped over seeds.
pub fn exp_show(ctx: &Ctx, format: Format, sort: Option<&str>) -> Result<u8, RunnerError> {
    let path = crate::exp::log_path(&ctx.pipeline.path);
    let log = ExperimentLog::read(&path).map_err(|e| RunnerError::Failed(e.to_string()))?;
    if log.experiments.is_empty() {
        super::ui::ui().info(&format!(
            "no experiments recorded yet in {} (`scan run` records them)",
            path.display()
        ));
    }
    let rows = table::rows(&log, &ctx.store);
    let mut groups = table::groups(&rows);
    if let Some(col) = sort {
        let known =
            col == "group" || col == "name" || groups.iter().any(|g| g.metrics.contains_key(col));
        if !known {
            return Err(RunnerError::Usage(format!("--sort {col}: no such column")));
        }
    }
    table::sort_groups(&mut groups, sort);
    print!("{}", table::render(&groups, &rows, format));
    Ok(0)
}

/// `scan exp diff A B`.
pub fn exp_diff(ctx: &Ctx, a: &str, b: &str) -> Result<u8, RunnerError> {
    let path = crate::exp::log_path(&ctx.pipeline.path);
    let log = ExperimentLog::read(&path).map_err(|e| RunnerError::Failed(e.to_string()))?;
    let find = |n: &str| {
        log.find(n, &path)
            .map_err(|e| RunnerError::Usage(e.to_string()))
    };
    print!("{}", table::diff(find(a)?, find(b)?, &ctx.store));
    Ok(0)
}

/// `scan exp plot`.
pub fn exp_plot(ctx: &Ctx, req: &crate::exp::plot::PlotRequest) -> Result<u8, RunnerError> {
    let path = crate::exp::log_path(&ctx.pipeline.path);
    let log = ExperimentLog::read(&path).map_err(|e| RunnerError::Failed(e.to_string()))?;
    match crate::exp::plot::plot(&log, &path, &ctx.store, req) {
        Ok(plotted) => {
            if !plotted.left_out.is_empty() {
                super::ui::ui().error(&format!(
                    "warning: left out of the curves (no longer in the store): {}",
                    plotted.left_out.join(", ")
                ));
            }
            for f in plotted.files {
                println!("{}", f.display());
            }
            Ok(0)
        }
        Err(crate::exp::plot::PlotError::Exp(e @ crate::exp::ExpError::Unknown { .. })) => {
            Err(RunnerError::Usage(e.to_string()))
        }
        Err(e) => Err(RunnerError::Failed(e.to_string())),
    }
}

/// `scan gc [--dry-run] [--keep-runs N]`.
pub fn gc(ctx: &Ctx, dry_run: bool, keep_runs: usize, json: bool) -> Result<u8, RunnerError> {
    let _lock = ctx.store.lock_store(true, |h| {
        eprintln!("scan: gc waits for running commands on this store to finish ({h})")
    })?;
    let mut keep: BTreeSet<String> = ctx
        .lock
        .stages
        .values()
        .map(|e| e.key.to_string())
        .collect();
    keep.extend(ctx.store.recent_run_keys(keep_runs)?);
    // A shared store: what every registered workspace's lock file references stays.
    for (root, lock_path) in ctx.store.roots()? {
        if !lock_path.is_file() {
            if !dry_run {
                let _ = std::fs::remove_file(&root);
            }
            continue;
        }
        match super::lockfile::LockFile::read(&lock_path) {
            Ok(lock) => keep.extend(lock.stages.values().map(|e| e.key.to_string())),
            Err(e) => {
                return Err(RunnerError::Failed(format!(
                "gc root {}: {e}; refusing to collect (fix or delete that lock file, or remove {})",
                lock_path.display(),
                root.display()
            )))
            }
        }
    }
    let report = ctx.store.gc(&keep, dry_run)?;
    if json {
        print_json(&report)?;
    } else {
        let verb = if dry_run { "would remove" } else { "removed" };
        println!(
            "{verb} {} action records, {} blobs ({:.1} MiB), {} trees; kept {} action records",
            report.removed_actions.len(),
            report.removed_blobs,
            report.freed_bytes as f64 / 1048576.0,
            report.removed_trees,
            report.kept_actions
        );
    }
    Ok(0)
}

/// `scan verify`: exit 1 when anything was corrupt.
pub fn verify(store: &Store, json: bool) -> Result<u8, RunnerError> {
    let _lock = store.lock_store(true, |h| {
        eprintln!("scan: verify waits for running commands on this store to finish ({h})")
    })?;
    let report = store.verify(|n| {
        if n % 1000 == 0 {
            super::ui::ui().info(&format!("verified {n} blobs"));
        }
    })?;
    if json {
        print_json(&report)?;
    } else {
        for c in &report.corrupt {
            println!(
                "corrupt blob {} (contents hash to {}) → {}",
                c.hash, c.actual, c.moved_to
            );
        }
        for k in &report.bad_actions {
            println!("unreadable action record {k} → quarantine/");
        }
        println!(
            "{} blobs checked, {} corrupt, {} bad action records{}",
            report.blobs_checked,
            report.corrupt.len(),
            report.bad_actions.len(),
            if report.ok() {
                ""
            } else {
                " (quarantined; the next `scan run` rebuilds what they held)"
            }
        );
    }
    Ok(if report.ok() { 0 } else { 1 })
}

/// `scan export STAGE... -o FILE`: the stages' results plus everything upstream (their keys depend on it).
pub fn export(ctx: &Ctx, stages: &[String], out: &Path) -> Result<u8, RunnerError> {
    if stages.is_empty() {
        return Err(RunnerError::Usage(
            "name at least one stage to export".into(),
        ));
    }
    let selected = super::schedule::select(ctx, stages)?;
    let plans = plan::plan(ctx)?;
    let mut keys = Vec::new();
    for i in selected {
        let p = &plans[i];
        match (&p.key, p.state) {
            (Some(k), State::Fresh) => keys.push(k.to_string()),
            _ => {
                return Err(RunnerError::Failed(format!(
                    "stage `{}` is {} (run `scan run {}` before exporting)",
                    p.name,
                    p.state.as_str(),
                    p.name
                )))
            }
        }
    }
    let to_stdout = out == Path::new("-");
    let report = if to_stdout {
        let stdout = std::io::stdout().lock();
        ctx.store
            .export_to(&keys, std::io::BufWriter::new(stdout))?
    } else {
        ctx.store.export(&keys, out)?
    };
    super::ui::ui().info(&format!(
        "exported {} stages ({} blobs, {:.1} MiB) to {}",
        report.actions.len(),
        report.blobs,
        report.bytes as f64 / 1048576.0,
        if to_stdout {
            "stdout".into()
        } else {
            out.display().to_string()
        }
    ));
    if !to_stdout {
        println!("{}", out.display());
    }
    Ok(0)
}

/// `scan import FILE` (`-`: standard input, read in one pass).
pub fn import(store: &Store, file: &Path, json: bool) -> Result<u8, RunnerError> {
    let _lock = store.lock_store(false, |h| {
        eprintln!("scan: waiting for the store lock ({h})")
    })?;
    let report = if file == Path::new("-") {
        store.import_from(std::io::stdin().lock(), Path::new("(stdin)"))?
    } else {
        store.import(file)?
    };
    if json {
        print_json(&report)?;
    } else {
        println!(
            "imported {} action records, {} new blobs ({:.1} MiB) into {}",
            report.actions.len(),
            report.blobs,
            report.bytes as f64 / 1048576.0,
            store.root().display()
        );
    }
    Ok(0)
}

/// Whether an output kind is a directory (for callers printing paths).
pub fn is_dir(o: &OutputRef) -> bool {
    o.kind == OutputKind::Dir
}
