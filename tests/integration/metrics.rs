//! Integration tests: metrics (METHOD.md §8) against independent oracles — scipy's
//! `linear_sum_assignment` and scikit-learn's `normalized_mutual_info_score` (arithmetic) and
//! `adjusted_rand_score` — on many random labelings generated here with a fixed seed, including
//! degenerate ones (one cluster, one class, empty clusters, no samples, every sample alone). The
//! Python oracle runs once per test with all cases batched in one JSON file.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use scan::metrics::{
    ari, cluster_metrics, hungarian, majority, min_cost_assignment, nmi, Contingency,
};

use super::common::{run_python, Workspace};

const TOL: f64 = 1e-9;

/// One labeling: `(pred, truth, clusters, classes)`.
type Case = (Vec<usize>, Vec<usize>, usize, usize);

fn labelings() -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(20240808);
    let mut cases: Vec<Case> = Vec::new();
    // Random labelings of many sizes and cluster/class counts.
    for &n in &[1usize, 2, 3, 7, 30, 100, 500, 3000] {
        for &(k, c) in &[
            (1, 1),
            (1, 4),
            (4, 1),
            (2, 2),
            (3, 5),
            (5, 3),
            (10, 10),
            (20, 10),
            (10, 20),
        ] {
            let pred = (0..n).map(|_| rng.gen_range(0..k)).collect();
            let truth = (0..n).map(|_| rng.gen_range(0..c)).collect();
            cases.push((pred, truth, k, c));
        }
    }
    // Correlated labelings: a permutation of the truth with a fraction of noise.
    for &(n, k, noise) in &[
        (200usize, 10usize, 0.0f64),
        (1000, 10, 0.2),
        (1000, 10, 0.6),
        (2000, 20, 0.4),
        (50, 3, 0.1),
    ] {
        let mut perm: Vec<usize> = (0..k).collect();
        perm.shuffle(&mut rng);
        let truth: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
        let pred = truth
            .iter()
            .map(|&t| {
                if rng.gen_bool(noise) {
                    rng.gen_range(0..k)
                } else {
                    perm[t]
                }
            })
            .collect();
        cases.push((pred, truth, k, k));
    }
    // Empty clusters: only even cluster ids used; and a cluster count far above what is used.
    for &n in &[10usize, 300] {
        let pred = (0..n).map(|_| 2 * rng.gen_range(0..5)).collect();
        let truth = (0..n).map(|_| rng.gen_range(0..10)).collect();
        cases.push((pred, truth, 10, 10));
        let pred = (0..n).map(|_| rng.gen_range(0..3)).collect();
        let truth = (0..n).map(|_| rng.gen_range(0..3)).collect();
        cases.push((pred, truth, 50, 3));
    }
    // One cluster for everything; one class for everything; both.
    cases.push((vec![0; 100], (0..100).map(|i| i % 7).collect(), 10, 7));
    cases.push(((0..100).map(|i| i % 7).collect(), vec![3; 100], 7, 10));
    cases.push((vec![4; 20], vec![1; 20], 5, 2));
    // Every sample its own cluster; identical labelings.
    cases.push(((0..40).collect(), (0..40).map(|i| i % 4).collect(), 40, 4));
    let t: Vec<usize> = (0..60).map(|i| i % 6).collect();
    cases.push((t.clone(), t, 6, 6));
    // No samples.
    cases.push((vec![], vec![], 3, 3));
    cases
}

const PY_SCORES: &str = r#"
import json, sys
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score, adjusted_rand_score
cases = json.load(open(sys.argv[1]))
out = []
for c in cases:
    pred = np.asarray(c["pred"], dtype=np.int64)
    truth = np.asarray(c["truth"], dtype=np.int64)
    n = len(pred)
    r = {"nmi": float(normalized_mutual_info_score(truth, pred)),
         "ari": float(adjusted_rand_score(truth, pred))}
    if n > 0:
        counts = np.zeros((c["clusters"], c["classes"]), dtype=np.int64)
        np.add.at(counts, (pred, truth), 1)
        row, col = linear_sum_assignment(counts, maximize=True)
        r["acc"] = float(counts[row, col].sum()) / n
        r["majority"] = float(counts.max(axis=1).sum()) / n
    out.append(r)
