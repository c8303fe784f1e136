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

use super::executor::Executor;
use super::key::{self, KeyManifest, Resolved};
use super::lockfile::{LockEntry, LockFile};
use super::pipeline::Stage;
use super::plan::{self, State};
use super::sweep::Variant;
use super::{Ctx, RunnerError};
use crate::exp::{Experiment, ExperimentLog, StageRun};
use crate::store::gc::RunLogEntry;
use crate::store::{short, OutputRef, StageKey};

/// Options of `scan run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub jobs: usize,
    pub dry_run: bool,
    /// `--executor` (default: the pipeline's `[executor] kind`, else local).
    pub executor: Option<super::executor::ExecutorKind>,
    /// `--gpus`: the devices of this machine to hand to stages that declare GPUs.
    pub gpus: Option<Vec<String>>,
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
    exe: &Executor,
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
        super::ui::ui().info(&format!(
            "{}: waiting for key {} being built by another run ({holder})",
            stage.name,
            key.short()
        ));
    })?;
    if let Some(rec) = cached(ctx) {
        super::ui::ui().info(&format!(
            "{}: reusing the result the other run built",
            stage.name
        ));
        return Ok((key, rec.outputs, false, inputs));
    }
    super::ui::ui().info(&format!("{}: running (key {})", stage.name, key.short()));
    let rec = super::exec::build(ctx, exe, stage, resolved, &key, &manifest, &inputs)?;
    Ok((key, rec.outputs, true, inputs))
}

/// One pipeline of a run: the base pipeline, or a variant of it.
pub struct Unit<'a> {
    pub ctx: &'a Ctx,
    /// `None` for the base pipeline (whose results go to `pipeline.lock`).
    pub variant: Option<Variant>,
}

/// A stage to run once for every unit that needs it (equal stages of several variants merge).
struct Node {
    /// The first unit and stage index that needs it (whose `Stage` and `Resolved` are used).
    unit: usize,
    stage: usize,
    /// Upstream nodes by stage name.
    deps: BTreeMap<String, usize>,
    /// Every (unit, stage index) this node stands for.
    members: Vec<(usize, usize)>,
}

/// What makes two stages of two variants the same work: cmd, code, resolved params, declared outputs,
/// workspace inputs by path and stage inputs by the upstream node they read.
fn fingerprint(stage: &Stage, resolved: &Resolved, upstream: &BTreeMap<String, usize>) -> String {
    let inputs: BTreeMap<&String, String> = stage
        .inputs
        .iter()
        .map(|(n, src)| {
            let v = match src {
                super::pipeline::InputSource::Stage { stage, output } => {
                    format!(
                        "node:{}.{output}",
                        upstream.get(stage).copied().unwrap_or(usize::MAX)
                    )
                }
                super::pipeline::InputSource::Path { resolved, .. } => {
                    format!("path:{}", resolved.display())
                }
            };
            (n, v)
        })
        .collect();
    crate::store::canonical_json(&serde_json::json!({
        "name": stage.name,
        "cmd": stage.cmd,
        "code": resolved.code,
        "code_files": resolved.code_files,
        "params": stage.params,
        "outputs": stage.outputs,
        "inputs": inputs,
    }))
}

/// Run the selected stages; returns per-stage outcomes (errors only for setup problems).
pub fn run(ctx: &Ctx, opts: &RunOptions) -> Result<Vec<StageOutcome>, RunnerError> {
    if opts.dry_run {
        return dry_run(ctx, &select(ctx, &opts.targets)?);
    }
    let mut all = run_many(&[Unit { ctx, variant: None }], opts)?;
    Ok(all.pop().unwrap_or_default())
}

