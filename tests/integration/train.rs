//! Integration tests: the training losses against the reference implementation's loss code run by
//! PyTorch (SimCLR, SCAN, class-balanced self-labeling).

use crate::common::run_python;
use scan::losses;
use tch::{Device, Kind, Tensor};

/// The reference losses (Unsupervised-Classification losses/losses.py), independently in PyTorch.
const REFERENCE: &str = r#"
import json, sys, torch, torch.nn as nn, torch.nn.functional as F
EPS = 1e-8
def entropy(x):
    x_ = torch.clamp(x, min=EPS); b = x_ * torch.log(x_); return -b.sum()
def simclr(features, temperature):  # features [b, 2, d]
    b, n, dim = features.size()
    mask = torch.eye(b, dtype=torch.float32)
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    anchor = features[:, 0]
    dot = torch.matmul(anchor, contrast.T) / temperature
    logits_max, _ = torch.max(dot, dim=1, keepdim=True)
    logits = dot - logits_max.detach()
    mask = mask.repeat(1, 2)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(b).view(-1, 1), 0)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    return -((mask * log_prob).sum(1) / mask.sum(1)).mean()
def scan(anchors, neighbors, w):
    b, n = anchors.size()
    pa = F.softmax(anchors, 1); pn = F.softmax(neighbors, 1)
    sim = torch.bmm(pa.view(b, 1, n), pn.view(b, n, 1)).squeeze()
    cons = nn.BCELoss()(sim, torch.ones_like(sim))
    ent = entropy(torch.mean(pa, 0))
    return [(cons - w * ent).item(), cons.item(), ent.item()]
def selflabel(weak, strong, thr):
    p = F.softmax(weak, 1); mp, t = torch.max(p, 1); mask = mp > thr
    tm = torch.masked_select(t, mask); n = tm.size(0)
    idx, counts = torch.unique(tm, return_counts=True)
    weight = torch.ones(weak.size(1)); weight[idx] = 1 / (counts.float() / n)
    return F.cross_entropy(strong[mask], tm, weight=weight, reduction='mean').item()
case = json.loads(sys.argv[1])
out = {}
z = torch.tensor(case["z"]); b = z.shape[0] // 2
out["simclr"] = simclr(torch.stack([z[:b], z[b:]], 1), 0.1).item()
out["scan"] = scan(torch.tensor(case["a"]), torch.tensor(case["n"]), 5.0)
out["selflabel"] = selflabel(torch.tensor(case["weak"]), torch.tensor(case["strong"]), 0.9)
print(json.dumps(out))
"#;

fn to_json(t: &Tensor) -> serde_json::Value {
    let size = t.size();
    let v = Vec::<f32>::try_from(&t.contiguous().view([-1])).expect("vec");
    let rows: Vec<Vec<f32>> = v.chunks(size[1] as usize).map(<[f32]>::to_vec).collect();
    serde_json::json!(rows)
}

#[test]
fn losses_match_reference_pytorch_code() {
    tch::manual_seed(11);
    let opts = (Kind::Float, Device::Cpu);
    let z = scan::nn::l2_normalize(&Tensor::randn([12, 8], opts));
    let a = Tensor::randn([9, 5], opts) * 2.0;
    let n = Tensor::randn([9, 5], opts) * 2.0;
    // Weak logits with a few very confident rows of classes 0, 0, 0, 3 (imbalanced).
    let weak = Tensor::randn([8, 4], opts);
    let boost = Tensor::zeros([8, 4], opts);
    for (row, class) in [(0, 0), (2, 0), (5, 0), (6, 3)] {
        let _ = boost.get(row).get(class).fill_(20.0);
    }
    let weak = weak + boost;
    let strong = Tensor::randn([8, 4], opts);
    let case = serde_json::json!({"z": to_json(&z), "a": to_json(&a), "n": to_json(&n), "weak": to_json(&weak), "strong": to_json(&strong)});
    let out: serde_json::Value =
        serde_json::from_str(run_python(REFERENCE, &[&case.to_string()]).trim()).expect("json");

    let simclr = losses::simclr_loss(&z, 0.1).double_value(&[]);
    assert!(
        (simclr - out["simclr"].as_f64().unwrap()).abs() < 1e-5,
        "simclr {simclr} vs {}",
        out["simclr"]
    );
    let s = losses::scan_loss(&a, &n, 5.0);
    for (ours, i) in [
        (s.total.double_value(&[]), 0),
        (s.consistency.double_value(&[]), 1),
        (s.entropy.double_value(&[]), 2),
    ] {
        let theirs = out["scan"][i].as_f64().unwrap();
        assert!(
            (ours - theirs).abs() < 1e-5,
            "scan part {i}: {ours} vs {theirs}"
        );
    }
    let (sl, k) = losses::selflabel_loss(&weak, &strong, 0.9).expect("confident rows exist");
    assert_eq!(k, 4);
    let theirs = out["selflabel"].as_f64().unwrap();
    assert!(
        (sl.double_value(&[]) - theirs).abs() < 1e-5,
        "selflabel {} vs {theirs}",
        sl.double_value(&[])
    );
}

