//! `download = true` of the `ingest` stage: fetch a dataset's official files (the archives and `.gz`
//! files torchvision downloads) into a download cache, resumably, with progress on stderr, over a
//! pure-Rust HTTP/TLS client (`ureq` + `rustls`). This code is linked into the stage binaries only,
//! never into the `scan` runner.
//!
//! # Why the stage key still describes the bytes read
//!
//! The runner's key of an `ingest` run covers its params, its code and the content of its `data_dir`
//! input — not the download cache, which lives outside the workspace. The rule that keeps cached
//! results correct:
//!
//! 1. Files in `data_dir` always win: the cache is only looked at when `data_dir` lacks the files of
//!    a split and the params say `download = true`.
//! 2. The cache only ever holds the official files listed in [`OFFICIAL`], and a cached file is read
//!    only after its MD5 equals the official checksum compiled into this stage. The check runs on
//!    every use, not just after the download; a cached file that fails it is deleted and fetched
//!    again.
//!
//! So the bytes read are fixed by `data_dir`'s content, the params (dataset, `download`) and the
//! stage's code: exactly what the key hashes. Where the bytes came from (the official server, a
//! mirror given by [`ENV_MIRROR`], a file copied into the cache by hand) does not matter.
//!
//! # Failure behaviour
//!
//! A file is downloaded to `<file>.part` next to its final place and renamed only once complete and
//! verified. An HTTP error status or a checksum mismatch is one error naming the URL and deletes the
//! partial file. A transfer that breaks off (connection reset, server gone, timeout) is resumed with
//! an HTTP `Range` request a few times; if it still fails, the error says how far it got and the
//! `.part` file is kept, so that the next run resumes where this one stopped. Nothing ever reaches
//! the data directory or the stage outputs. Two processes downloading into one cache folder take
//! turns (a lock on the folder).
//!
//! The checksums are the MD5s the dataset authors publish (CIFAR) and torchvision checks (all of
//! them); MD5 is what is published, and it is used here as a check against corrupt or wrong files,
//! not against an attacker (the official STL-10 and Fashion-MNIST URLs are plain HTTP anyway).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use scan_core::progress::ProgressEvent;

use super::ingest::{DatasetKind, Split};

/// Environment variable: the download cache directory (default `$XDG_CACHE_HOME/scan/datasets`,
/// else `~/.cache/scan/datasets`).
pub const ENV_CACHE: &str = "SCAN_DATA_CACHE";
/// Environment variable: a base URL that replaces every official one (`<mirror>/<file name>`), e.g.
/// a local mirror, or a test server.
pub const ENV_MIRROR: &str = "SCAN_DATA_MIRROR";

/// Attempts per file when a transfer breaks off (the later ones resume with `Range`).
const ATTEMPTS: usize = 3;

/// One official file: its cache folder, name, official location and MD5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Cache subfolder (MNIST and Fashion-MNIST files share names).
    pub group: &'static str,
    pub file: &'static str,
    /// The official base URL (the file's URL is `base + file`).
    pub base: &'static str,
    /// Lowercase hex MD5 of the whole file.
    pub md5: &'static str,
}

const KRIZ: &str = "https://www.cs.toronto.edu/~kriz/";
const STL: &str = "http://ai.stanford.edu/~acoates/stl10/";
const MNIST: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
const FASHION: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

const fn remote(
    group: &'static str,
    file: &'static str,
    base: &'static str,
    md5: &'static str,
) -> Remote {
    Remote {
        group,
        file,
        base,
        md5,
    }
}

