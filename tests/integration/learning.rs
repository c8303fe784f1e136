//! Integration test: SCAN must learn, and learn from its neighbours. A small deterministic pipeline
//! on real Fashion-MNIST (3000 train images, the 1000-image test subset, CPU) runs pretext → embed →
//! mine → K-means → SCAN → evaluate through `scan run`, plus a control: the same SCAN (same pretext
//! weights, params and seeds) trained on random "neighbours" (column 0 the image itself, as `mine`
//! writes it, the 20 others drawn uniformly). SCAN's test ACC must
//! - reach the K-means ACC of the same pretext embeddings (METHOD.md §8.1) minus a small margin,
//! - exceed the control's ACC by a margin: what SCAN adds must come from the mined neighbours, and
//! - beat the best of three randomly initialised networks by a wide margin.
//!
//! The margins are set from measurements (in `learns_beyond_kmeans_and_random_init`). Checked with
//! deliberately broken builds: the entropy term's sign flipped fails the first assertion; the
//! neighbour ignored (each anchor paired with a second augmentation of itself) gives the real run
//! and the control the same ACC and fails the second.

use std::path::Path;

use crate::common::Workspace;

/// The params of SCAN and of its control: one definition, so the two differ only in their neighbours.
const SCAN_PARAMS: &str =
    "{ epochs = 15, batch_size = 128, lr = 5e-4, entropy_weight = 5.0, cutout = 8, seed = 0 }";

/// The pipeline, with `SCAN_PARAMS` written in.
fn pipeline() -> String {
    PIPELINE.replace("params = SCAN_PARAMS", &format!("params = {SCAN_PARAMS}"))
}

const PIPELINE: &str = r#"
[stages.ingest]
cmd = ["scan-ingest"]
inputs = { data_dir = "/usr/share/datasets/fashion-mnist" }
params = { dataset = "fashion-mnist", subset = { train = 3000, test = 1000, mode = "random", seed = 0 } }
outputs = ["train", "test"]

[stages.pretext]
cmd = ["scan-pretext"]
inputs = { train = "ingest.train" }
params = { epochs = 15, batch_size = 250, lr = 0.4, width = 8, knn_every = 0, seed = 0 }
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

[stages.kmeans]
cmd = ["scan-kmeans"]
inputs = { train = "embed.train", test = "embed.test" }
params = { restarts = 10, seed = 0 }
outputs = ["metrics"]

[stages.scan]
cmd = ["scan-cluster"]
inputs = { weights = "pretext.weights", train = "ingest.train", test = "ingest.test", neighbors_train = "mine.train", neighbors_test = "mine.test" }
params = SCAN_PARAMS
outputs = ["weights", "curves"]

[stages.evaluate_scan]
cmd = ["scan-evaluate"]
inputs = { weights = "scan.weights", test = "ingest.test", mine_metrics = "mine.metrics", compare_kmeans = "kmeans.metrics" }
outputs = ["predictions", "metrics", "report"]

# The control: the same SCAN, trained on random "neighbours" (a workspace file the test writes).
[stages.scan_random_neighbours]
cmd = ["scan-cluster"]
inputs = { weights = "pretext.weights", train = "ingest.train", test = "ingest.test", neighbors_train = "random_neighbours.parquet", neighbors_test = "mine.test" }
params = SCAN_PARAMS
outputs = ["weights", "curves"]

[stages.evaluate_random_neighbours]
cmd = ["scan-evaluate"]
inputs = { weights = "scan_random_neighbours.weights", test = "ingest.test" }
outputs = ["predictions", "metrics", "report"]
"#;

/// Train images in the pipeline's subset.
const TRAIN: usize = 3000;

/// A neighbours file for `n` images whose column 0 is the image itself (as `mine` writes it) and
/// whose 20 other columns are drawn uniformly at random: neighbours that carry no information.
fn write_random_neighbours(path: &Path, n: usize) {
    use rand::{Rng, SeedableRng};
    let (k, cols) = (20, 21);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut indices = Vec::with_capacity(n * cols);
    for i in 0..n {
        indices.push(i as u32);
        indices.extend((0..k).map(|_| rng.gen_range(0..n as u32)));
    }
    let nb = scan::io::Neighbors {
        n,
        cols,
        similarities: vec![0.0; n * cols],
        indices,
        meta: scan::io::NeighborMeta {
            k,
            metric: "inner_product".into(),
            includes_self: true,
            embeddings_hash: String::new(),
        },
    };
    scan::io::write_neighbors(path, &nb).expect("write random neighbours");
}