#[test]
fn class_balanced_identity() {
    // Weighted CE with weights n/count_c equals the mean over present classes of each class's mean CE.
    let opts = (Kind::Float, Device::Cpu);
    tch::manual_seed(5);
    let strong = Tensor::randn([6, 3], opts);
    let weak = Tensor::zeros([6, 3], opts);
    // targets 0,0,0,0,2,2 all confident; the per-class CE is computed by hand below.
    for (row, class) in [(0, 0), (1, 0), (2, 0), (3, 0), (4, 2), (5, 2)] {
        let _ = weak.get(row).get(class).fill_(30.0);
    }
    let (loss, k) = losses::selflabel_loss(&weak, &strong, 0.99).expect("confident");
    assert_eq!(k, 6);
    let logp = strong.log_softmax(1, Kind::Float);
    let ce = |r: i64, c: i64| -logp.double_value(&[r, c]);
    let class0 = (ce(0, 0) + ce(1, 0) + ce(2, 0) + ce(3, 0)) / 4.0;
    let class2 = (ce(4, 2) + ce(5, 2)) / 2.0;
    let expect = (class0 + class2) / 2.0;
    assert!(
        (loss.double_value(&[]) - expect).abs() < 1e-5,
        "{} vs {expect}",
        loss.double_value(&[])
    );
}

#[test]
fn scan_loss_hand_computed_case() {
    // Two samples, two clusters, λ = 2: p_a = softmax([0, ln 3]) = (1/4, 3/4), p_n = (1/2, 1/2) for
    // sample 0; sample 1 has p_a = p_n = (1/2, 1/2).
    let a = Tensor::from_slice(&[0.0f32, 3f32.ln(), 0.0, 0.0]).view([2, 2]);
    let n = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 0.0]).view([2, 2]);
    let l = losses::scan_loss(&a, &n, 2.0);
    let consistency = -(0.5f64.ln() + 0.5f64.ln()) / 2.0;
    let mean = [(0.25 + 0.5) / 2.0, (0.75 + 0.5) / 2.0];
    let entropy: f64 = -mean.iter().map(|p: &f64| p * p.ln()).sum::<f64>();
    assert!((l.consistency.double_value(&[]) - consistency).abs() < 1e-6);
    assert!((l.entropy.double_value(&[]) - entropy).abs() < 1e-6);
    assert!((l.total.double_value(&[]) - (consistency - 2.0 * entropy)).abs() < 1e-6);
}

#[test]
fn no_confident_sample_is_skipped() {
    let weak = Tensor::zeros([5, 10], (Kind::Float, Device::Cpu));
    assert!(losses::selflabel_loss(&weak, &weak, 0.99).is_none());
}

/// Run stage binary `name` with params JSON and inputs; returns stderr. Panics on failure.
fn stage(
    name: &str,
    out: &std::path::Path,
    params: &str,
    inputs: &[(&str, &std::path::Path)],
    work: Option<&std::path::Path>,
) -> String {
    std::fs::create_dir_all(out).expect("mkdir out");
    let pfile = out.with_extension("params.json");
    std::fs::write(&pfile, params).expect("params");
    let mut cmd = std::process::Command::new(crate::common::bin(name));
    cmd.arg("--out").arg(out).arg("--params").arg(&pfile);
    for (n, p) in inputs {
        cmd.arg("--input").arg(format!("{n}={}", p.display()));
    }
    match work {
        Some(w) => cmd.env("SCAN_WORK_DIR", w),
        None => cmd.env_remove("SCAN_WORK_DIR"),
    };
    let o = cmd.output().expect("spawn stage");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{name} failed:\n{err}");
    err
}

