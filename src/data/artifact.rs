//! The canonical dataset artifact: load/save as safetensors with one canonical-JSON metadata key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

/// Format version of the dataset artifact; bump when its layout changes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a dataset artifact: {message}")]
    BadArtifact { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A raw file the dataset was read from, with its BLAKE3 checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub blake3: String,
    pub bytes: u64,
}

/// Metadata stored with the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    pub format_version: u32,
    /// e.g. `fashion-mnist`, `cifar10`, `cifar100-20`, `stl10`.
    pub dataset: String,
    /// e.g. `train`, `test`, `unlabeled`.
    pub split: String,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Raw files read, with checksums.
    pub source: Vec<SourceFile>,
}

/// Images and labels of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `N × H × W × C` uint8, row-major.
    pub images: Vec<u8>,
    /// `N` labels, −1 where unknown.
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub meta: DatasetMeta,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.meta.class_names.len()
    }

    /// Bytes of one image.
    pub fn image_bytes(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Load an artifact written by [`Dataset::save`].
    pub fn load(path: &Path) -> Result<Dataset, DataError> {
        let bytes = fs_err::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |message: String| DataError::BadArtifact {
            path: path.to_path_buf(),
            message,
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta_json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("scan"))
            .ok_or_else(|| bad("no `scan` metadata".into()))?;
        let meta: DatasetMeta =
            serde_json::from_str(meta_json).map_err(|e| bad(format!("metadata: {e}")))?;
        if meta.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                meta.format_version
            )));
        }
        let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let images = st
            .tensor("images")
            .map_err(|e| bad(format!("images: {e}")))?;
        let labels = st
            .tensor("labels")
            .map_err(|e| bad(format!("labels: {e}")))?;
        if images.dtype() != Dtype::U8 || images.shape().len() != 4 {
            return Err(bad(format!(
                "images must be uint8 [N,H,W,C], found {:?} {:?}",
                images.dtype(),
                images.shape()
            )));
        }
        if labels.dtype() != Dtype::I64 || labels.shape() != [images.shape()[0]] {
            return Err(bad(format!(
                "labels must be int64 [N], found {:?} {:?}",
                labels.dtype(),
                labels.shape()
            )));
        }
        let s = images.shape();
        let labels: Vec<i64> = labels
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let ds = Dataset {
            images: images.data().to_vec(),
            labels,
            height: s[1],
            width: s[2],
            channels: s[3],
            meta,
        };
        ds.validate(path)?;
        Ok(ds)
    }

    /// Check internal consistency (sizes, label range).
    pub fn validate(&self, path: &Path) -> Result<(), DataError> {
        let invalid = |message: String| DataError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.images.len() != self.len() * self.image_bytes() {
            return Err(invalid(format!(
                "{} image bytes for {} images of {}x{}x{}",
                self.images.len(),
                self.len(),
                self.height,
                self.width,
                self.channels
            )));
        }
        let k = self.num_classes() as i64;
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l < -1 || (l >= k && k > 0) || (k == 0 && l != -1))
        {
            return Err(invalid(format!(
                "label {l} of image {i} is out of range for {k} classes"
            )));
        }
        Ok(())
    }

    /// Write the artifact atomically (byte-stable for equal content).
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        self.validate(path)?;
        let label_bytes: Vec<u8> = self.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        let shape = vec![self.len(), self.height, self.width, self.channels];
        let invalid = |message: String| DataError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let images =
            TensorView::new(Dtype::U8, shape, &self.images).map_err(|e| invalid(e.to_string()))?;
        let labels = TensorView::new(Dtype::I64, vec![self.len()], &label_bytes)
            .map_err(|e| invalid(e.to_string()))?;
        let meta = serde_json::to_string(&self.meta).map_err(|e| invalid(e.to_string()))?;
        let mut md = HashMap::new();
        md.insert("scan".to_string(), meta);
        let bytes = safetensors::serialize([("images", images), ("labels", labels)], Some(md))
            .map_err(|e| invalid(e.to_string()))?;
        crate::util::atomic_write(path, &bytes).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dataset {
        Dataset {
            images: (0..2 * 3 * 2).map(|i| i as u8).collect(),
            labels: vec![0, -1],
            height: 3,
            width: 2,
            channels: 1,
            meta: DatasetMeta {
                format_version: FORMAT_VERSION,
                dataset: "t".into(),
                split: "train".into(),
                class_names: vec!["a".into(), "b".into()],
                source: vec![],
            },
        }
    }

    #[test]
    fn round_trip_and_stable_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        sample().save(&a).unwrap();
        sample().save(&b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(Dataset::load(&a).unwrap(), sample());
    }

    #[test]
    fn label_out_of_range_is_rejected() {
        let mut d = sample();
        d.labels[1] = 2;
        let err = d.save(Path::new("x.safetensors")).unwrap_err().to_string();
        assert!(
            err.contains("x.safetensors") && err.contains("label 2"),
            "{err}"
        );
    }
}