fn show(dir: &Path, what: &str) -> std::path::PathBuf {
    let out = std::process::Command::new(crate::common::bin("scan"))
        .current_dir(dir)
        .env_remove("SCAN_STORE")
        .args(["show", what])
        .output()
        .expect("scan show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().into()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// ACC on the test split of a randomly initialised clustering network (the architecture SCAN
/// trains), seeded with `seed`.
fn random_init_acc(ws: &Workspace, test: &Path, seed: i64) -> f64 {
    use scan::nn;
    let path = ws.join(&format!("random{seed}.safetensors"));
    crate::common::random_fmnist_weights(&path, 10, seed);
    let data = scan::data::Dataset::load(test).expect("test split");
    let p = nn::predict(&path, &data, 256).expect("predict");
    let truth: Vec<usize> = data.labels.iter().map(|&l| l as usize).collect();
    scan::metrics::cluster_metrics(&p.probs, p.num_clusters, &truth, data.num_classes())
        .expect("metrics")
        .acc
}

#[test]
fn learns_beyond_kmeans_and_random_init() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &pipeline());
    write_random_neighbours(&ws.join("random_neighbours.parquet"), TRAIN);
    let start = std::time::Instant::now();
    let out = ws
        .scan()
        .args(["run", "--json"])
        .output()
        .expect("scan run");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let scan_m = json(&show(ws.path(), "evaluate_scan.metrics"));
    let kmeans_m = json(&show(ws.path(), "kmeans.metrics"));
    let control_m = json(&show(ws.path(), "evaluate_random_neighbours.metrics"));
    let mine_m = json(&show(ws.path(), "mine.metrics"));
    let test = show(ws.path(), "ingest.test");
    let random: Vec<f64> = (0..3).map(|s| random_init_acc(&ws, &test, s)).collect();
    let best_random = random.iter().copied().fold(0.0, f64::max);
    let (scan_acc, kmeans_acc, control_acc) = (
        scan_m["acc"].as_f64().unwrap(),
        kmeans_m["acc"].as_f64().unwrap(),
        control_m["acc"].as_f64().unwrap(),
    );
    eprintln!(
        "learning test ({:.0} s): SCAN ACC {scan_acc:.4} (NMI {:.4}), random neighbours {control_acc:.4}, \
         K-means ACC {kmeans_acc:.4}, \
         random init ACC {random:.4?}, neighbour accuracy {}",
        start.elapsed().as_secs_f64(),
        scan_m["nmi"].as_f64().unwrap(),
        mine_m["train"]["neighbor_accuracy"]
    );
    // Measured (2-core AMD EPYC, fp32): SCAN 0.444, control (random neighbours) 0.350, K-means
    // 0.421, random init 0.100 (three seeds), train neighbour accuracy 0.479. Sabotaged SCAN:
    // entropy sign flipped 0.198 (fails the first assertion by 0.20); neighbour ignored: SCAN and
    // control both 0.458 (fails the second: gap 0 against the 0.05 required, the honest gap is
    // 0.094). Augmentation consistency alone reaches K-means level at this scale, which is why the
    // control, not K-means, is what shows the neighbours are used.
    assert!(
        scan_acc >= kmeans_acc - 0.02,
        "SCAN ACC {scan_acc:.4} below K-means on the same embeddings ({kmeans_acc:.4}) − 0.02"
    );
    assert!(
        scan_acc >= control_acc + 0.05,
        "SCAN ACC {scan_acc:.4} not 0.05 above the same SCAN trained on random neighbours \
         ({control_acc:.4}): the mined neighbours do not matter"
    );
    assert!(
        scan_acc >= best_random + 0.25,
        "SCAN ACC {scan_acc:.4} not 0.25 above a random network ({best_random:.4})"
    );
    // The report shows the K-means row beside SCAN.
    let md = std::fs::read_to_string(show(ws.path(), "evaluate_scan.report").join("report.md"))
        .expect("report");
    let k = md.find("| pretext + K-means |").expect("K-means row");
    let s = md.find("| **this run: SCAN** |").expect("SCAN row");
    assert!(k < s, "{md}");
}
