//! `pipeline.toml`: the file's serde schema ([`PipelineFile`], `deny_unknown_fields` everywhere) and
//! the resolve step that turns it into a validated [`Pipeline`] (README "pipeline.toml").
//!
//! ```toml
//! [pipeline]                 # optional
//! name = "fashion-mnist"
//! [stages.mine]
//! cmd = ["scan-mine"]        # argv; the runner appends --out/--params/--input
//! params = { k = 20 }        # any TOML table (optional)
//! inputs = { features = "embed.features", raw = "data/raw" }   # stage.output or workspace path
//! outputs = ["neighbors"]
//! resources = { gpus = 1, cpus = 8, mem = "32G", time = "4:00:00" }   # optional, not in the key
//! [executor]                 # optional: where stages run (`scan run --executor` overrides `kind`)
//! kind = "slurm"             # or "local" (the default)
//! partition = "gpu"
//! account = "my-lab"
//! extra = ["--qos=normal"]   # further sbatch flags, passed as written
//! ```
//! A string input `<known stage>.<declared output>` is a stage reference; `<known stage>.<other>` is an
//! error; anything else is a path relative to the workspace (the pipeline file's directory) that must
//! exist. The params of a built-in stage are resolved against its schema ([`crate::params`]): unknown
//! keys, wrong types and out-of-range values are errors, and the stage's params become the full set
//! with every default filled in. Everything is checked before anything runs (`run`, `status`,
//! `explain`, `--dry-run` alike); errors name the file, the stage and the key.
//!
//! An `ingest` stage without a `data_dir` input reads `$SCAN_DATA_DIR`, else the folder a system
//! package installs its dataset into: that folder becomes an ordinary hashed input here, so the bytes
//! the stage reads are always the bytes in its key. With neither, only an ingest with
//! `download = true` is valid (it reads official files verified by their fixed checksums).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::params::toml_to_json;
use crate::builtin::Builtin;
use crate::params::IngestParams;

use super::dag::topo_order;
pub use super::pipeline_error::PipelineError;

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// Output `output` of stage `stage`.
    Stage { stage: String, output: String },
    /// A file or directory in the workspace: as written, and resolved.
    Path { written: String, resolved: PathBuf },
    /// A workspace input that does not exist here (`no_data_dir`: the implicit data directory of
    /// an `ingest` stage, none found). Only [`Pipeline::bind_absent`] sees it: it becomes
    /// [`InputSource::Locked`] when `pipeline.lock` records the input, else the load fails.
    Absent {
        written: String,
        resolved: PathBuf,
        no_data_dir: bool,
    },
    /// A workspace input absent here whose content hash comes from `pipeline.lock` (a teammate
    /// without the raw dataset): enough to compute keys and fetch results from a remote; a stage
    /// that reads it can only be reused, not built.
    Locked {
        written: String,
        resolved: PathBuf,
        hash: crate::store::Digest,
        kind: crate::store::OutputKind,
    },
}

impl InputSource {
    /// As written in pipeline.toml.
    pub fn display(&self) -> String {
        match self {
            InputSource::Stage { stage, output } => format!("{stage}.{output}"),
            InputSource::Path { written, .. }
            | InputSource::Absent { written, .. }
            | InputSource::Locked { written, .. } => written.clone(),
        }
    }
}

/// One validated stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub cmd: Vec<String>,
    /// The built-in stage `cmd[0]` names, if any.
    pub builtin: Option<Builtin>,
    /// The params (a JSON object with sorted keys): for a built-in stage resolved against its schema,
    /// defaults included; otherwise as written.
    pub params: Value,
    /// The params as written (pipeline file and `--set`), to tell defaults apart in `scan explain`.
    pub written: Value,
    pub inputs: BTreeMap<String, InputSource>,
    pub outputs: Vec<String>,
    /// What the stage asks of the machine it runs on; never part of its key.
    pub resources: super::executor::Resources,
}