fn ingest_fmnist(dir: &std::path::Path, train: usize, test: usize) -> std::path::PathBuf {
    let out = dir.join("ingest");
    let params = format!(
        r#"{{"dataset":"fashion-mnist","subset":{{"train":{train},"test":{test},"mode":"random","seed":1}}}}"#
    );
    let data_dir = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    stage(
        "scan-ingest",
        &out,
        &params,
        &[("data_dir", data_dir)],
        None,
    );
    out
}

#[test]
fn kill_9_during_pretext_then_rerun_resumes() {
    kill_9_then_resume("fp32");
}

/// The same in bf16 (autocast on the CPU, channels-last): the loop resumes exactly in every
/// precision, and the weights are saved as contiguous fp32 whatever the training precision.
#[test]
fn kill_9_during_bf16_pretext_then_rerun_resumes_and_saves_fp32() {
    let ws = kill_9_then_resume("bf16");
    let dtypes = run_python(
        r#"
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], "pt") as f:
    kinds = {}
    for k in f.keys():
        t = f.get_tensor(k)
        kinds.setdefault(str(t.dtype), []).append(k)
        assert t.is_contiguous(), k
print(sorted((d, len(v)) for d, v in kinds.items()))
print(all(k.endswith("num_batches_tracked") for k in kinds.get("torch.int64", [])))
"#,
        &[&ws.join("pretext/weights").to_string_lossy()],
    );
    let lines: Vec<&str> = dtypes.lines().collect();
    assert!(
        lines[0].starts_with("[('torch.float32', ") && lines[0].contains("('torch.int64', "),
        "{dtypes}"
    );
    assert_eq!(lines[1], "True", "{dtypes}");
}

/// Kill `scan-pretext` (4 epochs, `precision`) after its first checkpoint, rerun it, and check
/// that the rerun resumed and ends bit-identical to an uninterrupted run. Returns the workspace.
fn kill_9_then_resume(precision: &str) -> crate::common::Workspace {
    let ws = crate::common::Workspace::new();
    let data = ingest_fmnist(ws.path(), 400, 100);
    let work = ws.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = ws.join("pretext");
    std::fs::create_dir_all(&out).unwrap();
    let params = &format!(
        r#"{{"epochs":4,"batch_size":100,"width":4,"knn_every":0,"precision":"{precision}"}}"#
    );
    let pfile = ws.join("p.json");
    std::fs::write(&pfile, params).unwrap();
    let mut child = std::process::Command::new(crate::common::bin("scan-pretext"))
        .arg("--out")
        .arg(&out)
        .arg("--params")
        .arg(&pfile)
        .arg("--input")
        .arg(format!("train={}", data.join("train").display()))
        .env("SCAN_WORK_DIR", &work)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let ckpt = work.join("checkpoint.safetensors");
    let start = std::time::Instant::now();
    while !ckpt.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "pretext ended before its first checkpoint"
        );
        assert!(start.elapsed().as_secs() < 300, "no checkpoint after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9"); // SIGKILL
    child.wait().unwrap();
    assert!(
        !out.join("weights").exists(),
        "a killed run wrote no weights"
    );
    let err = stage(
        "scan-pretext",
        &out,
        params,
        &[("train", &data.join("train"))],
        Some(&work),
    );
    let resumed: usize = err
        .lines()
        .find_map(|l| l.strip_prefix("pretext: resuming from checkpoint after epoch "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no resume message in:\n{err}"));
    assert!((1..4).contains(&resumed), "resumed after epoch {resumed}");
    // Only the remaining epochs ran, and the curves hold all four.
    assert_eq!(err.matches("pretext epoch ").count(), 4 - resumed, "{err}");
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("curves")).unwrap()).unwrap();
    let epochs: Vec<f64> = curves["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epoch"].as_f64().unwrap())
        .collect();
    assert_eq!(epochs, [0.0, 1.0, 2.0, 3.0]);
    // Each epoch's time, split into building the batches' augmented views and the rest of the
    // steps (on the CPU always measured).
    for r in curves["records"].as_array().unwrap() {
        for k in ["augment_s", "step_s"] {
            let v = r[k].as_f64().unwrap_or(-1.0);
            assert!(v > 0.0 && v.is_finite(), "{k} = {v} in {r}");
        }
    }
    // The resumed run ends exactly where an uninterrupted one does.
    let straight = ws.join("straight");
    stage(
        "scan-pretext",
        &straight,
        params,
        &[("train", &data.join("train"))],
        None,
    );
    assert!(
        std::fs::read(straight.join("weights")).unwrap()
            == std::fs::read(out.join("weights")).unwrap(),
        "resumed and uninterrupted runs differ ({precision})"
    );
    ws
}

