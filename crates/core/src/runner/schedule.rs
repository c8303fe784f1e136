//! `scan run`: the stale stages among the targets and everything they need, in DAG order, independent
//! stages in parallel (`--jobs N` worker threads, each supervising one child process). Each stage's key is
//! computed when its upstream stages are done, from the bytes they produced (early cutoff); a key whose
//! result is in the store is reused. Building a key holds its lock, so a concurrent `scan run` on the same
//! store waits for it (naming the holder) and then reuses the result. At the end `pipeline.lock` and the
//! `scan run`: the stale stages among the targets and everything they need, in DAG order, independent
//! stages in parallel (`--jobs N` worker threads, each supervising one child process). Each stage's key is
//! computed when its upstream stages are done, from the bytes they produced (early cutoff); a key whose
//! result is in the store is reused. Building a key holds its lock, so a concurrent `scan run` on the same
//! store waits for it (naming the holder) and then reuses the result. At the end `pipeline.lock` and the
//! run log are updated with every stage that completed, even when another failed.
//!
//! With a remote (README "Sharing"), a stage whose key is not in the store is looked up there
//! before it is built. On a hit only what is needed is downloaded: the outputs of the targets
//! (the stages named, else the pipeline's final stages) and the inputs of stages that are built
//! here; the other hits are remembered (`remote-actions/`) with their output hashes, which is all
//! that keys downstream need. A remote that cannot be reached is a warning and the stage is built
//! here (`--require-remote` makes it an error); a fetch that fails while a stage waits for its
//! inputs makes the scheduler build those upstream stages here instead. `--push` uploads each
//! stage that was built (blobs first, record last). Stages whose results are all in the store
//! make no network request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::store::remote::{self, RemoteError};
use crate::store::{short, ActionRecord, OutputRef, StageKey};

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
    /// Upload every stage that was built to the remote (write-through).
    pub push: bool,
    /// `--remote URL` (else the pipeline's `[remote]`), and `--require-remote`.
    pub remote: Option<String>,
    pub require_remote: bool,
}

/// What happened to one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageOutcome {
    pub stage: String,
    /// `ran`, `cached`, `pulled` (downloaded from the remote), `remote` (on the remote, not
    /// needed here), `failed` or `not run`.
    pub status: &'static str,
    pub key: Option<StageKey>,
    pub duration_s: f64,
    pub message: Option<String>,
    /// Bytes downloaded for this stage (`pulled`, or inputs fetched before it was built).
    #[serde(skip_serializing_if = "is_zero")]
    pub downloaded_bytes: u64,
    /// Bytes uploaded for this stage (`--push`).
    #[serde(skip_serializing_if = "is_zero")]
    pub uploaded_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a stage's result was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    Cached,
    Pulled,
    Remote,
    Ran,
}

impl How {
    fn as_str(self) -> &'static str {
        match self {
            How::Cached => "cached",
            How::Pulled => "pulled",
            How::Remote => "remote",
            How::Ran => "ran",
        }
    }
}

/// A built or reused stage.
#[derive(Clone)]
struct Built {
    key: StageKey,
    outputs: BTreeMap<String, OutputRef>,
    how: How,
    inputs: BTreeMap<String, key::InputHash>,
    /// The remote record when the outputs are not in the store (`How::Remote`).
    remote_record: Option<ActionRecord>,
    downloaded: u64,
    uploaded: u64,
}

/// A finished stage, as the stages downstream see it.
#[derive(Clone)]
struct Up {
    outputs: BTreeMap<String, OutputRef>,
    remote_record: Option<ActionRecord>,
}

struct Done {
    index: usize,
    result: Result<Built, RunnerError>,
    duration: f64,
}

/// The remote side of one run: whether to ask it, and the warning printed once when it is down.
struct RemoteUse {
    push: bool,
    warned: AtomicBool,
}

