//! `scan run`: the stale stages among the targets and everything they need, in DAG order, independent
//! stages in parallel (`--jobs N` worker threads, each supervising one child process). Each stage's key is
//! computed when its upstream stages are done, from the bytes they produced (early cutoff); a key whose
//! result is in the store is reused. Building a key holds its lock, so a concurrent `scan run` on the same
//! store waits for it (naming the holder) and then reuses the result. At the end `pipeline.lock` and the
//! run log are updated with every stage that completed, even when another failed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;

use super::key::{self, KeyManifest, Resolved};
use super::lockfile::{LockEntry, LockFile};
use super::pipeline::Stage;
use super::plan::{self, State};
use super::{Ctx, RunnerError};
use crate::store::gc::RunLogEntry;
use crate::store::{short, OutputRef, StageKey};

/// Options of `scan run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub jobs: usize,
    pub dry_run: bool,
}

/// What happened to one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub stage: String,
    /// `ran`, `cached`, `failed` or `not run`.
    pub status: &'static str,
    pub key: Option<StageKey>,
    pub duration_s: f64,
    pub message: Option<String>,
}

/// A built or reused stage: key, outputs, whether it ran, input hashes.
type Built = (
    StageKey,
    BTreeMap<String, OutputRef>,
    bool,
    BTreeMap<String, key::InputHash>,
);

struct Done {
    index: usize,
    result: Result<Built, RunnerError>,
    duration: f64,
}

/// The selected stages (targets plus everything upstream), as pipeline indices in topological order.
pub fn select(ctx: &Ctx, targets: &[String]) -> Result<Vec<usize>, RunnerError> {
    let p = &ctx.pipeline;
    if targets.is_empty() {
        return Ok((0..p.stages.len()).collect());
    }
    let mut want = BTreeSet::new();
    let mut stack = Vec::new();
    for t in targets {
        let i = p.index(t).ok_or_else(|| {
            let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
            RunnerError::Usage(format!(
                "no stage `{t}` in {} (stages: {})",
                p.path.display(),
                names.join(", ")
            ))
        })?;
        stack.push(i);
    }
    while let Some(i) = stack.pop() {
        if want.insert(i) {
            stack.extend(p.stages[i].deps().into_iter().filter_map(|d| p.index(d)));
        }
    }
    Ok(want.into_iter().collect())
}

/// Print the plan (`--dry-run`): what would run and why.
pub fn dry_run(ctx: &Ctx, selected: &[usize]) -> Result<Vec<StageOutcome>, RunnerError> {
    let plans = plan::plan(ctx)?;
    let mut out = Vec::new();
    for &i in selected {
        let (stage, p) = (&ctx.pipeline.stages[i], &plans[i]);
        let reasons = plan::reasons(ctx, stage, p);
        let only_upstream = reasons.iter().all(|r| r.is_upstream_only());
        let what = match p.state {
            State::Fresh => "cached",
            State::Stale => "would run",
            State::Pending if only_upstream => "would run if its inputs change",
            State::Pending => "would run",
        };
        println!(
            "{:<14} {what}{}",
            stage.name,
            p.key
                .as_ref()
                .map(|k| format!(" (key {})", k.short()))
                .unwrap_or_default()
        );
        if p.state != State::Fresh {
            for r in reasons {
                println!("{:<14}   - {r}", "");
            }
        }
        out.push(StageOutcome {
            stage: stage.name.clone(),
            status: what,
            key: p.key.clone(),
            duration_s: 0.0,
            message: None,
        });
    }
    Ok(out)
}

/// Compute the key of stage `i` from its upstream outputs and build it unless the store has it.
fn run_one(
    ctx: &Ctx,
    stage: &Stage,
    resolved: &Resolved,
    upstream: &BTreeMap<String, BTreeMap<String, OutputRef>>,
) -> Result<Built, RunnerError> {
    let inputs = plan::input_hashes(ctx, stage, |s| upstream.get(s))?;
    let inputs: BTreeMap<String, key::InputHash> = inputs
        .into_iter()
        .map(|(n, i)| {
            i.map(|i| (n.clone(), i)).ok_or_else(|| {
                RunnerError::Usage(format!("stage `{}`: input `{n}` unavailable", stage.name))
            })
        })
        .collect::<Result<_, _>>()?;
    let manifest = KeyManifest::new(stage, resolved, &inputs);
    let key = manifest.key();
    let cached = |ctx: &Ctx| {
        ctx.store
            .read_action(&key)
            .filter(|r| ctx.store.has_outputs(r))
    };
    if let Some(rec) = cached(ctx) {
        return Ok((key, rec.outputs, false, inputs));
    }
    let _lock = ctx.store.lock_key(&key, |holder| {
        eprintln!(
            "scan: {}: waiting for key {} being built by another run ({holder})",
            stage.name,
            key.short()
        );
    })?;
    if let Some(rec) = cached(ctx) {
        eprintln!(
            "scan: {}: reusing the result the other run built",
            stage.name
        );
        return Ok((key, rec.outputs, false, inputs));
    }
    eprintln!("scan: {}: running (key {})", stage.name, key.short());
    let rec = super::exec::build(ctx, stage, resolved, &key, &manifest, &inputs)?;
    Ok((key, rec.outputs, true, inputs))
}

