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
    pq.write_table(t, f"{sys.argv[1]}/{name}.parquet")  # pyarrow's default codec: snappy
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

/// Run `scan-mine` on the workspace files `train` and `test` (any names: Parquet or `.npy`).
fn run_mine_on(ws: &Workspace, out: &str, params: &str, train: &str, test: &str) -> Output {
    let out = ws.join(out);
    std::fs::create_dir_all(&out).unwrap();
    let p = ws.write("params.json", params);
    Command::new(bin("scan-mine"))
        .env("SCAN_THREADS", "2")
        .arg("--out")
        .arg(&out)
        .arg("--params")
        .arg(&p)
        .arg(format!("--input=train={}", ws.join(train).display()))
        .arg(format!("--input=test={}", ws.join(test).display()))
        .output()
        .unwrap()
}

/// The oracle for embeddings made elsewhere: NumPy reads the source itself (`np.load`, or pyarrow's
/// column as a Python list), normalises the rows when asked, and checks the neighbours by brute
/// force in float64: self first, similarities within 1e-5, a valid top-k, descending order.
const FOREIGN_ORACLE: &str = r#"
import json, sys
import numpy as np, pyarrow.parquet as pq
src, col, normalize, nbp, k = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], int(sys.argv[5])
if src.endswith(".npy"):
    x = np.load(src).astype(np.float64)
else:
    x = np.array(pq.read_table(src).column(col).to_pylist(), dtype=np.float64)
if normalize:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
n = x.shape[0]
t = pq.read_table(nbp)
assert t.num_rows == n
ids = np.asarray(t.column("neighbors").combine_chunks().flatten()).reshape(n, k + 1).astype(np.int64)
sims = np.asarray(t.column("similarities").combine_chunks().flatten()).reshape(n, k + 1)
S = x @ x.T
# float32 search: tolerance relative to the magnitude of the similarities (raw vectors are not unit).
tol = 1e-5 * max(1.0, np.abs(S).max())
assert (ids[:, 0] == np.arange(n)).all(), "self not first"
err = np.abs(sims - np.take_along_axis(S, ids, 1)).max()
assert err <= tol, (err, tol)
for i in range(n):
    row = ids[i, 1:]
    assert len(set(row.tolist())) == k and i not in row
    others = np.delete(np.arange(n), np.concatenate([[i], row]))
    assert S[i, others].max() <= S[i, row].min() + tol, i
    assert (np.diff(sims[i, 1:]) <= 0).all()
print("ok")
"#;

#[test]
fn mines_embeddings_from_other_tools() {
    let ws = Workspace::new();
    // pyarrow with every common codec (its default is snappy); no `scan.*` keys; other column
    // names; fixed-size and variable lists; float32 and float64; an optional label column with a
    // null. NumPy: float32 C order and float64 Fortran order.
    let code = r#"
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]
rng = np.random.default_rng(3)
for codec in ["snappy", "zstd", "lz4", "gzip", "none"]:
    for split, n in (("train", 80), ("test", 30)):
        x = rng.standard_normal((n, 16)) * 3.0
        if codec == "snappy":
            vec = pa.array(list(x), type=pa.list_(pa.float64()))
        else:
            vec = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).reshape(-1)), 16)
        cols = {"id": pa.array([f"img{i}" for i in range(n)]), "vec": vec}
        if codec == "zstd":
            cols["label"] = pa.array([None if i == 0 else i % 3 for i in range(n)], type=pa.int32())
        pq.write_table(pa.table(cols), f"{d}/{split}_{codec}.parquet", compression=codec)
for split, n in (("train", 70), ("test", 25)):
    x = rng.standard_normal((n, 12))
    np.save(f"{d}/{split}_f32.npy", x.astype(np.float32))
    np.save(f"{d}/{split}_f64.npy", np.asfortranarray(x))
"#;
    run_python(code, &[ws.path().to_str().unwrap()]);
    let cases = [
        ("snappy", "parquet", true),
        ("zstd", "parquet", true),
        ("lz4", "parquet", true),
        ("gzip", "parquet", true),
        ("none", "parquet", false),
        ("f32", "npy", true),
        ("f64", "npy", false),
    ];
    for (name, ext, normalize) in cases {
        let (train, test) = (format!("train_{name}.{ext}"), format!("test_{name}.{ext}"));
        let params =
            format!(r#"{{"k_train": 6, "k_test": 4, "device": "cpu", "normalize": {normalize}}}"#);
        let out = run_mine_on(&ws, name, &params, &train, &test);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (split, k) in [(&train, 6), (&test, 4)] {
            let nb = ws.join(&format!("{name}/{}", if k == 6 { "train" } else { "test" }));
            let ok = run_python(
                FOREIGN_ORACLE,
                &[
                    ws.join(split).to_str().unwrap(),
                    "vec",
                    if normalize { "1" } else { "0" },
                    nb.to_str().unwrap(),
                    &k.to_string(),
                ],
            );
            assert_eq!(ok.trim(), "ok", "{name} {split}");
        }
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ws.join(&format!("{name}/metrics"))).unwrap())
                .unwrap();
        assert_eq!(m["train"]["normalized"], normalize, "{name}");
        assert!(m["train"]["dataset_hash"].is_null(), "{name}");
        let labeled = if name == "zstd" { 79 } else { 0 };
        assert_eq!(m["train"]["labeled_anchors"], labeled, "{name}");
        assert_eq!(m["train"]["dim"], if ext == "npy" { 12 } else { 16 });
    }
    // Two float-list columns and none named `embedding`: the error says what to do.
    run_python(
        "import sys, pyarrow as pa, pyarrow.parquet as pq\nl=pa.list_(pa.float32())\npq.write_table(pa.table({'a': pa.array([[1.0]], l), 'b': pa.array([[2.0]], l)}), sys.argv[1])",
        &[ws.join("two.parquet").to_str().unwrap()],
    );
    let out = run_mine_on(&ws, "two", "{}", "two.parquet", "two.parquet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("two.parquet") && err.contains("`embedding`"),
        "{err}"
    );
    // A zero row cannot be normalised: named.
    run_python(
        "import sys, numpy as np\nx=np.ones((8,3),np.float32)\nx[5]=0\nnp.save(sys.argv[1], x)",
        &[ws.join("zero.npy").to_str().unwrap()],
    );
    let out = run_mine_on(
        &ws,
        "zero",
        r#"{"normalize": true, "k_train": 2, "k_test": 2}"#,
        "zero.npy",
        "zero.npy",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("zero.npy") && err.contains("row 5"),
        "{err}"
    );
}
