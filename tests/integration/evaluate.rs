//! Integration tests: stage `evaluate` after the prediction (METHOD.md §8–§9), driven through
//! `scan::evaluate::evaluate_predictions` with synthetic datasets and predictions: the predictions
//! Parquet read back by pyarrow, the metrics recomputed by scikit-learn, every PNG decoded by the
//! `image` crate and by Pillow with its expected pixel size, the report's links and published
//! numbers, byte-stable outputs. The end-to-end run of the binary needs real weights (pipeline tests).

use std::path::Path;
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use scan::data::{Dataset, DatasetMeta};
use scan::io::{read_neighbors, write_neighbors, NeighborMeta, Neighbors};
use scan::nn::Predictions;
use scan_evaluate::report::{
    curves, heatmap, method_label, panels, parse_curves, Comparison, Curves, Published,
};
use scan_evaluate::{evaluate_predictions, EvalData, EvalParams, Summary};

use super::common::{bin, run_python, Workspace};

fn dataset(
    rng: &mut ChaCha8Rng,
    name: &str,
    split: &str,
    n: usize,
    hw: usize,
    ch: usize,
    k: usize,
) -> Dataset {
    Dataset {
        images: (0..n * hw * hw * ch).map(|_| rng.gen()).collect(),
        labels: (0..n).map(|i| (i % k) as i64).collect(),
        height: hw,
        width: hw,
        channels: ch,
        meta: DatasetMeta {
            format_version: 1,
            dataset: name.into(),
            split: split.into(),
            class_names: (0..k).map(|c| format!("class-{c}")).collect(),
            source: vec![],
        },
    }
}

/// Random probabilities that lean towards cluster `(label + 1) % clusters`.
fn predictions(
    rng: &mut ChaCha8Rng,
    labels: &[i64],
    clusters: usize,
    feat_dim: usize,
) -> Predictions {
    let mut probs = Vec::new();
    for &l in labels {
        let logits: Vec<f32> = (0..clusters)
            .map(|j| {
                rng.gen_range(0.0..1.5f32)
                    + if j as i64 == (l + 1) % clusters as i64 {
                        0.8
                    } else {
                        0.0
                    }
            })
            .collect();
        let z: f32 = logits.iter().map(|x| x.exp()).sum();
        probs.extend(logits.iter().map(|x| x.exp() / z));
    }
    Predictions {
        num_clusters: clusters,
        probs,
        feat_dim,
        features: (0..labels.len() * feat_dim)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect(),
    }
}

fn neighbors(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Neighbors {
    let cols = k + 1;
    let indices = (0..n)
        .flat_map(|i| {
            std::iter::once(i as u32)
                .chain((0..k).map(|_| rng.gen_range(0..n as u32)))
                .collect::<Vec<_>>()
        })
        .collect();
    Neighbors {
        n,
        cols,
        indices,
        similarities: (0..n * cols).map(|_| rng.gen()).collect(),
        meta: NeighborMeta {
            k,
            metric: "inner_product".into(),
            includes_self: true,
            embeddings_hash: "e".into(),
        },
    }
}

const CURVES: &str = r#"{"stage": "pretext", "records": [
  {"epoch": 0, "loss": 6.1, "lr": 0.4, "knn_acc": 0.31},
  {"epoch": 1, "loss": 5.2, "lr": 0.3, "knn_acc": 0.45},
  {"epoch": 2, "loss": 4.9, "lr": 0.1, "knn_acc": 0.52}]}"#;

struct Fixture {
    test: Dataset,
    train: Dataset,
    preds: Predictions,
    nb: Neighbors,
    mine: Value,
    curves: Vec<(String, Curves)>,
}

