//! `scan exp show` and `scan exp diff`: the metrics of every experiment read from the store, the params
//! that differ between them, and per group (a variant without its seed) the mean, the sample standard
//! deviation (n − 1 in the denominator; 0 for one run) and n — as a terminal table, Markdown, CSV or
//! JSON.
//!
//! Metrics: `<stage>.acc`, `.nmi`, `.ari` of every `scan-evaluate` stage (after SCAN and after
//! self-labeling in the default pipeline), every accuracy field of the `scan-mine` metrics
//! (`<stage>.train.neighbor_acc`, …), and `wall_s`, the summed build time of the stages that made the
//! experiment's results.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{Experiment, ExperimentLog};
use crate::runner::params::flatten;
use crate::store::{canonical_json, Store};

/// One experiment's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub group: String,
    pub seed: Option<u64>,
    pub params: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub complete: bool,
}

/// Mean, sample standard deviation and count of one metric over a group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

/// One group's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub group: String,
    pub params: BTreeMap<String, String>,
    pub members: Vec<String>,
    pub metrics: BTreeMap<String, Stat>,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

fn read_json(store: &Store, o: &crate::store::OutputRef) -> Option<Value> {
    let bytes = store.read_blob(&o.hash).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The metrics of one experiment.
pub fn metrics_of(e: &Experiment, store: &Store) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut wall = 0.0;
    for (stage, run) in &e.stages {
        wall += run.duration_s;
        let Some(v) = run.outputs.get("metrics").and_then(|o| read_json(store, o)) else {
            continue;
        };
        match run.builtin.as_deref() {
            Some("scan-evaluate") => {
                for m in ["acc", "nmi", "ari"] {
                    if let Some(x) = v.get(m).and_then(Value::as_f64) {
                        out.insert(format!("{stage}.{m}"), x);
                    }
                }
            }
            Some("scan-mine") => {
                for (k, text) in flatten(&v) {
                    if k.to_ascii_lowercase().contains("acc") {
                        if let Ok(x) = text.parse::<f64>() {
                            out.insert(format!("{stage}.{k}"), x);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.insert("wall_s".into(), (wall * 100.0).round() / 100.0);
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => canonical_json(other),
    }
}

/// Rows of every experiment; `params` keeps only the keys whose values differ between experiments.
pub fn rows(log: &ExperimentLog, store: &Store) -> Vec<Row> {
    let all: Vec<BTreeMap<String, String>> = log
        .experiments
        .iter()
        .map(|e| {
            e.overrides
                .iter()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect()
        })
        .collect();
    let keys: BTreeSet<&String> = all.iter().flat_map(|m| m.keys()).collect();
    let differing: BTreeSet<String> = keys
        .into_iter()
        .filter(|k| {
            let vals: BTreeSet<Option<&String>> = all.iter().map(|m| m.get(*k)).collect();
            vals.len() > 1
        })
        .cloned()
        .collect();
    log.experiments
        .iter()
        .zip(all)
        .map(|(e, params)| Row {
            name: e.name.clone(),
            group: e.group.clone(),
            seed: e.seed,
            params: params
                .into_iter()
                .filter(|(k, _)| differing.contains(k))
                .collect(),
            metrics: metrics_of(e, store),
            complete: e.complete,
        })
        .collect()
}

/// Mean and sample standard deviation (n − 1; 0 when n = 1).
pub fn stat(xs: &[f64]) -> Stat {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
    let std = if n > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Stat { mean, std, n }
}

/// Aggregate rows by group (first-seen order); seed params are not part of a group's params.
pub fn groups(rows: &[Row]) -> Vec<Group> {
    let mut order: Vec<String> = Vec::new();
    for r in rows {
        if !order.contains(&r.group) {
            order.push(r.group.clone());
        }
    }
    order
        .into_iter()
        .map(|g| {
            let members: Vec<&Row> = rows.iter().filter(|r| r.group == g).collect();
            let names: BTreeSet<&String> = members.iter().flat_map(|r| r.metrics.keys()).collect();
            let metrics = names
                .into_iter()
                .map(|m| {
                    let xs: Vec<f64> = members
                        .iter()
                        .filter_map(|r| r.metrics.get(m))
                        .copied()
                        .collect();
                    (m.clone(), stat(&xs))
                })
                .collect();
            let params = members[0]
                .params
                .iter()
                .filter(|(k, _)| !k.ends_with(".seed"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Group {
                group: g,
                params,
                members: members.iter().map(|r| r.name.clone()).collect(),
                metrics,
            }
        })
        .collect()
}

/// Sort groups by `key` (a metric: descending; `group`: ascending).
pub fn sort_groups(groups: &mut [Group], key: Option<&str>) {
    match key {
        None => {}
        Some("group" | "name") => groups.sort_by(|a, b| a.group.cmp(&b.group)),
        Some(m) => groups.sort_by(|a, b| {
            let v = |g: &Group| {
                g.metrics
                    .get(m)
                    .map(|s| s.mean)
                    .unwrap_or(f64::NEG_INFINITY)
            };
            v(b).total_cmp(&v(a))
        }),
    }
}

fn cell(s: &Stat, metric: &str) -> String {
    let digits = if metric == "wall_s" { 1 } else { 4 };
    if s.n > 1 {
        format!("{:.digits$} ± {:.digits$}", s.mean, s.std)
    } else {
        format!("{:.digits$}", s.mean)
    }
}

/// Render the grouped table.
pub fn render(groups: &[Group], rows: &[Row], format: Format) -> String {
    let params: BTreeSet<&String> = groups.iter().flat_map(|g| g.params.keys()).collect();
    let metrics: BTreeSet<&String> = groups.iter().flat_map(|g| g.metrics.keys()).collect();
    let mut header: Vec<String> = vec!["group".into()];
    header.extend(params.iter().map(|p| p.to_string()));
    header.push("n".into());
    header.extend(metrics.iter().map(|m| m.to_string()));
    let body: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let mut r = vec![g.group.clone()];
            r.extend(
                params
                    .iter()
                    .map(|p| g.params.get(*p).cloned().unwrap_or_default()),
            );
            r.push(g.members.len().to_string());
            r.extend(metrics.iter().map(|m| {
                g.metrics
                    .get(*m)
                    .map(|s| cell(s, m))
                    .unwrap_or_else(|| "-".into())
            }));
            r
        })
        .collect();
    match format {
        Format::Json => serde_json::to_string_pretty(&serde_json::json!({
            "experiments": rows,
            "groups": groups,
        }))
        .unwrap_or_default(),
        Format::Csv => {
            let mut h: Vec<String> = vec!["group".into()];
            h.extend(params.iter().map(|p| p.to_string()));
            h.push("n".into());
            for m in &metrics {
                h.push(format!("{m}.mean"));
                h.push(format!("{m}.std"));
            }
            let esc = |s: &str| {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.to_string()
                }
            };
            let mut out = h.iter().map(|s| esc(s)).collect::<Vec<_>>().join(",") + "\n";
            for g in groups {
                let mut r = vec![esc(&g.group)];
                r.extend(
                    params
                        .iter()
                        .map(|p| esc(g.params.get(*p).map(String::as_str).unwrap_or(""))),
                );
                r.push(g.members.len().to_string());
                for m in &metrics {
                    match g.metrics.get(*m) {
                        Some(s) => {
                            r.push(format!("{}", s.mean));
                            r.push(format!("{}", s.std));
                        }
                        None => r.extend([String::new(), String::new()]),
                    }
                }
                out += &(r.join(",") + "\n");
            }
            out
        }
        Format::Markdown => {
            let mut out = format!("| {} |\n", header.join(" | "));
            out += &format!("|{}\n", "---|".repeat(header.len()));
            for r in &body {
                out += &format!("| {} |\n", r.join(" | "));
            }
            out
        }
        Format::Table => {
            let widths: Vec<usize> = (0..header.len())
                .map(|i| {
                    body.iter()
                        .map(|r| r[i].chars().count())
                        .chain([header[i].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
                    + "\n"
            };
            let mut out = line(&header);
            for r in &body {
                out += &line(r);
            }
            out
        }
    }
}

/// `scan exp diff A B`: overrides and metrics side by side (only what differs, plus every metric).
pub fn diff(a: &Experiment, b: &Experiment, store: &Store) -> String {
    let text = |e: &Experiment| -> BTreeMap<String, String> {
        e.overrides
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect()
    };
    let (pa, pb) = (text(a), text(b));
    let keys: BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
    let mut rows: Vec<[String; 3]> = vec![["".into(), a.name.clone(), b.name.clone()]];
    for k in keys {
        let (x, y) = (pa.get(k), pb.get(k));
        if x != y {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(pipeline)".into());
            rows.push([k.clone(), show(x), show(y)]);
        }
    }
    let (ma, mb) = (metrics_of(a, store), metrics_of(b, store));
    let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    for m in names {
        let show = |v: Option<&f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        rows.push([m.clone(), show(ma.get(m)), show(mb.get(m))]);
    }
    let w: Vec<usize> = (0..3)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            format!(
                "{:<w0$}  {:<w1$}  {}\n",
                r[0],
                r[1],
                r[2],
                w0 = w[0],
                w1 = w[1]
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_and_groups() {
        let s = stat(&[0.5, 0.7, 0.9]);
        assert!((s.mean - 0.7).abs() < 1e-12);
        assert!((s.std - 0.2).abs() < 1e-12, "{}", s.std);
        assert_eq!(stat(&[0.3]).std, 0.0);
        let row = |name: &str, group: &str, acc: f64| Row {
            name: name.into(),
            group: group.into(),
            seed: None,
            params: BTreeMap::from([
                ("scan.seed".into(), "0".into()),
                ("scan.x".into(), group.into()),
            ]),
            metrics: BTreeMap::from([("e.acc".into(), acc)]),
            complete: true,
        };
        let rows = [
            row("a0", "a", 0.5),
            row("a1", "a", 0.7),
            row("b0", "b", 0.9),
        ];
        let mut g = groups(&rows);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].metrics["e.acc"].n, 2);
        assert!(!g[0].params.contains_key("scan.seed"));
        sort_groups(&mut g, Some("e.acc"));
        assert_eq!(g[0].group, "b");
        let md = render(&g, &rows, Format::Markdown);
        assert!(md.contains("| b | b | 1 | 0.9000 |"), "{md}");
        assert!(md.contains("0.6000 ± 0.1414"), "{md}");
        let csv = render(&g, &rows, Format::Csv);
        assert!(
            csv.starts_with("group,scan.x,n,e.acc.mean,e.acc.std\n"),
            "{csv}"
        );
    }
}