impl Stage {
    /// Names of the stages this one reads from.
    pub fn deps(&self) -> BTreeSet<&str> {
        self.inputs
            .values()
            .filter_map(|s| match s {
                InputSource::Stage { stage, .. } => Some(stage.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Workspace inputs absent here, bound to their `pipeline.lock` hashes (as `name (path)`).
    pub fn locked_inputs(&self) -> Vec<String> {
        self.inputs
            .iter()
            .filter_map(|(n, s)| match s {
                InputSource::Locked { written, .. } => Some(format!("{n} ({written})")),
                _ => None,
            })
            .collect()
    }
}

/// A validated pipeline; `stages` are in a deterministic topological order.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub path: PathBuf,
    pub workspace: PathBuf,
    pub name: Option<String>,
    pub stages: Vec<Stage>,
    /// The `[sweep]` table, if any.
    pub sweep: Option<super::sweep::SweepFile>,
    /// The `[executor]` table (default: local).
    pub executor: super::executor::ExecutorFile,
    /// `[remote]`, validated.
    pub remote: Option<RemoteConfig>,
}

/// `[remote]` of the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    pub url: String,
    pub endpoint: Option<String>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Load and validate `path` with `--set` overrides applied.
    pub fn load(path: &Path, sets: &[String]) -> Result<Pipeline, super::RunnerError> {
        let text = fs_err::read_to_string(path).map_err(|source| PipelineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let workspace = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut p = parse(&abs, &workspace, &text)?;
        super::params::apply_sets(&mut p, sets)?;
        resolve_params(&mut p)?;
        Ok(p)
    }

    /// Bind absent workspace inputs to their hashes in `lock` (matched by stage and input name);
    /// an absent input the lock does not record is the usual error (missing path, no data dir).
    pub fn bind_absent(
        &mut self,
        lock: &super::lockfile::LockFile,
    ) -> Result<(), Box<PipelineError>> {
        for stage in &mut self.stages {
            for (name, src) in stage.inputs.iter_mut() {
                let InputSource::Absent {
                    written,
                    resolved,
                    no_data_dir,
                } = src
                else {
                    continue;
                };
                match lock
                    .stages
                    .get(&stage.name)
                    .and_then(|e| e.inputs.get(name))
                {
                    Some(l) => {
                        *src = InputSource::Locked {
                            written: written.clone(),
                            resolved: resolved.clone(),
                            hash: l.hash.clone(),
                            kind: l.kind,
                        }
                    }
                    None if *no_data_dir => {
                        return Err(Box::new(PipelineError::NoDataDir {
                            path: self.path.clone(),
                            stage: stage.name.clone(),
                        }))
                    }
                    None => {
                        return Err(Box::new(PipelineError::MissingPath {
                            path: self.path.clone(),
                            stage: stage.name.clone(),
                            input: name.clone(),
                            reference: written.clone(),
                            resolved: resolved.clone(),
                        }))
                    }
                }
            }
        }
        Ok(())
    }
}

/// The file as written: the serde schema of `pipeline.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    #[serde(default)]
    pub pipeline: PipelineMeta,
    #[serde(default)]
    pub stages: BTreeMap<String, StageFile>,
    /// Variants run by `scan run --sweep`.
    pub sweep: Option<super::sweep::SweepFile>,
    /// Where stages run.
    #[serde(default)]
    pub executor: super::executor::ExecutorFile,
    /// `[remote]`: where results are shared (README "Sharing").
    pub remote: Option<RemoteFile>,
}

/// `[remote]`: a remote store URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `https://host/path`,
/// `file:///dir`) and, for S3-compatible servers, their endpoint. Never credentials: they come
/// from the environment (the URL refuses user names, passwords and query strings).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFile {
    pub url: String,
    pub endpoint: Option<String>,
}

/// `[pipeline]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineMeta {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// `[stages.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    pub cmd: Vec<String>,
    #[serde(default)]
    pub params: toml::Table,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    pub outputs: Vec<String>,
    /// `{ gpus, cpus, mem, time }`.
    #[serde(default)]
    pub resources: super::executor::Resources,
}

/// Whether `name` is a valid stage name (letters, digits, `_`, `-`).
pub fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `name` is a valid output name (a plain file name).
pub fn valid_output_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0', '='])
}

/// Parse and validate pipeline text; `path` is used in messages, `workspace` to resolve paths.
/// Params are checked against the built-in schemas by [`resolve_params`] (after `--set`, which
/// edits [`Stage::written`]).
pub fn parse(path: &Path, workspace: &Path, text: &str) -> Result<Pipeline, Box<PipelineError>> {
    parse_inner(path, workspace, text).map_err(Box::new)
}