fn fixture(name: &str, hw: usize, ch: usize, k: usize, clusters: usize, ws: &Workspace) -> Fixture {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut test = dataset(&mut rng, name, "test", 120, hw, ch, k);
    test.labels[5] = -1; // one unlabeled sample is left out of the metrics
    let train = dataset(&mut rng, name, "train", 60, hw, ch, k);
    let preds = predictions(&mut rng, &test.labels, clusters, 16);
    // Neighbours go through the real Parquet writer/reader.
    let nb_path = ws.join("nb.parquet");
    write_neighbors(&nb_path, &neighbors(&mut rng, train.len(), 5)).unwrap();
    let nb = read_neighbors(&nb_path).unwrap();
    let mine = serde_json::json!({"k": 20, "train": {"neighbor_acc": 0.8, "n": 60}, "test_neighbor_acc": 0.75});
    let curves = vec![
        ("curves_pretext".to_string(), parse_curves(CURVES).unwrap()),
        (
            "curves_scan".to_string(),
            parse_curves(r#"{"stage": "scan", "records": [{"epoch": 0, "loss": -8.0}]}"#).unwrap(),
        ),
    ];
    Fixture {
        test,
        train,
        preds,
        nb,
        mine,
        curves,
    }
}

fn evaluate(f: &Fixture, params: &EvalParams, out: &Path) -> Summary {
    let data = EvalData {
        test: &f.test,
        predictions: &f.preds,
        weights_name: "weights".into(),
        weights_blake3: "ab".repeat(32),
        train: Some(&f.train),
        neighbors: Some(&f.nb),
        mine_metrics: Some(&f.mine),
        curves: &f.curves,
        weights_kind: "selflabel".into(),
        comparisons: vec![(
            method_label("scan").0,
            Comparison {
                label: "SCAN".into(),
                acc: 0.5,
                nmi: 0.25,
                ari: 0.125,
                top5: None,
            },
        )],
    };
    evaluate_predictions(params, &data, out).unwrap()
}

/// Expected pixel sizes, from the layouts documented in `scan_evaluate::report`.
fn expected_sizes(f: &Fixture, params: &EvalParams) -> Vec<(&'static str, usize, usize)> {
    let k = f.test.num_classes();
    let conf = heatmap::size(k, &f.test.meta.class_names);
    // pretext: loss, lr, knn_acc → panels loss, learning rate, accuracy; scan: loss alone.
    assert_eq!(panels(&f.curves[0].1).len(), 3);
    let pretext = curves::size(3);
    let scan = curves::size(panels(&f.curves[1].1).len());
    assert_eq!(
        pretext,
        (2 * curves::PANEL_W, curves::TITLE_H + 2 * curves::PANEL_H)
    );
    assert_eq!(scan, (curves::PANEL_W, curves::TITLE_H + curves::PANEL_H));
    let tile = |hw: usize| hw * 64usize.div_ceil(hw).max(1) + 2 * 3;
    let grid = |rows: usize, slots: usize, hw: usize| {
        (
            2 * 8 + (16 * 8 + 8) + slots * (tile(hw) + 4) + 12,
            24 + rows * (tile(hw).max(36) + 4) + 8,
        )
    };
    let protos = grid(
        f.preds.num_clusters.min(params.grid_max_clusters),
        1 + params.grid_top,
        f.test.height,
    );
    let nn = grid(
        params.nn_anchors.min(f.train.len()),
        1 + params.nn_neighbors,
        f.train.height,
    );
    vec![
        ("confusion.png", conf.0, conf.1),
        ("prototypes.png", protos.0, protos.1),
        ("neighbors.png", nn.0, nn.1),
        ("curves_pretext.png", pretext.0, pretext.1),
        ("curves_scan.png", scan.0, scan.1),
    ]
}

const PY_CHECK: &str = r#"
import json, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from PIL import Image
from sklearn.metrics import normalized_mutual_info_score, adjusted_rand_score
out = sys.argv[1]
t = pq.read_table(out + "/predictions")
assert [f.name for f in t.schema] == ["index", "cluster", "confidence", "probabilities", "label"], t.schema
assert str(t.schema.field("index").type) == "uint32"
pt = t.schema.field("probabilities").type
assert pa.types.is_fixed_size_list(pt) and pt.list_size == 4 and pt.value_type == pa.float32(), pt
assert str(t.schema.field("cluster").type) == "int64" and str(t.schema.field("label").type) == "int64"
p = np.stack(t.column("probabilities").to_numpy(zero_copy_only=False))
cluster = t.column("cluster").to_numpy()
assert (cluster == p.argmax(1)).all()
assert np.allclose(t.column("confidence").to_numpy(), p.max(1))
label = t.column("label").to_numpy()
m = label >= 0
sizes = {}
for name in sys.argv[2:]:
    im = Image.open(out + "/report/" + name)
    im.load()
    sizes[name] = [im.width, im.height, im.mode]
print(json.dumps({"n": len(t), "nmi": normalized_mutual_info_score(label[m], cluster[m]),
                  "ari": adjusted_rand_score(label[m], cluster[m]), "sizes": sizes,
                  "probs": p.tolist()}))
"#;

#[test]
fn outputs_pictures_and_report_from_synthetic_predictions() {
    let ws = Workspace::new();
    let f = fixture("fashion-mnist", 28, 1, 4, 4, &ws);
    let params = EvalParams {
        grid_top: 5,
        nn_anchors: 6,
        nn_neighbors: 4,
        ..EvalParams::default()
    };
    let out = ws.join("out");
    let s = evaluate(&f, &params, &out);

    // Every picture decodes (image crate) with its expected size.
    let sizes = expected_sizes(&f, &params);
    assert_eq!(s.pictures.len(), sizes.len());
    for (name, w, h) in &sizes {
        let img =
            image::open(out.join("report").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (img.width() as usize, img.height() as usize),
            (*w, *h),
            "{name}"
        );
    }
    // Pillow, pyarrow and scikit-learn agree.
    let mut args = vec![out.to_str().unwrap()];
    args.extend(sizes.iter().map(|s| s.0));
    let py: Value = serde_json::from_str(&run_python(PY_CHECK, &args)).unwrap();
    assert_eq!(py["n"], 120);
    for (name, w, h) in &sizes {
        assert_eq!(
            py["sizes"][name],
            serde_json::json!([w, h, "RGB"]),
            "{name}"
        );
    }
    let probs: Vec<f32> = serde_json::from_value::<Vec<Vec<f32>>>(py["probs"].clone())
        .unwrap()
        .concat();
    assert_eq!(probs, f.preds.probs);
    let metrics: Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics")).unwrap()).unwrap();
    for key in ["nmi", "ari"] {
        let (ours, want) = (metrics[key].as_f64().unwrap(), py[key].as_f64().unwrap());
        assert!((ours - want).abs() < 1e-9, "{key}: {ours} vs {want}");
    }
    assert_eq!(metrics["num_samples"], 119);
    assert_eq!(metrics["num_unlabeled"], 1);
    assert_eq!(metrics["neighbors"]["train.neighbor_acc"], 0.8);
    assert_eq!(metrics["neighbors"]["test_neighbor_acc"], 0.75);
    assert!(metrics["acc_majority"].is_null());
    assert_eq!(metrics["confusion"].as_array().unwrap().len(), 4);

    // The report links every picture and shows the published numbers of the dataset.
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    for (name, _, _) in &sizes {
        assert!(
            md.contains(&format!("]({name})")),
            "report does not link {name}"
        );
    }
    assert!(md.contains("N2D") && md.contains("67.2"), "{md}");
    assert!(md.contains(&format!("{:.2}", 100.0 * s.metrics.acc)));
    assert!(md.contains("train.neighbor_acc"));
    assert!(md.contains("class-3"));
    // The compared evaluation (SCAN) sits above this run (self-labeling) in the results table.
    let scan_row = md
        .find("| SCAN | 50.00 | 25.00 | 12.50 | – |")
        .expect("SCAN row");
    let this_row = md
        .find("| **this run: SCAN + self-labeling** |")
        .expect("this run's row");
    assert!(scan_row < this_row, "{md}");
    assert_eq!(metrics["weights_kind"], "selflabel");

    // The charts are drawn, not blank: curve colour in the curves, class names beside the heat
    // map (dark anti-aliased text in the name band), the matrix cells in their colour scale.
    let rgb = |name: &str| {
        image::open(out.join("report").join(name))
            .unwrap()
            .to_rgb8()
    };
    let curves_img = rgb("curves_pretext.png");
    let blue = curves_img
        .pixels()
        .filter(|p| p.0 == [31, 119, 180])
        .count();
    assert!(blue > 500, "curve pixels: {blue}");
    let conf = rgb("confusion.png");
    let (x0, y0) = heatmap::origin(4, &f.test.meta.class_names);
    let dark_names = (0..y0 + 4 * heatmap::cell(4))
        .flat_map(|y| (0..x0).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            conf.get_pixel(x as u32, y as u32)
                .0
                .iter()
                .all(|&c| c < 100)
        })
        .count();
    assert!(
        dark_names > 100,
        "text pixels left of the matrix: {dark_names}"
    );
    let cell = conf
        .get_pixel((x0 + 3) as u32, (y0 + heatmap::cell(4) + 3) as u32)
        .0;
    assert!(cell[2] > cell[0], "heat-map cell is not blue: {cell:?}");

    // Byte-stable outputs.
    let out2 = ws.join("out2");
    evaluate(&f, &params, &out2);
    for rel in [
        "predictions",
        "metrics",
        "report/report.md",
        "report/confusion.png",
        "report/prototypes.png",
        "report/neighbors.png",
        "report/curves_pretext.png",
        "report/curves_scan.png",
    ] {
        assert_eq!(
            std::fs::read(out.join(rel)).unwrap(),
            std::fs::read(out2.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn overclustering_color_images_and_published_override() {
    let ws = Workspace::new();
    // 3 classes, 6 clusters, 32x32 RGB, dataset name cifar10 but published numbers switched off.
    let f = fixture("cifar10", 32, 3, 3, 6, &ws);
    let params = EvalParams {
        published: Some(Published::None),
        grid_max_clusters: 4,
        ..EvalParams::default()
    };
    let out = ws.join("out");
    let s = evaluate(&f, &params, &out);
    assert!(s.metrics.acc_majority.is_some());
    assert_eq!(s.metrics.mapping, "majority");
    for (name, w, h) in expected_sizes(&f, &params) {
        let img = image::open(out.join("report").join(name)).unwrap();
        assert_eq!(
            (img.width() as usize, img.height() as usize),
            (w, h),
            "{name}"
        );
    }
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(
        !md.contains("81.8"),
        "published numbers shown although switched off"
    );
    assert!(md.contains("majority-vote ACC"));
    // Default: the dataset name picks the CIFAR-10 table.
    let out = ws.join("out-default");
    evaluate(&f, &EvalParams::default(), &out);
    let md = std::fs::read_to_string(out.join("report/report.md")).unwrap();
    assert!(md.contains("81.8 ± 0.3") && md.contains("87.6 ± 0.4") && md.contains("65.9 ± 5.7"));
}

#[test]
fn stage_binary_rejects_unknown_params_and_inputs() {
    let ws = Workspace::new();
    let params = ws.write("p.json", r#"{"batch_size": 8, "batchsize": 2}"#);
    let o = Command::new(bin("scan-evaluate"))
        .args([
            "--out",
            ws.join("o").to_str().unwrap(),
            "--params",
            params.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("batchsize"));

    let params = ws.write("q.json", r#"{"published": "cifar10"}"#);
    let o = Command::new(bin("scan-evaluate"))
        .args([
            "--out",
            ws.join("o").to_str().unwrap(),
            "--params",
            params.to_str().unwrap(),
        ])
        .args([
            "--input",
            "weights=/nonexistent",
            "--input",
            "test=/nonexistent",
            "--input",
            "neighbours=/x",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown input `neighbours`"));
}
