//! Stage `mine`: exact k-NN mining of embeddings (METHOD.md §4).
//!
//! Inputs `train` and `test`: embeddings Parquet from `embed`, or embeddings made elsewhere (any
//! Parquet file with one list-of-float column, or a NumPy `.npy` float matrix; see
//! [`crate::io::read_embeddings`]); each split is searched against itself (the test split gets its own
//! neighbours). With `normalize = true` every row is L2-normalised first, so that the inner product
//! is the cosine similarity. Outputs `train` and `test` (neighbours Parquet,
//! top-(k+1) by inner product with self at column 0; k = `k_train` / `k_test`) and `metrics` (JSON:
//! n, k, neighbour accuracy with self excluded when labels exist; the timings go to the log only).
//!
//! Neighbour accuracy (METHOD.md §4.3) = mean over anchors and columns 1..k of
//! `[label(neighbour) == label(anchor)]`. Anchors with unknown label (-1) are left out, and a
//! neighbour with unknown label counts as a mismatch; `null` when no anchor is labelled.
//!
//! The neighbours files and `metrics` are byte-reproducible (exact search, deterministic ties; no
//! timings in any output, so that early cutoff in the runner sees equal hashes).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use crate::io::{read_embeddings, write_neighbors, Embeddings, NeighborMeta, Neighbors};
use crate::knn::{self, CpuOptions, Isa, KnnResult};
use crate::stage::StageArgs;

use scan_core::params::Device;
pub use scan_core::params::MineParams;

/// Where the search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchDevice {
    Cpu,
    Cuda,
}

impl SearchDevice {
    /// Resolve the `device` param.
    pub fn resolve(device: Device) -> anyhow::Result<SearchDevice> {
        match device {
            Device::Cpu => Ok(SearchDevice::Cpu),
            Device::Cuda if knn::cuda::available() => Ok(SearchDevice::Cuda),
            Device::Cuda => {
                anyhow::bail!("param `device` = \"cuda\" but no CUDA device is available")
            }
            Device::Auto if knn::cuda::available() => Ok(SearchDevice::Cuda),
            Device::Auto => Ok(SearchDevice::Cpu),
        }
    }
}

/// Exact top-(k+1) self-join of `e` on `device`.
pub fn search(e: &Embeddings, k: usize, device: SearchDevice) -> Result<KnnResult, knn::KnnError> {
    match device {
        SearchDevice::Cpu => knn::self_knn_cpu(&e.data, e.len(), e.dim, k, CpuOptions::default()),
        SearchDevice::Cuda => knn::cuda::self_knn_cuda(&e.data, e.len(), e.dim, k, 0),
    }
}

/// Neighbour accuracy (self excluded) of `cols`-wide neighbour rows; see the module doc.
pub fn neighbor_accuracy(indices: &[u32], cols: usize, labels: &[i64]) -> Option<f64> {
    let (mut hits, mut total) = (0u64, 0u64);
    for (i, row) in indices.chunks(cols).enumerate() {
        let Some(&li) = labels.get(i).filter(|&&l| l >= 0) else {
            continue;
        };
        for &j in &row[1..] {
            total += 1;
            hits += u64::from(labels.get(j as usize) == Some(&li));
        }
    }
    (total > 0).then(|| hits as f64 / total as f64)
}

/// blake3 hex of a file's bytes.
pub fn file_hash(path: &Path) -> anyhow::Result<String> {
    let mut f = fs_err::File::open(path)?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(h.finalize().to_hex().to_string())
}

/// L2-normalise every row in place; a zero row cannot be and is an error naming it.
pub fn normalize_rows(e: &mut Embeddings) -> Result<(), String> {
    let dim = e.dim;
    for (i, row) in e.data.chunks_mut(dim).enumerate() {
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(format!("row {i} is all zeros and cannot be normalised"));
        }
        row.iter_mut()
            .for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    e.meta.normalized = true;
    Ok(())
}