/// Read the file into its serde schema; an error names the key path (`stages.a.cmd`) and line.
#[allow(clippy::result_large_err)] // boxed once by `parse`
fn read_schema(path: &Path, text: &str) -> Result<PipelineFile, PipelineError> {
    let syntax = |message: String| PipelineError::Syntax {
        path: path.to_path_buf(),
        message,
    };
    let de = toml::Deserializer::parse(text).map_err(|e| syntax(e.to_string().trim().into()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        let line = inner
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        PipelineError::Schema {
            path: path.to_path_buf(),
            context: describe_path(&at),
            line,
            message,
        }
    })
}

/// `stages.a.cmd` → "stage `a`, key `cmd`".
fn describe_path(at: &str) -> String {
    let parts: Vec<&str> = at
        .split('.')
        .filter(|p| !p.is_empty() && *p != "?")
        .collect();
    match parts.as_slice() {
        ["stages", stage] => format!("stage `{stage}`"),
        ["stages", stage, key @ ..] => format!("stage `{stage}`, key `{}`", key.join(".")),
        [] => "top level".into(),
        other => format!("key `{}`", other.join(".")),
    }
}

#[allow(clippy::result_large_err)] // boxed once by `parse`
fn parse_inner(path: &Path, workspace: &Path, text: &str) -> Result<Pipeline, PipelineError> {
    let path_buf = path.to_path_buf();
    let file = read_schema(path, text)?;
    if file.stages.is_empty() {
        return Err(PipelineError::Empty { path: path_buf });
    }
    let invalid = |message: String| PipelineError::Invalid {
        path: path_buf.clone(),
        message,
    };
    let mut stages: BTreeMap<String, Stage> = BTreeMap::new();
    for (sname, s) in &file.stages {
        let ctx = format!("stage `{sname}`");
        if !valid_stage_name(sname) {
            return Err(invalid(format!(
                "{ctx}: stage names may only contain letters, digits, `_` and `-`"
            )));
        }
        if s.cmd.first().is_none_or(|c| c.is_empty()) {
            return Err(invalid(format!("{ctx}: `cmd` must name a program")));
        }
        let params =
            toml_to_json(&toml::Value::Table(s.params.clone())).map_err(|(key, found)| {
                PipelineError::WrongType {
                    path: path_buf.clone(),
                    context: ctx.clone(),
                    key: format!("params.{key}"),
                    expected: "a finite number, string, boolean, array or table",
                    found,
                }
            })?;
        s.resources
            .validate()
            .map_err(|m| invalid(format!("{ctx}: resources: {m}")))?;
        let mut outputs: Vec<String> = Vec::new();
        for o in &s.outputs {
            if !valid_output_name(o) {
                return Err(invalid(format!(
                    "{ctx}: output `{o}` must be a plain file name (no `/`, `=`)"
                )));
            }
            if outputs.contains(o) {
                return Err(PipelineError::DuplicateOutput {
                    path: path_buf.clone(),
                    stage: sname.clone(),
                    output: o.clone(),
                });
            }
            outputs.push(o.clone());
        }
        stages.insert(
            sname.clone(),
            Stage {
                name: sname.clone(),
                cmd: s.cmd.clone(),
                builtin: Builtin::from_binary(&s.cmd[0]),
                params: params.clone(),
                written: params,
                inputs: BTreeMap::new(),
                outputs,
                resources: s.resources.clone(),
            },
        );
    }
    // Inputs: stage references or workspace paths.
    for (sname, s) in &file.stages {
        let ctx = format!("stage `{sname}`");
        let mut inputs = BTreeMap::new();
        for (iname, reference) in &s.inputs {
            if !valid_output_name(iname) {
                return Err(invalid(format!(
                    "{ctx}: input name `{iname}` must be a plain name (no `/`, `=`)"
                )));
            }
            let source = match reference
                .split_once('.')
                .filter(|(up, _)| stages.contains_key(*up))
            {
                Some((up, out)) => {
                    let outs = &stages[up].outputs;
                    if !outs.iter().any(|o| o == out) {
                        return Err(PipelineError::UnknownOutput {
                            path: path_buf.clone(),
                            stage: sname.clone(),
                            input: iname.clone(),
                            reference: reference.clone(),
                            upstream: up.into(),
                            output: out.into(),
                            declared: outs.join(", "),
                        });
                    }
                    InputSource::Stage {
                        stage: up.into(),
                        output: out.into(),
                    }
                }
                None => {
                    let resolved = workspace.join(reference);
                    if reference.is_empty() {
                        return Err(PipelineError::MissingPath {
                            path: path_buf.clone(),
                            stage: sname.clone(),
                            input: iname.clone(),
                            reference: reference.clone(),
                            resolved,
                        });
                    }
                    if resolved.exists() {
                        InputSource::Path {
                            written: reference.clone(),
                            resolved,
                        }
                    } else {
                        // An error unless pipeline.lock records it (Pipeline::bind_absent).
                        InputSource::Absent {
                            written: reference.clone(),
                            resolved,
                            no_data_dir: false,
                        }
                    }
                }
            };
            inputs.insert(iname.clone(), source);
        }
        if let Some(st) = stages.get_mut(sname) {
            st.inputs = inputs;
        }
    }
    file.executor
        .validate()
        .map_err(|m| invalid(format!("[executor]: {m}")))?;
    let order = topo_order(&path_buf, &stages)?;
    let stages = order
        .into_iter()
        .filter_map(|n| stages.remove(&n))
        .collect();
    let remote = match file.remote {
        Some(r) => {
            crate::store::remote::RemoteSpec::parse(&r.url, r.endpoint.as_deref())
                .map_err(|e| invalid(format!("[remote]: {e}")))?;
            Some(RemoteConfig {
                url: r.url,
                endpoint: r.endpoint,
            })
        }
        None => None,
    };
    Ok(Pipeline {
        path: path_buf,
        workspace: workspace.to_path_buf(),
        name: file.pipeline.name,
        stages,
        remote,
        sweep: file.sweep,
        executor: file.executor,
    })
}

