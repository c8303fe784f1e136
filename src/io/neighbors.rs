//! The neighbours artifact written by `mine` and read by `cluster` (METHOD.md §4).
//!
//! Row `r` holds the neighbours of row `r` of the embeddings file it was mined from; the `index`
//! column is `r` and neighbour ids are row numbers of that file (equal to dataset indices when the
//! embeddings are stored in dataset order, as `embed` writes them).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, UInt32Type};
use arrow::record_batch::RecordBatch;

use super::common::{
    expect_columns, fixed_list_of, item_field, kv_get, kv_parse, open_parquet,
    write_parquet_atomic, IoError, BATCH_ROWS,
};

const KIND: &str = "neighbors";
const K_KIND: &str = "scan.kind";
const K_FORMAT: &str = "scan.format_version";
const K_K: &str = "scan.k";
const K_METRIC: &str = "scan.metric";
const K_SELF: &str = "scan.includes_self";
const K_EMB: &str = "scan.embeddings_hash";

/// What a neighbours file holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NeighborMeta {
    /// Number of neighbours, the sample itself excluded.
    pub k: usize,
    /// Similarity used, e.g. `"inner_product"`.
    pub metric: String,
    /// Whether column 0 is the sample itself.
    pub includes_self: bool,
    /// Content hash of the embeddings file the neighbours were mined from.
    pub embeddings_hash: String,
}

/// `n` rows of `cols` neighbours (`cols = k + 1` with self at column 0), most similar first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Neighbors {
    pub n: usize,
    pub cols: usize,
    /// `n * cols` row numbers, row-major.
    pub indices: Vec<u32>,
    /// `n * cols` similarities matching `indices`.
    pub similarities: Vec<f32>,
    pub meta: NeighborMeta,
}

impl Neighbors {
    /// Neighbour ids of row `i`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.indices[i * self.cols..(i + 1) * self.cols]
    }
    /// Similarities of row `i`.
    pub fn row_similarities(&self, i: usize) -> &[f32] {
        &self.similarities[i * self.cols..(i + 1) * self.cols]
    }
}

fn schema(cols: i32) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt32, false),
        Field::new(
            "neighbors",
            DataType::FixedSizeList(item_field(DataType::UInt32), cols),
            false,
        ),
        Field::new(
            "similarities",
            DataType::FixedSizeList(item_field(DataType::Float32), cols),
            false,
        ),
    ]))
}

fn expected_cols(path: &Path, meta: &NeighborMeta) -> Result<usize, IoError> {
    meta.k
        .checked_add(usize::from(meta.includes_self))
        .ok_or_else(|| IoError::invalid(path, format!("bad k {}", meta.k)))
}

