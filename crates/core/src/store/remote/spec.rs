//! Remote URLs: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
//! `http(s)://host/path` and `file:///path`. Parsing does no I/O and no network request.
//!
//! A URL never carries credentials: user names, passwords and query strings (presigned URLs,
//! SAS tokens) are refused, so that nothing secret reaches `pipeline.toml`, the lock file, action
//! records or messages. Credentials come from each service's standard environment and config
//! (`AWS_*` and `~/.aws`, `GOOGLE_*`, `AZURE_*`; for HTTP `SCAN_REMOTE_HTTP_AUTHORIZATION`).

use std::path::PathBuf;

use super::RemoteError;

/// The kind of service a remote URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
    Http,
    File,
}

/// A parsed remote URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    /// The URL as given, without trailing `/` (what messages print).
    pub url: String,
    pub scheme: Scheme,
    /// Bucket or container (`s3`, `gs`, `az`); the base URL (`http`); the directory (`file`).
    pub bucket: String,
    /// Object key prefix inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// S3-compatible endpoint (MinIO, Ceph, R2, ...), from `[remote] endpoint`; else the
    /// service's own environment (`AWS_ENDPOINT_URL`) decides.
    pub endpoint: Option<String>,
}

impl RemoteSpec {
    /// Parse `url`; `endpoint` applies to `s3://` (and `az://`) remotes.
    pub fn parse(url: &str, endpoint: Option<&str>) -> Result<RemoteSpec, RemoteError> {
        let bad = |message: &str| RemoteError::BadUrl {
            url: redact(url),
            message: message.into(),
        };
        let trimmed = url.trim().trim_end_matches('/');
        let (scheme, rest) = trimmed.split_once("://").ok_or_else(|| {
            bad("expected SCHEME://..., e.g. s3://bucket/prefix, https://host/path, file:///dir")
        })?;
        if rest.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not allowed (credentials come from the environment, never from the URL)"));
        }
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user names and passwords are not allowed in a remote URL: credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*, SCAN_REMOTE_HTTP_AUTHORIZATION), never from pipeline.toml"));
        }
        if path.split('/').any(|c| c == "." || c == "..") {
            return Err(bad("`.` and `..` are not allowed in the path"));
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "az" | "azure" | "abfs" | "abfss" => Scheme::Azure,
            "http" | "https" => Scheme::Http,
            "file" => Scheme::File,
            other => {
                return Err(bad(&format!(
                    "unsupported scheme `{other}` (supported: s3, gs, az, http, https, file)"
                )))
            }
        };
        let endpoint = endpoint
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| e.trim_end_matches('/').to_string());
        if let Some(e) = &endpoint {
            if e.contains('@') || e.contains('?') {
                return Err(bad("the endpoint may not carry credentials"));
            }
        }
        let prefix = path
            .split('/')
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let spec = match scheme {
            Scheme::Http => {
                if authority.is_empty() {
                    return Err(bad("missing host"));
                }
                RemoteSpec {
                    url: trimmed.to_string(),
                    scheme,
                    bucket: trimmed.to_string(),
                    prefix: String::new(),
                    endpoint: None,
                }
            }
            Scheme::File => {
                if !authority.is_empty() && authority != "localhost" {
                    return Err(bad(
                        "a file URL names a local directory: file:///absolute/path",
                    ));
                }
                RemoteSpec {
                    url: trimmed.to_string(),
                    scheme,
                    bucket: format!("/{prefix}"),
                    prefix: String::new(),
                    endpoint: None,
                }
            }
            _ => {
                if authority.is_empty() {
                    return Err(bad("missing bucket (or container) name"));
                }
                RemoteSpec {
                    url: trimmed.to_string(),
                    scheme,
                    bucket: authority.to_string(),
                    prefix,
                    endpoint,
                }
            }
        };
        Ok(spec)
    }

    /// The directory of a `file://` remote.
    pub fn file_dir(&self) -> Option<PathBuf> {
        (self.scheme == Scheme::File).then(|| PathBuf::from(&self.bucket))
    }

    /// The object key of `rel` (`blobs/ab/abcd…`, `actions/<key>.json`) under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

/// `url` with anything that could be a secret (user info, query) cut out, for error messages.
pub fn redact(url: &str) -> String {
    let mut s = url.split(['?', '#']).next().unwrap_or("").to_string();
    if let Some((scheme, rest)) = s.split_once("://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if let Some((_, host)) = authority.rsplit_once('@') {
            s = format!("{scheme}://***@{host}/{path}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let s = RemoteSpec::parse("s3://bucket/team/scan/", None).unwrap();
        assert_eq!(
            (s.scheme, s.bucket.as_str(), s.prefix.as_str()),
            (Scheme::S3, "bucket", "team/scan")
        );
        assert_eq!(s.key("blobs/ab/x"), "team/scan/blobs/ab/x");
        assert_eq!(s.url, "s3://bucket/team/scan");
        let h = RemoteSpec::parse("http://127.0.0.1:18080/remote", None).unwrap();
        assert_eq!(
            (h.scheme, h.bucket.as_str(), h.key("a")),
            (Scheme::Http, "http://127.0.0.1:18080/remote", "a".into())
        );
        let f = RemoteSpec::parse("file:///srv/cache", None).unwrap();
        assert_eq!(f.file_dir(), Some(PathBuf::from("/srv/cache")));
        assert_eq!(
            RemoteSpec::parse("gs://b", None).unwrap().scheme,
            Scheme::Gcs
        );
        assert_eq!(RemoteSpec::parse("az://c/p", None).unwrap().prefix, "p");
        let e = RemoteSpec::parse("s3://b", Some("http://127.0.0.1:9000/")).unwrap();
        assert_eq!(e.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    }

    #[test]
    fn refuses_credentials_and_junk() {
        for url in [
            "https://user:secret@host/path",
            "s3://AKIA:secret@bucket/p",
            "https://host/path?X-Amz-Signature=abc",
            "ftp://host/x",
            "bucket/prefix",
            "s3:///prefix",
            "file://host/x",
            "s3://b/../x",
        ] {
            let err = RemoteSpec::parse(url, None).unwrap_err().to_string();
            assert!(!err.contains("secret") && !err.contains("abc"), "{err}");
        }
        assert_eq!(redact("https://u:p@h/x?sig=1"), "https://***@h/x");
    }
}
