//! Shared Parquet plumbing of [`crate::io`]: the error type, writer properties that give stable
//! bytes, atomic file output and key-value metadata access.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Errors of the Parquet artifact I/O; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: bad Arrow data: {source}")]
    Arrow {
        path: PathBuf,
        source: arrow::error::ArrowError,
    },
    #[error("{path}: wrong schema: {message}")]
    Schema { path: PathBuf, message: String },
    #[error("{path}: key-value metadata `{key}`: {message}")]
    Metadata {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{path}: invalid data: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl IoError {
    pub(crate) fn schema(path: &Path, message: impl Into<String>) -> Self {
        IoError::Schema {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        IoError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
    pub(crate) fn parquet(path: &Path, source: parquet::errors::ParquetError) -> Self {
        IoError::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn arrow(path: &Path, source: arrow::error::ArrowError) -> Self {
        IoError::Arrow {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Rows per record batch handed to the writer / asked from the reader.
pub(crate) const BATCH_ROWS: usize = 64 * 1024;

/// The non-null list item field used by every fixed-size list column.
pub(crate) fn item_field(dt: DataType) -> FieldRef {
    Arc::new(Field::new("item", dt, false))
}

/// Writer properties chosen for byte-stable, pyarrow-friendly output: uncompressed, plain encoding
/// (no dictionaries), chunk statistics only, the given key-value metadata in sorted key order.
fn writer_properties(kv: &BTreeMap<String, String>) -> WriterProperties {
    let kv: Vec<KeyValue> = kv
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(false)
        .set_encoding(Encoding::PLAIN)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_key_value_metadata(Some(kv))
        .build()
}

/// Write `batches` (all of `schema`) to `path` atomically: a temp file in the same directory that is
/// renamed over `path` only once complete and synced.
pub(crate) fn write_parquet_atomic(
    path: &Path,
    schema: arrow::datatypes::SchemaRef,
    kv: &BTreeMap<String, String>,
    batches: impl Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>,
) -> Result<(), IoError> {
    let io_err = |source: std::io::Error| IoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs_err::create_dir_all(&dir).map_err(io_err)?;
    // The metadata also goes into the Arrow schema, so that pyarrow shows it as `schema.metadata`
    // (arrow's `Metadata` is a sorted map: stable bytes).
    let schema = Arc::new(schema.as_ref().clone().with_metadata(kv.clone()));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(io_err)?;
    let file = tmp.as_file().try_clone().map_err(io_err)?;
    let mut writer = ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        schema.clone(),
        Some(writer_properties(kv)),
    )
    .map_err(|e| IoError::parquet(path, e))?;
    for batch in batches {
        let batch = batch
            .and_then(|b| b.with_schema(schema.clone()))
            .map_err(|e| IoError::arrow(path, e))?;
        writer
            .write(&batch)
            .map_err(|e| IoError::parquet(path, e))?;
    }
    let mut buf = writer.into_inner().map_err(|e| IoError::parquet(path, e))?;
    buf.flush().map_err(io_err)?;
    drop(buf);
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An opened Parquet file: its batch reader and its key-value metadata.
pub(crate) struct OpenedParquet {
    pub reader: ParquetRecordBatchReader,
    pub kv: BTreeMap<String, String>,
    pub rows: usize,
}

/// Open `path` for reading, check the Arrow schema with `check_schema`.
pub(crate) fn open_parquet(
    path: &Path,
    check_schema: impl FnOnce(&arrow::datatypes::Schema) -> Result<(), String>,
) -> Result<OpenedParquet, IoError> {
    let file = fs_err::File::open(path).map_err(|source| IoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
        .map_err(|e| IoError::parquet(path, e))?;
    check_schema(builder.schema()).map_err(|m| IoError::schema(path, m))?;
    let meta = builder.metadata().file_metadata();
    let rows = usize::try_from(meta.num_rows())
        .map_err(|_| IoError::invalid(path, format!("negative row count {}", meta.num_rows())))?;
    let kv = meta
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.as_ref().map(|v| (kv.key.clone(), v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| IoError::parquet(path, e))?;
    Ok(OpenedParquet { reader, kv, rows })
}

/// An expected column: name, type check, type description for messages.
pub(crate) type ColumnSpec<'a> = (&'a str, fn(&DataType) -> bool, &'a str);

/// Check that `schema` has exactly the named columns with the given types (nullability ignored).
pub(crate) fn expect_columns(
    schema: &arrow::datatypes::Schema,
    expected: &[ColumnSpec],
) -> Result<(), String> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|(n, _, _)| *n).collect();
    if names != want {
        return Err(format!("expected columns {want:?}, found {names:?}"));
    }
    for ((name, ok, desc), field) in expected.iter().zip(schema.fields()) {
        if !ok(field.data_type()) {
            return Err(format!(
                "column `{name}` has type {}, expected {desc}",
                field.data_type()
            ));
        }
    }
    Ok(())
}

/// `Some(size)` when `dt` is a FixedSizeList of `item`.
pub(crate) fn fixed_list_of(dt: &DataType, item: &DataType) -> Option<usize> {
    match dt {
        DataType::FixedSizeList(f, size) if f.data_type() == item => usize::try_from(*size).ok(),
        _ => None,
    }
}

/// A required key-value entry.
pub(crate) fn kv_get<'a>(
    path: &Path,
    kv: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<&'a str, IoError> {
    kv.get(key)
        .map(String::as_str)
        .ok_or_else(|| IoError::Metadata {
            path: path.to_path_buf(),
            key: key.into(),
            message: "missing".into(),
        })
}

/// A required key-value entry parsed with `FromStr`.
pub(crate) fn kv_parse<T: std::str::FromStr>(
    path: &Path,
    kv: &BTreeMap<String, String>,
    key: &str,
) -> Result<T, IoError> {
    let v = kv_get(path, kv, key)?;
    v.parse().map_err(|_| IoError::Metadata {
        path: path.to_path_buf(),
        key: key.into(),
        message: format!("cannot parse `{v}`"),
    })
}
