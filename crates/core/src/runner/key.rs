//! Stage keys and code identity (README "Keys and code identity").
//!
//! **Program resolution.** A `cmd[0]` naming a built-in stage binary (`scan-ingest`, …, see
//! [`crate::builtin::Builtin`]) resolves next to the running `scan` executable first, then on `PATH`.
//! Any other `cmd[0]` containing `/` is a path relative to the workspace; without `/` it is a file in the
//! workspace if one exists, else looked up on `PATH`.
//!
//! **Code identity.** A built-in stage is `builtin:<name>@<identity>`, its identity a BLAKE3 of the
//! source compiled into its binary, computed at build time (the `scan-identity` crate): editing that
//! source changes the key, rebuilding unchanged source does not, and no stage binary is started to
//! ask. The runner hands the identity to the stage (`SCAN_CODE_IDENTITY`), which refuses to run if
//! it was built from other sources. Any other program
//! is `exe:<BLAKE3 of the resolved executable>`, and every later argv element naming an existing file in
//! the workspace (the `script.py` of `python3 script.py`) adds its content hash (`code_files`).
//!
//! **Key.** BLAKE3 of the canonical JSON of the versioned [`KeyManifest`]
//! `{schema, stage, cmd, code, code_files, params, inputs: {name: {hash, kind}}, outputs}`, the params
//! resolved (defaults included). Inputs enter
//! by *content hash*, not by upstream key, so an upstream rerun that writes identical bytes leaves
//! downstream keys unchanged (early cutoff).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use super::pipeline::Stage;
use super::RunnerError;
use crate::store::statcache::StatCache;
use crate::store::{canonical_json, Digest, OutputKind, StageKey};

/// Schema version of key manifests; bump when the manifest layout or key rule changes.
pub const KEY_SCHEMA: u32 = 2;

/// A stage's program and code identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub program: PathBuf,
    pub code: String,
    pub code_files: BTreeMap<String, Digest>,
}

/// An input's content hash and where the stage reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputHash {
    pub source: String,
    pub hash: Digest,
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
    if let Some(builtin) = stage.builtin {
        let program = exe_dir()
            .map(|d| d.join(name))
            .filter(|p| is_executable(p))
            .or_else(|| on_path(name))
            .ok_or_else(|| err("built-in stage binary not found next to `scan` nor on PATH (build it: `cargo build --release --bins`)".into()))?;
        return Ok(Resolved {
            program,
            code: format!("builtin:{name}@{}", builtin.identity()),
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

/// One input as the key sees it: content hash and kind, never where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestInput {
    pub hash: Digest,
    pub kind: OutputKind,
}

/// What a stage key is the hash of. Fields are in sorted order, so the serialised manifest is
/// canonical; `schema` changes whenever the layout or a rule of the key changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyManifest {
    pub cmd: Vec<String>,
    pub code: String,
    pub code_files: BTreeMap<String, Digest>,
    pub inputs: BTreeMap<String, ManifestInput>,
    pub outputs: Vec<String>,
    /// Resolved params (defaults included), keys sorted.
    pub params: Value,
    pub schema: u32,
    pub stage: String,
}

impl KeyManifest {
    /// The manifest of `stage` with the given code identity and input hashes.
    pub fn new(stage: &Stage, resolved: &Resolved, inputs: &BTreeMap<String, InputHash>) -> Self {
        KeyManifest {
            cmd: stage.cmd.clone(),
            code: resolved.code.clone(),
            code_files: resolved.code_files.clone(),
            inputs: inputs
                .iter()
                .map(|(n, i)| {
                    (
                        n.clone(),
                        ManifestInput {
                            hash: i.hash.clone(),
                            kind: i.kind,
                        },
                    )
                })
                .collect(),
            outputs: stage.outputs.clone(),
            params: crate::store::canon::sorted(&stage.params),
            schema: KEY_SCHEMA,
            stage: stage.name.clone(),
        }
    }

    /// As JSON (what action records keep).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The key: BLAKE3 of the canonical JSON.
    pub fn key(&self) -> StageKey {
        StageKey::of_manifest(&canonical_json(&self.to_value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stage(params: Value) -> Stage {
        Stage {
            name: "s".into(),
            cmd: vec!["scan-mine".into()],
            builtin: None,
            params: params.clone(),
            written: params,
            inputs: Default::default(),
            outputs: vec!["o".into()],
            resources: Default::default(),
        }
    }

    #[test]
    fn key_depends_on_params_code_and_input_content_only() {
        let r = Resolved {
            program: "/x".into(),
            code: "builtin:scan-mine@aa".into(),
            code_files: Default::default(),
        };
        let inp = |h: &[u8], src: &str| {
            BTreeMap::from([(
                "a".to_string(),
                InputHash {
                    source: src.into(),
                    hash: Digest::of(h),
                    kind: OutputKind::File,
                    path: "/p".into(),
                },
            )])
        };
        let key = |p: Value, r: &Resolved, i| KeyManifest::new(&stage(p), r, &i).key();
        let k1 = key(json!({"k": 1.0}), &r, inp(b"a", "u.o"));
        assert_eq!(k1, key(json!({"k": 1.0}), &r, inp(b"a", "other.o")));
        assert_ne!(k1, key(json!({"k": 2.0}), &r, inp(b"a", "u.o")));
        assert_ne!(k1, key(json!({"k": 1.0}), &r, inp(b"b", "u.o")));
        let r2 = Resolved {
            code: "builtin:scan-mine@bb".into(),
            ..r.clone()
        };
        assert_ne!(k1, key(json!({"k": 1.0}), &r2, inp(b"a", "u.o")));
    }

    #[test]
    fn manifest_serialises_canonically() {
        let r = Resolved {
            program: "/x".into(),
            code: "c".into(),
            code_files: Default::default(),
        };
        let m = KeyManifest::new(&stage(json!({"b": 1, "a": 2})), &r, &BTreeMap::new());
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, canonical_json(&m.to_value()));
    }
}
