//! The connection to a remote, built on first use: a small tokio runtime (two worker threads),
//! the object_store client for the URL's service, and for `http(s)://` remotes a plain HTTP
//! client for streaming uploads (object_store's HTTP store has no multipart upload and would hold
//! a whole blob in memory). Nothing here runs, and no socket is opened, until a command actually
//! needs the remote: a no-op `scan run` never gets this far.
//!
//! TLS is rustls on `ring` (installed as the process default provider here). Credentials are read
//! by object_store from each service's standard environment: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity and instance metadata for S3 (not
//! `~/.aws` profiles; `AWS_ENDPOINT_URL`, `AWS_REGION` and `AWS_ALLOW_HTTP` are honoured);
//! `GOOGLE_APPLICATION_CREDENTIALS` / `GOOGLE_SERVICE_ACCOUNT*` for GCS; `AZURE_STORAGE_*` for Azure.
//! An HTTP remote sends `Authorization: $SCAN_REMOTE_HTTP_AUTHORIZATION` when that is set.

use std::sync::Arc;
use std::time::Duration;

use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use super::spec::{RemoteSpec, Scheme};
use super::RemoteError;

/// Environment variable holding the `Authorization` header value for HTTP remotes.
pub const ENV_HTTP_AUTHORIZATION: &str = "SCAN_REMOTE_HTTP_AUTHORIZATION";

const CONNECT_TIMEOUT: &str = "5s";
/// No progress for this long fails a request (a stalled server), whatever the object's size.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound on a whole request (a multi-GB blob over a slow link).
const TOTAL_TIMEOUT: &str = "3600s";

/// A live connection to a remote.
pub struct Client {
    pub runtime: tokio::runtime::Runtime,
    pub store: Arc<dyn ObjectStore>,
    /// For `http(s)://` remotes: streaming PUT of large blobs.
    pub http: Option<HttpDirect>,
    /// Whether the service supports multipart uploads (S3, GCS, Azure, file).
    pub multipart: bool,
}

/// A plain HTTP client for the streaming uploads of an HTTP remote.
pub struct HttpDirect {
    pub client: reqwest::Client,
    /// The base URL, without trailing `/`.
    pub base: String,
    pub authorization: Option<reqwest::header::HeaderValue>,
}

fn no_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    }
}

fn authorization() -> Option<reqwest::header::HeaderValue> {
    let value = std::env::var(ENV_HTTP_AUTHORIZATION).ok()?;
    let mut v = reqwest::header::HeaderValue::from_str(value.trim()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// Build the client for `spec` (no request is sent).
pub fn connect(spec: &RemoteSpec) -> Result<Client, RemoteError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let remote = spec.url.clone();
    let config = |source: object_store::Error| RemoteError::Config {
        remote: remote.clone(),
        source,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("scan-remote")
        .enable_all()
        .build()
        .map_err(|source| RemoteError::Runtime {
            remote: spec.url.clone(),
            source,
        })?;
    let read_timeout = format!("{}s", READ_TIMEOUT.as_secs());
    let client_keys = [
        (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
        (ClientConfigKey::Timeout, TOTAL_TIMEOUT),
        (ClientConfigKey::ReadTimeout, read_timeout.as_str()),
    ];
    let http_endpoint = |e: &Option<String>| e.as_deref().is_some_and(|e| e.starts_with("http://"));
    let (store, http, multipart): (Arc<dyn ObjectStore>, Option<HttpDirect>, bool) =
        match spec.scheme {
            Scheme::S3 => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&spec.bucket)
                    .with_retry(no_retry());
                for (k, v) in client_keys {
                    b = b.with_config(AmazonS3ConfigKey::Client(k), v);
                }
                if let Some(e) = &spec.endpoint {
                    b = b.with_endpoint(e);
                    if http_endpoint(&spec.endpoint) {
                        b = b.with_allow_http(true);
                    }
                }
                (Arc::new(b.build().map_err(config)?), None, true)
            }
            Scheme::Gcs => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&spec.bucket)
                    .with_retry(no_retry());
                for (k, v) in client_keys {
                    b = b.with_config(GoogleConfigKey::Client(k), v);
                }
                (Arc::new(b.build().map_err(config)?), None, true)
            }
            Scheme::Azure => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(&spec.bucket)
                    .with_retry(no_retry());
                for (k, v) in client_keys {
                    b = b.with_config(AzureConfigKey::Client(k), v);
                }
                if let Some(e) = &spec.endpoint {
                    b = b.with_endpoint(e.clone());
                    if http_endpoint(&spec.endpoint) {
                        b = b.with_allow_http(true);
                    }
                }
                (Arc::new(b.build().map_err(config)?), None, true)
            }
            Scheme::Http => {
                use object_store::http::HttpBuilder;
                let mut b = HttpBuilder::new()
                    .with_url(&spec.bucket)
                    .with_retry(no_retry())
                    .with_config(ClientConfigKey::AllowHttp, "true");
                for (k, v) in client_keys {
                    b = b.with_config(k, v);
                }
                let auth = authorization();
                if let Some(a) = &auth {
                    let mut headers = object_store::HeaderMap::new();
                    headers.insert("authorization", a.clone());
                    let opts = object_store::ClientOptions::new()
                        .with_allow_http(true)
                        .with_connect_timeout(Duration::from_secs(5))
                        .with_timeout(Duration::from_secs(3600))
                        .with_read_timeout(READ_TIMEOUT)
                        .with_default_headers(headers);
                    b = b.with_client_options(opts);
                }
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(READ_TIMEOUT)
                    .build()
                    .map_err(|e| {
                        config(object_store::Error::Generic {
                            store: "HTTP",
                            source: Box::new(e),
                        })
                    })?;
                let direct = HttpDirect {
                    client,
                    base: spec.bucket.clone(),
                    authorization: auth,
                };
                (Arc::new(b.build().map_err(config)?), Some(direct), false)
            }
            Scheme::File => {
                let dir = spec.file_dir().unwrap_or_default();
                std::fs::create_dir_all(&dir).map_err(|source| RemoteError::LocalIo {
                    remote: spec.url.clone(),
                    object: String::new(),
                    path: dir.clone(),
                    source,
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(config)?
                    .with_automatic_cleanup(true);
                (Arc::new(fs), None, true)
            }
        };
    Ok(Client {
        runtime,
        store,
        http,
        multipart,
    })
}
