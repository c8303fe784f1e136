//! Planning: which stages are fresh, stale or pending, and *every* reason why (`scan status`,
//! `scan explain`, `scan run --dry-run`). A stage is fresh when the store holds an action record for its
//! current key with all outputs present; pending when an upstream stage must run first (its key depends
//! on the bytes that stage will write). Reasons ([`DirtyReason`], rendered in [`reason`]) compare the
//! current key manifest with the stage's entry in `pipeline.lock`.

mod reason;

pub use reason::DirtyReason;

use std::collections::BTreeMap;

use serde::Serialize;

use super::key::{self, InputHash, KeyManifest, Resolved};
use super::pipeline::{InputSource, Stage};
use super::{Ctx, RunnerError};
use crate::store::{OutputKind, OutputRef, StageKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Fresh,
    Stale,
    Pending,
    /// Not in this store, but its result is known to be on the remote (a record fetched earlier,
    /// `remote-actions/`): keys downstream are known; `scan pull` downloads it.
    Remote,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Fresh => "fresh",
            State::Stale => "stale",
            State::Pending => "pending",
            State::Remote => "remote",
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
    pub key: Option<StageKey>,
    pub manifest: Option<KeyManifest>,
    /// Outputs of the fresh action record (or of the remembered remote record).
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
            InputSource::Locked {
                resolved,
                hash,
                kind,
                ..
            } => Some(InputHash {
                source: src.display(),
                hash: hash.clone(),
                kind: *kind,
                path: resolved.clone(),
            }),
            InputSource::Absent { written, .. } => {
                return Err(RunnerError::Usage(format!(
                    "stage `{}`: input `{name}` ({written}) does not exist",
                    stage.name
                )))
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
                    .any(|p| p.name == *d && !matches!(p.state, State::Fresh | State::Remote))
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
            let manifest = KeyManifest::new(stage, &p.resolved, &known);
            let key = manifest.key();
            let rec = ctx
                .store
                .read_action(&key)
                .filter(|r| ctx.store.has_outputs(r));
            let remote = || ctx.store.read_remote_action(&key);
            (p.state, p.outputs) = match rec {
                Some(r) => (State::Fresh, Some(r.outputs)),
                None => match remote() {
                    Some(r) => (State::Remote, Some(r.outputs)),
                    None => (State::Stale, None),
                },
            };
            p.key = Some(key);
            p.manifest = Some(manifest);
        }
        plans.push(p);
    }
    Ok(plans)
}

/// Every reason stage `plan` differs from its `pipeline.lock` entry or cannot be reused.
pub fn reasons(ctx: &Ctx, stage: &Stage, plan: &StagePlan) -> Vec<DirtyReason> {
    use DirtyReason as R;
    let mut out = Vec::new();
    let Some(entry) = ctx.lock.stages.get(&stage.name) else {
        if let (State::Remote, Some(key)) = (plan.state, &plan.key) {
            out.push(R::OnRemote { key: key.clone() });
        } else if plan.state != State::Fresh {
            out.push(R::NeverBuilt);
            out.extend(plan.waiting_on.iter().map(|u| R::UpstreamFirst {
                upstream: u.clone(),
            }));
        }
        return out;
    };
    if entry.cmd != stage.cmd {
        out.push(R::CmdChanged {
            old: entry.cmd.clone(),
            new: stage.cmd.clone(),
        });
    }
    if entry.code != plan.resolved.code {
        out.push(R::CodeChanged {
            old: entry.code.clone(),
            new: plan.resolved.code.clone(),
        });
    }
    for (f, h) in &plan.resolved.code_files {
        match entry.code_files.get(f) {
            Some(old) if old != h => out.push(R::CodeFileChanged {
                file: f.clone(),
                old: old.clone(),
                new: h.clone(),
            }),
            None => out.push(R::CodeFileAdded { file: f.clone() }),
            _ => {}
        }
    }
    for f in entry.code_files.keys() {
        if !plan.resolved.code_files.contains_key(f) {
            out.push(R::CodeFileRemoved { file: f.clone() });
        }
    }
    out.extend(reason::param_reasons(stage, entry));
    for (name, cur) in &plan.inputs {
        let src = stage
            .inputs
            .get(name)
            .map(InputSource::display)
            .unwrap_or_default();
        match (entry.inputs.get(name), cur) {
            (None, _) => out.push(R::InputAdded {
                source: src,
                name: name.clone(),
            }),
            (Some(old), Some(cur)) if old.hash != cur.hash || old.kind != cur.kind => {
                out.push(R::InputChanged {
                    source: src,
                    old: old.hash.clone(),
                    new: cur.hash.clone(),
                })
            }
            (Some(old), Some(_)) if old.source != src => out.push(R::InputMoved {
                name: name.clone(),
                old: old.source.clone(),
                new: src,
            }),
            (Some(_), None) => {
                let upstream = match stage.inputs.get(name) {
                    Some(InputSource::Stage { stage, .. }) => stage.clone(),
                    _ => "?".into(),
                };
                out.push(R::InputMayChange {
                    source: src,
                    upstream,
                });
            }
            _ => {}
        }
    }
    for (name, old) in &entry.inputs {
        if !plan.inputs.contains_key(name) {
            out.push(R::InputRemoved {
                source: old.source.clone(),
                name: name.clone(),
            });
        }
    }
    let declared: Vec<String> = entry.outputs.keys().cloned().collect();
    let mut now: Vec<String> = stage.outputs.clone();
    now.sort();
    if declared != now {
        out.push(R::OutputsChanged {
            old: declared,
            new: now,
        });
    }
    match (&plan.key, plan.state) {
        (Some(key), State::Remote) => out.push(R::OnRemote { key: key.clone() }),
        (Some(key), State::Fresh) if *key != entry.key && !out.is_empty() => {
            out.push(R::ReusedFromStore);
        }
        (Some(key), State::Stale) if out.is_empty() || *key == entry.key => {
            match ctx.store.read_action(key) {
                None if *key == entry.key => out.push(R::NotInStore { key: key.clone() }),
                None => out.push(R::KeyChanged {
                    old: entry.key.clone(),
                    new: key.clone(),
                }),
                Some(rec) => {
                    for (name, o) in &rec.outputs {
                        if !ctx.store.has_output(o) {
                            out.push(R::OutputMissing {
                                name: name.clone(),
                                output: o.clone(),
                            });
                        }
                    }
                }
            }
        }
        _ => {}
    }
    out
}
