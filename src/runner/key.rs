//! Stage keys and code identity (README "Keys and code identity"; issue #3 "Store and keys").
//!
//! **Program resolution.** A `cmd[0]` naming a built-in stage binary (`scan-ingest`, …, see
//! [`crate::stage::BUILTIN_STAGES`]) resolves next to the running `scan` executable first, then on `PATH`.
//! Any other `cmd[0]` containing `/` is a path relative to the workspace; without `/` it is a file in the
//! workspace if one exists, else looked up on `PATH`.
//!
//! **Code identity.** A built-in stage is `builtin:<name>@<implementation version>`: rebuilding the
//! project leaves cached results valid, bumping the stage's version invalidates them. Any other program
//! is `exe:<BLAKE3 of the resolved executable>`, and every later argv element naming an existing file in
//! the workspace (the `script.py` of `python3 script.py`) adds its content hash (`code_files`).
//!
//! **Key.** BLAKE3 of the canonical JSON of the versioned key manifest
//! `{schema, stage, cmd, code, code_files, params, inputs: {name: {hash, kind}}, outputs}`. Inputs enter
//! by *content hash*, not by upstream key, so an upstream rerun that writes identical bytes leaves
//! downstream keys unchanged (early cutoff).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::pipeline::Stage;
use super::RunnerError;
use crate::store::statcache::StatCache;
use crate::store::{canonical_json, hash_bytes, OutputKind};

/// Schema version of key manifests; bump when the manifest layout or key rule changes.
pub const KEY_SCHEMA: u32 = 1;

/// A stage's program and code identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub program: PathBuf,
    pub code: String,
    pub code_files: BTreeMap<String, String>,
}

/// An input's content hash and where the stage reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputHash {
    pub source: String,
    pub hash: String,
    pub kind: OutputKind,
    pub path: PathBuf,
}

fn exe_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    })
    .as_deref()
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Resolve `cmd[0]` and compute the code identity of `stage`.
pub fn resolve(
    stage: &Stage,
    workspace: &Path,
    cache: &StatCache,
) -> Result<Resolved, RunnerError> {
    let name = &stage.cmd[0];
    let err = |message: String| RunnerError::Program {
        stage: stage.name.clone(),
        program: name.clone(),
        message,
    };
    if let Some(version) = crate::stage::builtin_version(name) {
        let program = exe_dir()
            .map(|d| d.join(name))
            .filter(|p| is_executable(p))
            .or_else(|| on_path(name))
            .ok_or_else(|| err("built-in stage binary not found next to `scan` nor on PATH (build it: `cargo build --release --bins`)".into()))?;
        return Ok(Resolved {
            program,
            code: format!("builtin:{name}@{version}"),
            code_files: BTreeMap::new(),
        });
    }
    let program = if name.contains('/') {
        Some(workspace.join(name)).filter(|p| is_executable(p))
    } else {
        Some(workspace.join(name))
            .filter(|p| is_executable(p))
            .or_else(|| on_path(name))
    }
    .ok_or_else(|| err("not an executable file in the workspace nor on PATH".into()))?;
    let exe_hash =
        cache.hash_file(&std::fs::canonicalize(&program).unwrap_or_else(|_| program.clone()))?;
    let mut code_files = BTreeMap::new();
    for arg in &stage.cmd[1..] {
        let p = workspace.join(arg);
        if !arg.is_empty() && p.starts_with(workspace) && p.is_file() {
            code_files.insert(arg.clone(), cache.hash_file(&p)?);
        }
    }
    Ok(Resolved {
        program,
        code: format!("exe:{exe_hash}"),
        code_files,
    })
}

/// The canonical key manifest of a stage.
pub fn manifest(stage: &Stage, resolved: &Resolved, inputs: &BTreeMap<String, InputHash>) -> Value {
    let inputs: serde_json::Map<String, Value> = inputs
        .iter()
        .map(|(n, i)| (n.clone(), json!({"hash": i.hash, "kind": i.kind.as_str()})))
        .collect();
    crate::store::canon::sorted(&json!({
        "schema": KEY_SCHEMA,
        "stage": stage.name,
        "cmd": stage.cmd,
        "code": resolved.code,
        "code_files": resolved.code_files,
        "params": stage.params,
        "inputs": inputs,
        "outputs": stage.outputs,
    }))
}

/// The key of a manifest.
pub fn key_of(manifest: &Value) -> String {
    hash_bytes(canonical_json(manifest).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(params: Value) -> Stage {
        Stage {
            name: "s".into(),
            cmd: vec!["scan-mine".into()],
            params,
            inputs: Default::default(),
            outputs: vec!["o".into()],
        }
    }

    #[test]
    fn key_depends_on_params_and_input_content_only() {
        let r = Resolved {
            program: "/x".into(),
            code: "builtin:scan-mine@1".into(),
            code_files: Default::default(),
        };
        let inp = |h: &str, src: &str| {
            BTreeMap::from([(
                "a".to_string(),
                InputHash {
                    source: src.into(),
                    hash: h.into(),
                    kind: OutputKind::File,
                    path: "/p".into(),
                },
            )])
        };
        let k1 = key_of(&manifest(&stage(json!({"k": 1.0})), &r, &inp("aa", "u.o")));
        assert_eq!(
            k1,
            key_of(&manifest(
                &stage(json!({"k": 1.0})),
                &r,
                &inp("aa", "other.o")
            ))
        );
        assert_ne!(
            k1,
            key_of(&manifest(&stage(json!({"k": 2.0})), &r, &inp("aa", "u.o")))
        );
        assert_ne!(
            k1,
            key_of(&manifest(&stage(json!({"k": 1.0})), &r, &inp("bb", "u.o")))
        );
        let r2 = Resolved {
            code: "builtin:scan-mine@2".into(),
            ..r.clone()
        };
        assert_ne!(
            k1,
            key_of(&manifest(&stage(json!({"k": 1.0})), &r2, &inp("aa", "u.o")))
        );
    }
}
