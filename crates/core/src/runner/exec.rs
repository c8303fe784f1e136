//! Building one stage key (README "Stage protocol"): a fresh staging directory under `<store>/tmp/`, the
//! resolved params as canonical JSON, `cmd --out DIR --params FILE [--input NAME=PATH]...` run in the
//! workspace with its output teed to stderr and `<store>/logs/<key>.log`; then the outputs are checked
//! (exactly the declared names, files or directories, no symlinks), external inputs re-hashed (a result
//! whose inputs changed during the run is discarded), outputs committed as blobs and the action record
//! written last. The staging directory is removed whatever happens; a killed stage leaves nothing.
//! A built-in stage gets its code identity in `SCAN_CODE_IDENTITY` (it refuses to run if it was built
//! from other sources) and a file to report its provenance in, `SCAN_PROVENANCE`; the provenance goes
//! into the action record beside the key.
//! Each key also gets a work directory, `<store>/work/<key>`, passed as `SCAN_WORK_DIR`: training
//! stages checkpoint there, it survives a failed or killed attempt (so the rerun resumes) and is
//! removed once the result is committed.
//! Only the step "run the command and wait for it" depends on the executor ([`super::executor`]): a
//! local child process ([`super::child`]), possibly with GPUs of `--gpus` assigned, or a Slurm batch
//! job ([`super::slurm`]) whose staging and work directories are the same ones in the shared store.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use super::executor::Executor;
use super::key::{InputHash, KeyManifest, Resolved};
use super::pipeline::{InputSource, Stage};
use super::{Ctx, RunnerError};
use crate::store::{
    action::ACTION_SCHEMA, canonical_json, remove_tree, tree, ActionRecord, OutputKind, OutputRef,
    Provenance, StageKey,
};

fn failed(stage: &Stage, message: impl Into<String>) -> RunnerError {
    RunnerError::StageFailed {
        stage: stage.name.clone(),
        message: message.into(),
    }
}

