//! Action records and their blobs between the local store and a remote.
//!
//! - [`Remote::fetch_action`]: GET `actions/<key>.json`, checked like an imported record (schema,
//!   key = BLAKE3 of the manifest, the key asked for, the declared outputs).
//! - [`Remote::fetch_outputs`]: download the blobs a record's outputs need (for a directory output
//!   its manifest first, then its files), each verified, then write the record locally — last.
//! - [`Remote::push_action`]: upload the blobs the remote lacks (HEAD first), then the record —
//!   last, so a reader never sees a record whose blobs are missing. Two machines pushing the same
//!   key upload identical blobs and records that are each complete: whichever PUT lands last,
//!   the remote stays consistent.
//!
//! Transfers run up to [`PARALLEL`] objects at a time on the remote's runtime.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::{action_object, Remote, RemoteError};
use crate::store::{tree::TreeManifest, ActionRecord, Digest, OutputKind, StageKey, Store};

/// Objects transferred at once.
pub const PARALLEL: usize = 4;

/// What one transfer moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Objects sent or received.
    pub objects: u64,
    pub bytes: u64,
    /// Objects that were already there (not transferred).
    pub present: u64,
}

impl Transfer {
    pub fn add(&mut self, o: Transfer) {
        self.objects += o.objects;
        self.bytes += o.bytes;
        self.present += o.present;
    }
}

impl Remote {
    /// The remote's record for `key`, verified; `None` when the remote does not have it.
    pub fn fetch_action(&self, key: &StageKey) -> Result<Option<ActionRecord>, RemoteError> {
        let object = action_object(key);
        let c = self.client()?;
        let bytes = c
            .runtime
            .block_on(self.get_small(c, &object, super::objects::MAX_RECORD))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let object = action_object(key);
        let bad = |message: String| RemoteError::BadRecord {
            remote: self.spec.url.clone(),
            object: object.clone(),
            message,
        };
        let rec = ActionRecord::parse(std::path::Path::new(&object), &bytes)
            .map_err(|e| bad(e.to_string()))?;
        if rec.key != *key {
            return Err(bad(format!("it holds key {}", rec.key)));
        }
        let declared: BTreeSet<String> = rec
            .manifest
            .get("outputs")
            .and_then(|o| o.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let recorded: BTreeSet<String> = rec.outputs.keys().cloned().collect();
        if declared != recorded {
            return Err(bad(format!(
                "outputs {recorded:?} differ from the declared {declared:?}"
            )));
        }
        Ok(Some(rec))
    }

    /// Download what `rec`'s outputs need into `store` (verified), then write `rec` there. When
    /// an object is corrupt or missing, the record is marked bad: a later push in this process
    /// (the stage rebuilt here with `--push`) replaces it with a complete one.
    pub fn fetch_outputs(
        &self,
        store: &Store,
        rec: &ActionRecord,
    ) -> Result<Transfer, RemoteError> {
        let r = self.fetch_outputs_inner(store, rec);
        if let Err(
            RemoteError::Corrupt { .. }
            | RemoteError::Missing { .. }
            | RemoteError::BadRecord { .. },
        ) = &r
        {
            self.mark_bad(&action_object(&rec.key));
        }
        r
    }

    fn fetch_outputs_inner(
        &self,
        store: &Store,
        rec: &ActionRecord,
    ) -> Result<Transfer, RemoteError> {
        let mut t = Transfer::default();
        // Directory manifests first: they name the files to fetch.
        let mut files: BTreeSet<Digest> = BTreeSet::new();
        for o in rec.outputs.values() {
            if o.kind == OutputKind::Dir && !store.has_blob(&o.hash) {
                t.add(self.fetch_blobs(store, std::slice::from_ref(&o.hash))?);
            }
            files.insert(o.hash.clone());
            if o.kind == OutputKind::Dir {
                let m: TreeManifest = store.read_tree(&o.hash)?;
                files.extend(m.entries.into_iter().map(|e| e.hash));
            }
        }
        let missing: Vec<Digest> = files.into_iter().filter(|h| !store.has_blob(h)).collect();
        t.add(self.fetch_blobs(store, &missing)?);
        if !store.has_outputs(rec) {
            return Err(RemoteError::BadRecord {
                remote: self.spec.url.clone(),
                object: action_object(&rec.key),
                message: "its outputs are incomplete after the download".into(),
            });
        }
        store.write_action(rec)?;
        store.forget_remote_action(&rec.key);
        Ok(t)
    }

    /// Download `hashes` (verified) into `store`; a blob missing on the remote is an error.
    pub fn fetch_blobs(&self, store: &Store, hashes: &[Digest]) -> Result<Transfer, RemoteError> {
        if hashes.is_empty() {
            return Ok(Transfer::default());
        }
        let c = self.client()?;
        c.runtime.block_on(async {
            futures::stream::iter(hashes.iter().cloned().map(|h| async move {
                match self.download_blob(c, store, &h).await? {
                    Some(n) => Ok(Transfer {
                        objects: 1,
                        bytes: n,
                        present: 0,
                    }),
                    None => Err(RemoteError::Missing {
                        remote: self.spec.url.clone(),
                        object: super::blob_object(&h),
                    }),
                }
            }))
            .buffer_unordered(PARALLEL)
            .try_fold(Transfer::default(), |mut acc, t| async move {
                acc.add(t);
                Ok(acc)
            })
            .await
        })
    }

    /// Upload `rec`'s blobs the remote lacks, then the record unless the remote has it.
    pub fn push_action(&self, store: &Store, rec: &ActionRecord) -> Result<Transfer, RemoteError> {
        let blobs: Vec<Digest> = store
            .blobs_of(rec)?
            .into_iter()
            .filter_map(|h| Digest::parse(&h))
            .collect();
        for h in &blobs {
            if !store.has_blob(h) {
                return Err(crate::store::StoreError::MissingBlob {
                    hash: h.to_string(),
                }
                .into());
            }
        }
        let record =
            serde_json::to_vec_pretty(rec).map_err(|source| crate::store::StoreError::Json {
                path: store.action_path(&rec.key),
                source,
            })?;
        let c = self.client()?;
        c.runtime.block_on(async {
            let mut t = futures::stream::iter(blobs.iter().cloned().map(|h| async move {
                Ok::<_, RemoteError>(match self.upload_blob(c, store, &h).await? {
                    Some(n) => Transfer {
                        objects: 1,
                        bytes: n,
                        present: 0,
                    },
                    None => Transfer {
                        objects: 0,
                        bytes: 0,
                        present: 1,
                    },
                })
            }))
            .buffer_unordered(PARALLEL)
            .try_fold(Transfer::default(), |mut acc, t| async move {
                acc.add(t);
                Ok(acc)
            })
            .await?;
            let object = action_object(&rec.key);
            if !self.is_bad(&object) && self.head(c, &object).await?.is_some() {
                t.present += 1;
            } else {
                let n = record.len() as u64;
                self.put_small(c, &object, Bytes::from(record)).await?;
                t.objects += 1;
                t.bytes += n;
            }
            Ok(t)
        })
    }
}

impl Remote {
    /// Whether the remote has the record of `key` (one HEAD).
    pub fn has_action(&self, key: &StageKey) -> Result<bool, RemoteError> {
        let object = action_object(key);
        let c = self.client()?;
        Ok(c.runtime.block_on(self.head(c, &object))?.is_some())
    }
}
