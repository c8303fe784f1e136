//! Integration tests: the user stories of the incremental pipeline, on a tiny Fashion-MNIST pipeline
//! with the real stage binaries (ingest → pretext → embed → mine → scan → selflabel → evaluate).
//!
//! The chain is built once (a few seconds of CPU training on 300 images); each test copies that
//! workspace and store and checks which stages `scan run --json` runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::Workspace;

/// A tiny version of the default pipeline (same stages, same wiring).
pub const TINY_PIPELINE: &str = r#"
[stages.ingest]
cmd = ["scan-ingest"]
inputs = { data_dir = "/usr/share/datasets/fashion-mnist" }
params = { dataset = "fashion-mnist", subset = { train = 300, test = 100, mode = "random", seed = 0 } }
outputs = ["train", "test"]

[stages.pretext]
cmd = ["scan-pretext"]
inputs = { train = "ingest.train", test = "ingest.test" }
params = { epochs = 1, batch_size = 100, width = 4, knn_every = 1 }
outputs = ["weights", "curves"]

[stages.embed]
cmd = ["scan-embed"]
inputs = { weights = "pretext.weights", train = "ingest.train", test = "ingest.test" }
outputs = ["train", "test"]

[stages.mine]
cmd = ["scan-mine"]
inputs = { train = "embed.train", test = "embed.test" }
params = { k_train = 20, k_test = 5 }
outputs = ["train", "test", "metrics"]

[stages.scan]
cmd = ["scan-cluster"]
inputs = { weights = "pretext.weights", train = "ingest.train", test = "ingest.test", neighbors_train = "mine.train", neighbors_test = "mine.test" }
params = { epochs = 1, batch_size = 100, entropy_weight = 5.0, cutout = 8 }
outputs = ["weights", "curves"]

[stages.selflabel]
cmd = ["scan-selflabel"]
inputs = { weights = "scan.weights", train = "ingest.train", test = "ingest.test" }
params = { epochs = 1, batch_size = 100, threshold = 0.2, cutout = 8 }
outputs = ["weights", "curves"]

[stages.evaluate]
cmd = ["scan-evaluate"]
inputs = { weights = "selflabel.weights", test = "ingest.test", train = "ingest.train", neighbors = "mine.train", mine_metrics = "mine.metrics", curves_pretext = "pretext.curves", curves_scan = "scan.curves", curves_selflabel = "selflabel.curves" }
outputs = ["predictions", "metrics", "report"]
"#;

const ALL: [&str; 7] = [
    "ingest",
    "pretext",
    "embed",
    "mine",
    "scan",
    "selflabel",
    "evaluate",
];

/// Run `scan` with `args` in `dir`; returns the stages whose status is `ran`.
pub fn run_json(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(crate::common::bin("scan"))
        .current_dir(dir)
        .env_remove("SCAN_STORE")
        .args(args)
        .arg("--json")
        .output()
        .expect("spawn scan");
    assert!(
        out.status.success(),
        "scan {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json outcomes");
    outcomes(&v)
        .iter()
        .filter(|o| o["status"] == "ran")
        .map(|o| o["stage"].as_str().expect("stage").to_string())
        .collect()
}

