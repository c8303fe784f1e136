//! The embeddings artifact written by `embed` and read by `mine`, `cluster`, ... (METHOD.md §4).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;

use super::common::{
    expect_columns, fixed_list_of, item_field, kv_get, kv_parse, open_parquet,
    write_parquet_atomic, IoError, BATCH_ROWS,
};

const KIND: &str = "embeddings";
const K_KIND: &str = "scan.kind";
const K_FORMAT: &str = "scan.format_version";
const K_DATASET: &str = "scan.dataset_hash";
const K_WEIGHTS: &str = "scan.weights_hash";
const K_DIM: &str = "scan.dim";
const K_NORMALIZED: &str = "scan.normalized";

/// Provenance of an embeddings file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmbeddingMeta {
    /// Content hash of the dataset split the embeddings were computed from.
    pub dataset_hash: String,
    /// Content hash of the model weights that computed them.
    pub weights_hash: String,
    /// Whether every row is L2-normalised.
    pub normalized: bool,
}

/// `n` embeddings of dimension `dim` with their dataset indices and labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    pub dim: usize,
    /// Index of each row's sample in its dataset split.
    pub index: Vec<u32>,
    /// Class label of each row, -1 = unknown.
    pub labels: Vec<i64>,
    /// `n * dim` values, row-major.
    pub data: Vec<f32>,
    pub meta: EmbeddingMeta,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.index.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }
    /// Row `i` as a slice of `dim` values.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

fn schema(dim: i32) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt32, false),
        Field::new("label", DataType::Int64, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(item_field(DataType::Float32), dim),
            false,
        ),
    ]))
}

/// Write `e` to `path` (atomically). Fails on inconsistent shapes, naming the file.
pub fn write_embeddings(path: &Path, e: &Embeddings) -> Result<(), IoError> {
    let n = e.index.len();
    let dim = e.dim;
    let dim_i32 = i32::try_from(dim)
        .ok()
        .filter(|&d| d > 0)
        .ok_or_else(|| IoError::invalid(path, format!("bad embedding dimension {dim}")))?;
    if e.labels.len() != n {
        return Err(IoError::invalid(
            path,
            format!("{} labels for {n} rows", e.labels.len()),
        ));
    }
    if e.data.len() != n * dim {
        return Err(IoError::invalid(
            path,
            format!("{} values for {n} rows of dimension {dim}", e.data.len()),
        ));
    }
    let schema = schema(dim_i32);
    let kv: BTreeMap<String, String> = [
        (K_KIND, KIND.to_string()),
        (K_FORMAT, "1".to_string()),
        (K_DATASET, e.meta.dataset_hash.clone()),
        (K_WEIGHTS, e.meta.weights_hash.clone()),
        (K_DIM, dim.to_string()),
        (K_NORMALIZED, e.meta.normalized.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let batches = (0..n.div_ceil(BATCH_ROWS)).map(|b| {
        let lo = b * BATCH_ROWS;
        let hi = (lo + BATCH_ROWS).min(n);
        let values = Float32Array::from(e.data[lo * dim..hi * dim].to_vec());
        let list = FixedSizeListArray::try_new(
            item_field(DataType::Float32),
            dim_i32,
            Arc::new(values),
            None,
        )?;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(e.index[lo..hi].to_vec())),
            Arc::new(Int64Array::from(e.labels[lo..hi].to_vec())),
            Arc::new(list),
        ];
        RecordBatch::try_new(schema.clone(), cols)
    });
    write_parquet_atomic(path, schema.clone(), &kv, batches)
}