print(json.dumps(out))
"#;

#[test]
fn acc_nmi_ari_match_scipy_and_sklearn() {
    let cases = labelings();
    assert!(cases.len() > 80);
    let ws = Workspace::new();
    let doc: Vec<Value> = cases
        .iter()
        .map(|(p, t, k, c)| json!({"pred": p, "truth": t, "clusters": k, "classes": c}))
        .collect();
    let path = ws.write("cases.json", &serde_json::to_string(&doc).unwrap());
    let oracle: Vec<Value> =
        serde_json::from_str(&run_python(PY_SCORES, &[path.to_str().unwrap()])).unwrap();
    assert_eq!(oracle.len(), cases.len());
    for (i, ((pred, truth, k, c), o)) in cases.iter().zip(&oracle).enumerate() {
        let t = Contingency::new(pred, truth, *k, *c);
        let ctx = format!("case {i}: n={} clusters={k} classes={c}", pred.len());
        let close = |name: &str, ours: f64| {
            let want = o[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{ctx}: oracle has no {name}"));
            assert!(ours.is_finite(), "{ctx}: {name} = {ours}");
            assert!(
                (ours - want).abs() <= TOL,
                "{ctx}: {name} {ours} vs oracle {want}"
            );
        };
        close("nmi", nmi(&t));
        close("ari", ari(&t));
        if !pred.is_empty() {
            close("acc", hungarian(&t).1);
            close("majority", majority(&t).1);
            // The whole path through probabilities gives the same numbers.
            let probs: Vec<f32> = pred
                .iter()
                .flat_map(|&p| (0..*k).map(move |j| if j == p { 1.0 } else { 0.0 }))
                .collect();
            let m = cluster_metrics(&probs, *k, truth, *c).unwrap();
            close("acc", m.acc);
            close("nmi", m.nmi);
            close("ari", m.ari);
            assert_eq!(m.acc_majority.is_some(), k > c, "{ctx}");
            if let Some(a) = m.acc_majority {
                close("majority", a);
            }
        }
    }
}

const PY_LSA: &str = r#"
import json, sys
import numpy as np
from scipy.optimize import linear_sum_assignment
out = []
for c in json.load(open(sys.argv[1])):
    m = np.asarray(c["cost"], dtype=np.float64).reshape(c["rows"], c["cols"])
    r, k = linear_sum_assignment(m)
    out.append({"total": float(m[r, k].sum()), "pairs": len(r)})
print(json.dumps(out))
"#;

#[test]
fn linear_assignment_matches_scipy_on_float_matrices() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut cases = Vec::new();
    for &(rows, cols) in &[
        (1, 1),
        (1, 7),
        (7, 1),
        (5, 5),
        (10, 10),
        (8, 13),
        (13, 8),
        (30, 30),
        (50, 20),
        (20, 50),
    ] {
        for _ in 0..4 {
            let cost: Vec<f64> = (0..rows * cols)
                .map(|_| rng.gen_range(-5.0..10.0))
                .collect();
            cases.push((rows, cols, cost));
        }
        // Many ties: small integer costs.
        let cost: Vec<f64> = (0..rows * cols)
            .map(|_| rng.gen_range(0..3) as f64)
            .collect();
        cases.push((rows, cols, cost));
    }
    let ws = Workspace::new();
    let doc: Vec<Value> = cases
        .iter()
        .map(|(r, c, cost)| json!({"rows": r, "cols": c, "cost": cost}))
        .collect();
    let path = ws.write("lsa.json", &serde_json::to_string(&doc).unwrap());
    let oracle: Vec<Value> =
        serde_json::from_str(&run_python(PY_LSA, &[path.to_str().unwrap()])).unwrap();
    for (i, ((rows, cols, cost), o)) in cases.iter().zip(&oracle).enumerate() {
        let pairs = min_cost_assignment(cost, *rows, *cols).unwrap();
        assert_eq!(pairs.len() as u64, o["pairs"].as_u64().unwrap(), "case {i}");
        let mut used_r = vec![false; *rows];
        let mut used_c = vec![false; *cols];
        for &(r, c) in &pairs {
            assert!(
                !std::mem::replace(&mut used_r[r], true)
                    && !std::mem::replace(&mut used_c[c], true)
            );
        }
        let total: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
        let want = o["total"].as_f64().unwrap();
        assert!(
            (total - want).abs() <= TOL * want.abs().max(1.0),
            "case {i} {rows}x{cols}: {total} vs {want}"
        );
    }
}

