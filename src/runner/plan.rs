//! Planning: which stages are fresh, stale or pending, and *every* reason why (`scan status`,
//! `scan explain`, `scan run --dry-run`). A stage is fresh when the store holds an action record for its
//! current key with all outputs present; pending when an upstream stage must run first (its key depends
//! on the bytes that stage will write). Reasons compare the current key manifest with the stage's entry in
//! `pipeline.lock`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::key::{self, InputHash, Resolved};
use super::lockfile::LockEntry;
use super::pipeline::{InputSource, Stage};
use super::{Ctx, RunnerError};
use crate::store::{short, OutputKind, OutputRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Fresh,
    Stale,
    Pending,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale => "stale",
            State::Pending => "pending",
        }
    }
}

/// The plan for one stage.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub name: String,
    pub state: State,
    pub resolved: Resolved,
    /// Input hashes; `None` for inputs from an upstream stage that must run first.
    pub inputs: BTreeMap<String, Option<InputHash>>,
    pub key: Option<String>,
    pub manifest: Option<serde_json::Value>,
    /// Outputs of the fresh action record.
    pub outputs: Option<BTreeMap<String, OutputRef>>,
    /// Upstream stages that must run first.
    pub waiting_on: Vec<String>,
}

impl StagePlan {
    /// All input hashes, when none is pending.
    pub fn known_inputs(&self) -> Option<BTreeMap<String, InputHash>> {
        self.inputs
            .iter()
            .map(|(n, i)| i.clone().map(|i| (n.clone(), i)))
            .collect()
    }
}

/// Hash a stage's inputs: upstream outputs via `upstream(stage)`, workspace paths via the stat cache.
pub fn input_hashes<'a>(
    ctx: &Ctx,
    stage: &Stage,
    upstream: impl Fn(&str) -> Option<&'a BTreeMap<String, OutputRef>>,
) -> Result<BTreeMap<String, Option<InputHash>>, RunnerError> {
    let mut out = BTreeMap::new();
    for (name, src) in &stage.inputs {
        let h = match src {
            InputSource::Stage { stage: up, output } => upstream(up)
                .and_then(|outs| outs.get(output))
                .map(|o| InputHash {
                    source: src.display(),
                    hash: o.hash.clone(),
                    kind: o.kind,
                    path: match o.kind {
                        OutputKind::File => ctx.store.blob_path(&o.hash),
                        OutputKind::Dir => ctx.store.tree_path(&o.hash),
                    },
                }),
            InputSource::Path { resolved, .. } => {
                let (hash, kind) = ctx.cache.hash_path(resolved)?;
                Some(InputHash {
                    source: src.display(),
                    hash,
                    kind,
                    path: resolved.clone(),
                })
            }
        };
        out.insert(name.clone(), h);
    }
    Ok(out)
}

/// Resolve programs for `stages` (checks every `cmd[0]` before anything runs).
pub fn resolve_all(
    ctx: &Ctx,
    stages: &[&Stage],
) -> Result<BTreeMap<String, Resolved>, RunnerError> {
    stages
        .iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                key::resolve(s, &ctx.pipeline.workspace, &ctx.cache)?,
            ))
        })
        .collect()
}

/// Plan every stage of the pipeline, in topological order.
pub fn plan(ctx: &Ctx) -> Result<Vec<StagePlan>, RunnerError> {
    let all: Vec<&Stage> = ctx.pipeline.stages.iter().collect();
    let mut resolved = resolve_all(ctx, &all)?;
    let mut plans: Vec<StagePlan> = Vec::new();
    for stage in &ctx.pipeline.stages {
        let outputs_of = |name: &str| {
            plans
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.outputs.as_ref())
        };
        let inputs = input_hashes(ctx, stage, outputs_of)?;
        let mut waiting_on: Vec<String> = stage
            .deps()
            .into_iter()
            .filter(|d| {
                plans
                    .iter()
                    .any(|p| p.name == *d && p.state != State::Fresh)
            })
            .map(str::to_string)
            .collect();
        waiting_on.sort();
        let resolved = resolved
            .remove(&stage.name)
            .ok_or_else(|| RunnerError::Usage(format!("stage `{}` unresolved", stage.name)))?;
        let mut p = StagePlan {
            name: stage.name.clone(),
            state: State::Pending,
            resolved,
            inputs,
            key: None,
            manifest: None,
            outputs: None,
            waiting_on,
        };
        if let Some(known) = p.known_inputs() {
            let manifest = key::manifest(stage, &p.resolved, &known);
            let key = key::key_of(&manifest);
            let rec = ctx
                .store
                .read_action(&key)
                .filter(|r| ctx.store.has_outputs(r));
            p.state = if rec.is_some() {
                State::Fresh
            } else {
                State::Stale
            };
            p.outputs = rec.map(|r| r.outputs);
            p.key = Some(key);
            p.manifest = Some(manifest);
        }
        plans.push(p);
    }
    Ok(plans)
}