/// Read an embeddings file written by [`write_embeddings`] (or any writer producing the same schema
/// and key-value metadata). Errors name the file: not Parquet, wrong schema, wrong dimension, nulls.
pub fn read_embeddings(path: &Path) -> Result<Embeddings, IoError> {
    let mut list_dim = None;
    let opened = open_parquet(path, |s| {
        expect_columns(
            s,
            &[
                ("index", |t| t == &DataType::UInt32, "uint32"),
                ("label", |t| t == &DataType::Int64, "int64"),
                (
                    "embedding",
                    |t| fixed_list_of(t, &DataType::Float32).is_some(),
                    "fixed_size_list<float32>",
                ),
            ],
        )?;
        list_dim = fixed_list_of(s.field(2).data_type(), &DataType::Float32);
        Ok(())
    })?;
    let kv = &opened.kv;
    if let Some(kind) = kv.get(K_KIND) {
        if kind != KIND {
            return Err(IoError::schema(
                path,
                format!("file holds `{kind}`, expected `{KIND}`"),
            ));
        }
    }
    let dim: usize = kv_parse(path, kv, K_DIM)?;
    if list_dim != Some(dim) {
        return Err(IoError::schema(
            path,
            format!("column `embedding` has {list_dim:?} values per row, metadata says dim {dim}"),
        ));
    }
    let normalized: bool = kv_parse(path, kv, K_NORMALIZED)?;
    let meta = EmbeddingMeta {
        dataset_hash: kv_get(path, kv, K_DATASET)?.to_string(),
        weights_hash: kv_get(path, kv, K_WEIGHTS)?.to_string(),
        normalized,
    };
    let n = opened.rows;
    let mut out = Embeddings {
        dim,
        index: Vec::with_capacity(n),
        labels: Vec::with_capacity(n),
        data: Vec::with_capacity(n.saturating_mul(dim)),
        meta,
    };
    for batch in opened.reader {
        let batch = batch.map_err(|e| IoError::arrow(path, e))?;
        if batch.columns().iter().any(|c| c.null_count() > 0) {
            return Err(IoError::invalid(path, "null values"));
        }
        let list = batch.column(2).as_fixed_size_list();
        let values = list.values().as_primitive::<Float32Type>();
        if values.len() != list.len() * dim || values.null_count() > 0 {
            return Err(IoError::invalid(
                path,
                "embedding values are null or misaligned",
            ));
        }
        out.index
            .extend_from_slice(batch.column(0).as_primitive::<UInt32Type>().values());
        out.labels
            .extend_from_slice(batch.column(1).as_primitive::<Int64Type>().values());
        out.data.extend_from_slice(values.values());
    }
    if out.index.len() != n {
        return Err(IoError::invalid(
            path,
            format!("footer says {n} rows, read {}", out.index.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, dim: usize) -> Embeddings {
        Embeddings {
            dim,
            index: (0..n as u32).map(|i| i * 3).collect(),
            labels: (0..n as i64)
                .map(|i| if i % 4 == 0 { -1 } else { i % 7 })
                .collect(),
            data: (0..n * dim).map(|i| (i as f32 * 0.37).sin()).collect(),
            meta: EmbeddingMeta {
                dataset_hash: "d1".into(),
                weights_hash: "w2".into(),
                normalized: false,
            },
        }
    }

    #[test]
    fn roundtrip_and_stable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // More rows than one batch, not a multiple of it.
        let e = sample(BATCH_ROWS + 17, 3);
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write_embeddings(&a, &e).unwrap();
        write_embeddings(&b, &e).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(read_embeddings(&a).unwrap(), e);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.parquet");
        std::fs::write(&bad, b"not parquet").unwrap();
        let msg = read_embeddings(&bad).unwrap_err().to_string();
        assert!(msg.contains("bad.parquet"), "{msg}");

        let mut e = sample(4, 2);
        e.data.pop();
        let p = dir.path().join("short.parquet");
        let msg = write_embeddings(&p, &e).unwrap_err().to_string();
        assert!(
            msg.contains("short.parquet") && msg.contains("7 values"),
            "{msg}"
        );
        assert!(!p.exists());
    }

    #[test]
    fn neighbours_file_is_wrong_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nb.parquet");
        let nb = crate::io::Neighbors {
            n: 1,
            cols: 1,
            indices: vec![0],
            similarities: vec![1.0],
            meta: crate::io::NeighborMeta {
                k: 0,
                metric: "inner_product".into(),
                includes_self: true,
                embeddings_hash: "h".into(),
            },
        };
        crate::io::write_neighbors(&p, &nb).unwrap();
        let msg = read_embeddings(&p).unwrap_err().to_string();
        assert!(
            msg.contains("nb.parquet") && msg.contains("wrong schema"),
            "{msg}"
        );
    }
}