impl RemoteUse {
    /// Turn a remote error into a warning (and `None`), unless `--require-remote` is given.
    fn soft<T>(
        &self,
        ctx: &Ctx,
        stage: &Stage,
        what: &str,
        r: Result<T, RemoteError>,
    ) -> Result<Option<T>, RunnerError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if ctx.require_remote => Err(e.into()),
            Err(e) => {
                let down = e.is_unavailable();
                if !down || !self.warned.swap(true, Ordering::Relaxed) {
                    super::ui::ui().error(&format!(
                        "warning: {}: {what}: {}{}",
                        stage.name,
                        remote::chain(&e),
                        if down {
                            "; continuing without the remote (--require-remote makes this an error)"
                        } else {
                            ""
                        }
                    ));
                }
                Ok(None)
            }
        }
    }
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
            State::Remote => "on the remote",
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
            downloaded_bytes: 0,
            uploaded_bytes: 0,
        });
    }
    Ok(out)
}

/// Compute the key of a stage from its upstream outputs; reuse it from the store, else from the
/// remote, else build it. `needed`: its outputs must be in the store afterwards (a target).
/// `local_only`: do not look it up remotely (fetching it failed earlier in this run).
#[allow(clippy::too_many_arguments)]
fn run_one(
    ctx: &Ctx,
    exe: &Executor,
    ru: &RemoteUse,
    stage: &Stage,
    resolved: &Resolved,
    upstream: &BTreeMap<String, Up>,
    needed: bool,
    local_only: bool,
) -> Result<Built, RunnerError> {
    let inputs = plan::input_hashes(ctx, stage, |s| upstream.get(s).map(|u| &u.outputs))?;
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
    let built = |outputs, how, remote_record, downloaded| Built {
        key: key.clone(),
        outputs,
        how,
        inputs: inputs.clone(),
        remote_record,
        downloaded,
        uploaded: 0,
    };
    let cached = |ctx: &Ctx| {
        ctx.store
            .read_action(&key)
            .filter(|r| ctx.store.has_outputs(r))
    };
    if let Some(rec) = cached(ctx) {
        return Ok(built(rec.outputs, How::Cached, None, 0));
    }
    // Known to be on the remote, and not needed here: no request at all.
    let remembered = ctx
        .remote
        .as_ref()
        .and_then(|_| ctx.store.read_remote_action(&key));
    if let (Some(rec), false, false) = (&remembered, needed, local_only) {
        return Ok(built(
            rec.outputs.clone(),
            How::Remote,
            Some(rec.clone()),
            0,
        ));
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
        return Ok(built(rec.outputs, How::Cached, None, 0));
    }
    if let (Some(remote), false) = (ctx.remote.as_ref(), local_only) {
        let rec = match remembered {
            Some(r) => Some(r),
            None if remote.is_down() => None,
            None => ru
                .soft(
                    ctx,
                    stage,
                    "remote lookup failed",
                    remote.fetch_action(&key),
                )?
                .flatten(),
        };
        if let Some(rec) = rec {
            if !needed {
                ctx.store.write_remote_action(&rec)?;
                super::ui::ui().info(&format!(
                    "{}: on the remote {} (key {}; not downloaded: not needed here)",
                    stage.name,
                    remote.url(),
                    key.short()
                ));
                return Ok(built(rec.outputs.clone(), How::Remote, Some(rec), 0));
            }
            let what = format!("downloading key {} failed, building it here", key.short());
            if let Some(t) = ru.soft(ctx, stage, &what, remote.fetch_outputs(&ctx.store, &rec))? {
                super::ui::ui().info(&format!(
                    "{}: pulled from {} ({} objects, {:.1} MiB)",
                    stage.name,
                    remote.url(),
                    t.objects,
                    t.bytes as f64 / 1048576.0
                ));
                return Ok(built(rec.outputs.clone(), How::Pulled, None, t.bytes));
            }
            ctx.store.forget_remote_action(&key);
        }
    }
    // Built here: the inputs that are only on the remote are downloaded first.
    let mut downloaded = 0;
    let mut failed_upstream = Vec::new();
    let mut first_error = None;
    for dep in stage.deps() {
        let Some(rec) = upstream.get(dep).and_then(|u| u.remote_record.as_ref()) else {
            continue;
        };
        if ctx.store.has_outputs(rec) {
            continue;
        }
        let fetched = match ctx.remote.as_ref() {
            Some(remote) => remote.fetch_outputs(&ctx.store, rec),
            None => Err(RemoteError::Unavailable {
                remote: "(none configured)".into(),
            }),
        };
        match fetched {
            Ok(t) => {
                super::ui::ui().info(&format!(
                    "{}: pulled the outputs of `{dep}` ({} objects, {:.1} MiB)",
                    stage.name,
                    t.objects,
                    t.bytes as f64 / 1048576.0
                ));
                downloaded += t.bytes;
            }
            Err(e) if ctx.require_remote => return Err(e.into()),
            Err(e) => {
                ctx.store.forget_remote_action(&rec.key);
                failed_upstream.push(dep.to_string());
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(source) = first_error {
        return Err(RunnerError::NeedUpstream {
            stage: stage.name.clone(),
            upstream: failed_upstream,
            source: Box::new(source),
        });
    }
    let locked = stage.locked_inputs();
    if !locked.is_empty() {
        return Err(RunnerError::StageFailed {
            stage: stage.name.clone(),
            message: format!(
                "it must be built (key {}, in neither this store nor the remote), but input {} is absent in this workspace (pipeline.lock only has its hash)",
                key.short(),
                locked.join(", ")
            ),
        });
    }
    super::ui::ui().info(&format!("{}: running (key {})", stage.name, key.short()));
    let rec = super::exec::build(ctx, exe, stage, resolved, &key, &manifest, &inputs)?;
    let mut out = built(rec.outputs.clone(), How::Ran, None, downloaded);
    if let (Some(remote), true) = (ctx.remote.as_ref(), ru.push) {
        if let Some(t) = ru.soft(
            ctx,
            stage,
            "push failed",
            remote.push_action(&ctx.store, &rec),
        )? {
            super::ui::ui().info(&format!(
                "{}: pushed to {} ({} objects, {:.1} MiB; {} already there)",
                stage.name,
                remote.url(),
                t.objects,
                t.bytes as f64 / 1048576.0,
                t.present
            ));
            out.uploaded = t.bytes;
        }
    }
    Ok(out)
}

/// The stages whose outputs a run must leave in the store: the targets named, else the stages
/// no other selected stage reads from.
pub fn needed_stages(ctx: &Ctx, targets: &[String], selected: &[usize]) -> BTreeSet<usize> {
    let p = &ctx.pipeline;
    if !targets.is_empty() {
        return targets.iter().filter_map(|t| p.index(t)).collect();
    }
    selected
        .iter()
        .copied()
        .filter(|&i| {
            !selected
                .iter()
                .any(|&j| p.stages[j].deps().contains(p.stages[i].name.as_str()))
        })
        .collect()
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
                super::pipeline::InputSource::Path { resolved, .. }
                | super::pipeline::InputSource::Absent { resolved, .. }
                | super::pipeline::InputSource::Locked { resolved, .. } => {
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
    if opts.push && first.ctx.remote.is_none() {
        return Err(RunnerError::Usage(
            "--push: no remote configured ([remote] url in the pipeline file, --remote or SCAN_REMOTE)".into(),
        ));
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
    first.ctx.register_root();
    let ru = RemoteUse {
        push: opts.push,
        warned: AtomicBool::new(false),
    };
    // A node's outputs must end up in the store when one of its members is a target.
    let needed: Vec<BTreeSet<usize>> = units
        .iter()
        .enumerate()
        .map(|(u, unit)| needed_stages(unit.ctx, &opts.targets, &selected[u]))
        .collect();
    let node_needed: Vec<bool> = nodes
        .iter()
        .map(|node| node.members.iter().any(|(u, i)| needed[*u].contains(i)))
        .collect();
    let jobs = opts.jobs.max(1);
    let mut results: Vec<Option<(Result<Built, String>, f64)>> = vec![None; nodes.len()];
    let mut outputs: BTreeMap<usize, Up> = BTreeMap::new();
    let mut started = vec![false; nodes.len()];
    let mut local_only = vec![false; nodes.len()];
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
                    let ups: BTreeMap<String, Up> = node
                        .deps
                        .iter()
                        .map(|(name, d)| (name.clone(), outputs[d].clone()))
                        .collect();
                    let ctx = units[node.unit].ctx;
                    let stage = &ctx.pipeline.stages[node.stage];
                    let res = &resolved[node.unit][&stage.name];
                    let (need, local) = (node_needed[n], local_only[n]);
                    let ru = &ru;
                    sc.spawn(move || {
                        let t = Instant::now();
                        let result = run_one(ctx, exe, ru, stage, res, &ups, need, local);
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
                    if built.how == How::Ran {
                        super::ui::ui().info(&format!("{name}: done in {:.2}s", done.duration));
                    }
                    outputs.insert(
                        done.index,
                        Up {
                            outputs: built.outputs.clone(),
                            remote_record: built.remote_record.clone(),
                        },
                    );
                    Ok(built)
                }
                Err(RunnerError::NeedUpstream {
                    upstream: ups,
                    source,
                    ..
                }) => {
                    // Build those upstream stages here, then this one again.
                    super::ui::ui().error(&format!(
                        "warning: {name}: fetching the outputs of {} failed ({}); building {} here",
                        ups.join(", "),
                        remote::chain(&*source),
                        if ups.len() == 1 { "it" } else { "them" }
                    ));
                    for u in &ups {
                        if let Some(&d) = node.deps.get(u) {
                            outputs.remove(&d);
                            results[d] = None;
                            started[d] = false;
                            local_only[d] = true;
                        }
                    }
                    started[done.index] = false;
                    continue;
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
                    Some((Ok(b), duration)) => {
                        let (key, outs, inputs) = (&b.key, &b.outputs, &b.inputs);
                        let first = nodes[n].members[0] == (u, i);
                        let ran = &(b.how == How::Ran);
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
                                ran: *ran && first,
                                duration_s: built_in,
                            },
                        );
                        StageOutcome {
                            stage: stage.name.clone(),
                            status: match b.how {
                                How::Ran | How::Pulled if !first => "cached",
                                how => how.as_str(),
                            },
                            key: Some(key.clone()),
                            duration_s: *duration,
                            message: None,
                            downloaded_bytes: if first { b.downloaded } else { 0 },
                            uploaded_bytes: if first { b.uploaded } else { 0 },
                        }
                    }
                    Some((Err(e), duration)) => StageOutcome {
                        stage: stage.name.clone(),
                        status: "failed",
                        key: None,
                        duration_s: *duration,
                        message: Some(e.clone()),
                        downloaded_bytes: 0,
                        uploaded_bytes: 0,
                    },
                    None => StageOutcome {
                        stage: stage.name.clone(),
                        status: "not run",
                        key: None,
                        duration_s: 0.0,
                        message: Some("an upstream stage failed".into()),
                        downloaded_bytes: 0,
                        uploaded_bytes: 0,
                    },
                }
            })
            .collect();
        let complete = outcomes.len() == ctx.pipeline.stages.len()
            && outcomes
                .iter()
                .all(|o| matches!(o.status, "ran" | "cached" | "pulled" | "remote"));
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
        .filter(|(n, _)| matches!(&results[*n], Some((Ok(b), _)) if b.how == How::Ran))
        .count();
    let count = |s: &str| flat.iter().filter(|o| o.status == s).count();
    let (cached, pulled, on_remote) = (count("cached"), count("pulled"), count("remote"));
    let bad = flat
        .iter()
        .filter(|o| o.status == "failed" || o.status == "not run")
        .count();
    let mut extra = String::new();
    if pulled > 0 || on_remote > 0 {
        let bytes: u64 = flat.iter().map(|o| o.downloaded_bytes).sum();
        extra.push_str(&format!(
            ", {pulled} pulled, {on_remote} left on the remote ({:.1} MiB downloaded)",
            bytes as f64 / 1048576.0
        ));
    }
    let what = if units.len() > 1 {
        format!("{} variants, {} stages", units.len(), flat.len())
    } else {
        format!("{} stages", flat.len())
    };
    super::ui::ui().info(&format!(
        "{what}: {ran} ran, {cached} cached{extra}{} in {:.2}s",
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