/// The resolve step: every built-in stage's params against its schema (defaults filled in), and the
/// implicit data directory of `ingest` made an explicit, hashed input.
pub fn resolve_params(p: &mut Pipeline) -> Result<(), Box<PipelineError>> {
    for stage in &mut p.stages {
        let Some(builtin) = stage.builtin else {
            stage.params = crate::store::canon::sorted(&stage.written);
            continue;
        };
        stage.params =
            builtin
                .resolve_params(&stage.written)
                .map_err(|e| PipelineError::Param {
                    path: p.path.clone(),
                    stage: stage.name.clone(),
                    key: e.key,
                    message: e.message,
                })?;
        if builtin == Builtin::Ingest && !stage.inputs.contains_key("data_dir") {
            match default_data_dir(&stage.params) {
                Some(source) => {
                    stage.inputs.insert("data_dir".into(), source);
                }
                // With `download = true` the stage fetches the official files and reads them
                // only once their fixed official checksum matches: no folder is needed.
                None if downloads(&stage.params) => {}
                // None found: an error unless pipeline.lock records it (Pipeline::bind_absent).
                None => {
                    stage.inputs.insert(
                        "data_dir".into(),
                        InputSource::Absent {
                            written: "$SCAN_DATA_DIR".into(),
                            resolved: PathBuf::new(),
                            no_data_dir: true,
                        },
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whether resolved ingest params say `download = true`.
fn downloads(params: &Value) -> bool {
    serde_json::from_value::<IngestParams>(params.clone()).is_ok_and(|p| p.download)
}

/// `$SCAN_DATA_DIR`, else the dataset's system folder, as an input (when the folder exists).
fn default_data_dir(params: &Value) -> Option<InputSource> {
    if let Some(dir) = std::env::var_os("SCAN_DATA_DIR").filter(|d| !d.is_empty()) {
        let resolved = PathBuf::from(&dir);
        return resolved.is_dir().then(|| InputSource::Path {
            written: format!("$SCAN_DATA_DIR ({})", resolved.display()),
            resolved,
        });
    }
    let params: IngestParams = serde_json::from_value(params.clone()).ok()?;
    let dir = PathBuf::from(params.dataset.system_dir()?);
    dir.is_dir().then(|| InputSource::Path {
        written: dir.display().to_string(),
        resolved: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Pipeline, Box<PipelineError>> {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("data.csv"), "x").unwrap();
        let mut pl = parse(&t.path().join("pipeline.toml"), t.path(), text)?;
        pl.bind_absent(&super::super::lockfile::LockFile::default())?;
        Ok(pl)
    }

    #[test]
    fn absent_input_binds_to_the_lock() {
        use super::super::lockfile::{LockEntry, LockFile, LockInput};
        let t = tempfile::tempdir().unwrap();
        let text = "[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={raw=\"data/raw\"}\n[remote]\nurl=\"s3://b/p\"";
        let mut pl = parse(&t.path().join("pipeline.toml"), t.path(), text).unwrap();
        assert_eq!(pl.remote.as_ref().unwrap().url, "s3://b/p");
        let mut lock = LockFile::default();
        assert!(pl
            .clone()
            .bind_absent(&lock)
            .unwrap_err()
            .to_string()
            .contains("data/raw"));
        let hash = crate::store::Digest::of(b"raw");
        lock.stages.insert(
            "a".into(),
            LockEntry {
                key: crate::store::StageKey::of_manifest("{}"),
                cmd: vec!["x".into()],
                code: "exe:0".into(),
                code_files: BTreeMap::new(),
                params: serde_json::json!({}),
                explicit: None,
                inputs: BTreeMap::from([(
                    "raw".into(),
                    LockInput {
                        hash: hash.clone(),
                        kind: crate::store::OutputKind::Dir,
                        source: "elsewhere".into(),
                    },
                )]),
                outputs: BTreeMap::new(),
            },
        );
        pl.bind_absent(&lock).unwrap();
        assert!(
            matches!(&pl.stages[0].inputs["raw"], InputSource::Locked { hash: h, .. } if *h == hash)
        );
        assert_eq!(pl.stages[0].locked_inputs(), ["raw (data/raw)"]);
        for bad in ["url=\"https://u:secret@h/x\"", "url=\"s3://b\"\nbogus=1"] {
            let text = format!("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\n[remote]\n{bad}");
            let msg = parse(&t.path().join("pipeline.toml"), t.path(), &text)
                .unwrap_err()
                .to_string();
            assert!(
                !msg.contains("secret") && (msg.contains("[remote]") || msg.contains("bogus")),
                "{msg}"
            );
        }
    }

    #[test]
    fn valid_pipeline_in_topo_order() {
        let pl = p(r#"
[stages.b]
cmd = ["x"]
inputs = { a = "a.out", raw = "data.csv" }
outputs = ["out"]
[stages.a]
cmd = ["x"]
params = { lr = 0.5, sub = { n = 3 } }
outputs = ["out", "report"]
"#)
        .unwrap();
        assert_eq!(
            pl.stages
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(pl.stages[0].params["sub"]["n"], 3);
        assert!(matches!(
            pl.stages[1].inputs["raw"],
            InputSource::Path { .. }
        ));
    }

    #[test]
    fn errors_name_stage_and_key() {
        let cases = [
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\nbogus=1", "unknown field `bogus`"),
            ("[stages.a]\ncmd=\"x\"\noutputs=[\"o\"]", "key `cmd`: invalid type: string \"x\", expected a sequence"),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\",\"o\"]", "output `o` is declared twice"),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"a.p\"}", "stage `a` has no output `p`"),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"nope.txt\"}", "input `i` = \"nope.txt\""),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"b.o\"}\n[stages.b]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"a.o\"}", "cycle: a → b → a"),
            ("[stages.a]\noutputs=[\"o\"]", "missing field `cmd`"),
        ];
        for (text, want) in cases {
            let msg = p(text).unwrap_err().to_string();
            assert!(msg.contains(want), "{text}\n→ {msg}");
            assert!(msg.contains("stage `a`") || msg.contains("cycle"), "{msg}");
        }
    }

    #[test]
    fn builtin_params_are_resolved_and_checked() {
        let run = |params: &str| {
            let mut pl = p(&format!(
                "[stages.pretext]\ncmd=[\"scan-pretext\"]\noutputs=[\"weights\"]\nparams={{ {params} }}"
            ))
            .unwrap();
            resolve_params(&mut pl).map(|()| pl)
        };
        let pl = run("epochs = 3").unwrap();
        assert_eq!(pl.stages[0].params["epochs"], 3);
        assert_eq!(pl.stages[0].params["momentum"], 0.9, "defaults filled in");
        assert_eq!(pl.stages[0].written, serde_json::json!({"epochs": 3}));
        for (params, key) in [
            ("epochz = 3", "epochz"),
            ("lr = \"fast\"", "lr"),
            ("lr = -1.0", "lr"),
        ] {
            let msg = run(params).unwrap_err().to_string();
            assert!(msg.contains("pipeline.toml"), "{msg}");
            assert!(msg.contains("stage `pretext`"), "{msg}");
            assert!(msg.contains(&format!("parameter `{key}`")), "{msg}");
        }
    }
}
