//! `pipeline.toml`: parsing and validation (README "pipeline.toml"; issue #3 "pipeline.toml").
//!
//! ```toml
//! [pipeline]                 # optional
//! name = "fashion-mnist"
//! [stages.mine]
//! cmd = ["scan-mine"]        # argv; the runner appends --out/--params/--input
//! params = { k = 20 }        # any TOML table (optional)
//! inputs = { features = "embed.features", raw = "data/raw" }   # stage.output or workspace path
//! outputs = ["neighbors"]
//! ```
//! A string input `<known stage>.<declared output>` is a stage reference; `<known stage>.<other>` is an
//! error; anything else is a path relative to the workspace (the pipeline file's directory) that must
//! exist. Everything is checked before anything runs; errors name the stage and key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::params::toml_to_json;

use super::dag::topo_order;
pub use super::pipeline_error::PipelineError;

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// Output `output` of stage `stage`.
    Stage { stage: String, output: String },
    /// A file or directory in the workspace: as written, and resolved.
    Path { written: String, resolved: PathBuf },
}

impl InputSource {
    /// As written in pipeline.toml.
    pub fn display(&self) -> String {
        match self {
            InputSource::Stage { stage, output } => format!("{stage}.{output}"),
            InputSource::Path { written, .. } => written.clone(),
        }
    }
}

/// One validated stage.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub cmd: Vec<String>,
    /// A JSON object.
    pub params: Value,
    pub inputs: BTreeMap<String, InputSource>,
    pub outputs: Vec<String>,
}