/// Run several variants of one pipeline together: stages that are the same work in several variants
/// (a sweep over SCAN params shares pretext, embed and mine) run once, the rest in parallel with
/// `-j`. Returns the outcomes per unit. The base unit updates `pipeline.lock`; every unit is recorded
/// as an experiment.
pub fn run_many(units: &[Unit], opts: &RunOptions) -> Result<Vec<Vec<StageOutcome>>, RunnerError> {
    let Some(first) = units.first() else {
        return Ok(Vec::new());
    };
    let mut selected: Vec<Vec<usize>> = Vec::new();
    let mut resolved: Vec<BTreeMap<String, Resolved>> = Vec::new();
    for u in units {
        let sel = select(u.ctx, &opts.targets)?;
        let stages: Vec<&Stage> = sel.iter().map(|&i| &u.ctx.pipeline.stages[i]).collect();
        resolved.push(plan::resolve_all(u.ctx, &stages)?);
        selected.push(sel);
    }
    // Merge equal work across units (stages are in topological order within each unit).
    let mut nodes: Vec<Node> = Vec::new();
    let mut by_fp: BTreeMap<String, usize> = BTreeMap::new();
    let mut node_of: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (u, unit) in units.iter().enumerate() {
        for &i in &selected[u] {
            let stage = &unit.ctx.pipeline.stages[i];
            let deps: BTreeMap<String, usize> = stage
                .deps()
                .into_iter()
                .filter_map(|d| {
                    let di = unit.ctx.pipeline.index(d)?;
                    node_of.get(&(u, di)).map(|&n| (d.to_string(), n))
                })
                .collect();
            let fp = fingerprint(stage, &resolved[u][&stage.name], &deps);
            let n = *by_fp.entry(fp).or_insert_with(|| {
                nodes.push(Node {
                    unit: u,
                    stage: i,
                    deps,
                    members: Vec::new(),
                });
                nodes.len() - 1
            });
            nodes[n].members.push((u, i));
            node_of.insert((u, i), n);
        }
    }
    let exe = Executor::new(
        &first.ctx.pipeline.executor,
        opts.executor,
        opts.gpus.as_deref(),
    )
    .map_err(RunnerError::Usage)?;
    for node in &nodes {
        let stage = &units[node.unit].ctx.pipeline.stages[node.stage];
        exe.check(&stage.name, &stage.resources)
            .map_err(RunnerError::Usage)?;
    }
    let exe = &exe;
    let store = &first.ctx.store;
    let _store_lock = store.lock_store(false, |holder| {
        eprintln!("scan: waiting for the store lock ({holder})")
    })?;
    let jobs = opts.jobs.max(1);
    let mut results: Vec<Option<(Result<Built, String>, f64)>> = vec![None; nodes.len()];
    let mut outputs: BTreeMap<usize, BTreeMap<String, OutputRef>> = BTreeMap::new();
    let mut started = vec![false; nodes.len()];
    let mut failed = false;
    let start = Instant::now();
    std::thread::scope(|sc| {
        let (tx, rx) = mpsc::channel::<Done>();
        let mut running = 0usize;
        loop {
            if !failed {
                for (n, node) in nodes.iter().enumerate() {
                    if running >= jobs {
                        break;
                    }
                    if started[n] || !node.deps.values().all(|d| outputs.contains_key(d)) {
                        continue;
                    }
                    started[n] = true;
                    running += 1;
                    let tx = tx.clone();
                    let ups: BTreeMap<String, BTreeMap<String, OutputRef>> = node
                        .deps
                        .iter()
                        .map(|(name, d)| (name.clone(), outputs[d].clone()))
                        .collect();
                    let ctx = units[node.unit].ctx;
                    let stage = &ctx.pipeline.stages[node.stage];
                    let res = &resolved[node.unit][&stage.name];
                    sc.spawn(move || {
                        let t = Instant::now();
                        let result = run_one(ctx, exe, stage, res, &ups);
                        let _ = tx.send(Done {
                            index: n,
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
            let node = &nodes[done.index];
            let name = &units[node.unit].ctx.pipeline.stages[node.stage].name;
            let result = match done.result {
                Ok(built) => {
                    if built.2 {
                        super::ui::ui().info(&format!("{name}: done in {:.2}s", done.duration));
                    }
                    outputs.insert(done.index, built.1.clone());
                    Ok(built)
                }
                Err(e) => {
                    failed = true;
                    super::ui::ui().error(&format!("{name}: FAILED: {e}"));
                    Err(e.to_string())
                }
            };
            results[done.index] = Some((result, done.duration));
        }
    });
    let mut all = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let ctx = unit.ctx;
        let mut lock_entries: BTreeMap<String, LockEntry> = BTreeMap::new();
        let mut exp_stages = BTreeMap::new();
        let outcomes: Vec<StageOutcome> = selected[u]
            .iter()
            .map(|&i| {
                let stage = &ctx.pipeline.stages[i];
                let n = node_of[&(u, i)];
                match &results[n] {
                    Some((Ok((key, outs, ran, inputs)), duration)) => {
                        let res = &resolved[u][&stage.name];
                        lock_entries.insert(
                            stage.name.clone(),
                            LockEntry::new(stage, res, key, inputs, outs),
                        );
                        let built_in = ctx
                            .store
                            .read_action(key)
                            .map(|r| r.duration_s)
                            .unwrap_or(*duration);
                        exp_stages.insert(
                            stage.name.clone(),
                            StageRun {
                                key: key.clone(),
                                outputs: outs.clone(),
                                builtin: stage.builtin.map(|b| b.binary().to_string()),
                                ran: *ran && nodes[n].members[0] == (u, i),
                                duration_s: built_in,
                            },
                        );
                        StageOutcome {
                            stage: stage.name.clone(),
                            status: if *ran && nodes[n].members[0] == (u, i) {
                                "ran"
                            } else {
                                "cached"
                            },
                            key: Some(key.clone()),
                            duration_s: *duration,
                            message: None,
                        }
                    }
                    Some((Err(e), duration)) => StageOutcome {
                        stage: stage.name.clone(),
                        status: "failed",
                        key: None,
                        duration_s: *duration,
                        message: Some(e.clone()),
                    },
                    None => StageOutcome {
                        stage: stage.name.clone(),
                        status: "not run",
                        key: None,
                        duration_s: 0.0,
                        message: Some("an upstream stage failed".into()),
                    },
                }
            })
            .collect();
        let complete = outcomes.len() == ctx.pipeline.stages.len()
            && outcomes
                .iter()
                .all(|o| o.status == "ran" || o.status == "cached");
        let record = |variant: Option<&Variant>| Experiment {
            name: variant
                .map(|v| v.name.clone())
                .unwrap_or_else(|| "base".into()),
            group: variant
                .map(|v| v.group.clone())
                .unwrap_or_else(|| "base".into()),
            seed: variant.and_then(|v| v.seed),
            overrides: variant.map(|v| v.overrides.clone()).unwrap_or_default(),
            stages: exp_stages.clone(),
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            complete,
        };
        let lock_entries = if unit.variant.is_none() {
            lock_entries
        } else {
            BTreeMap::new()
        };
        finish(ctx, lock_entries, &outcomes)?;
        if !exp_stages.is_empty() {
            ExperimentLog::upsert(
                &crate::exp::log_path(&ctx.pipeline.path),
                &ctx.store,
                vec![record(unit.variant.as_ref())],
            )
            .map_err(|e| RunnerError::Failed(e.to_string()))?;
        }
        all.push(outcomes);
    }
    let flat: Vec<&StageOutcome> = all.iter().flatten().collect();
    let ran = nodes
        .iter()
        .enumerate()
        .filter(|(n, _)| matches!(&results[*n], Some((Ok(b), _)) if b.2))
        .count();
    let cached = flat.iter().filter(|o| o.status == "cached").count();
    let bad = flat
        .iter()
        .filter(|o| o.status == "failed" || o.status == "not run")
        .count();
    let what = if units.len() > 1 {
        format!("{} variants, {} stages", units.len(), flat.len())
    } else {
        format!("{} stages", flat.len())
    };
    super::ui::ui().info(&format!(
        "{what}: {ran} ran, {cached} cached{} in {:.2}s",
        if bad > 0 {
            format!(", {bad} failed or not run")
        } else {
            String::new()
        },
        start.elapsed().as_secs_f64()
    ));
    if ran == 0 && bad == 0 {
        super::ui::ui().info("everything is up to date");
    }
    Ok(all)
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
