//! `scan push [STAGE...]` and `scan pull [STAGE...]` (README "Sharing").
//!
//! **push** uploads the results of the stages named and of every stage upstream of them — their
//! keys are what a reader computes — skipping every object the remote has already. The stages
//! named must be up to date here (or already on the remote); without names, every stage that is
//! built here is pushed and the others are listed.
//!
//! **pull** computes the keys of the stages named and of those upstream, without running
//! anything and without their binaries: the code identity of a built-in stage is compiled into
//! `scan`, and a workspace input that is absent here (the raw dataset of a teammate) enters with
//! the hash `pipeline.lock` records. It then downloads the outputs of the stages named (default:
//! the pipeline's final stages) — verified, blob by blob — and only remembers the records of the
//! stages upstream (their output hashes are all the keys downstream need).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::key::{self, KeyManifest, Resolved};
use super::pipeline::Stage;
use super::plan::{self, State};
use super::schedule::{needed_stages, select};
use super::{Ctx, RunnerError};
use crate::store::remote::Transfer;
use crate::store::{OutputRef, StageKey};

/// One stage of a push or pull.
#[derive(Debug, Serialize)]
pub struct TransferRow {
    pub stage: String,
    pub key: StageKey,
    /// push: `pushed`, `present` (the remote had everything), `remote` (not local; on the
    /// remote). pull: `pulled`, `present` (already in the store), `remote` (record only).
    pub status: &'static str,
    pub objects: u64,
    pub bytes: u64,
    /// Objects that were already there.
    pub already: u64,
}

/// The result of `scan push` / `scan pull`.
#[derive(Debug, Serialize)]
pub struct TransferReport {
    pub remote: String,
    pub stages: Vec<TransferRow>,
    pub objects: u64,
    pub bytes: u64,
    pub seconds: f64,
}