impl Stage {
    /// Names of the stages this one reads from.
    pub fn deps(&self) -> BTreeSet<&str> {
        self.inputs
            .values()
            .filter_map(|s| match s {
                InputSource::Stage { stage, .. } => Some(stage.as_str()),
                InputSource::Path { .. } => None,
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
        Ok(p)
    }
}

fn type_name(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string \"{s}\""),
        toml::Value::Integer(i) => format!("the integer {i}"),
        toml::Value::Float(f) => format!("the float {f}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(d) => format!("the datetime {d}"),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
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
pub fn parse(path: &Path, workspace: &Path, text: &str) -> Result<Pipeline, Box<PipelineError>> {
    parse_inner(path, workspace, text).map_err(Box::new)
}

#[allow(clippy::result_large_err)] // boxed once by `parse`
fn parse_inner(path: &Path, workspace: &Path, text: &str) -> Result<Pipeline, PipelineError> {
    let path_buf = path.to_path_buf();
    let root: toml::Table = toml::from_str(text).map_err(|e| PipelineError::Syntax {
        path: path_buf.clone(),
        message: e.to_string().trim().to_string(),
    })?;
    let wrong = |context: &str, key: &str, expected: &'static str, v: &toml::Value| {
        PipelineError::WrongType {
            path: path_buf.clone(),
            context: context.into(),
            key: key.into(),
            expected,
            found: type_name(v),
        }
    };
    let mut name = None;
    let mut stage_tables = toml::Table::new();
    for (key, value) in &root {
        match key.as_str() {
            "pipeline" => {
                let t = value
                    .as_table()
                    .ok_or_else(|| wrong("top level", "pipeline", "a table", value))?;
                for (k, v) in t {
                    match k.as_str() {
                        "name" => {
                            name = Some(
                                v.as_str()
                                    .ok_or_else(|| wrong("[pipeline]", k, "a string", v))?
                                    .to_string(),
                            )
                        }
                        "description" => {
                            v.as_str()
                                .ok_or_else(|| wrong("[pipeline]", k, "a string", v))?;
                        }
                        _ => {
                            return Err(PipelineError::UnknownField {
                                path: path_buf.clone(),
                                context: "[pipeline]".into(),
                                key: k.clone(),
                                allowed: "name, description",
                            })
                        }
                    }
                }
            }
            "stages" => {
                stage_tables = value
                    .as_table()
                    .ok_or_else(|| wrong("top level", "stages", "a table", value))?
                    .clone();
            }
            _ => {
                return Err(PipelineError::UnknownField {
                    path: path_buf.clone(),
                    context: "top level".into(),
                    key: key.clone(),
                    allowed: "pipeline, stages",
                })
            }
        }
    }
    if stage_tables.is_empty() {
        return Err(PipelineError::Empty { path: path_buf });
    }
    // First pass: names, cmd, params, outputs; inputs kept raw.
    let mut raw_inputs: BTreeMap<String, toml::Table> = BTreeMap::new();
    let mut stages: BTreeMap<String, Stage> = BTreeMap::new();
    for (sname, sval) in &stage_tables {
        let ctx = format!("stage `{sname}`");
        if !valid_stage_name(sname) {
            return Err(PipelineError::Invalid {
                path: path_buf.clone(),
                message: format!(
                    "{ctx}: stage names may only contain letters, digits, `_` and `-`"
                ),
            });
        }
        let t = sval
            .as_table()
            .ok_or_else(|| wrong("[stages]", sname, "a table", sval))?;
        let mut stage = Stage {
            name: sname.clone(),
            cmd: Vec::new(),
            params: Value::Object(Default::default()),
            inputs: BTreeMap::new(),
            outputs: Vec::new(),
        };
        let mut seen_cmd = false;
        let mut seen_outputs = false;
        for (k, v) in t {
            match k.as_str() {
                "cmd" => {
                    let arr = v
                        .as_array()
                        .ok_or_else(|| wrong(&ctx, k, "an array of strings", v))?;
                    for item in arr {
                        stage.cmd.push(
                            item.as_str()
                                .ok_or_else(|| wrong(&ctx, "cmd[]", "a string", item))?
                                .to_string(),
                        );
                    }
                    if stage.cmd.is_empty() || stage.cmd[0].is_empty() {
                        return Err(PipelineError::Invalid {
                            path: path_buf.clone(),
                            message: format!("{ctx}: `cmd` must name a program"),
                        });
                    }
                    seen_cmd = true;
                }
                "params" => {
                    let pt = v.as_table().ok_or_else(|| wrong(&ctx, k, "a table", v))?;
                    stage.params =
                        toml_to_json(&toml::Value::Table(pt.clone())).map_err(|(key, found)| {
                            PipelineError::WrongType {
                                path: path_buf.clone(),
                                context: ctx.clone(),
                                key: format!("params.{key}"),
                                expected: "a finite number, string, boolean, array or table",
                                found,
                            }
                        })?;
                }
                "inputs" => {
                    raw_inputs.insert(
                        sname.clone(),
                        v.as_table()
                            .ok_or_else(|| wrong(&ctx, k, "a table", v))?
                            .clone(),
                    );
                }
                "outputs" => {
                    let arr = v
                        .as_array()
                        .ok_or_else(|| wrong(&ctx, k, "an array of strings", v))?;
                    for item in arr {
                        let o = item
                            .as_str()
                            .ok_or_else(|| wrong(&ctx, "outputs[]", "a string", item))?;
                        if !valid_output_name(o) {
                            return Err(PipelineError::Invalid {
                                path: path_buf.clone(),
                                message: format!(
                                    "{ctx}: output `{o}` must be a plain file name (no `/`, `=`)"
                                ),
                            });
                        }
                        if stage.outputs.iter().any(|x| x == o) {
                            return Err(PipelineError::DuplicateOutput {
                                path: path_buf.clone(),
                                stage: sname.clone(),
                                output: o.into(),
                            });
                        }
                        stage.outputs.push(o.to_string());
                    }
                    seen_outputs = true;
                }
                _ => {
                    return Err(PipelineError::UnknownField {
                        path: path_buf.clone(),
                        context: ctx,
                        key: k.clone(),
                        allowed: "cmd, params, inputs, outputs",
                    })
                }
            }
        }
        for (seen, key) in [(seen_cmd, "cmd"), (seen_outputs, "outputs")] {
            if !seen {
                return Err(PipelineError::Missing {
                    path: path_buf.clone(),
                    stage: sname.clone(),
                    key: key.into(),
                });
            }
        }
        stages.insert(sname.clone(), stage);
    }
    // Second pass: resolve inputs.
    let declared: BTreeMap<String, Vec<String>> = stages
        .iter()
        .map(|(n, s)| (n.clone(), s.outputs.clone()))
        .collect();
    for (sname, table) in raw_inputs {
        let ctx = format!("stage `{sname}`");
        let mut inputs = BTreeMap::new();
        for (iname, v) in table {
            if !valid_output_name(&iname) {
                return Err(PipelineError::Invalid {
                    path: path_buf.clone(),
                    message: format!(
                        "{ctx}: input name `{iname}` must be a plain name (no `/`, `=`)"
                    ),
                });
            }
            let reference = v.as_str().ok_or_else(|| {
                wrong(
                    &ctx,
                    &format!("inputs.{iname}"),
                    "a string (\"stage.output\" or a path)",
                    &v,
                )
            })?;
            let source = match reference
                .split_once('.')
                .filter(|(s, _)| declared.contains_key(*s))
            {
                Some((up, out)) => {
                    let outs = &declared[up];
                    if !outs.iter().any(|o| o == out) {
                        return Err(PipelineError::UnknownOutput {
                            path: path_buf.clone(),
                            stage: sname.clone(),
                            input: iname.clone(),
                            reference: reference.into(),
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
                    if reference.is_empty() || !resolved.exists() {
                        return Err(PipelineError::MissingPath {
                            path: path_buf.clone(),
                            stage: sname.clone(),
                            input: iname.clone(),
                            reference: reference.into(),
                            resolved,
                        });
                    }
                    InputSource::Path {
                        written: reference.into(),
                        resolved,
                    }
                }
            };
            inputs.insert(iname, source);
        }
        if let Some(s) = stages.get_mut(&sname) {
            s.inputs = inputs;
        }
    }
    let order = topo_order(&path_buf, &stages)?;
    let mut stages = stages;
    let stages = order
        .into_iter()
        .filter_map(|n| stages.remove(&n))
        .collect();
    Ok(Pipeline {
        path: path_buf,
        workspace: workspace.to_path_buf(),
        name,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Pipeline, Box<PipelineError>> {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("data.csv"), "x").unwrap();
        parse(&t.path().join("pipeline.toml"), t.path(), text)
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
            ("[stages.a]\ncmd=\"x\"\noutputs=[\"o\"]", "`cmd` must be an array"),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\",\"o\"]", "output `o` is declared twice"),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"a.p\"}", "stage `a` has no output `p`"),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"nope.txt\"}", "input `i` = \"nope.txt\""),
            ("[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"b.o\"}\n[stages.b]\ncmd=[\"x\"]\noutputs=[\"o\"]\ninputs={i=\"a.o\"}", "cycle: a → b → a"),
            ("[stages.a]\noutputs=[\"o\"]", "missing required field `cmd`"),
        ];
        for (text, want) in cases {
            let msg = p(text).unwrap_err().to_string();
            assert!(msg.contains(want), "{text}\n→ {msg}");
            assert!(msg.contains("stage `a`") || msg.contains("cycle"), "{msg}");
        }
    }
}
