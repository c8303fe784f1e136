//! Integration tests: `download = true` of the `ingest` stage against a real HTTP server process on
//! 127.0.0.1 (`tests/http_server.py`) serving fixture archives in the official layout: success with
//! the checksum verified, a checksum mismatch, an HTTP error, a connection cut mid-transfer (resumed
//! in the same run with `Range`), a server dying mid-download (the next run resumes), and the stage
//! binary with the official checksums. Real downloads from the official servers cannot be tested on
//! an offline machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use scan::data::{ingest_with, Dataset, DatasetKind, Downloader, Split};

use super::common::{bin, python, Workspace};
use super::ingest::{check_pixels, cifar10_bin_dir, make_tgz, params};

const ARCHIVE: &str = "cifar-10-binary.tar.gz";

/// The test server; killed on drop.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(ws: &Workspace, dir: &Path, extra: &[&str]) -> Server {
        let tag = extra.join("_").replace('-', "");
        let port_file = ws.join(&format!("port{tag}"));
        let log = ws.join(&format!("log{tag}"));
        let _ = std::fs::remove_file(&port_file);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/http_server.py");
        let child = Command::new(python())
            .arg(script)
            .arg("--dir")
            .arg(dir)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .arg("--lifetime")
            .arg("120")
            .args(extra)
            .spawn()
            .expect("spawn the test HTTP server");
        let t = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Server { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mirror/", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture `cifar-10-binary.tar.gz` in `ws/served/`, its MD5 (by Python's hashlib) and size.
fn served_archive(ws: &Workspace) -> (PathBuf, String, u64) {
    let data = cifar10_bin_dir(ws);
    let served = ws.join("served");
    make_tgz(&data, "cifar-10-batches-bin", &served.join(ARCHIVE));
    let md5 = super::common::run_python(
        "import hashlib,sys\nprint(hashlib.md5(open(sys.argv[1],'rb').read()).hexdigest())",
        &[served.join(ARCHIVE).to_str().unwrap()],
    );
    let size = std::fs::metadata(served.join(ARCHIVE)).unwrap().len();
    (served, md5.trim().to_string(), size)
}

fn downloader(cache: &Path, server: &Server, md5: &str) -> Downloader {
    Downloader {
        cache: cache.to_path_buf(),
        mirror: Some(server.url()),
        md5_override: vec![(ARCHIVE.to_string(), md5.to_string())],
        progress: true,
    }
}

fn fetch_and_ingest(ws: &Workspace, dl: &Downloader, out: &str) -> Result<Vec<Dataset>, String> {
    let mut p = params(DatasetKind::Cifar10, &[Split::Train, Split::Test]);
    p.download = true;
    let out = ws.join(out);
    let _ = std::fs::remove_dir_all(&out);
    match ingest_with(&p, None, &out, Some(dl)) {
        Ok(paths) => Ok(paths.iter().map(|p| Dataset::load(p).unwrap()).collect()),
        Err(e) => {
            let left = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
            assert_eq!(left, 0, "outputs left behind after: {e}");
            Err(e.to_string())
        }
    }
}

/// Every file in `dir` (recursively), relative names.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(
                    files(&p)
                        .into_iter()
                        .map(|f| format!("{}/{f}", e.file_name().to_string_lossy())),
                );
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn download_verifies_the_checksum_and_caches() {
    let ws = Workspace::new();
    let (served, md5, _) = served_archive(&ws);
    let server = Server::start(&ws, &served, &[]);
    let cache = ws.join("cache");
    let dl = downloader(&cache, &server, &md5);
    let out = fetch_and_ingest(&ws, &dl, "out").unwrap();
    check_pixels(&out[0], 0);
    check_pixels(&out[1], 100);
    assert_eq!(
        out[1].meta.source[0].name,
        "cifar-10-binary.tar.gz/cifar-10-batches-bin/test_batch.bin"
    );
    assert_eq!(files(&cache), ["cifar-10/cifar-10-binary.tar.gz"]);
    assert_eq!(
        std::fs::read(cache.join("cifar-10").join(ARCHIVE)).unwrap(),
        std::fs::read(served.join(ARCHIVE)).unwrap()
    );
    assert_eq!(server.log().lines().count(), 1, "{}", server.log());
    // Second run: served from the cache (re-verified), no request.
    let again = fetch_and_ingest(&ws, &dl, "out2").unwrap();
    assert_eq!(again[0], out[0]);
    assert_eq!(server.log().lines().count(), 1, "{}", server.log());
    // A cached file that no longer matches is deleted and fetched again.
    std::fs::write(cache.join("cifar-10").join(ARCHIVE), b"corrupt").unwrap();
    fetch_and_ingest(&ws, &dl, "out3").unwrap();
    assert_eq!(server.log().lines().count(), 2, "{}", server.log());
    // Files in the data directory win over the cache: no download without need.
    let data = ws.join("data");
    let mut p = params(DatasetKind::Cifar10, &[Split::Test]);
    p.download = true;
    ingest_with(&p, Some(&data), &ws.join("out4"), Some(&dl)).unwrap();
    assert_eq!(server.log().lines().count(), 2, "{}", server.log());
}