#[test]
fn tiny_pretext_beats_random_init_on_neighbour_accuracy() {
    let ws = crate::common::Workspace::new();
    let data = ingest_fmnist(ws.path(), 2000, 500);
    let (train, test) = (data.join("train"), data.join("test"));
    let acc = |epochs: usize| -> f64 {
        let tag = format!("e{epochs}");
        let pre = ws.join(&format!("{tag}-pretext"));
        if epochs == 0 {
            // An untrained SimCLR network: what `scan-pretext` starts from.
            crate::common::random_fmnist_weights(&pre.join("weights"), 0, 3);
        } else {
            stage(
                "scan-pretext",
                &pre,
                &format!(
                    r#"{{"epochs":{epochs},"batch_size":128,"lr":0.2,"width":8,"knn_every":0,"seed":3}}"#
                ),
                &[("train", &train)],
                None,
            );
        }
        let emb = ws.join(&format!("{tag}-embed"));
        stage(
            "scan-embed",
            &emb,
            "{}",
            &[
                ("weights", &pre.join("weights")),
                ("train", &train),
                ("test", &test),
            ],
            None,
        );
        let mine = ws.join(&format!("{tag}-mine"));
        stage(
            "scan-mine",
            &mine,
            "{}",
            &[("train", &emb.join("train")), ("test", &emb.join("test"))],
            None,
        );
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(mine.join("metrics")).unwrap()).unwrap();
        m["train"]["neighbor_accuracy"]
            .as_f64()
            .expect("neighbour accuracy")
    };
    let random = acc(0);
    let trained = acc(20);
    assert!(
        trained > random + 0.05,
        "trained {trained:.3} vs random init {random:.3}"
    );
}

