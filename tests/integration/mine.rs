//! Integration tests: the `mine` stage run as the `scan-mine` binary, checked against a
//! NumPy float64 brute-force oracle reading the outputs with pyarrow.

use std::path::Path;
use std::process::{Command, Output};

use scan::io::{write_embeddings, EmbeddingMeta, Embeddings};

use super::common::{bin, run_python, Workspace};

/// Deterministic pseudo-random rows (xorshift), L2-normalised, with duplicated rows (exact ties).
fn embeddings(n_unique: usize, dim: usize, seed: u64, dups: &[usize], labels: bool) -> Embeddings {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut data: Vec<f32> = (0..n_unique * dim).map(|_| next()).collect();
    for row in data.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    for &d in dups {
        let row = data[d * dim..(d + 1) * dim].to_vec();
        data.extend_from_slice(&row);
    }
    let n = n_unique + dups.len();
    Embeddings {
        dim,
        index: (0..n as u32).collect(),
        labels: (0..n)
            .map(|i| if labels { (i % 3) as i64 } else { -1 })
            .collect(),
        data,
        meta: EmbeddingMeta {
            dataset_hash: "dataset-xyz".into(),
            weights_hash: "weights-abc".into(),
            normalized: true,
        },
    }
}

fn run_mine(ws: &Workspace, out: &str, params: &str, threads: &str) -> Output {
    let out = ws.join(out);
    std::fs::create_dir_all(&out).unwrap();
    let p = ws.write("params.json", params);
    Command::new(bin("scan-mine"))
        .env("SCAN_THREADS", threads)
        .arg("--out")
        .arg(&out)
        .arg("--params")
        .arg(&p)
        .arg(format!(
            "--input=train={}",
            ws.join("train.parquet").display()
        ))
        .arg(format!(
            "--input=test={}",
            ws.join("test.parquet").display()
        ))
        .output()
        .unwrap()
}

/// The oracle: pyarrow reads the neighbours file and its metadata; NumPy float64 brute force checks
/// similarities (1e-5), self at column 0, that the set is a valid top-k, tie order and accuracy.
const ORACLE: &str = r#"
import json, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
emb, nbp, k, acc_key, metrics = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
e = pq.read_table(emb)
x = np.asarray(e.column("embedding").combine_chunks().flatten(), dtype=np.float64).reshape(e.num_rows, -1)
labels = e.column("label").to_numpy()
t = pq.read_table(nbp)
md = {a.decode(): b.decode() for a, b in t.schema.metadata.items()}
assert md == {a.decode(): b.decode() for a, b in pq.read_metadata(nbp).metadata.items() if a != b"ARROW:schema"}
assert md["scan.k"] == str(k) and md["scan.metric"] == "inner_product", md
assert md["scan.includes_self"] == "true", md
assert len(md["scan.embeddings_hash"]) == 64, md
assert t.schema.field("index").type == pa.uint32()
assert t.schema.field("neighbors").type == pa.list_(pa.field("item", pa.uint32(), nullable=False), k + 1), t.schema
assert t.schema.field("similarities").type == pa.list_(pa.field("item", pa.float32(), nullable=False), k + 1)
n = x.shape[0]
assert t.num_rows == n
assert (t.column("index").to_numpy() == np.arange(n)).all()
ids = np.asarray(t.column("neighbors").combine_chunks().flatten()).reshape(n, k + 1).astype(np.int64)
sims = np.asarray(t.column("similarities").combine_chunks().flatten()).reshape(n, k + 1)
S = x @ x.T
assert (ids[:, 0] == np.arange(n)).all(), "self not first"
assert np.abs(sims - np.take_along_axis(S, ids, 1)).max() <= 1e-5
for i in range(n):
    row = ids[i, 1:]
    assert len(set(row.tolist())) == k and i not in row
    others = np.delete(np.arange(n), np.concatenate([[i], row]))
    worst = S[i, row].min()
    assert S[i, others].max() <= worst + 1e-5, (i, S[i, others].max(), worst)
    s = sims[i, 1:]
    assert (np.diff(s) <= 0).all()
    # Exact ties (duplicated rows): lower index first.
    for a in range(k - 1):
        if s[a] == s[a + 1]:
            assert row[a] < row[a + 1], (i, row, s)
hits = (labels[ids[:, 1:]] == labels[:, None])
want = hits[labels >= 0].mean() if (labels >= 0).any() else None
got = json.load(open(metrics))[acc_key]["neighbor_accuracy"]
assert (want is None and got is None) or abs(want - got) < 1e-12, (want, got)
print("ok")
"#;