#[test]
fn wrong_checksum_or_http_error_is_one_error_and_leaves_nothing() {
    let ws = Workspace::new();
    let (served, _, size) = served_archive(&ws);
    let server = Server::start(&ws, &served, &[]);
    let cache = ws.join("cache");
    let wrong = "0123456789abcdef0123456789abcdef";
    let err = fetch_and_ingest(&ws, &downloader(&cache, &server, wrong), "out").unwrap_err();
    assert!(
        err.contains("checksum mismatch")
            && err.contains(wrong)
            && err.contains(&format!("{size} bytes"))
            && err.contains(&server.url()),
        "{err}"
    );
    assert!(files(&cache).is_empty(), "{:?}", files(&cache));
    // The file is not on the server: HTTP 404.
    std::fs::remove_file(served.join(ARCHIVE)).unwrap();
    let err = fetch_and_ingest(&ws, &downloader(&cache, &server, wrong), "out").unwrap_err();
    assert!(err.contains("HTTP 404") && err.contains(ARCHIVE), "{err}");
    assert!(files(&cache).is_empty(), "{:?}", files(&cache));
    // Nobody listening: a connection error naming the URL.
    drop(server);
    let dead = Downloader {
        cache: cache.clone(),
        mirror: Some("http://127.0.0.1:9/".into()),
        md5_override: vec![],
        progress: false,
    };
    let err = fetch_and_ingest(&ws, &dead, "out").unwrap_err();
    assert!(
        err.contains("http://127.0.0.1:9/cifar-10-binary.tar.gz"),
        "{err}"
    );
    assert!(files(&cache).is_empty(), "{:?}", files(&cache));
}

#[test]
fn broken_transfers_resume_with_range() {
    let ws = Workspace::new();
    let (served, md5, size) = served_archive(&ws);
    let cache = ws.join("cache");
    // The connection is cut after 1000 bytes: the same run resumes at byte 1000.
    {
        let server = Server::start(&ws, &served, &["--cut-once", "1000"]);
        let out = fetch_and_ingest(&ws, &downloader(&cache, &server, &md5), "out").unwrap();
        check_pixels(&out[1], 100);
        let log = server.log();
        assert!(
            log.contains("range=-\n") && log.contains("range=bytes=1000-"),
            "{log}"
        );
    }
    // The server dies after 1500 bytes: one error saying how far it got; the partial file is kept
    // (and nothing else), and the next run resumes from it.
    std::fs::remove_dir_all(&cache).unwrap();
    let server = Server::start(&ws, &served, &["--die-after", "1500"]);
    let err = fetch_and_ingest(&ws, &downloader(&cache, &server, &md5), "out").unwrap_err();
    assert!(
        err.contains("broke off after 1500 of") && err.contains("resumes"),
        "{err}"
    );
    assert_eq!(files(&cache), ["cifar-10/cifar-10-binary.tar.gz.part"]);
    assert_eq!(
        std::fs::metadata(cache.join("cifar-10/cifar-10-binary.tar.gz.part"))
            .unwrap()
            .len(),
        1500
    );
    let server = Server::start(&ws, &served, &[]);
    let out = fetch_and_ingest(&ws, &downloader(&cache, &server, &md5), "out").unwrap();
    check_pixels(&out[0], 0);
    assert_eq!(
        server.log().trim(),
        "GET /mirror/cifar-10-binary.tar.gz range=bytes=1500-"
    );
    assert_eq!(files(&cache), ["cifar-10/cifar-10-binary.tar.gz"]);
    assert_eq!(
        std::fs::metadata(cache.join("cifar-10").join(ARCHIVE))
            .unwrap()
            .len(),
        size
    );
}

#[test]
fn stage_binary_checks_the_official_checksum() {
    let ws = Workspace::new();
    let (served, _, _) = served_archive(&ws);
    let server = Server::start(&ws, &served, &[]);
    let cache = ws.join("cache");
    let out = ws.join("stage-out");
    std::fs::create_dir_all(&out).unwrap();
    let params = ws.write("params.json", r#"{"dataset": "cifar10", "download": true}"#);
    let o = Command::new(bin("scan-ingest"))
        .arg("--out")
        .arg(&out)
        .arg("--params")
        .arg(&params)
        .env("SCAN_DATA_CACHE", &cache)
        .env("SCAN_DATA_MIRROR", server.url())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // The fixture is not the official archive: its MD5 differs from the published one.
    assert!(
        err.contains("checksum mismatch") && err.contains("c32a1d4ab5d03f1284b67883e8d87530"),
        "{err}"
    );
    assert!(err.contains("downloading"), "{err}");
    assert!(files(&cache).is_empty(), "{:?}", files(&cache));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    // Without `download`, the missing data directory input is an error that says what to do.
    let params = ws.write("p2.json", r#"{"dataset": "cifar10"}"#);
    let o = Command::new(bin("scan-ingest"))
        .arg("--out")
        .arg(&out)
        .arg("--params")
        .arg(&params)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("data_dir"));
}