/// Run the selected stages; returns per-stage outcomes (errors only for setup problems).
pub fn run(ctx: &Ctx, opts: &RunOptions) -> Result<Vec<StageOutcome>, RunnerError> {
    let selected = select(ctx, &opts.targets)?;
    if opts.dry_run {
        return dry_run(ctx, &selected);
    }
    let stages: Vec<&Stage> = selected.iter().map(|&i| &ctx.pipeline.stages[i]).collect();
    let resolved = plan::resolve_all(ctx, &stages)?;
    let _store_lock = ctx.store.lock_store(false, |holder| {
        eprintln!("scan: waiting for the store lock ({holder})")
    })?;
    let jobs = opts.jobs.max(1);
    let n = ctx.pipeline.stages.len();
    let mut outcomes: Vec<Option<StageOutcome>> = vec![None; n];
    let mut upstream: BTreeMap<String, BTreeMap<String, OutputRef>> = BTreeMap::new();
    let mut lock_entries: BTreeMap<String, LockEntry> = BTreeMap::new();
    let mut started = vec![false; n];
    let mut failed = false;
    let start = Instant::now();
    std::thread::scope(|sc| {
        let (tx, rx) = mpsc::channel::<Done>();
        let mut running = 0usize;
        loop {
            if !failed {
                for &i in &selected {
                    if running >= jobs {
                        break;
                    }
                    let stage = &ctx.pipeline.stages[i];
                    if started[i] || !stage.deps().iter().all(|d| upstream.contains_key(*d)) {
                        continue;
                    }
                    started[i] = true;
                    running += 1;
                    let tx = tx.clone();
                    let ups: BTreeMap<String, BTreeMap<String, OutputRef>> = stage
                        .deps()
                        .into_iter()
                        .filter_map(|d| upstream.get(d).map(|o| (d.to_string(), o.clone())))
                        .collect();
                    let res = &resolved[&stage.name];
                    sc.spawn(move || {
                        let t = Instant::now();
                        let result = run_one(ctx, stage, res, &ups);
                        let _ = tx.send(Done {
                            index: i,
                            result,
                            duration: t.elapsed().as_secs_f64(),
                        });
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok(done) = rx.recv() else { break };
            running -= 1;
            let stage = &ctx.pipeline.stages[done.index];
            let outcome = match done.result {
                Ok((key, outputs, ran, inputs)) => {
                    if ran {
                        eprintln!("scan: {}: done in {:.2}s", stage.name, done.duration);
                    }
                    lock_entries.insert(
                        stage.name.clone(),
                        LockEntry::new(stage, &resolved[&stage.name], &key, &inputs, &outputs),
                    );
                    upstream.insert(stage.name.clone(), outputs);
                    StageOutcome {
                        stage: stage.name.clone(),
                        status: if ran { "ran" } else { "cached" },
                        key: Some(key),
                        duration_s: done.duration,
                        message: None,
                    }
                }
                Err(e) => {
                    failed = true;
                    eprintln!("scan: {}: FAILED: {e}", stage.name);
                    StageOutcome {
                        stage: stage.name.clone(),
                        status: "failed",
                        key: None,
                        duration_s: done.duration,
                        message: Some(e.to_string()),
                    }
                }
            };
            outcomes[done.index] = Some(outcome);
        }
    });
    let result: Vec<StageOutcome> = selected
        .iter()
        .map(|&i| {
            outcomes[i].take().unwrap_or_else(|| StageOutcome {
                stage: ctx.pipeline.stages[i].name.clone(),
                status: "not run",
                key: None,
                duration_s: 0.0,
                message: Some("an upstream stage failed".into()),
            })
        })
        .collect();
    finish(ctx, lock_entries, &result)?;
    let ran = result.iter().filter(|o| o.status == "ran").count();
    let cached = result.iter().filter(|o| o.status == "cached").count();
    let bad = result.len() - ran - cached;
    eprintln!(
        "scan: {} stages: {ran} ran, {cached} cached{} in {:.2}s",
        result.len(),
        if bad > 0 {
            format!(", {bad} failed or not run")
        } else {
            String::new()
        },
        start.elapsed().as_secs_f64()
    );
    if ran == 0 && bad == 0 {
        eprintln!("scan: everything is up to date");
    }
    Ok(result)
}

/// Update pipeline.lock (under a lock file), the stat cache and the run log.
fn finish(
    ctx: &Ctx,
    entries: BTreeMap<String, LockEntry>,
    result: &[StageOutcome],
) -> Result<(), RunnerError> {
    ctx.cache.save()?;
    if !entries.is_empty() {
        let name = crate::store::hash_bytes(ctx.lock_path.to_string_lossy().as_bytes());
        let guard_path = ctx
            .store
            .dir("locks")
            .join(format!("lockfile-{}.lock", short(&name)));
        let _guard = crate::store::lock::FileLock::acquire(&guard_path, true, |_| {})?;
        let mut lock = LockFile::read(&ctx.lock_path)?;
        lock.stages
            .retain(|name, _| ctx.pipeline.stage(name).is_some());
        lock.stages.extend(entries);
        lock.write_if_changed(&ctx.lock_path)?;
    }
    let keys: Vec<String> = result
        .iter()
        .filter_map(|o| o.key.as_ref().map(|k| k.to_string()))
        .collect();
    if !keys.is_empty() {
        ctx.store.record_run(&RunLogEntry {
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            pipeline: ctx.pipeline.path.to_string_lossy().into_owned(),
            keys,
        })?;
    }
    Ok(())
}
