"""Helper of scripts/bench-mine.sh: generate the benchmark embeddings, time faiss, compare results.

  bench_mine.py gen OUT_DIR N DIM SEED      -> OUT_DIR/train.parquet, OUT_DIR/test.parquet
  bench_mine.py faiss OUT_DIR K1 REPS THREADS -> prints median seconds, saves OUT_DIR/faiss_I.npy
  bench_mine.py compare OUT_DIR NEIGHBOURS_PARQUET
"""
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_embeddings(path, x, labels):
    n, dim = x.shape
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), dim)
    schema = pa.schema(
        [
            pa.field("index", pa.uint32(), nullable=False),
            pa.field("label", pa.int64(), nullable=False),
            pa.field("embedding", pa.list_(pa.field("item", pa.float32(), nullable=False), dim),
                     nullable=False),
        ],
        metadata={
            "scan.kind": "embeddings",
            "scan.format_version": "1",
            "scan.dataset_hash": "bench",
            "scan.weights_hash": "bench",
            "scan.dim": str(dim),
            "scan.normalized": "true",
        },
    )
    table = pa.Table.from_arrays(
        [pa.array(np.arange(n, dtype=np.uint32)), pa.array(labels.astype(np.int64)), emb],
        schema=schema,
    )
    pq.write_table(table, path, compression="none")


def load(path):
    t = pq.read_table(path)
    x = np.asarray(t.column("embedding").combine_chunks().flatten()).reshape(t.num_rows, -1)
    return np.ascontiguousarray(x, dtype=np.float32)


def gen(out, n, dim, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = rng.integers(0, 10, n)
    write_embeddings(f"{out}/train.parquet", x, labels)
    write_embeddings(f"{out}/test.parquet", x[:1000].copy(), labels[:1000])


def faiss_bench(out, k1, reps, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    x = load(f"{out}/train.parquet")
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        _, ids = index.search(x, k1)
        times.append(time.perf_counter() - t0)
    np.save(f"{out}/faiss_I.npy", ids)
    print(f"{np.median(times):.3f} " + " ".join(f"{t:.3f}" for t in times))


def compare(out, nb_path):
    x = load(f"{out}/train.parquet").astype(np.float64)
    t = pq.read_table(nb_path)
    ours = np.asarray(t.column("neighbors").combine_chunks().flatten()).reshape(t.num_rows, -1)
    theirs = np.load(f"{out}/faiss_I.npy")
    n, cols = ours.shape
    k = cols - 1
    assert (ours[:, 0] == np.arange(n)).all(), "self not at column 0"
    differ = 0
    worst_gap = 0.0
    for i in range(n):
        a = set(ours[i, 1:].tolist())
        b = [j for j in theirs[i].tolist() if j != i][:k]
        if a != set(b):
            differ += 1
            # Differences must be near-ties: compare exact (f64) similarities of the two sets.
            sa = np.sort(x[list(a)] @ x[i])
            sb = np.sort(x[b] @ x[i])
            worst_gap = max(worst_gap, float(np.abs(sa - sb).max()))
    print(f"rows_differing={differ} of {n}; max f64 similarity gap in differing rows={worst_gap:.2e}")
    if worst_gap > 1e-5:
        sys.exit("neighbour sets differ by more than near-ties")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "faiss":
        faiss_bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