/// Build `stage` for `key`; the caller holds the key lock.
#[allow(clippy::too_many_arguments)]
pub fn build(
    ctx: &Ctx,
    exe: &Executor,
    stage: &Stage,
    resolved: &Resolved,
    key: &StageKey,
    manifest: &KeyManifest,
    inputs: &BTreeMap<String, InputHash>,
) -> Result<ActionRecord, RunnerError> {
    // Leftovers of a killed build of this key (we hold its lock, so nobody else is using them).
    let tmp_root = ctx.store.dir("tmp");
    if let Ok(entries) = std::fs::read_dir(&tmp_root) {
        for e in entries.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{key}."))
            {
                let _ = remove_tree(&e.path());
            }
        }
    }
    let staging = ctx.store.temp_dir(key)?;
    // The stage's work area (checkpoints) survives failed and killed attempts of this key, so a
    // rerun resumes; it is dropped once the result is committed.
    let work = ctx.store.dir("work").join(&**key);
    fs_err::create_dir_all(&work)?;
    let result = build_in(
        ctx, exe, stage, resolved, key, manifest, inputs, &staging, &work,
    );
    let _ = remove_tree(&staging);
    if result.is_ok() {
        let _ = remove_tree(&work);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn build_in(
    ctx: &Ctx,
    exe: &Executor,
    stage: &Stage,
    resolved: &Resolved,
    key: &StageKey,
    manifest: &KeyManifest,
    inputs: &BTreeMap<String, InputHash>,
    staging: &Path,
    work: &Path,
) -> Result<ActionRecord, RunnerError> {
    let out_dir = staging.join("out");
    fs_err::create_dir_all(&out_dir)?;
    let params_path = staging.join("params.json");
    fs_err::write(&params_path, canonical_json(&stage.params))?;
    let provenance_path = staging.join("provenance.json");
    for i in inputs
        .values()
        .filter(|i| i.kind == OutputKind::Dir && i.path.starts_with(ctx.store.root()))
    {
        ctx.store.materialise_tree(&i.hash)?;
    }
    let mut cmd = Command::new(&resolved.program);
    cmd.args(&stage.cmd[1..])
        .arg("--out")
        .arg(&out_dir)
        .arg("--params")
        .arg(&params_path)
        .current_dir(&ctx.pipeline.workspace)
        .env("SCAN_WORK_DIR", work)
        .env(crate::stage::ENV_PROVENANCE, &provenance_path);
    if let Some(builtin) = stage.builtin {
        cmd.env(crate::stage::ENV_CODE_IDENTITY, builtin.identity());
    }
    for (name, i) in inputs {
        let mut spec = std::ffi::OsString::from(format!("{name}="));
        spec.push(&i.path);
        cmd.arg("--input").arg(spec);
    }
    let log_path = ctx.store.log_path(key);
    if let Some(parent) = log_path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    super::ui::ui().detail(&format!("{}: {:?}", stage.name, cmd));
    let start = Instant::now();
    let cannot = |e: std::io::Error| {
        failed(
            stage,
            format!("cannot run {}: {e}", resolved.program.display()),
        )
    };
    let interrupted = || RunnerError::Interrupted {
        stage: stage.name.clone(),
        work: work.to_path_buf(),
    };
    let status = match exe {
        Executor::Local { gpus } => {
            // With --gpus: the declared number of devices, or none at all.
            let lease = gpus
                .as_ref()
                .filter(|_| stage.resources.gpus() > 0)
                .map(|pool| pool.take(stage.resources.gpus() as usize));
            if gpus.is_some() {
                let visible = lease.as_ref().map(|l| l.visible()).unwrap_or_default();
                super::ui::ui()
                    .detail(&format!("{}: CUDA_VISIBLE_DEVICES={visible:?}", stage.name));
                cmd.env("CUDA_VISIBLE_DEVICES", visible);
            }
            match super::child::supervise(cmd, &stage.name, &log_path).map_err(cannot)? {
                super::child::Ended::Exited(status) => status,
                super::child::Ended::Interrupted => return Err(interrupted()),
            }
        }
        Executor::Slurm(file) => {
            let end = super::slurm::run(
                &cmd,
                &stage.name,
                &stage.resources,
                file,
                staging,
                &log_path,
            )
            .map_err(cannot)?;
            match end {
                super::slurm::JobEnd::Completed { .. } => {
                    use std::os::unix::process::ExitStatusExt;
                    std::process::ExitStatus::from_raw(0)
                }
                super::slurm::JobEnd::Interrupted { .. } => return Err(interrupted()),
                failure => {
                    return Err(failed(
                        stage,
                        format!("{} (log: {})", failure.describe(), log_path.display()),
                    ))
                }
            }
        }
    };
    let duration = start.elapsed().as_secs_f64();
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => {
                use std::os::unix::process::ExitStatusExt;
                format!("killed by signal {}", status.signal().unwrap_or(0))
            }
        };
        return Err(failed(
            stage,
            format!("{how} (log: {})", log_path.display()),
        ));
    }
    // Exactly the declared outputs.
    let mut found: Vec<String> = Vec::new();
    for e in fs_err::read_dir(&out_dir)? {
        found.push(e?.file_name().to_string_lossy().into_owned());
    }
    let missing: Vec<&String> = stage
        .outputs
        .iter()
        .filter(|o| !found.contains(o))
        .collect();
    let extra: Vec<&String> = found
        .iter()
        .filter(|f| !stage.outputs.contains(f))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(failed(
            stage,
            format!("protocol violation: missing outputs {missing:?}, undeclared outputs {extra:?} (log: {})", log_path.display()),
        ));
    }
    // Inputs changed while the stage ran → do not cache.
    for (name, i) in inputs {
        if let Some(InputSource::Path { resolved, .. }) = stage.inputs.get(name) {
            let (now, _) = ctx.cache.hash_path(resolved)?;
            if now != i.hash {
                return Err(failed(
                    stage,
                    format!(
                        "input {} changed while the stage ran; result discarded (run again)",
                        i.source
                    ),
                ));
            }
        }
    }
    let mut outputs = BTreeMap::new();
    for name in &stage.outputs {
        let p = out_dir.join(name);
        let meta = fs_err::symlink_metadata(&p)?;
        let out = if meta.file_type().is_symlink() {
            return Err(failed(stage, format!("output `{name}` is a symbolic link")));
        } else if meta.is_dir() {
            tree::walk(&p).map_err(|e| failed(stage, format!("output `{name}`: {e}")))?;
            OutputRef {
                hash: ctx.store.put_dir(&p, true)?,
                kind: OutputKind::Dir,
            }
        } else if meta.is_file() {
            OutputRef {
                hash: ctx.store.put_file(&p, true)?,
                kind: OutputKind::File,
            }
        } else {
            return Err(failed(
                stage,
                format!("output `{name}` is not a regular file or directory"),
            ));
        };
        outputs.insert(name.clone(), out);
    }
    let provenance: Option<Provenance> = std::fs::read(&provenance_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let rec = ActionRecord {
        schema: ACTION_SCHEMA,
        key: key.clone(),
        stage: stage.name.clone(),
        manifest: manifest.to_value(),
        outputs,
        duration_s: (duration * 1000.0).round() / 1000.0,
        host: crate::store::hostname(),
        started_at,
        provenance,
    };
    ctx.store.write_action(&rec)?;
    Ok(rec)
}