const PY_DERIVED: &str = r#"
import json, sys
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import confusion_matrix
out = []
for c in json.load(open(sys.argv[1])):
    probs = np.asarray(c["probs"], dtype=np.float32).reshape(-1, c["clusters"])
    truth = np.asarray(c["truth"], dtype=np.int64)
    match = np.asarray(c["match"], dtype=np.int64)   # cluster -> class used by our metrics
    pred = probs.argmax(1)
    counts = np.zeros((c["clusters"], c["classes"]), dtype=np.int64)
    np.add.at(counts, (pred, truth), 1)
    r, k = linear_sum_assignment(counts, maximize=True)
    k5 = min(5, c["clusters"])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k5]
    top5 = float((match[top] == truth[:, None]).any(1).mean())
    mapped = match[pred]
    conf = confusion_matrix(truth, mapped, labels=list(range(c["classes"])), normalize="true")
    out.append({"best": int(counts[r, k].sum()), "ours": int(counts[np.arange(len(match)), match].sum()),
                "top5": top5, "confusion": np.nan_to_num(conf).tolist(),
                "per_class": np.diag(np.nan_to_num(conf)).tolist()})
print(json.dumps(out))
"#;

#[test]
fn match_top5_and_confusion_match_numpy() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let ws = Workspace::new();
    let mut cases = Vec::new();
    for &(n, k) in &[(50usize, 3usize), (400, 10), (1000, 20), (300, 7)] {
        let truth: Vec<usize> = (0..n).map(|_| rng.gen_range(0..k)).collect();
        // Logits that favour cluster (truth + 1) % k, then softmax.
        let probs: Vec<f32> = truth
            .iter()
            .flat_map(|&t| {
                let logits: Vec<f32> = (0..k)
                    .map(|j| rng.gen_range(0.0..2.0f32) + if j == (t + 1) % k { 1.5 } else { 0.0 })
                    .collect();
                let z: f32 = logits.iter().map(|l| l.exp()).sum();
                logits.into_iter().map(move |l| l.exp() / z)
            })
            .collect();
        let m = cluster_metrics(&probs, k, &truth, k).unwrap();
        cases.push((probs, truth, k, m));
    }
    let doc: Vec<Value> = cases
        .iter()
        .map(|(p, t, k, m)| {
            let matched: Vec<usize> = m.cluster_to_class.iter().map(|c| c.unwrap()).collect();
            json!({"probs": p, "truth": t, "clusters": k, "classes": k, "match": matched})
        })
        .collect();
    let path = ws.write("derived.json", &serde_json::to_string(&doc).unwrap());
    let oracle: Vec<Value> =
        serde_json::from_str(&run_python(PY_DERIVED, &[path.to_str().unwrap()])).unwrap();
    for (i, ((_, truth, _, m), o)) in cases.iter().zip(&oracle).enumerate() {
        assert_eq!(o["best"], o["ours"], "case {i}: our match is not optimal");
        assert!(
            (m.acc - o["best"].as_f64().unwrap() / truth.len() as f64).abs() <= TOL,
            "case {i}"
        );
        assert!(
            (m.top5 - o["top5"].as_f64().unwrap()).abs() <= TOL,
            "case {i}: top5 {}",
            m.top5
        );
        let conf: Vec<Vec<f64>> = serde_json::from_value(o["confusion"].clone()).unwrap();
        for (a, b) in m.confusion.iter().flatten().zip(conf.iter().flatten()) {
            assert!((a - b).abs() <= TOL, "case {i}: confusion {a} vs {b}");
        }
        let per: Vec<f64> = serde_json::from_value(o["per_class"].clone()).unwrap();
        for (a, b) in m.per_class_acc.iter().zip(&per) {
            assert!((a.unwrap() - b).abs() <= TOL, "case {i}: per-class");
        }
    }
}