fn oracle(emb: &Path, nb: &Path, k: usize, split: &str, metrics: &Path) {
    let out = run_python(
        ORACLE,
        &[
            emb.to_str().unwrap(),
            nb.to_str().unwrap(),
            &k.to_string(),
            split,
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn mine_matches_numpy_oracle_and_is_byte_stable() {
    let ws = Workspace::new();
    // 600 + 13 rows: not a multiple of the block size (512) nor of a kernel panel; duplicates of
    // rows 5 (three copies) and 7 tie exactly with them.
    let train = embeddings(600, 24, 1, &[5, 5, 7, 5], true);
    let test = embeddings(90, 24, 2, &[3, 3], false);
    write_embeddings(&ws.join("train.parquet"), &train).unwrap();
    write_embeddings(&ws.join("test.parquet"), &test).unwrap();
    let params = r#"{"k_train": 6, "k_test": 3, "device": "cpu"}"#;
    let a = run_mine(&ws, "a", params, "2");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let metrics = ws.join("a/metrics");
    oracle(
        &ws.join("train.parquet"),
        &ws.join("a/train"),
        6,
        "train",
        &metrics,
    );
    oracle(
        &ws.join("test.parquet"),
        &ws.join("a/test"),
        3,
        "test",
        &metrics,
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(m["train"]["n"], 604);
    assert_eq!(m["train"]["k"], 6);
    assert_eq!(m["test"]["k"], 3);
    assert!(m["test"]["neighbor_accuracy"].is_null());
    // A duplicate's neighbours: self, then the other copies of row 5 by index.
    let nb = scan::io::read_neighbors(&ws.join("a/train")).unwrap();
    assert_eq!(&nb.row(600)[..4], &[600, 5, 601, 603]);
    let want_hash = blake3::hash(&std::fs::read(ws.join("train.parquet")).unwrap());
    assert_eq!(nb.meta.embeddings_hash, want_hash.to_hex().to_string());
    // pyarrow sees the embeddings' provenance as schema metadata.
    let code = r#"
import sys, pyarrow.parquet as pq
md = pq.read_table(sys.argv[1]).schema.metadata
assert md[b"scan.dim"] == b"24" and md[b"scan.normalized"] == b"true", md
assert md[b"scan.dataset_hash"] == b"dataset-xyz" and md[b"scan.weights_hash"] == b"weights-abc", md
print("ok")
"#;
    assert_eq!(
        run_python(code, &[ws.join("train.parquet").to_str().unwrap()]).trim(),
        "ok"
    );
    // Same data, one thread: identical bytes.
    let b = run_mine(&ws, "b", params, "1");
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    for f in ["train", "test"] {
        let x = std::fs::read(ws.join(&format!("a/{f}"))).unwrap();
        let y = std::fs::read(ws.join(&format!("b/{f}"))).unwrap();
        assert!(x == y, "{f}: bytes differ between 2 and 1 threads");
    }
}

#[test]
fn reads_pyarrow_written_embeddings() {
    let ws = Workspace::new();
    let code = r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
rng = np.random.default_rng(7)
for name, n in (("train", 50), ("test", 20)):
    x = rng.standard_normal((n, 16)).astype(np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 16)
    t = pa.table({"index": pa.array(np.arange(n, dtype=np.uint32)),
                  "label": pa.array(rng.integers(0, 4, n).astype(np.int64)), "embedding": emb})
    t = t.replace_schema_metadata({"scan.dim": "16", "scan.normalized": "false",
                                   "scan.dataset_hash": "d", "scan.weights_hash": "w"})
    # Uncompressed: the project's parquet build has no codecs.
    pq.write_table(t, f"{sys.argv[1]}/{name}.parquet", compression="none")
"#;
    run_python(code, &[ws.path().to_str().unwrap()]);
    let out = run_mine(&ws, "o", r#"{"k_train": 4, "device": "cpu"}"#, "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = ws.join("o/metrics");
    oracle(
        &ws.join("train.parquet"),
        &ws.join("o/train"),
        4,
        "train",
        &metrics,
    );
    oracle(
        &ws.join("test.parquet"),
        &ws.join("o/test"),
        5,
        "test",
        &metrics,
    );
}

#[test]
fn errors_name_the_file_and_leave_nothing() {
    let ws = Workspace::new();
    let e = embeddings(30, 8, 3, &[], true);
    write_embeddings(&ws.join("train.parquet"), &e).unwrap();
    std::fs::write(ws.join("test.parquet"), b"garbage").unwrap();
    let out = run_mine(&ws, "o", "{}", "1");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("test.parquet"), "{err}");
    // Too few test rows for k_test: named; unknown param: named.
    write_embeddings(&ws.join("test.parquet"), &embeddings(4, 8, 4, &[], true)).unwrap();
    let out = run_mine(&ws, "p", "{}", "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("k = 5") && err.contains("test.parquet"),
        "{err}"
    );
    assert!(!ws.join("p/test").exists());
    let out = run_mine(&ws, "q", r#"{"k": 3}"#, "1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("`k`"), "{err}");
}

/// The CUDA path proposes candidates on the GPU and selects exactly as the CPU does.
#[cfg(feature = "cuda-tests")]
#[test]
fn cuda_search_equals_cpu() {
    assert!(
        scan::knn::cuda::available(),
        "feature cuda-tests on, but no CUDA device"
    );
    // Duplicates of rows 1 and 2 tie exactly.
    let e = embeddings(3000, 64, 9, &[1, 1, 2], true);
    let cpu = scan::knn::self_knn_cpu(&e.data, e.len(), e.dim, 20, Default::default()).unwrap();
    let gpu = scan::knn::cuda::self_knn_cuda(&e.data, e.len(), e.dim, 20, 0).unwrap();
    assert_eq!(cpu, gpu);
}
