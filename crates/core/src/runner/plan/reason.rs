//! [`DirtyReason`]: why a stage is not up to date, one variant per kind of change, rendered in one
//! place ([`std::fmt::Display`]) for `scan status`, `scan explain` and `scan run --dry-run`.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::super::lockfile::LockEntry;
use super::super::params::flatten;
use super::super::pipeline::Stage;
use crate::store::{Digest, OutputRef, StageKey};

/// Why a stage is stale, pending, or reused under a new key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DirtyReason {
    NeverBuilt,
    UpstreamFirst {
        upstream: String,
    },
    CmdChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    CodeChanged {
        old: String,
        new: String,
    },
    CodeFileChanged {
        file: String,
        old: Digest,
        new: Digest,
    },
    CodeFileAdded {
        file: String,
    },
    CodeFileRemoved {
        file: String,
    },
    /// A param's resolved value changed; `*_default` tell whether the value was the schema default
    /// (not written in the pipeline file or `--set`).
    ParamChanged {
        key: String,
        old: String,
        new: String,
        old_default: bool,
        new_default: bool,
    },
    ParamAdded {
        key: String,
        value: String,
    },
    ParamRemoved {
        key: String,
        old: String,
    },
    InputAdded {
        source: String,
        name: String,
    },
    InputChanged {
        source: String,
        old: Digest,
        new: Digest,
    },
    InputMoved {
        name: String,
        old: String,
        new: String,
    },
    InputMayChange {
        source: String,
        upstream: String,
    },
    InputRemoved {
        source: String,
        name: String,
    },
    OutputsChanged {
        old: Vec<String>,
        new: Vec<String>,
    },
    ReusedFromStore,
    NotInStore {
        key: StageKey,
    },
    KeyChanged {
        old: StageKey,
        new: StageKey,
    },
    OutputMissing {
        name: String,
        output: OutputRef,
    },
    /// Its result is on the remote (record known), not downloaded into this store.
    OnRemote {
        key: StageKey,
    },
}

impl DirtyReason {
    /// Whether this reason only says that an upstream stage must run first.
    pub fn is_upstream_only(&self) -> bool {
        matches!(
            self,
            DirtyReason::UpstreamFirst { .. } | DirtyReason::InputMayChange { .. }
        )
    }
}

fn defaulted(is_default: bool) -> &'static str {
    if is_default {
        " (default)"
    } else {
        ""
    }
}

impl fmt::Display for DirtyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DirtyReason::*;
        match self {
            NeverBuilt => write!(f, "never built (no entry in pipeline.lock)"),
            UpstreamFirst { upstream } => write!(f, "upstream stage `{upstream}` must run first"),
            CmdChanged { old, new } => write!(f, "cmd changed ({old:?} → {new:?})"),
            CodeChanged { old, new } => write!(f, "code changed ({old} → {new})"),
            CodeFileChanged { file, old, new } => write!(
                f,
                "code file {file} changed ({} → {})",
                old.short(),
                new.short()
            ),
            CodeFileAdded { file } => write!(f, "code file {file} added"),
            CodeFileRemoved { file } => write!(f, "code file {file} removed"),
            ParamChanged {
                key,
                old,
                new,
                old_default,
                new_default,
            } => write!(
                f,
                "param {key} {old}{} → {new}{}",
                defaulted(*old_default),
                defaulted(*new_default)
            ),
            ParamAdded { key, value } => write!(f, "param {key} added (= {value})"),
            ParamRemoved { key, old } => write!(f, "param {key} removed (was {old})"),
            InputAdded { source, name } => write!(f, "input {source} added (as `{name}`)"),
            InputChanged { source, old, new } => write!(
                f,
                "input {source} changed ({} → {})",
                old.short(),
                new.short()
            ),
            InputMoved { name, old, new } => {
                write!(
                    f,
                    "input `{name}` now reads {new} (was {old}; same content)"
                )
            }
            InputMayChange { source, upstream } => write!(
                f,
                "input {source} may change: upstream stage `{upstream}` must run first"
            ),
            InputRemoved { source, name } => write!(f, "input {source} removed (was `{name}`)"),
            OutputsChanged { old, new } => {
                write!(f, "declared outputs changed ({old:?} → {new:?})")
            }
            ReusedFromStore => write!(
                f,
                "a result for the new key is already in the store: it will be reused, nothing runs"
            ),
            NotInStore { key } => write!(
                f,
                "not in this store: no action record for key {} (built elsewhere? `scan import` or \
                 `scan pull` it, or it will be rebuilt)",
                key.short()
            ),
            KeyChanged { old, new } => write!(
                f,
                "key changed ({} → {}) and no result for it is in the store",
                old.short(),
                new.short()
            ),
            OnRemote { key } => write!(
                f,
                "on the remote, not downloaded (key {}; `scan pull` fetches it, `scan run` when needed)",
                key.short()
            ),
            OutputMissing { name, output } => write!(
                f,
                "output {name} missing from store ({} {})",
                output.kind.as_str(),
                output.hash.short()
            ),
        }
    }
}

/// The param differences between the lock entry and the stage, defaults marked.
pub(super) fn param_reasons(stage: &Stage, entry: &LockEntry) -> Vec<DirtyReason> {
    let (old, new) = (flatten(&entry.params), flatten(&stage.params));
    let written: BTreeMap<String, String> = flatten(&stage.written);
    let is_written = |k: &str| {
        written.contains_key(k) || written.keys().any(|w| k.starts_with(&format!("{w}.")))
    };
    // Locks written before explicit keys were recorded say nothing about defaults.
    let old_default = |k: &str| {
        entry
            .explicit
            .as_ref()
            .is_some_and(|e| !e.iter().any(|w| w == k || k.starts_with(&format!("{w}."))))
    };
    let q = |k: &str| format!("{}.{k}", stage.name);
    let mut out = Vec::new();
    for (k, va) in &old {
        match new.get(k) {
            Some(vb) if vb != va => out.push(DirtyReason::ParamChanged {
                key: q(k),
                old: va.clone(),
                new: vb.clone(),
                old_default: stage.builtin.is_some() && old_default(k),
                new_default: stage.builtin.is_some() && !is_written(k),
            }),
            None => out.push(DirtyReason::ParamRemoved {
                key: q(k),
                old: va.clone(),
            }),
            _ => {}
        }
    }
    for (k, vb) in &new {
        if !old.contains_key(k) {
            out.push(DirtyReason::ParamAdded {
                key: q(k),
                value: vb.clone(),
            });
        }
    }
    out
}