fn report(
    ctx: &Ctx,
    rows: Vec<TransferRow>,
    start: Instant,
    verb: &str,
    json: bool,
) -> Result<u8, RunnerError> {
    let rep = TransferReport {
        remote: ctx.remote()?.url().to_string(),
        objects: rows.iter().map(|r| r.objects).sum(),
        bytes: rows.iter().map(|r| r.bytes).sum(),
        seconds: (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        stages: rows,
    };
    if json {
        let text =
            serde_json::to_string_pretty(&rep).map_err(|e| RunnerError::Failed(e.to_string()))?;
        println!("{text}");
    } else {
        for r in &rep.stages {
            println!(
                "{:<14} {:<8} {:<12} {} objects, {:.1} MiB",
                r.stage,
                r.status,
                r.key.short(),
                r.objects,
                r.bytes as f64 / 1048576.0
            );
        }
    }
    eprintln!(
        "scan: {verb} {} objects ({:.1} MiB) in {:.2}s ({})",
        rep.objects,
        rep.bytes as f64 / 1048576.0,
        rep.seconds,
        rep.remote
    );
    Ok(0)
}

/// `scan push [STAGE...]`.
pub fn push(ctx: &Ctx, stages: &[String], json: bool) -> Result<u8, RunnerError> {
    let remote = ctx.remote()?;
    let _lock = ctx.store.lock_store(false, |h| {
        eprintln!("scan: waiting for the store lock ({h})")
    })?;
    let start = Instant::now();
    let mut selected = select(ctx, stages)?;
    let plans = plan::plan(ctx)?;
    let ready = |i: &usize| matches!(plans[*i].state, State::Fresh | State::Remote);
    let not_ready: Vec<String> = selected
        .iter()
        .filter(|i| !ready(i))
        .map(|&i| format!("`{}` is {}", plans[i].name, plans[i].state.as_str()))
        .collect();
    if stages.is_empty() && !not_ready.is_empty() {
        // `scan push` alone: everything that is built; the rest is named.
        eprintln!(
            "scan: not pushed (not built here): {}",
            not_ready.join(", ")
        );
        selected.retain(ready);
    } else if !not_ready.is_empty() {
        return Err(RunnerError::Failed(format!(
            "cannot push: {} (run `scan run` first)",
            not_ready.join(", ")
        )));
    }
    let mut rows = Vec::new();
    for &i in &selected {
        let p = &plans[i];
        let Some(key) = p.key.clone() else { continue };
        let row = |status, t: Transfer| TransferRow {
            stage: p.name.clone(),
            key: key.clone(),
            status,
            objects: t.objects,
            bytes: t.bytes,
            already: t.present,
        };
        if p.state == State::Remote {
            if !remote.has_action(&key)? {
                return Err(RunnerError::Failed(format!(
                    "stage `{}` (key {}) is not in this store and not on {}: `scan pull {}` from where it is, or `scan run {}`",
                    p.name, key.short(), remote.url(), p.name, p.name
                )));
            }
            rows.push(row("remote", Transfer::default()));
            continue;
        }
        let rec = ctx.store.read_action(&key).ok_or_else(|| {
            RunnerError::Failed(format!("stage `{}`: action record {key} vanished", p.name))
        })?;
        let t = remote.push_action(&ctx.store, &rec)?;
        rows.push(row(if t.objects > 0 { "pushed" } else { "present" }, t));
    }
    report(ctx, rows, start, "pushed", json)
}

/// Resolve a stage's code identity without needing its program: a built-in stage's identity is
/// compiled into `scan`; another program missing here takes the identity `pipeline.lock` records
/// when the stage's `cmd` is unchanged.
fn resolve_for_pull(ctx: &Ctx, stage: &Stage) -> Result<Resolved, RunnerError> {
    match key::resolve(stage, &ctx.pipeline.workspace, &ctx.cache) {
        Ok(r) => Ok(r),
        Err(e @ RunnerError::Program { .. }) => {
            if let Some(b) = stage.builtin {
                return Ok(Resolved {
                    program: PathBuf::from(&stage.cmd[0]),
                    code: format!("builtin:{}@{}", stage.cmd[0], b.identity()),
                    code_files: BTreeMap::new(),
                });
            }
            match ctx.lock.stages.get(&stage.name) {
                Some(entry) if entry.cmd == stage.cmd => {
                    eprintln!(
                        "scan: {}: `{}` is not here; its code identity comes from pipeline.lock",
                        stage.name, stage.cmd[0]
                    );
                    Ok(Resolved {
                        program: PathBuf::from(&stage.cmd[0]),
                        code: entry.code.clone(),
                        code_files: entry.code_files.clone(),
                    })
                }
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// `scan pull [STAGE...]`.
pub fn pull(ctx: &Ctx, stages: &[String], json: bool) -> Result<u8, RunnerError> {
    let remote = ctx.remote()?;
    let _lock = ctx.store.lock_store(false, |h| {
        eprintln!("scan: waiting for the store lock ({h})")
    })?;
    ctx.register_root();
    let start = Instant::now();
    let selected = select(ctx, stages)?;
    let targets = needed_stages(ctx, stages, &selected);
    let mut upstream: BTreeMap<String, BTreeMap<String, OutputRef>> = BTreeMap::new();
    let mut rows = Vec::new();
    for &i in &selected {
        let stage = &ctx.pipeline.stages[i];
        let resolved = resolve_for_pull(ctx, stage)?;
        let inputs = plan::input_hashes(ctx, stage, |s| upstream.get(s))?;
        let inputs = inputs
            .into_iter()
            .map(|(n, h)| {
                h.map(|h| (n.clone(), h)).ok_or_else(|| {
                    RunnerError::Failed(format!("stage `{}`: input `{n}` unknown", stage.name))
                })
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let key = KeyManifest::new(stage, &resolved, &inputs).key();
        let mut row = TransferRow {
            stage: stage.name.clone(),
            key: key.clone(),
            status: "present",
            objects: 0,
            bytes: 0,
            already: 0,
        };
        let wanted = targets.contains(&i);
        let local = ctx
            .store
            .read_action(&key)
            .filter(|r| ctx.store.has_outputs(r));
        let outputs = match local {
            Some(rec) => rec.outputs,
            None => {
                let rec = match ctx.store.read_remote_action(&key) {
                    Some(r) => r,
                    None => remote.fetch_action(&key)?.ok_or_else(|| {
                        RunnerError::Failed(format!(
                            "stage `{}` (key {}) is neither in this store nor on the remote {}: build it where its inputs are and push it (`scan run {} --push`){}",
                            stage.name,
                            key.short(),
                            remote.url(),
                            stage.name,
                            match ctx.lock.stages.get(&stage.name) {
                                Some(e) if e.key != key => format!("; pipeline.lock has key {} (`scan explain {}` tells what differs)", e.key.short(), stage.name),
                                _ => String::new(),
                            }
                        ))
                    })?,
                };
                if wanted {
                    let t = remote.fetch_outputs(&ctx.store, &rec)?;
                    row.status = "pulled";
                    row.objects = t.objects;
                    row.bytes = t.bytes;
                } else {
                    ctx.store.write_remote_action(&rec)?;
                    row.status = "remote";
                }
                rec.outputs
            }
        };
        upstream.insert(stage.name.clone(), outputs);
        rows.push(row);
    }
    report(ctx, rows, start, "pulled", json)
}