/// Every file `download = true` may fetch, with its official MD5 (as published by the CIFAR authors
/// and checked by torchvision).
pub const OFFICIAL: &[Remote] = &[
    remote(
        "cifar-10",
        "cifar-10-binary.tar.gz",
        KRIZ,
        "c32a1d4ab5d03f1284b67883e8d87530",
    ),
    remote(
        "cifar-10",
        "cifar-10-python.tar.gz",
        KRIZ,
        "c58f30108f718f92721af3b95e74349a",
    ),
    remote(
        "cifar-100",
        "cifar-100-binary.tar.gz",
        KRIZ,
        "03b5dce01913d631647c71ecec9e9cb8",
    ),
    remote(
        "cifar-100",
        "cifar-100-python.tar.gz",
        KRIZ,
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
    remote(
        "stl10",
        "stl10_binary.tar.gz",
        STL,
        "91f7769df0f17e558f3565bffb0c7dfb",
    ),
    remote(
        "mnist",
        "train-images-idx3-ubyte.gz",
        MNIST,
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    remote(
        "mnist",
        "train-labels-idx1-ubyte.gz",
        MNIST,
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    remote(
        "mnist",
        "t10k-images-idx3-ubyte.gz",
        MNIST,
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    remote(
        "mnist",
        "t10k-labels-idx1-ubyte.gz",
        MNIST,
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
    remote(
        "fashion-mnist",
        "train-images-idx3-ubyte.gz",
        FASHION,
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    ),
    remote(
        "fashion-mnist",
        "train-labels-idx1-ubyte.gz",
        FASHION,
        "25c81989df183df01b3e8a0aad5dffbe",
    ),
    remote(
        "fashion-mnist",
        "t10k-images-idx3-ubyte.gz",
        FASHION,
        "bef4ecab320f06d8554ea6380940ec79",
    ),
    remote(
        "fashion-mnist",
        "t10k-labels-idx1-ubyte.gz",
        FASHION,
        "bb300cfdad3c16e7a12a480ee83cd310",
    ),
];

/// The files to fetch for `split` of `kind` (the binary versions of CIFAR; for MNIST-like datasets
/// the split's two files). Empty for `folder`.
pub fn official_files(kind: DatasetKind, split: Split) -> Vec<&'static Remote> {
    let pick = |group: &str, keep: &dyn Fn(&str) -> bool| -> Vec<&'static Remote> {
        OFFICIAL
            .iter()
            .filter(|r| r.group == group && keep(r.file))
            .collect()
    };
    let idx_prefix = if split == Split::Train {
        "train-"
    } else {
        "t10k-"
    };
    match kind {
        DatasetKind::Mnist => pick("mnist", &|f| f.starts_with(idx_prefix)),
        DatasetKind::FashionMnist => pick("fashion-mnist", &|f| f.starts_with(idx_prefix)),
        DatasetKind::Cifar10 => pick("cifar-10", &|f| f.contains("binary")),
        DatasetKind::Cifar100 | DatasetKind::Cifar100Coarse => {
            pick("cifar-100", &|f| f.contains("binary"))
        }
        DatasetKind::Stl10 => pick("stl10", &|_| true),
        DatasetKind::Folder => Vec::new(),
    }
}

/// Errors of a download; each names the URL or the file.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("no download cache directory: set ${ENV_CACHE} (or HOME) to say where downloads go")]
    NoCacheDir,
    #[error("${ENV_MIRROR} = `{0}` is not an http:// or https:// URL")]
    BadMirror(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("downloading {url}: the server answered HTTP {status}; nothing was kept")]
    Status { url: String, status: u16 },
    #[error("downloading {url}: {message}; nothing was kept")]
    Protocol { url: String, message: String },
    #[error("downloading {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error(
        "downloading {url}: the transfer broke off after {got} of {total} bytes ({source}); the \
         partial file {part} is kept and the next run resumes from it"
    )]
    Interrupted {
        url: String,
        got: u64,
        total: String,
        part: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "downloading {url}: checksum mismatch: MD5 {actual} ({bytes} bytes), expected the official \
         {expected}; the file was deleted (a wrong file, a truncated transfer or a changed server)"
    )]
    Checksum {
        url: String,
        expected: String,
        actual: String,
        bytes: u64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where downloads go and where they come from.
#[derive(Debug, Clone)]
pub struct Downloader {
    /// The cache root; each [`Remote::group`] is a subfolder.
    pub cache: PathBuf,
    /// A base URL replacing the official ones.
    pub mirror: Option<String>,
    /// Checksums replacing the official ones, by file name. Only for tests that serve fixture
    /// archives; the stage binary never sets it ([`Downloader::from_env`]).
    pub md5_override: Vec<(String, String)>,
    /// Print progress lines to stderr.
    pub progress: bool,
}

impl Downloader {
    /// The stage's downloader: cache from [`ENV_CACHE`] / XDG / HOME, mirror from [`ENV_MIRROR`].
    pub fn from_env() -> Result<Downloader, DownloadError> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let cache = env(ENV_CACHE)
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("scan/datasets")))
            .or_else(|| env("HOME").map(|d| d.join(".cache/scan/datasets")))
            .ok_or(DownloadError::NoCacheDir)?;
        let mirror = std::env::var(ENV_MIRROR).ok().filter(|m| !m.is_empty());
        if let Some(m) = &mirror {
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                return Err(DownloadError::BadMirror(m.clone()));
            }
        }
        Ok(Downloader {
            cache,
            mirror,
            md5_override: Vec::new(),
            progress: true,
        })
    }

    /// The URL `r` is fetched from.
    pub fn url(&self, r: &Remote) -> String {
        match &self.mirror {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), r.file),
            None => format!("{}{}", r.base, r.file),
        }
    }

    fn md5<'a>(&'a self, r: &'a Remote) -> &'a str {
        self.md5_override
            .iter()
            .find(|(f, _)| f == r.file)
            .map_or(r.md5, |(_, m)| m.as_str())
    }

    /// The cache folder of `group`.
    pub fn dir(&self, group: &str) -> PathBuf {
        self.cache.join(group)
    }

    /// Make sure every file of `remotes` is in the cache and matches its checksum (downloading what is
    /// missing or wrong); returns the cache folder of their group.
    pub fn ensure(&self, remotes: &[&Remote]) -> Result<PathBuf, DownloadError> {
        let mut dir = self.cache.clone();
        for r in remotes {
            dir = self.dir(r.group);
            self.fetch(r)?;
        }
        Ok(dir)
    }

    /// Make sure `r` is in the cache, verified; returns its path.
    pub fn fetch(&self, r: &Remote) -> Result<PathBuf, DownloadError> {
        let dir = self.dir(r.group);
        fs_err::create_dir_all(&dir).map_err(io_err(&dir))?;
        // One process at a time per cache folder (released when the handle is dropped).
        let lock = std::fs::File::open(&dir).map_err(io_err(&dir))?;
        lock.lock().map_err(io_err(&dir))?;
        let path = dir.join(r.file);
        let url = self.url(r);
        let expected = self.md5(r).to_ascii_lowercase();
        if path.is_file() {
            let (actual, _) = md5_file(&path)?;
            if actual == expected {
                return Ok(path);
            }
            eprintln!(
                "ingest: {} in the download cache has MD5 {actual}, not the official {expected}: \
                 deleting it and downloading it again",
                path.display()
            );
            fs_err::remove_file(&path).map_err(io_err(&path))?;
        }
        let part = dir.join(format!("{}.part", r.file));
        self.transfer(&url, &part)?;
        let (actual, bytes) = md5_file(&part)?;
        if actual != expected {
            let _ = fs_err::remove_file(&part);
            return Err(DownloadError::Checksum {
                url,
                expected,
                actual,
                bytes,
            });
        }
        fs_err::rename(&part, &path).map_err(io_err(&path))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        if self.progress {
            eprintln!("ingest: {} verified (MD5 {expected})", path.display());
        }
        Ok(path)
    }

    /// Download `url` into `part`, resuming from what `part` already holds.
    fn transfer(&self, url: &str, part: &Path) -> Result<(), DownloadError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 2 * ATTEMPTS {
                let _ = fs_err::remove_file(part);
                return Err(DownloadError::Protocol {
                    url: url.into(),
                    message: "the server keeps answering with ranges that were not asked for"
                        .into(),
                });
            }
            let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
            let mut req = agent.get(url);
            if have > 0 {
                req = req.header("Range", format!("bytes={have}-"));
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(source) => {
                    if have > 0 {
                        return Err(DownloadError::Interrupted {
                            url: url.into(),
                            got: have,
                            total: "?".into(),
                            part: part.to_path_buf(),
                            source: std::io::Error::other(source.to_string()),
                        });
                    }
                    return Err(DownloadError::Request {
                        url: url.into(),
                        source,
                    });
                }
            };
            let status = resp.status().as_u16();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
            let (offset, total) = match status {
                200 => (0, length),
                206 => match header("content-range")
                    .as_deref()
                    .and_then(parse_content_range)
                {
                    Some((start, total)) if start == have => (have, total),
                    // A range we did not ask for: start over.
                    _ => {
                        let _ = fs_err::remove_file(part);
                        continue;
                    }
                },
                // The partial file is not a prefix of what the server has: start over once.
                416 if have > 0 && attempt < ATTEMPTS => {
                    let _ = fs_err::remove_file(part);
                    continue;
                }
                _ => {
                    let _ = fs_err::remove_file(part);
                    return Err(DownloadError::Status {
                        url: url.into(),
                        status,
                    });
                }
            };
            let total = total.or(length.map(|l| l + offset));
            let mut file = fs_err::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(offset == 0)
                .append(offset > 0)
                .open(part)
                .map_err(io_err(part))?;
            let mut body = resp.into_body().into_reader();
            let mut progress = Progress::new(self.progress, url, offset, total);
            let mut buf = vec![0u8; 1 << 16];
            let mut got = offset;
            let result = loop {
                match body.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        file.write_all(&buf[..n]).map_err(io_err(part))?;
                        got += n as u64;
                        progress.update(got);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            file.flush().map_err(io_err(part))?;
            file.file().sync_all().map_err(io_err(part))?;
            match result {
                Ok(()) if total.is_none_or(|t| got == t) => {
                    progress.done(got);
                    return Ok(());
                }
                Ok(()) => {
                    // The server closed a body shorter than it announced without an error.
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the body ended early",
                    );
                    if attempt >= ATTEMPTS || got == have {
                        return Err(interrupted(url, got, total, part, e));
                    }
                }
                Err(e) => {
                    if attempt >= ATTEMPTS || got == have {
                        return Err(interrupted(url, got, total, part, e));
                    }
                }
            }
            if self.progress {
                eprintln!("ingest: {url}: transfer broke off after {got} bytes; resuming");
            }
        }
    }
}

