//! Single-object operations, each retried by [`Remote::retrying`]: HEAD (size), GET of a small
//! object (action records), a verified streaming download of a blob into the store, PUT of a
//! small object, and the upload of a blob — in memory up to [`SMALL_BLOB`] bytes, else streamed
//! (multipart upload on S3, GCS, Azure and file remotes; one streaming PUT on HTTP remotes), so
//! memory stays bounded whatever the blob's size. Uploads re-hash what they send and abort
//! instead of publishing a local blob that does not match its name.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::client::{Client, HttpDirect};
use super::retry::is_transient;
use super::{Remote, RemoteError};
use crate::store::{Digest, Store, StoreError};

/// Blobs up to this size are uploaded from memory in one request.
pub const SMALL_BLOB: u64 = 4 << 20;
/// Part size of multipart uploads (S3 needs at least 5 MiB but the last).
const PART: usize = 8 << 20;
/// Read size when streaming a file.
const CHUNK: usize = 1 << 20;
/// Largest action record accepted from a remote.
pub const MAX_RECORD: u64 = 64 << 20;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How one attempt of an operation failed.
pub enum OpError {
    /// A request failed: retried when [`is_transient`] says so.
    Request(BoxError),
    /// Not worth retrying (a corrupt object, a local I/O error).
    Fatal(RemoteError),
}

impl From<object_store::Error> for OpError {
    fn from(e: object_store::Error) -> Self {
        OpError::Request(Box::new(e))
    }
}

