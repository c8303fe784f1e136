//! `scan dag`: the pipeline's stages and the outputs that connect them, with each stage's state
//! (fresh, stale, pending), as text, Graphviz DOT or Mermaid.

use std::fmt::Write as _;

use super::pipeline::{InputSource, Pipeline};
use super::plan::{StagePlan, State};

/// Output format of `scan dag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

/// Edges `(upstream stage, output, downstream stage, input name)` in stage order.
fn edges(p: &Pipeline) -> Vec<(&str, &str, &str, &str)> {
    let mut out = Vec::new();
    for s in &p.stages {
        for (input, src) in &s.inputs {
            if let InputSource::Stage { stage, output } = src {
                out.push((
                    stage.as_str(),
                    output.as_str(),
                    s.name.as_str(),
                    input.as_str(),
                ));
            }
        }
    }
    out
}

fn state(plans: &[StagePlan], name: &str) -> State {
    plans
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.state)
        .unwrap_or(State::Pending)
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Render the graph.
pub fn render(p: &Pipeline, plans: &[StagePlan], format: DagFormat) -> String {
    let mut out = String::new();
    match format {
        DagFormat::Text => {
            for s in &p.stages {
                let st = state(plans, &s.name);
                let _ = writeln!(out, "{} [{}]", s.name, st.as_str());
                for (input, src) in &s.inputs {
                    let _ = writeln!(out, "  <- {input} = {}", src.display());
                }
            }
        }
        DagFormat::Dot => {
            out.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n");
            for s in &p.stages {
                let (st, color) = match state(plans, &s.name) {
                    State::Fresh => ("fresh", "#c8e6c9"),
                    State::Stale => ("stale", "#ffcdd2"),
                    State::Pending => ("pending", "#fff9c4"),
                    State::Remote => ("remote", "#bbdefb"),
                };
                let _ = writeln!(
                    out,
                    "  {} [label={}, fillcolor=\"{color}\"];",
                    dot_id(&s.name),
                    dot_id(&format!("{}\\n{st}", s.name))
                );
            }
            for (up, output, down, input) in edges(p) {
                let label = if output == input {
                    output.to_string()
                } else {
                    format!("{output} → {input}")
                };
                let _ = writeln!(
                    out,
                    "  {} -> {} [label={}];",
                    dot_id(up),
                    dot_id(down),
                    dot_id(&label)
                );
            }
            out.push_str("}\n");
        }
        DagFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            let id = |n: &str| format!("s_{}", n.replace('-', "_"));
            for s in &p.stages {
                let st = state(plans, &s.name);
                let _ = writeln!(
                    out,
                    "  {}[\"{}<br/>{}\"]:::{}",
                    id(&s.name),
                    s.name,
                    st.as_str(),
                    st.as_str()
                );
            }
            for (up, output, down, _) in edges(p) {
                let _ = writeln!(out, "  {} -->|{output}| {}", id(up), id(down));
            }
            out.push_str("  classDef fresh fill:#c8e6c9\n  classDef stale fill:#ffcdd2\n  classDef pending fill:#fff9c4\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_name_every_stage_and_edge() {
        let t = tempfile::tempdir().unwrap();
        let p = super::super::pipeline::parse(
            &t.path().join("pipeline.toml"),
            t.path(),
            "[stages.a]\ncmd=[\"x\"]\noutputs=[\"o\"]\n[stages.b]\ncmd=[\"x\"]\ninputs={i=\"a.o\"}\noutputs=[\"p\"]\n",
        )
        .unwrap();
        let text = render(&p, &[], DagFormat::Text);
        assert!(text.contains("b [pending]\n  <- i = a.o"), "{text}");
        let dot = render(&p, &[], DagFormat::Dot);
        assert!(dot.contains("\"a\" -> \"b\" [label=\"o → i\"]"), "{dot}");
        let mm = render(&p, &[], DagFormat::Mermaid);
        assert!(mm.contains("s_a -->|o| s_b"), "{mm}");
    }
}
