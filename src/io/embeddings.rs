//! The embeddings artifact written by `embed` (METHOD.md §4), and the reader `mine` uses, which also
//! takes embeddings made by other tools: any Parquet file with one list-of-float column, or a NumPy
//! `.npy` float matrix.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;

use super::common::{
    item_field, kv_parse, open_parquet, write_parquet_atomic, IoError, BATCH_ROWS,
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

/// The list-of-float columns of `schema` (fixed-size or variable lists of float16/32/64).
fn float_list_columns(schema: &Schema) -> Vec<usize> {
    let is_float =
        |t: &DataType| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64);
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| match f.data_type() {
            DataType::FixedSizeList(item, _) | DataType::List(item) | DataType::LargeList(item) => {
                is_float(item.data_type())
            }
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// Which column holds the embeddings: the only list-of-float column, or, among several, the one
/// named `embedding`.
fn pick_embedding_column(schema: &Schema) -> Result<usize, String> {
    let cols = float_list_columns(schema);
    let names: Vec<&str> = cols
        .iter()
        .map(|&i| schema.field(i).name().as_str())
        .collect();
    match cols[..] {
        [i] => Ok(i),
        [] => Err(format!(
            "no column holds a list of floats (one embedding per row); columns: {:?}",
            schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect::<Vec<_>>()
        )),
        _ => cols
            .iter()
            .copied()
            .find(|&i| schema.field(i).name() == "embedding")
            .ok_or_else(|| {
                format!(
                    "several columns hold lists of floats ({names:?}); name the embeddings column \
                     `embedding`"
                )
            }),
    }
}

/// An optional integer column `name` (any integer type).
fn int_column(schema: &Schema, name: &str) -> Result<Option<usize>, String> {
    match schema.index_of(name) {
        Ok(i) if schema.field(i).data_type().is_integer() => Ok(Some(i)),
        Ok(i) => Err(format!(
            "column `{name}` has type {}, expected an integer type",
            schema.field(i).data_type()
        )),
        Err(_) => Ok(None),
    }
}

/// Append the rows of one list column batch to `out` (`dim` fixed by the first row).
fn append_rows(
    path: &Path,
    column: &dyn Array,
    row0: usize,
    dim: &mut Option<usize>,
    out: &mut Vec<f32>,
) -> Result<(), IoError> {
    if let Some(i) = (0..column.len()).find(|&i| column.is_null(i)) {
        return Err(IoError::invalid(
            path,
            format!("row {} has no embedding (null)", row0 + i),
        ));
    }
    let (values, offsets): (ArrayRef, Vec<usize>) = match column.data_type() {
        DataType::FixedSizeList(_, size) => {
            let list = column.as_fixed_size_list();
            let size = *size as usize;
            let offs = (0..=list.len()).map(|i| i * size).collect();
            (list.values().clone(), offs)
        }
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            let offs = list.value_offsets().iter().map(|&o| o as usize).collect();
            (list.values().clone(), offs)
        }
        _ => {
            let list = column.as_list::<i64>();
            let offs = list.value_offsets().iter().map(|&o| o as usize).collect();
            (list.values().clone(), offs)
        }
    };
    let values =
        arrow::compute::cast(&values, &DataType::Float32).map_err(|e| IoError::arrow(path, e))?;
    let values = values.as_primitive::<Float32Type>();
    for (i, w) in offsets.windows(2).enumerate() {
        let (lo, hi) = (w[0], w[1]);
        let len = hi - lo;
        let want = *dim.get_or_insert(len);
        if len != want || len == 0 || hi > values.len() {
            return Err(IoError::invalid(
                path,
                format!(
                    "row {} has {len} values, expected {want} (every embedding must have the same \
                     length)",
                    row0 + i
                ),
            ));
        }
        if values.null_count() > 0 && (lo..hi).any(|k| values.is_null(k)) {
            return Err(IoError::invalid(
                path,
                format!("row {} has null values", row0 + i),
            ));
        }
        let row = &values.values()[lo..hi];
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(IoError::invalid(
                path,
                format!("row {} holds the non-finite value {v}", row0 + i),
            ));
        }
        out.extend_from_slice(row);
    }
    Ok(())
}

/// Whether every row of `data` has L2 norm 1 (within float32 rounding).
pub fn rows_normalized(data: &[f32], dim: usize) -> bool {
    dim > 0
        && data.chunks(dim).all(|r| {
            let n: f64 = r
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            (n - 1.0).abs() < 1e-3
        })
}

