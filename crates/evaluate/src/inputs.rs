//! Inputs of stage `evaluate` besides the datasets: the weights' content hash, the mine stage's
//! metrics JSON (its neighbour-accuracy fields are carried over) and the `curves_*` JSON files of
//! the training stages.

use std::path::{Path, PathBuf};

use super::EvalError;
use crate::report::{method_label, parse_curves, Comparison, Curves};

/// The role of an input name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputRole {
    Weights,
    Test,
    Train,
    Neighbors,
    MineMetrics,
    Curves,
    Compare,
}

/// Prefix of the curves inputs (`curves_pretext`, `curves_scan`, ...).
pub const CURVES_PREFIX: &str = "curves_";
/// Prefix of the inputs shown as rows beside this run (`compare_kmeans`, `compare_scan`, ...).
pub const COMPARE_PREFIX: &str = "compare_";

/// Classify an input name; `None` for names the stage does not know.
pub fn input_role(name: &str) -> Option<InputRole> {
    Some(match name {
        "weights" => InputRole::Weights,
        "test" => InputRole::Test,
        "train" => InputRole::Train,
        "neighbors" => InputRole::Neighbors,
        "mine_metrics" => InputRole::MineMetrics,
        n if n.len() > CURVES_PREFIX.len() && n.starts_with(CURVES_PREFIX) => InputRole::Curves,
        n if n.len() > COMPARE_PREFIX.len() && n.starts_with(COMPARE_PREFIX) => InputRole::Compare,
        _ => return None,
    })
}

/// BLAKE3 (hex) of a file's bytes.
pub fn file_blake3(path: &Path) -> Result<String, EvalError> {
    let bytes = fs_err::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

fn read_json(path: &Path) -> Result<serde_json::Value, EvalError> {
    let text = fs_err::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| EvalError::BadInput {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Read the mine stage's metrics JSON.
pub fn read_mine_metrics(path: &Path) -> Result<serde_json::Value, EvalError> {
    read_json(path)
}

/// Numeric leaves of `v` whose (dotted) key path mentions an accuracy (`acc` in any case), in
/// document order: the neighbour-accuracy fields of the mine stage's metrics.
pub fn neighbor_accuracy_fields(v: &serde_json::Value) -> Vec<(String, f64)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            serde_json::Value::Number(n) => {
                if let Some(x) = n.as_f64().filter(|x| x.is_finite()) {
                    if prefix.to_ascii_lowercase().contains("acc") {
                        out.push((prefix.to_string(), x));
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// Read a `compare_*` input: the metrics JSON of `kmeans` (`"method": "kmeans"`) or of another
/// `evaluate` (`weights_kind`), with numeric `acc`, `nmi`, `ari` and optionally `top5`. Returns its
/// table position and row.
pub fn read_comparison(name: &str, path: &Path) -> Result<(u8, Comparison), EvalError> {
    let v = read_json(path)?;
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let bad = |message: String| EvalError::BadInput {
        path: path.to_path_buf(),
        message,
    };
    let method = v
        .get("method")
        .or_else(|| v.get("weights_kind"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or(name.trim_start_matches(COMPARE_PREFIX));
    let (rank, label) = method_label(method);
    let field = |k: &str| num(k).ok_or_else(|| bad(format!("input `{name}`: no numeric `{k}`")));
    Ok((
        rank,
        Comparison {
            label,
            acc: field("acc")?,
            nmi: field("nmi")?,
            ari: field("ari")?,
            top5: num("top5"),
        },
    ))
}

/// Read one curves file.
pub fn read_curves(path: &Path) -> Result<Curves, EvalError> {
    let text = fs_err::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_curves(&text).map_err(|message| EvalError::BadInput {
        path: path.to_path_buf(),
        message,
    })
}

/// Paths of the curves inputs, sorted by input name.
pub fn curves_inputs(pairs: &[(String, PathBuf)]) -> Vec<(String, PathBuf)> {
    inputs_of(pairs, InputRole::Curves)
}

/// The `(name, path)` inputs of one role, sorted by input name.
pub fn inputs_of(pairs: &[(String, PathBuf)], role: InputRole) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = pairs
        .iter()
        .filter(|(n, _)| input_role(n) == Some(role.clone()))
        .cloned()
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_fields_are_flattened() {
        let v = serde_json::json!({
            "k": 20, "neighbor_acc": 0.8,
            "test": {"top5_accuracy": 0.75, "n": 10}, "name": "x"
        });
        assert_eq!(
            neighbor_accuracy_fields(&v),
            vec![
                ("neighbor_acc".to_string(), 0.8),
                ("test.top5_accuracy".to_string(), 0.75)
            ]
        );
    }

    #[test]
    fn input_names() {
        assert_eq!(input_role("curves_scan"), Some(InputRole::Curves));
        assert_eq!(input_role("curves_"), None);
        assert_eq!(input_role("compare_kmeans"), Some(InputRole::Compare));
        assert_eq!(input_role("neighbours"), None);
    }
}
