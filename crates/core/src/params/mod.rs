//! The params schema of every built-in stage, with its defaults (METHOD.md §9 lists the paper values).
//!
//! These types are the single definition of each stage's params: the runner resolves a stage's
//! `params` table against its schema before anything runs ([`resolve`]: unknown keys, wrong types and
//! out-of-range values are errors naming the key), the resolved params — defaults included — go into
//! the stage key and into the params file handed to the stage, and the stage binary parses that file
//! into the same type. Changing a default in code therefore changes the keys of the stages that use it.
//!
//! Enum-valued params are serde enums; numbers are checked by [`StageParams::validate`].

mod enums;
mod stages;

pub use enums::{
    Arch, DatasetKind, Device, ImportKind, Precision, Published, Split, SubsetMode,
    ViewAugmentation,
};
pub use stages::{
    EmbedParams, EvalParams, ImportParams, IngestParams, KmeansParams, MineParams, PretextParams,
    ScanParams, SelflabelParams, SubsetParams, TrainingParams,
};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A param that does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{key}`: {message}")]
pub struct ParamError {
    /// Dotted path of the param (`subset.train`), `(top level)` for the table itself.
    pub key: String,
    pub message: String,
}

impl ParamError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ParamError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A stage's params type: serde with defaults and `deny_unknown_fields`, plus range checks.
pub trait StageParams: Serialize + DeserializeOwned + Default {
    /// Check values that the types alone do not constrain (ranges, combinations).
    fn validate(&self) -> Result<(), ParamError> {
        Ok(())
    }
}

/// Parse `value` (a JSON object) as `T`, naming the key of the first error.
pub fn parse<T: StageParams>(value: &Value) -> Result<T, ParamError> {
    let p: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." {
            "(top level)".into()
        } else {
            key
        };
        ParamError::new(key, e.into_inner().to_string())
    })?;
    p.validate()?;
    Ok(p)
}

/// Resolve `value` against `T`: the params with every default filled in, as a JSON object with
/// sorted keys (what goes into the stage key and the params file).
pub fn resolve<T: StageParams>(value: &Value) -> Result<Value, ParamError> {
    let p: T = parse(value)?;
    serde_json::to_value(&p)
        .map(|v| crate::store::canon::sorted(&v))
        .map_err(|e| ParamError::new("(top level)", e.to_string()))
}

/// `Err` naming `key` unless `ok`.
pub(crate) fn check(ok: bool, key: &str, message: &str) -> Result<(), ParamError> {
    if ok {
        Ok(())
    } else {
        Err(ParamError::new(key, message))
    }
}

#[cfg(test)]
mod tests;