/// Mine one split: read, search, write the neighbours; returns its metrics entry.
fn mine_split(
    input: &Path,
    output: &Path,
    k: usize,
    device: SearchDevice,
    normalize: bool,
) -> anyhow::Result<serde_json::Value> {
    let t0 = Instant::now();
    let mut e = read_embeddings(input)?;
    if normalize {
        normalize_rows(&mut e).map_err(|m| anyhow::anyhow!("{}: {m}", input.display()))?;
    }
    let hash = file_hash(input)?;
    let t_read = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let r = search(&e, k, device).with_context(|| format!("k-NN search of {}", input.display()))?;
    let t_search = t1.elapsed().as_secs_f64();
    let accuracy = neighbor_accuracy(&r.indices, r.cols, &e.labels);
    let labeled = e.labels.iter().filter(|&&l| l >= 0).count();
    let t2 = Instant::now();
    let nb = Neighbors {
        n: r.n,
        cols: r.cols,
        indices: r.indices,
        similarities: r.similarities,
        meta: NeighborMeta {
            k,
            metric: "inner_product".into(),
            includes_self: true,
            embeddings_hash: hash,
        },
    };
    write_neighbors(output, &nb)?;
    // Timings go to the log, not into the metrics output: its bytes must depend only on the data
    // (early cutoff in the runner compares output hashes).
    eprintln!(
        "mine: {}: n {} k {k}: read {t_read:.3} s, search {t_search:.3} s, write {:.3} s",
        input.display(),
        e.len(),
        t2.elapsed().as_secs_f64()
    );
    Ok(json!({
        "n": e.len(),
        "dim": e.dim,
        "k": k,
        "normalized": e.meta.normalized,
        "labeled_anchors": labeled,
        "dataset_hash": (!e.meta.dataset_hash.is_empty()).then_some(&e.meta.dataset_hash),
        "weights_hash": (!e.meta.weights_hash.is_empty()).then_some(&e.meta.weights_hash),
        "neighbor_accuracy": accuracy,
    }))
}

/// The stage entry point (`scan-mine`).
pub fn run_stage(args: &StageArgs) -> anyhow::Result<()> {
    let params: MineParams = args.load_params()?;
    let device = SearchDevice::resolve(params.device)?;
    let threads = crate::util::num_threads();
    if device == SearchDevice::Cuda {
        tch::set_num_threads(threads as i32);
    }
    let train = mine_split(
        &args.input("train")?,
        &args.output("train"),
        params.k_train,
        device,
        params.normalize,
    )?;
    let test = mine_split(
        &args.input("test")?,
        &args.output("test"),
        params.k_test,
        device,
        params.normalize,
    )?;
    eprintln!(
        "mine: device {}, cpu kernel {:?}, {threads} threads",
        match device {
            SearchDevice::Cpu => "cpu",
            SearchDevice::Cuda => "cuda",
        },
        Isa::detect()
    );
    let metrics = json!({ "train": train, "test": test });
    let path = args.output("metrics");
    let text = serde_json::to_string_pretty(&metrics)? + "\n";
    crate::util::atomic_write(&path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_excludes_self_and_unknown_anchors() {
        // Rows: self + 2 neighbours.
        let idx = [0, 1, 2, 1, 0, 3, 2, 3, 0, 3, 2, 1];
        let labels = [5, 5, 7, -1];
        // Row 0: 1 match (1), 2 no. Row 1: 0 yes, 3 unknown no. Row 2: 3 no, 0 no. Row 3 skipped.
        let acc = neighbor_accuracy(&idx, 3, &labels).unwrap();
        assert!((acc - 2.0 / 6.0).abs() < 1e-12, "{acc}");
        assert_eq!(neighbor_accuracy(&idx, 3, &[-1; 4]), None);
    }

    #[test]
    fn params_defaults_and_unknown_key() {
        let p: MineParams = crate::stage::parse_params(Path::new("p.json"), "{}").unwrap();
        assert_eq!(
            (p.k_train, p.k_test, p.device, p.normalize),
            (20, 5, scan_core::params::Device::Auto, false)
        );
        let e = crate::stage::parse_params::<MineParams>(Path::new("p.json"), r#"{"k":3}"#);
        assert!(e.unwrap_err().to_string().contains("`k`"));
    }
}