fn interrupted(
    url: &str,
    got: u64,
    total: Option<u64>,
    part: &Path,
    source: std::io::Error,
) -> DownloadError {
    DownloadError::Interrupted {
        url: url.into(),
        got,
        total: total.map_or("?".into(), |t| t.to_string()),
        part: part.to_path_buf(),
        source,
    }
}

/// `bytes START-END/TOTAL` → `(START, Some(TOTAL))` (`*` total → `None`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// MD5 (lowercase hex) and size of a file.
pub fn md5_file(path: &Path) -> Result<(String, u64), DownloadError> {
    let mut f = fs_err::File::open(path).map_err(io_err(path))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, n))
}

/// Progress: lines on stderr (the stage log) at most every two seconds and one at the end, and, when
/// the runner listens, structured events (bytes done of total, MB/s) every 250 ms for its bar.
struct Progress {
    on: bool,
    name: String,
    start: Instant,
    last: Instant,
    last_event: Instant,
    first: u64,
    total: Option<u64>,
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

impl Progress {
    fn new(on: bool, url: &str, first: u64, total: Option<u64>) -> Progress {
        if on {
            let size = total.map_or("unknown size".into(), |t| format!("{:.1} MB", mb(t)));
            let from = if first > 0 {
                format!(", resuming at {:.1} MB", mb(first))
            } else {
                String::new()
            };
            eprintln!("ingest: downloading {url} ({size}{from})");
        }
        let now = Instant::now();
        Progress {
            on,
            name: url.rsplit('/').next().unwrap_or(url).to_string(),
            start: now,
            last: now,
            last_event: now,
            first,
            total,
        }
    }