/// Write `nb` to `path` (atomically). Fails on inconsistent shapes, naming the file.
pub fn write_neighbors(path: &Path, nb: &Neighbors) -> Result<(), IoError> {
    let (n, cols) = (nb.n, nb.cols);
    if cols != expected_cols(path, &nb.meta)? {
        return Err(IoError::invalid(
            path,
            format!(
                "{cols} columns for k = {} (includes_self = {})",
                nb.meta.k, nb.meta.includes_self
            ),
        ));
    }
    let cols_i32 = i32::try_from(cols)
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| IoError::invalid(path, format!("bad column count {cols}")))?;
    if u32::try_from(n).is_err() {
        return Err(IoError::invalid(
            path,
            format!("{n} rows do not fit uint32"),
        ));
    }
    if nb.indices.len() != n * cols || nb.similarities.len() != n * cols {
        return Err(IoError::invalid(
            path,
            format!(
                "{} indices / {} similarities for {n} rows of {cols}",
                nb.indices.len(),
                nb.similarities.len()
            ),
        ));
    }
    let schema = schema(cols_i32);
    let kv: BTreeMap<String, String> = [
        (K_KIND, KIND.to_string()),
        (K_FORMAT, "1".to_string()),
        (K_K, nb.meta.k.to_string()),
        (K_METRIC, nb.meta.metric.clone()),
        (K_SELF, nb.meta.includes_self.to_string()),
        (K_EMB, nb.meta.embeddings_hash.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let batches = (0..n.div_ceil(BATCH_ROWS)).map(|b| {
        let lo = b * BATCH_ROWS;
        let hi = (lo + BATCH_ROWS).min(n);
        let ids = FixedSizeListArray::try_new(
            item_field(DataType::UInt32),
            cols_i32,
            Arc::new(UInt32Array::from(nb.indices[lo * cols..hi * cols].to_vec())),
            None,
        )?;
        let sims = FixedSizeListArray::try_new(
            item_field(DataType::Float32),
            cols_i32,
            Arc::new(Float32Array::from(
                nb.similarities[lo * cols..hi * cols].to_vec(),
            )),
            None,
        )?;
        // `n` fits u32 (checked above).
        let index: UInt32Array = (lo as u32..hi as u32).collect();
        let arrays: Vec<ArrayRef> = vec![Arc::new(index), Arc::new(ids), Arc::new(sims)];
        RecordBatch::try_new(schema.clone(), arrays)
    });
    write_parquet_atomic(path, schema.clone(), &kv, batches)
}

/// Read a neighbours file written by [`write_neighbors`]. Errors name the file: not Parquet, wrong
/// schema, column count not matching k, nulls, rows out of order.
pub fn read_neighbors(path: &Path) -> Result<Neighbors, IoError> {
    let mut widths = (None, None);
    let opened = open_parquet(path, |s| {
        expect_columns(
            s,
            &[
                ("index", |t| t == &DataType::UInt32, "uint32"),
                (
                    "neighbors",
                    |t| fixed_list_of(t, &DataType::UInt32).is_some(),
                    "fixed_size_list<uint32>",
                ),
                (
                    "similarities",
                    |t| fixed_list_of(t, &DataType::Float32).is_some(),
                    "fixed_size_list<float32>",
                ),
            ],
        )?;
        widths = (
            fixed_list_of(s.field(1).data_type(), &DataType::UInt32),
            fixed_list_of(s.field(2).data_type(), &DataType::Float32),
        );
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
    let meta = NeighborMeta {
        k: kv_parse(path, kv, K_K)?,
        metric: kv_get(path, kv, K_METRIC)?.to_string(),
        includes_self: kv_parse(path, kv, K_SELF)?,
        embeddings_hash: kv_get(path, kv, K_EMB)?.to_string(),
    };
    let cols = expected_cols(path, &meta)?;
    if widths != (Some(cols), Some(cols)) {
        return Err(IoError::schema(
            path,
            format!("list widths {widths:?}, expected {cols} (k = {})", meta.k),
        ));
    }
    let n = opened.rows;
    let mut out = Neighbors {
        n,
        cols,
        indices: Vec::with_capacity(n.saturating_mul(cols)),
        similarities: Vec::with_capacity(n.saturating_mul(cols)),
        meta,
    };
    let mut next_row: u64 = 0;
    for batch in opened.reader {
        let batch = batch.map_err(|e| IoError::arrow(path, e))?;
        if batch.columns().iter().any(|c| c.null_count() > 0) {
            return Err(IoError::invalid(path, "null values"));
        }
        for &r in batch.column(0).as_primitive::<UInt32Type>().values() {
            if u64::from(r) != next_row {
                return Err(IoError::invalid(
                    path,
                    format!("row {next_row} has index {r}"),
                ));
            }
            next_row += 1;
        }
        let ids = batch.column(1).as_fixed_size_list().values();
        let ids = ids.as_primitive::<UInt32Type>();
        let sims = batch.column(2).as_fixed_size_list().values();
        let sims = sims.as_primitive::<Float32Type>();
        let want = batch.num_rows() * cols;
        if ids.len() != want || sims.len() != want || ids.null_count() + sims.null_count() > 0 {
            return Err(IoError::invalid(
                path,
                "neighbour lists are null or misaligned",
            ));
        }
        out.indices.extend_from_slice(ids.values());
        out.similarities.extend_from_slice(sims.values());
    }
    if out.indices.len() != n * cols {
        return Err(IoError::invalid(
            path,
            format!("footer says {n} rows, read {}", out.indices.len() / cols),
        ));
    }
    if let Some(&bad) = out.indices.iter().find(|&&i| i as usize >= n) {
        return Err(IoError::invalid(
            path,
            format!("neighbour id {bad} out of range for {n} rows"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, k: usize) -> Neighbors {
        let cols = k + 1;
        Neighbors {
            n,
            cols,
            indices: (0..n * cols).map(|i| ((i * 7919) % n) as u32).collect(),
            similarities: (0..n * cols).map(|i| 1.0 / (1.0 + i as f32)).collect(),
            meta: NeighborMeta {
                k,
                metric: "inner_product".into(),
                includes_self: true,
                embeddings_hash: "abc".into(),
            },
        }
    }

    #[test]
    fn roundtrip_and_stable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let nb = sample(BATCH_ROWS + 5, 3);
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write_neighbors(&a, &nb).unwrap();
        write_neighbors(&b, &nb).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(read_neighbors(&a).unwrap(), nb);
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut nb = sample(10, 2);
        nb.cols = 2;
        let p = dir.path().join("x.parquet");
        let msg = write_neighbors(&p, &nb).unwrap_err().to_string();
        assert!(msg.contains("x.parquet") && msg.contains("k = 2"), "{msg}");
    }
}