/// Read embeddings for mining: this project's embeddings Parquet, any other Parquet file with one
/// list-of-float column (any codec; optional integer columns `index` and `label`; the `scan.*`
/// provenance keys are optional and checked when present), or a NumPy `.npy` float matrix. Rows
/// without a label get −1, a file without an `index` column gets 0..n. Errors name the file.
pub fn read_embeddings(path: &Path) -> Result<Embeddings, IoError> {
    let mut head = [0u8; 6];
    let is_npy = std::fs::File::open(path)
        .and_then(|mut f| {
            use std::io::Read;
            f.read(&mut head)
        })
        .map(|n| n == head.len() && head == super::npy::NPY_MAGIC)
        .unwrap_or(false);
    if is_npy {
        return read_npy_embeddings(path);
    }
    read_parquet_embeddings(path)
}

fn read_npy_embeddings(path: &Path) -> Result<Embeddings, IoError> {
    let bytes = fs_err::read(path).map_err(|source| IoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let m = super::npy::parse_npy(path, &bytes)?;
    if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
        return Err(IoError::invalid(
            path,
            format!(
                "row {} holds the non-finite value {}",
                i / m.cols,
                m.data[i]
            ),
        ));
    }
    let n = u32::try_from(m.rows)
        .map_err(|_| IoError::invalid(path, format!("{} rows are too many", m.rows)))?;
    Ok(Embeddings {
        dim: m.cols,
        index: (0..n).collect(),
        labels: vec![-1; m.rows],
        meta: EmbeddingMeta {
            dataset_hash: String::new(),
            weights_hash: String::new(),
            normalized: rows_normalized(&m.data, m.cols),
        },
        data: m.data,
    })
}

fn read_parquet_embeddings(path: &Path) -> Result<Embeddings, IoError> {
    let mut cols = (0usize, None::<usize>, None::<usize>);
    let opened = open_parquet(path, |s| {
        cols = (
            pick_embedding_column(s)?,
            int_column(s, "index")?,
            int_column(s, "label")?,
        );
        Ok(())
    })?;
    let (emb_col, index_col, label_col) = cols;
    let kv = &opened.kv;
    if let Some(kind) = kv.get(K_KIND) {
        if kind != KIND {
            return Err(IoError::schema(
                path,
                format!("file holds `{kind}`, expected `{KIND}`"),
            ));
        }
    }
    let meta_dim: Option<usize> = kv
        .contains_key(K_DIM)
        .then(|| kv_parse(path, kv, K_DIM))
        .transpose()?;
    let meta_normalized: Option<bool> = kv
        .contains_key(K_NORMALIZED)
        .then(|| kv_parse(path, kv, K_NORMALIZED))
        .transpose()?;
    let n = opened.rows;
    let mut dim = meta_dim;
    let mut data = Vec::new();
    let mut index: Vec<u32> = Vec::with_capacity(n);
    let mut labels: Vec<i64> = Vec::with_capacity(n);
    for batch in opened.reader {
        let batch = batch.map_err(|e| IoError::arrow(path, e))?;
        let row0 = labels.len();
        append_rows(
            path,
            batch.column(emb_col).as_ref(),
            row0,
            &mut dim,
            &mut data,
        )?;
        let ints = |col: usize| -> Result<Int64Array, IoError> {
            let a = arrow::compute::cast(batch.column(col), &DataType::Int64)
                .map_err(|e| IoError::arrow(path, e))?;
            Ok(a.as_primitive::<Int64Type>().clone())
        };
        match index_col {
            Some(c) => {
                let a = ints(c)?;
                for (i, v) in a.iter().enumerate() {
                    let v = v.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
                        IoError::invalid(
                            path,
                            format!("row {}: `index` is null, negative or too large", row0 + i),
                        )
                    })?;
                    index.push(v);
                }
            }
            None => {
                let hi = u32::try_from(row0 + batch.num_rows())
                    .map_err(|_| IoError::invalid(path, "too many rows"))?;
                index.extend(row0 as u32..hi);
            }
        }
        match label_col {
            // Null labels are unknown (−1).
            Some(c) => labels.extend(ints(c)?.iter().map(|v| v.unwrap_or(-1))),
            None => labels.extend(std::iter::repeat_n(-1, batch.num_rows())),
        }
    }
    if labels.len() != n {
        return Err(IoError::invalid(
            path,
            format!("footer says {n} rows, read {}", labels.len()),
        ));
    }
    let Some(dim) = dim.filter(|_| n > 0) else {
        return Err(IoError::invalid(path, "no rows"));
    };
    if meta_dim.is_some_and(|m| data.len() != n * m) {
        return Err(IoError::schema(
            path,
            format!(
                "the embeddings have {} values per row, metadata `{K_DIM}` says {dim}",
                data.len() / n
            ),
        ));
    }
    let normalized = meta_normalized.unwrap_or_else(|| rows_normalized(&data, dim));
    let get = |k: &str| kv.get(k).cloned().unwrap_or_default();
    Ok(Embeddings {
        dim,
        index,
        labels,
        data,
        meta: EmbeddingMeta {
            dataset_hash: get(K_DATASET),
            weights_hash: get(K_WEIGHTS),
            normalized,
        },
    })
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