/// A non-success HTTP status of a direct request (rendered like object_store's, so that
/// [`super::retry::status_code`] reads it).
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: server returned status code: {status}")]
pub struct StatusError {
    pub method: &'static str,
    pub url: String,
    pub status: reqwest::StatusCode,
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Remote {
    fn path(&self, object: &str) -> object_store::path::Path {
        object_store::path::Path::from(self.spec.key(object))
    }

    fn local_io(&self, object: &str, path: &Path, source: std::io::Error) -> OpError {
        OpError::Fatal(RemoteError::LocalIo {
            remote: self.spec.url.clone(),
            object: object.to_string(),
            path: path.to_path_buf(),
            source,
        })
    }

    /// Run one attempt after another until success, a permanent error or the retry budget is
    /// spent; each retry is announced on stderr. A transient failure that outlives its retries
    /// marks the remote down for the rest of the process.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        op: &'static str,
        object: &str,
        mut attempt: F,
    ) -> Result<T, RemoteError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OpError>>,
    {
        let mut n = 0u32;
        loop {
            n += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let err = match attempt().await {
                Ok(v) => return Ok(v),
                Err(OpError::Fatal(e)) => return Err(e),
                Err(OpError::Request(e)) => e,
            };
            let transient = is_transient(&*err);
            if transient && n < self.policy.attempts && !self.is_down() {
                let delay = self.policy.delay(n);
                eprintln!(
                    "scan: remote {}: {op} {object}: {}; retry {n}/{} in {:.1}s",
                    self.spec.url,
                    super::chain(&*err),
                    self.policy.attempts - 1,
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
                continue;
            }
            if transient {
                self.down.store(true, Ordering::Relaxed);
            }
            return Err(RemoteError::Request {
                remote: self.spec.url.clone(),
                op,
                object: object.to_string(),
                attempts: n,
                transient,
                source: err,
            });
        }
    }

    /// The size of `object`, or `None` when the remote does not have it.
    pub async fn head(&self, c: &Client, object: &str) -> Result<Option<u64>, RemoteError> {
        let path = self.path(object);
        self.retrying("HEAD", object, || async {
            match c.store.head(&path).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The bytes of a small object (at most `max` bytes), or `None` when it does not exist.
    pub async fn get_small(
        &self,
        c: &Client,
        object: &str,
        max: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let path = self.path(object);
        let remote = self.spec.url.clone();
        let bytes = self
            .retrying("GET", object, || async {
                let res = match c.store.get(&path).await {
                    Ok(r) => r,
                    Err(e) if not_found(&e) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                if res.meta.size > max {
                    return Err(OpError::Fatal(RemoteError::BadRecord {
                        remote: remote.clone(),
                        object: object.to_string(),
                        message: format!("{} bytes, more than the {max} accepted", res.meta.size),
                    }));
                }
                Ok(Some(res.bytes().await?.to_vec()))
            })
            .await?;
        if let Some(b) = &bytes {
            self.stats
                .downloaded_objects
                .fetch_add(1, Ordering::Relaxed);
            self.stats
                .downloaded_bytes
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        Ok(bytes)
    }

    /// Download blob `hash` into `store`: streamed to a temp file under `<store>/tmp/`, hashed,
    /// and renamed into place only if it hashes to its name. A corrupt object is refused and
    /// fetched once more (it may have been damaged in transit); `Ok(None)` when it is missing.
    pub async fn download_blob(
        &self,
        c: &Client,
        store: &Store,
        hash: &Digest,
    ) -> Result<Option<u64>, RemoteError> {
        let object = super::blob_object(hash);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.download_blob_once(c, store, hash, &object).await {
                Err(RemoteError::Corrupt { .. }) if tries < 2 => {
                    eprintln!(
                        "scan: remote {}: {object} is corrupt (refused); fetching it again",
                        self.spec.url
                    );
                }
                other => return other,
            }
        }
    }

    async fn download_blob_once(
        &self,
        c: &Client,
        store: &Store,
        hash: &Digest,
        object: &str,
    ) -> Result<Option<u64>, RemoteError> {
        let path = self.path(object);
        let tmp_dir = store.dir("tmp");
        fs_err::create_dir_all(&tmp_dir).map_err(StoreError::from)?;
        let staged = self
            .retrying("GET", object, || async {
                let res = match c.store.get(&path).await {
                    Ok(r) => r,
                    Err(e) if not_found(&e) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let mut tmp = tempfile::Builder::new()
                    .prefix(&format!("fetch.{}.", std::process::id()))
                    .tempfile_in(&tmp_dir)
                    .map_err(|e| self.local_io(object, &tmp_dir, e))?;
                let mut hasher = blake3::Hasher::new();
                let mut size = 0u64;
                let mut stream = res.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    tmp.write_all(&chunk)
                        .map_err(|e| self.local_io(object, tmp.path(), e))?;
                }
                let actual = hasher.finalize().to_hex().to_string();
                if actual != **hash {
                    self.mark_bad(object);
                    return Err(OpError::Fatal(RemoteError::Corrupt {
                        remote: self.spec.url.clone(),
                        object: object.to_string(),
                        expected: hash.to_string(),
                        actual,
                    }));
                }
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| self.local_io(object, tmp.path(), e))?;
                Ok(Some((tmp, size)))
            })
            .await?;
        let Some((tmp, size)) = staged else {
            return Ok(None);
        };
        store.commit_blob(tmp, hash)?;
        self.stats
            .downloaded_objects
            .fetch_add(1, Ordering::Relaxed);
        self.stats
            .downloaded_bytes
            .fetch_add(size, Ordering::Relaxed);
        Ok(Some(size))
    }

    /// PUT a small object (overwriting).
    pub async fn put_small(
        &self,
        c: &Client,
        object: &str,
        bytes: Bytes,
    ) -> Result<(), RemoteError> {
        let path = self.path(object);
        let len = bytes.len() as u64;
        self.retrying("PUT", object, || async {
            c.store
                .put(&path, PutPayload::from_bytes(bytes.clone()))
                .await?;
            Ok(())
        })
        .await?;
        self.stats.uploaded_objects.fetch_add(1, Ordering::Relaxed);
        self.stats.uploaded_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// Upload blob `hash` of `store` unless the remote has it already (same size, not found
    /// corrupt by this process). Returns the bytes sent, `None` when it was there.
    pub async fn upload_blob(
        &self,
        c: &Client,
        store: &Store,
        hash: &Digest,
    ) -> Result<Option<u64>, RemoteError> {
        let object = super::blob_object(hash);
        let file = store.blob_path(hash);
        let size = fs_err::metadata(&file).map_err(StoreError::from)?.len();
        if !self.is_bad(&object) && self.head(c, &object).await? == Some(size) {
            return Ok(None);
        }
        if size <= SMALL_BLOB {
            let bytes = fs_err::read(&file).map_err(StoreError::from)?;
            let actual = Digest::of(&bytes);
            if actual != *hash {
                return Err(StoreError::CorruptBlob {
                    hash: hash.to_string(),
                    actual: actual.to_string(),
                }
                .into());
            }
            return self
                .put_small(c, &object, Bytes::from(bytes))
                .await
                .map(|()| Some(size));
        }
        let path = self.path(&object);
        self.retrying("PUT", &object, || async {
            match &c.http {
                Some(h) if !c.multipart => {
                    self.http_put_stream(h, &object, &file, size, hash).await
                }
                _ => self.multipart_put(c, &path, &object, &file, hash).await,
            }
        })
        .await?;
        self.stats.uploaded_objects.fetch_add(1, Ordering::Relaxed);
        self.stats.uploaded_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(Some(size))
    }

    /// Multipart upload of a file, hashing what is sent; aborted (nothing published) on any error
    /// or if the file does not hash to `hash`.
    async fn multipart_put(
        &self,
        c: &Client,
        path: &object_store::path::Path,
        object: &str,
        file: &Path,
        hash: &Digest,
    ) -> Result<(), OpError> {
        let mut f = std::fs::File::open(file).map_err(|e| self.local_io(object, file, e))?;
        let upload = c.store.put_multipart(path).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match f.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(self.local_io(object, file, e));
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if let Err(e) = w.wait_for_capacity(1).await {
                let _ = w.abort().await;
                return Err(e.into());
            }
            w.write(&buf[..n]);
        }
        let actual = hasher.finalize().to_hex().to_string();
        if actual != **hash {
            let _ = w.abort().await;
            return Err(OpError::Fatal(
                StoreError::CorruptBlob {
                    hash: hash.to_string(),
                    actual,
                }
                .into(),
            ));
        }
        w.finish().await?;
        Ok(())
    }

    /// One streaming PUT of a file to an HTTP remote; the body stream fails (and the server
    /// discards the upload) if the file does not hash to `hash`. Parent collections are created
    /// with MKCOL when the server asks for them (409/404).
    async fn http_put_stream(
        &self,
        h: &HttpDirect,
        object: &str,
        file: &Path,
        size: u64,
        hash: &Digest,
    ) -> Result<(), OpError> {
        let url = format!("{}/{}", h.base, self.spec.key(object));
        for mkcol in [false, true] {
            if mkcol {
                self.http_mkcol_parents(h, object).await?;
            }
            let f = std::fs::File::open(file).map_err(|e| self.local_io(object, file, e))?;
            let body = reqwest::Body::wrap_stream(hashing_stream(f, hash.to_string()));
            let mut req = h
                .client
                .put(&url)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
            if let Some(a) = &h.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a.clone());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| OpError::Request(Box::new(e)))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let parent_missing = matches!(
                status,
                reqwest::StatusCode::CONFLICT | reqwest::StatusCode::NOT_FOUND
            );
            if !parent_missing || mkcol {
                return Err(OpError::Request(Box::new(StatusError {
                    method: "PUT",
                    url: url.clone(),
                    status,
                })));
            }
        }
        Ok(())
    }

    async fn http_mkcol_parents(&self, h: &HttpDirect, object: &str) -> Result<(), OpError> {
        let full = self.spec.key(object);
        let parts: Vec<&str> = full.split('/').collect();
        let method =
            reqwest::Method::from_bytes(b"MKCOL").map_err(|e| OpError::Request(Box::new(e)))?;
        for i in 1..parts.len() {
            let url = format!("{}/{}/", h.base, parts[..i].join("/"));
            let mut req = h.client.request(method.clone(), &url);
            if let Some(a) = &h.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a.clone());
            }
            // 201 created, 405 exists: both fine; anything else shows in the PUT that follows.
            req.send()
                .await
                .map_err(|e| OpError::Request(Box::new(e)))?;
        }
        Ok(())
    }
}

/// The chunks of `file`, failing at the end if they do not hash to `expected`.
fn hashing_stream(
    file: std::fs::File,
    expected: String,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(
        Some((file, blake3::Hasher::new(), expected)),
        |state| async move {
            let (mut file, mut hasher, expected) = state?;
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf) {
                Ok(0) => {
                    let actual = hasher.finalize().to_hex().to_string();
                    (actual != expected).then(|| {
                        let e = std::io::Error::other(format!(
                            "local blob {expected} hashes to {actual}; upload aborted (run `scan verify`)"
                        ));
                        (Err(e), None)
                    })
                }
                Ok(n) => {
                    buf.truncate(n);
                    hasher.update(&buf);
                    Some((Ok(Bytes::from(buf)), Some((file, hasher, expected))))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    )
}

/// Whether the object store error means "not found" (for callers outside this module).
pub fn is_not_found(e: &object_store::Error) -> bool {
    not_found(e)
}
