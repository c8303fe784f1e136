//! Sweeps and experiments on the tiny Fashion-MNIST pipeline: a grid × seeds runs the shared stages
//! once, records one experiment per variant without touching `pipeline.lock`, and `scan exp show`
//! aggregates the per-run metrics (checked here from the metrics files themselves).

use std::collections::BTreeMap;

use crate::common::Workspace;
use crate::pipeline::{outcomes, TINY_PIPELINE};

fn scan(ws: &Workspace, args: &[&str]) -> std::process::Output {
    ws.scan().args(args).output().expect("spawn scan")
}

fn ok(ws: &Workspace, args: &[&str]) -> String {
    let o = scan(ws, args);
    assert!(
        o.status.success(),
        "scan {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn grid_times_seeds_shares_upstream_and_aggregates() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", TINY_PIPELINE);
    ok(&ws, &["run"]);
    let lock_before = std::fs::read(ws.join("pipeline.lock")).unwrap();
    // A fresh store for the sweep, so that every shared stage has to run (once).
    std::fs::remove_dir_all(ws.join("artifacts")).unwrap();
    let out = ok(
        &ws,
        &[
            "run",
            "--set",
            "scan.entropy_weight=2,5",
            "--seeds",
            "3",
            "-j",
            "2",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6, "{v}");
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes(&v) {
        if o["status"] == "ran" {
            *ran.entry(o["stage"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    let expect: BTreeMap<String, usize> = [
        ("ingest", 1),
        ("pretext", 1),
        ("embed", 1),
        ("mine", 1),
        ("scan", 6),
        ("selflabel", 6),
        ("evaluate", 6),
    ]
    .into_iter()
    .map(|(s, n)| (s.to_string(), n))
    .collect();
    assert_eq!(ran, expect);
    // Every stage run once is also in the stage logs once: one action record per key.
    let actions = std::fs::read_dir(ws.join("artifacts/actions"))
        .unwrap()
        .count();
    assert_eq!(actions, 4 + 3 * 6);
    assert_eq!(
        std::fs::read(ws.join("pipeline.lock")).unwrap(),
        lock_before,
        "a sweep never rewrites pipeline.lock"
    );

    let table: serde_json::Value =
        serde_json::from_str(&ok(&ws, &["exp", "show", "--json"])).unwrap();
    let exps = table["experiments"].as_array().unwrap();
    let names: Vec<&str> = exps
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .filter(|n| *n != "base")
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let groups: Vec<&serde_json::Value> = table["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["group"] != "base")
        .collect();
    assert_eq!(groups.len(), 2);
    for g in groups {
        // Independently: read each member's metrics file through `scan show --exp`.
        let accs: Vec<f64> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let path = ok(
                    &ws,
                    &["--exp", m.as_str().unwrap(), "show", "evaluate.metrics"],
                );
                let text = std::fs::read_to_string(path.trim()).unwrap();
                let m: serde_json::Value = serde_json::from_str(&text).unwrap();
                m["acc"].as_f64().unwrap()
            })
            .collect();
        assert_eq!(accs.len(), 3);
        let mean = accs.iter().sum::<f64>() / 3.0;
        let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let s = &g["metrics"]["evaluate.acc"];
        assert_eq!(s["n"], 3);
        assert!(
            (s["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
            "{s} vs {mean}"
        );
        assert!(
            (s["std"].as_f64().unwrap() - std).abs() < 1e-12,
            "{s} vs {std}"
        );
        assert!(g["params"]["scan.entropy_weight"].is_string(), "{g}");
    }

    // Variants are addressable by name; an unknown name is a clear error.
    let first = names[0];
    let pack = ws.join("v.scanpack");
    ok(
        &ws,
        &[
            "--exp",
            first,
            "export",
            "scan",
            "-o",
            &pack.to_string_lossy(),
        ],
    );
    assert!(pack.is_file());
    let o = scan(&ws, &["--exp", "no-such-exp", "show", "scan.weights"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no experiment `no-such-exp`") && err.contains(first),
        "{err}"
    );
    // Rerunning a variant runs nothing.
    let out = ok(&ws, &["--exp", first, "run", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(outcomes(&v).iter().all(|o| o["status"] == "cached"), "{v}");
    // The table in the other formats.
    let md = ok(&ws, &["exp", "show", "--md", "--sort", "evaluate.acc"]);
    assert!(md.contains("| group |") && md.contains("±"), "{md}");
    let csv = ok(&ws, &["exp", "show", "--csv"]);
    assert!(csv.starts_with("group,"), "{csv}");
    let diff = ok(&ws, &["exp", "diff", names[0], names[5]]);
    assert!(
        diff.contains("scan.entropy_weight") && diff.contains("evaluate.acc"),
        "{diff}"
    );
    exp_plot_draws_the_sweep(&ws, &names);
}

/// `scan exp plot` on the sweep: both PNGs decode (Pillow), the overlay has a line per group in
/// the group's colour, and bad names are clear errors.
fn exp_plot_draws_the_sweep(ws: &Workspace, names: &[&str]) {
    let o = scan(ws, &["exp", "plot", "--out", "plots"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{out}\n{err}");
    // `base` ran against the store this test deleted: its curves are gone, and it says so.
    assert!(
        err.contains("left out of the curves") && err.contains("base"),
        "{err}"
    );
    let files: Vec<&str> = out.lines().collect();
    assert_eq!(
        files,
        ["plots/curves-scan.png", "plots/metrics.png"],
        "{out}"
    );
    // Colours of the palette: one per group in the overlay (entropy_weight=2, entropy_weight=5).
    let report = crate::common::run_python(
        r#"
import sys
from PIL import Image
palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
for path in sys.argv[1:]:
    im = Image.open(path).convert("RGB")
    colours = set(im.getdata())
    print(path, im.size[0], im.size[1], sum(c in colours for c in palette))
"#,
        &[
            &ws.join("plots/curves-scan.png").to_string_lossy(),
            &ws.join("plots/metrics.png").to_string_lossy(),
        ],
    );
    let lines: Vec<Vec<&str>> = report.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{report}");
    // Two groups in the overlay; the bar chart colours bars by metric (evaluate.acc only here).
    assert_eq!(lines[0][3], "2", "{report}");
    assert_eq!(lines[1][3], "1", "{report}");
    for l in &lines {
        assert!(l[1].parse::<u32>().unwrap() >= 500, "{report}");
    }
    // A subset of the experiments.
    ok(ws, &["exp", "plot", "--out", "two", names[0], names[1]]);
    let o = scan(ws, &["exp", "plot", "no-such-exp"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no experiment `no-such-exp`"));
    let o = scan(ws, &["exp", "plot", "--stage", "ingest"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no experiment has curves of stage `ingest`") && err.contains("scan"),
        "{err}"
    );
}

/// The ablations declared in `pipeline.toml`'s `[sweep.variants]`, on the tiny pipeline: one
/// command runs them (the shared stages once), and `scan exp show` reports one group per variant.
#[test]
fn declared_ablation_variants_run_in_one_command_and_one_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let default: toml::Table = std::fs::read_to_string(root.join("pipeline.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let variants = default["sweep"]["variants"]
        .as_table()
        .expect("[sweep.variants]");
    let mut sweep = String::from("\n[sweep]\n[sweep.variants]\n");
    for (name, sets) in variants {
        sweep.push_str(&format!("{name} = {sets}\n"));
    }
    let ws = Workspace::new();
    ws.write("pipeline.toml", &format!("{TINY_PIPELINE}{sweep}"));
    let out = ok(&ws, &["run", "--sweep", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for o in outcomes(&v) {
        if o["status"] == "ran" {
            *ran.entry(o["stage"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    // SCAN with the other augmentation and self-labeling with strong views differ from the
    // reference; the reference and the self-labeling ablation share their SCAN stage.
    assert_eq!(ran["pretext"], 1, "{ran:?}");
    assert_eq!(ran["scan"], 2, "{ran:?}");
    assert_eq!(ran["selflabel"], 3, "{ran:?}");
    let table: serde_json::Value =
        serde_json::from_str(&ok(&ws, &["exp", "show", "--json"])).unwrap();
    let mut groups: Vec<&str> = table["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    groups.sort_unstable();
    let mut expect: Vec<&str> = variants.keys().map(String::as_str).collect();
    expect.sort_unstable();
    assert_eq!(groups, expect);
}