/// Every reason stage `plan` differs from its `pipeline.lock` entry or cannot be reused.
pub fn reasons(ctx: &Ctx, stage: &Stage, plan: &StagePlan, plans: &[StagePlan]) -> Vec<String> {
    let mut out = Vec::new();
    let entry: Option<&LockEntry> = ctx.lock.stages.get(&stage.name);
    let Some(entry) = entry else {
        if plan.state != State::Fresh {
            out.push("never built (no entry in pipeline.lock)".to_string());
            out.extend(pending_reasons(plan, plans));
        }
        return out;
    };
    if entry.cmd != stage.cmd {
        out.push(format!("cmd changed ({:?} → {:?})", entry.cmd, stage.cmd));
    }
    if entry.code != plan.resolved.code {
        out.push(format!(
            "code changed ({} → {})",
            entry.code, plan.resolved.code
        ));
    }
    for (f, h) in &plan.resolved.code_files {
        match entry.code_files.get(f) {
            Some(old) if old != h => out.push(format!(
                "code file {f} changed ({} → {})",
                short(old),
                short(h)
            )),
            None => out.push(format!("code file {f} added")),
            _ => {}
        }
    }
    for f in entry
        .code_files
        .keys()
        .filter(|f| !plan.resolved.code_files.contains_key(*f))
    {
        out.push(format!("code file {f} removed"));
    }
    out.extend(super::params::diff(
        &stage.name,
        &entry.params,
        &stage.params,
    ));
    for (name, cur) in &plan.inputs {
        let src = stage
            .inputs
            .get(name)
            .map(InputSource::display)
            .unwrap_or_default();
        match (entry.inputs.get(name), cur) {
            (None, _) => out.push(format!("input {src} added (as `{name}`)")),
            (Some(old), Some(cur)) if old.hash != cur.hash || old.kind != cur.kind => {
                out.push(format!(
                    "input {src} changed ({} → {})",
                    short(&old.hash),
                    short(&cur.hash)
                ))
            }
            (Some(old), Some(_)) if old.source != src => out.push(format!(
                "input `{name}` now reads {src} (was {}; same content)",
                old.source
            )),
            (Some(_), None) => {
                let up = match stage.inputs.get(name) {
                    Some(InputSource::Stage { stage, .. }) => stage.as_str(),
                    _ => "?",
                };
                out.push(format!(
                    "input {src} may change: upstream stage `{up}` must run first"
                ));
            }
            _ => {}
        }
    }
    for (name, old) in entry
        .inputs
        .iter()
        .filter(|(n, _)| !plan.inputs.contains_key(*n))
    {
        out.push(format!("input {} removed (was `{name}`)", old.source));
    }
    let declared: Vec<&String> = entry.outputs.keys().collect();
    let mut now: Vec<&String> = stage.outputs.iter().collect();
    now.sort();
    if declared != now {
        out.push(format!("declared outputs changed ({declared:?} → {now:?})"));
    }
    match (&plan.key, plan.state) {
        (Some(key), State::Fresh) if *key != entry.key && !out.is_empty() => {
            out.push("a result for the new key is already in the store: it will be reused, nothing runs".into());
        }
        (Some(key), State::Stale) if out.is_empty() || *key == entry.key => match ctx.store.read_action(key) {
            None if *key == entry.key => out.push(format!(
                "not in this store: no action record for key {} (built elsewhere? `scan import` it, or it will be rebuilt)",
                short(key)
            )),
            None => out.push(format!("key changed ({} → {}) and no result for it is in the store", short(&entry.key), short(key))),
            Some(rec) => {
                for (name, o) in &rec.outputs {
                    if !ctx.store.has_output(o) {
                        out.push(format!("output {name} missing from store ({} {})", o.kind.as_str(), short(&o.hash)));
                    }
                }
            }
        },
        _ => {}
    }
    out
}

fn pending_reasons(plan: &StagePlan, _plans: &[StagePlan]) -> Vec<String> {
    plan.waiting_on
        .iter()
        .map(|u| format!("upstream stage `{u}` must run first"))
        .collect()
}
