//! The `predictions` output of stage `evaluate` (METHOD.md §8): a Parquet file with columns
//! `index` (uint32), `cluster` (int64, argmax), `confidence` (float32, the largest probability),
//! `probabilities` (FixedSizeList<float32, C>, non-null items) and `label` (int64, −1 = unknown);
//! provenance in the key-value metadata. Uncompressed, plain-encoded, written by the exactly pinned
//! parquet crate with the same writer settings as [`crate::io`], so equal data gives equal bytes.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use scan::metrics::argmax;

#[derive(Debug, thiserror::Error)]
pub enum PredictionsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// Rows per record batch.
const BATCH_ROWS: usize = 64 * 1024;

/// Write the predictions of `labels.len()` samples: `probs` is `N × num_clusters` row-major.
/// `kv` goes into the file's key-value metadata (sorted by key).
pub fn write_predictions(
    path: &Path,
    probs: &[f32],
    num_clusters: usize,
    labels: &[i64],
    kv: &BTreeMap<String, String>,
) -> Result<(), PredictionsError> {
    let werr = |message: String| PredictionsError::Write {
        path: path.to_path_buf(),
        message,
    };
    let n = labels.len();
    let c = i32::try_from(num_clusters)
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| werr(format!("bad cluster count {num_clusters}")))?;
    if probs.len() != n * num_clusters {
        return Err(werr(format!(
            "{} probabilities for {n} rows of {num_clusters}",
            probs.len()
        )));
    }
    if u32::try_from(n).is_err() {
        return Err(werr(format!("{n} rows do not fit uint32")));
    }
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let schema = Arc::new(Schema::new(vec![
        Field::new("index", DataType::UInt32, false),
        Field::new("cluster", DataType::Int64, false),
        Field::new("confidence", DataType::Float32, false),
        Field::new(
            "probabilities",
            DataType::FixedSizeList(item.clone(), c),
            false,
        ),
        Field::new("label", DataType::Int64, false),
    ]));
    let props = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_encoding(Encoding::PLAIN)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_key_value_metadata(Some(
            kv.iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
                .collect(),
        ))
        .build();
    let mut buf: Vec<u8> = Vec::new();
    {
        let mut writer =
            ArrowWriter::try_new(BufWriter::new(&mut buf), schema.clone(), Some(props))
                .map_err(|e| werr(e.to_string()))?;
        for lo in (0..n).step_by(BATCH_ROWS) {
            let hi = (lo + BATCH_ROWS).min(n);
            let rows: Vec<&[f32]> = probs[lo * num_clusters..hi * num_clusters]
                .chunks_exact(num_clusters)
                .collect();
            let cluster: Int64Array = rows.iter().map(|r| argmax(r) as i64).collect();
            let conf: Float32Array = rows.iter().map(|r| r[argmax(r)]).collect();
            let list = FixedSizeListArray::try_new(
                item.clone(),
                c,
                Arc::new(Float32Array::from(
                    probs[lo * num_clusters..hi * num_clusters].to_vec(),
                )),
                None,
            )
            .map_err(|e| werr(e.to_string()))?;
            let index: UInt32Array = (lo as u32..hi as u32).collect();
            let arrays: Vec<ArrayRef> = vec![
                Arc::new(index),
                Arc::new(cluster),
                Arc::new(conf),
                Arc::new(list),
                Arc::new(Int64Array::from(labels[lo..hi].to_vec())),
            ];
            let batch =
                RecordBatch::try_new(schema.clone(), arrays).map_err(|e| werr(e.to_string()))?;
            writer.write(&batch).map_err(|e| werr(e.to_string()))?;
        }
        let mut inner = writer.into_inner().map_err(|e| werr(e.to_string()))?;
        inner.flush().map_err(|e| werr(e.to_string()))?;
    }
    scan_core::util::atomic_write(path, &buf).map_err(|source| PredictionsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn round_trip_and_stable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let probs = [0.2, 0.8, 0.6, 0.4, 0.5, 0.5];
        let labels = [1, 0, -1];
        let kv = BTreeMap::from([("scan.kind".to_string(), "predictions".to_string())]);
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_predictions(&a, &probs, 2, &labels, &kv).unwrap();
        write_predictions(&b, &probs, 2, &labels, &kv).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let f = std::fs::File::open(&a).unwrap();
        let batch = ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let cluster = batch.column(1).as_primitive::<Int64Type>();
        assert_eq!(cluster.values().to_vec(), vec![1, 0, 0]);
        let conf = batch.column(2).as_primitive::<Float32Type>();
        assert_eq!(conf.values().to_vec(), vec![0.8, 0.6, 0.5]);
        let list = batch.column(3).as_fixed_size_list();
        assert_eq!(list.value_length(), 2);
        assert_eq!(list.values().len(), 6);
        assert!(write_predictions(&a, &probs, 4, &labels, &kv).is_err());
    }
}