/// Run stage binary `name`; returns (success, stderr).
fn stage_result(
    name: &str,
    out: &std::path::Path,
    params: &str,
    inputs: &[(&str, &std::path::Path)],
    work: Option<&std::path::Path>,
) -> (bool, String) {
    std::fs::create_dir_all(out).expect("mkdir out");
    let pfile = out.with_extension("params.json");
    std::fs::write(&pfile, params).expect("params");
    let mut cmd = std::process::Command::new(crate::common::bin(name));
    cmd.arg("--out").arg(out).arg("--params").arg(&pfile);
    for (n, p) in inputs {
        cmd.arg("--input").arg(format!("{n}={}", p.display()));
    }
    match work {
        Some(w) => cmd.env("SCAN_WORK_DIR", w),
        None => cmd.env_remove("SCAN_WORK_DIR"),
    };
    let o = cmd.output().expect("spawn stage");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// A tiny chain up to the mined neighbours: (workspace, train, test, pretext weights, train
/// neighbours, test neighbours).
struct Mined {
    ws: crate::common::Workspace,
    train: std::path::PathBuf,
    test: std::path::PathBuf,
    weights: std::path::PathBuf,
    nb_train: std::path::PathBuf,
    nb_test: std::path::PathBuf,
}

fn mined(train: usize, test: usize) -> Mined {
    let ws = crate::common::Workspace::new();
    let data = ingest_fmnist(ws.path(), train, test);
    let (tr, te) = (data.join("train"), data.join("test"));
    let pre = ws.join("pretext");
    stage(
        "scan-pretext",
        &pre,
        r#"{"epochs":2,"batch_size":100,"width":4,"knn_every":0,"seed":1}"#,
        &[("train", &tr)],
        None,
    );
    let emb = ws.join("embed");
    stage(
        "scan-embed",
        &emb,
        "{}",
        &[
            ("weights", &pre.join("weights")),
            ("train", &tr),
            ("test", &te),
        ],
        None,
    );
    let mine = ws.join("mine");
    stage(
        "scan-mine",
        &mine,
        r#"{"k_train":10,"k_test":5}"#,
        &[("train", &emb.join("train")), ("test", &emb.join("test"))],
        None,
    );
    Mined {
        weights: pre.join("weights"),
        nb_train: mine.join("train"),
        nb_test: mine.join("test"),
        train: tr,
        test: te,
        ws,
    }
}

impl Mined {
    fn scan_inputs(&self) -> [(&'static str, &std::path::Path); 5] {
        [
            ("weights", &self.weights),
            ("train", &self.train),
            ("test", &self.test),
            ("neighbors_train", &self.nb_train),
            ("neighbors_test", &self.nb_test),
        ]
    }
}

/// Recompute the selection of a SCAN weights file with the reference model and `scan_evaluate`.
const SELECTION_CHECK_PY: &str = r#"
import pyarrow.parquet as pq
from safetensors import safe_open
from safetensors.numpy import load_file as load_np
weights, test, nb = sys.argv[1], sys.argv[2], sys.argv[3]
with safe_open(weights, "pt") as f: meta = json.loads(f.metadata()["scan"])
m = meta["model"]
model = Clustering(m["in_channels"], m["width"], m["num_heads"], m["num_classes"], m["arch"] == "stl")
model.load_state_dict(load_file(weights), strict=True); model.eval()
x = nchw(load_np(test)["images"], meta["normalize"]["mean"], meta["normalize"]["std"])
with torch.no_grad(): probs = [F.softmax(o, 1) for o in model(x)]
neighbors = torch.tensor(pq.read_table(nb).column("neighbors").to_pylist(), dtype=torch.long)
out, best = scan_evaluate(probs, neighbors)
print(json.dumps({"heads": out, "best": best, "meta_best": meta["best_head"]}))
"#;

#[test]
fn best_of_three_heads_is_the_reference_selection_of_the_saved_weights() {
    let m = mined(400, 150);
    let out = m.ws.join("scan");
    let err = stage(
        "scan-cluster",
        &out,
        r#"{"epochs":4,"batch_size":50,"lr":2e-3,"num_heads":3,"cutout":8,"seed":2}"#,
        &m.scan_inputs(),
        None,
    );
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("curves")).unwrap()).unwrap();
    let sel: Vec<f64> = curves["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["selection_loss"].as_f64().unwrap())
        .collect();
    let best_epoch_loss = sel.iter().copied().fold(f64::INFINITY, f64::min);
    let r: serde_json::Value = serde_json::from_str(
        crate::common::run_python(
            &format!("{}\n{SELECTION_CHECK_PY}", crate::fidelity::REFERENCE),
            &[
                out.join("weights").to_str().unwrap(),
                m.test.to_str().unwrap(),
                m.nb_test.to_str().unwrap(),
            ],
        )
        .trim(),
    )
    .expect("json");
    let totals: Vec<f64> = r["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_f64().unwrap())
        .collect();
    eprintln!("per-epoch selection losses {sel:?}; reference on the saved weights: {totals:?}");
    // The saved head is the reference's argmin on the saved weights …
    assert_eq!(r["meta_best"], r["best"], "{totals:?}\n{err}");
    // … and the saved weights are those of the epoch with the lowest selection loss (all heads
    // and BN buffers of that epoch: a mix with later epochs would change the value).
    let best = totals[r["best"].as_u64().unwrap() as usize];
    // Measured: 0 (the same float32 computation on the same weights).
    assert!(
        (best - best_epoch_loss).abs() < 1e-5,
        "saved weights give {best}, the selected epoch had {best_epoch_loss}"
    );
    // The heads differ, so the choice means something.
    let spread = totals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - totals.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(spread > 1e-4, "{totals:?}");

    // A diverged run (an absurd learning rate: NaN probabilities) is an error, not a silent
    // selection of the first epoch.
    let (ok, err) = stage_result(
        "scan-cluster",
        &m.ws.join("scan-nan"),
        r#"{"epochs":2,"batch_size":50,"lr":1e30,"num_heads":2,"cutout":8}"#,
        &m.scan_inputs(),
        None,
    );
    assert!(!ok && err.contains("selection loss is not finite"), "{err}");
}

/// Rewrite a checkpoint's tensors or JSON state with Python: `edit` is a Python statement on `t`
/// (dict of tensors) and `st` (the state JSON).
fn edit_checkpoint(path: &std::path::Path, edit: &str) {
    crate::common::run_python(
        &format!(
            "import json, sys\nfrom safetensors import safe_open\nfrom safetensors.torch import save_file\n\
             p = sys.argv[1]\nwith safe_open(p, 'pt') as f:\n    md = f.metadata(); t = {{k: f.get_tensor(k) for k in f.keys()}}\n\
             st = json.loads(md['state'])\n{edit}\nmd['state'] = json.dumps(st)\nsave_file(t, p, metadata=md)\n"
        ),
        &[path.to_str().unwrap()],
    );
}

#[test]
fn damaged_checkpoints_are_errors_not_fresh_schedules() {
    let m = mined(200, 100);
    // Pretext: a checkpoint without its optimizer step count would restart Adam/SGD bookkeeping.
    let work = m.ws.join("work-pretext");
    std::fs::create_dir_all(&work).unwrap();
    let p1 = r#"{"epochs":1,"batch_size":100,"width":4,"knn_every":0}"#;
    stage(
        "scan-pretext",
        &m.ws.join("p1"),
        p1,
        &[("train", &m.train)],
        Some(&work),
    );
    let ckpt = work.join("checkpoint.safetensors");
    edit_checkpoint(&ckpt, "del st['step']");
    let p2 = r#"{"epochs":2,"batch_size":100,"width":4,"knn_every":0}"#;
    let (ok, err) = stage_result(
        "scan-pretext",
        &m.ws.join("p2"),
        p2,
        &[("train", &m.train)],
        Some(&work),
    );
    assert!(
        !ok && err.contains("damaged checkpoint") && err.contains("no optimizer step count"),
        "{err}"
    );
    // Curves that do not match the epoch count.
    std::fs::remove_file(&ckpt).unwrap();
    stage(
        "scan-pretext",
        &m.ws.join("p3"),
        p1,
        &[("train", &m.train)],
        Some(&work),
    );
    edit_checkpoint(&ckpt, "st['epoch'] = 3");
    let (ok, err) = stage_result(
        "scan-pretext",
        &m.ws.join("p4"),
        p2,
        &[("train", &m.train)],
        Some(&work),
    );
    assert!(
        !ok && err.contains("damaged checkpoint") && err.contains("record(s) for 3 epoch(s)"),
        "{err}"
    );

    // SCAN: a selected snapshot missing a variable would mix best-epoch and last-epoch weights.
    let work = m.ws.join("work-scan");
    std::fs::create_dir_all(&work).unwrap();
    let s1 = r#"{"epochs":1,"batch_size":50,"cutout":8}"#;
    stage(
        "scan-cluster",
        &m.ws.join("s1"),
        s1,
        &m.scan_inputs(),
        Some(&work),
    );
    edit_checkpoint(
        &ckpt_in(&work),
        "del t['best.backbone.layer3.0.bn1.running_var']",
    );
    let s2 = r#"{"epochs":2,"batch_size":50,"cutout":8}"#;
    let (ok, err) = stage_result(
        "scan-cluster",
        &m.ws.join("s2"),
        s2,
        &m.scan_inputs(),
        Some(&work),
    );
    assert!(
        !ok && err.contains("damaged checkpoint")
            && err.contains("backbone.layer3.0.bn1.running_var"),
        "{err}"
    );
    // An intact checkpoint still resumes.
    std::fs::remove_file(ckpt_in(&work)).unwrap();
    stage(
        "scan-cluster",
        &m.ws.join("s3"),
        s1,
        &m.scan_inputs(),
        Some(&work),
    );
    let err = stage(
        "scan-cluster",
        &m.ws.join("s4"),
        s2,
        &m.scan_inputs(),
        Some(&work),
    );
    assert!(
        err.contains("scan: resuming from checkpoint after epoch 1"),
        "{err}"
    );
}

fn ckpt_in(work: &std::path::Path) -> std::path::PathBuf {
    work.join("checkpoint.safetensors")
}