/// The stage outcomes of `scan run --json`: a list of outcomes, or for variants a list of
/// `{experiment, stages}` (flattened, in order).
pub fn outcomes(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|o| match o.get("stages") {
            Some(stages) => stages.as_array().expect("stages").clone(),
            None => vec![o.clone()],
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        let ty = e.file_type().expect("type");
        if ty.is_dir() {
            copy_dir(&e.path(), &target);
        } else if ty.is_file() {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The workspace with the whole tiny chain built once.
fn built() -> &'static Path {
    static BUILT: OnceLock<(Workspace, PathBuf)> = OnceLock::new();
    let (_, dir) = BUILT.get_or_init(|| {
        let ws = Workspace::new();
        ws.write("pipeline.toml", TINY_PIPELINE);
        let ran = run_json(ws.path(), &["run"]);
        assert_eq!(ran, ALL, "a fresh store runs every stage");
        let dir = ws.path().to_path_buf();
        (ws, dir)
    });
    dir
}

/// A private copy of the built workspace (pipeline, lock file and store).
fn fresh_copy() -> Workspace {
    let ws = Workspace::new();
    copy_dir(built(), ws.path());
    ws
}

#[test]
fn unchanged_pipeline_runs_nothing() {
    let ws = fresh_copy();
    assert!(run_json(ws.path(), &["run"]).is_empty());
}

#[test]
fn entropy_weight_tweak_reruns_only_scan_and_after() {
    let ws = fresh_copy();
    let ran = run_json(ws.path(), &["run", "--set", "scan.entropy_weight=2.0"]);
    assert_eq!(ran, ["scan", "selflabel", "evaluate"]);
    // The same change by editing the file.
    let ws = fresh_copy();
    let text = TINY_PIPELINE.replace("entropy_weight = 5.0", "entropy_weight = 2.0");
    ws.write("pipeline.toml", &text);
    assert_eq!(
        run_json(ws.path(), &["run"]),
        ["scan", "selflabel", "evaluate"]
    );
    // And back: the old results are still in the store.
    ws.write("pipeline.toml", TINY_PIPELINE);
    assert!(run_json(ws.path(), &["run"]).is_empty());
}

#[test]
fn changing_k_reruns_mine_and_after_but_not_pretext_or_embed() {
    let ws = fresh_copy();
    let ran = run_json(ws.path(), &["run", "--set", "mine.k_train=10"]);
    assert_eq!(ran, ["mine", "scan", "selflabel", "evaluate"]);
}

#[test]
fn teammate_imports_mined_neighbours_and_skips_pretext_embed_mine() {
    let ws = fresh_copy();
    let bundle = ws.join("mine.scanpack");
    let out = ws
        .scan()
        .args(["export", "mine", "-o"])
        .arg(&bundle)
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The teammate: same pipeline file, empty store.
    let mate = Workspace::new();
    mate.write("pipeline.toml", TINY_PIPELINE);
    let out = mate
        .scan()
        .arg("import")
        .arg(&bundle)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ran = run_json(mate.path(), &["run"]);
    assert_eq!(
        ran,
        ["scan", "selflabel", "evaluate"],
        "pretext, embed and mine are reused"
    );
}

#[test]
fn restored_store_cache_runs_nothing() {
    // CI: the store is restored from a cache into another directory, the checkout is fresh.
    let cache = Workspace::new();
    copy_dir(&built().join("artifacts"), &cache.join("restored-store"));
    let checkout = Workspace::new();
    checkout.write("pipeline.toml", TINY_PIPELINE);
    let store = cache.join("restored-store");
    let ran = run_json(
        checkout.path(),
        &["--store", store.to_str().expect("utf8"), "run"],
    );
    assert!(
        ran.is_empty(),
        "nothing runs with a restored store: {ran:?}"
    );
}

#[test]
fn tiny_end_to_end_writes_report() {
    let dir = built();
    let out = std::process::Command::new(crate::common::bin("scan"))
        .current_dir(dir)
        .args(["show", "evaluate.report"])
        .output()
        .expect("show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let md = std::fs::read_to_string(report.join("report.md")).expect("report.md");
    assert!(md.contains("ACC"), "{md}");
    let metrics_out = std::process::Command::new(crate::common::bin("scan"))
        .current_dir(dir)
        .args(["show", "evaluate.metrics"])
        .output()
        .expect("show");
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(String::from_utf8_lossy(&metrics_out.stdout).trim())
            .expect("read"),
    )
    .expect("json");
    assert!(metrics.to_string().contains("acc"), "{metrics}");
}

#[test]
fn paper_pipelines_and_default_pipeline_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("pipelines"))
        .expect("pipelines/")
        .map(|e| e.expect("entry").path())
        .collect();
    files.push(root.join("pipeline.toml"));
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let ws = Workspace::new();
        let text = std::fs::read_to_string(&file).expect("read pipeline");
        // The data folders the paper pipelines expect (the datasets themselves are not needed to validate).
        for dir in ["data/cifar10", "data/cifar100", "data/stl10"] {
            std::fs::create_dir_all(ws.join(dir)).expect("mkdir");
        }
        // The reference checkpoint of pipelines/cifar10-pretrained.toml (a workspace input).
        ws.write("checkpoints/simclr_cifar-10.pth.tar", "");
        ws.write("pipeline.toml", &text);
        let out = ws
            .scan()
            .args(["status", "--json"])
            .output()
            .expect("status");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(
            v.to_string().contains("selflabel"),
            "{}: {v}",
            file.display()
        );
        // A typo or a wrong type is found at plan time, before anything runs, naming the key.
        for (set, key) in [
            ("pretext.epochz=3", "epochz"),
            ("pretext.lr=\"fast\"", "lr"),
        ] {
            let out = ws
                .scan()
                .args(["status", "--set", set])
                .output()
                .expect("status");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}: {err}", file.display());
            assert!(
                err.contains("pipeline.toml")
                    && err.contains("stage `pretext`")
                    && err.contains(&format!("parameter `{key}`")),
                "{}: {err}",
                file.display()
            );
        }
    }
}

#[test]
fn data_dir_is_a_hashed_input_without_fallback() {
    // No `data_dir` input: the runner reads $SCAN_DATA_DIR and hashes that folder.
    let ws = Workspace::new();
    let data = ws.join("fmnist");
    std::fs::create_dir_all(&data).unwrap();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(
            Path::new("/usr/share/datasets/fashion-mnist").join(f),
            data.join(f),
        )
        .unwrap();
    }
    ws.write(
        "pipeline.toml",
        "[stages.ingest]\ncmd = [\"scan-ingest\"]\nparams = { subset = { train = 50, test = 20 } }\noutputs = [\"train\", \"test\"]\n",
    );
    let scan = |args: &[&str], data: &Path| {
        ws.scan()
            .args(args)
            .env("SCAN_DATA_DIR", data)
            .output()
            .expect("scan")
    };
    let o = scan(&["run"], &data);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lock = std::fs::read_to_string(ws.join("pipeline.lock")).unwrap();
    assert!(lock.contains("$SCAN_DATA_DIR"), "{lock}");
    // A new file in that folder changes the input: ingest is stale, and explain says why.
    std::fs::write(data.join("README"), "extra").unwrap();
    let o = scan(&["explain", "ingest"], &data);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("input $SCAN_DATA_DIR") && out.contains("changed"),
        "{out}"
    );
    // A declared data_dir that lacks the files is an error naming it: no silent fallback.
    let empty = ws.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    ws.write(
        "pipeline.toml",
        "[stages.ingest]\ncmd = [\"scan-ingest\"]\ninputs = { data_dir = \"empty\" }\nparams = { subset = { train = 50, test = 20 } }\noutputs = [\"train\", \"test\"]\n",
    );
    let o = scan(&["run"], &data);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("raw files not found") && err.contains(&*empty.to_string_lossy()),
        "{err}"
    );
}