    fn line(&self, got: u64) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = mb(got - self.first) / secs;
        match self.total {
            Some(t) if t > 0 => {
                let eta = if rate > 0.0 {
                    format!(", {:.0} s left", mb(t.saturating_sub(got)) / rate)
                } else {
                    String::new()
                };
                format!(
                    "ingest: {}: {:.1} of {:.1} MB ({:.0}%), {rate:.1} MB/s{eta}",
                    self.name,
                    mb(got),
                    mb(t),
                    100.0 * got as f64 / t as f64
                )
            }
            _ => format!("ingest: {}: {:.1} MB, {rate:.1} MB/s", self.name, mb(got)),
        }
    }

    fn update(&mut self, got: u64) {
        if !self.on {
            return;
        }
        let reporter = scan_core::progress::reporter();
        if reporter.active() && self.last_event.elapsed() >= Duration::from_millis(250) {
            self.last_event = Instant::now();
            self.event(got, false);
        }
        if self.last.elapsed() >= Duration::from_secs(2) {
            self.last = Instant::now();
            eprintln!("{}", self.line(got));
        }
    }

    /// Bytes as a structured progress event for the runner's bar (when a runner listens).
    fn event(&self, got: u64, end: bool) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        scan_core::progress::reporter().send(&ProgressEvent {
            done: got,
            total: self.total.unwrap_or(got).max(got),
            metric: Some(("MB/s".into(), mb(got - self.first) / secs)),
            epoch_end: end,
            ..ProgressEvent::default()
        });
    }

    fn done(&self, got: u64) {
        if self.on {
            self.event(got, true);
            eprintln!("{} — done", self.line(got));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_and_catalog() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
        for r in OFFICIAL {
            assert_eq!(r.md5.len(), 32, "{}", r.file);
            assert!(r
                .md5
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        let f = official_files(DatasetKind::FashionMnist, Split::Test);
        let names: Vec<_> = f.iter().map(|r| r.file).collect();
        assert_eq!(
            names,
            ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        );
        assert_eq!(f[0].group, "fashion-mnist");
        let c = official_files(DatasetKind::Cifar100Coarse, Split::Train);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].file, "cifar-100-binary.tar.gz");
        let d = Downloader {
            cache: "/c".into(),
            mirror: Some("http://127.0.0.1:9/m/".into()),
            md5_override: vec![],
            progress: false,
        };
        assert_eq!(d.url(c[0]), "http://127.0.0.1:9/m/cifar-100-binary.tar.gz");
    }

    #[test]
    fn md5_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            md5_file(&p).unwrap(),
            ("900150983cd24fb0d6963f7d28e17f72".to_string(), 3)
        );
    }
}
