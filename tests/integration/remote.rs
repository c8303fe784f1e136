//! Remote stores against real servers on 127.0.0.1, started by the project's own scripts
//! (`scripts/remote-up.sh`: nginx WebDAV from Debian's packages, moto's S3 server from PyPI) once
//! per test binary: push/pull, the teammate story, corruption on the server, a server killed in
//! the middle of a push, concurrent pushers, a remote that is down, no request on a no-op run,
//! credentials never written, gc on a shared store, export/import through a pipe.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{bin, python, Workspace};

type Env = BTreeMap<String, String>;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Run `scripts/remote-up.sh` with `extra` environment and return its exports.
fn remote_up(extra: &[(&str, String)]) -> Env {
    let out = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/remote-up.sh"))
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/remote-up.sh");
    assert!(out.status.success(), "scripts/remote-up.sh failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The shared servers of this test binary (started once; idempotent across binaries and runs).
fn servers() -> &'static Env {
    static SERVERS: OnceLock<Env> = OnceLock::new();
    SERVERS.get_or_init(|| remote_up(&[]))
}

/// A fresh prefix on the remote for one test.
fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Http,
    S3,
}

fn url(env: &Env, kind: Kind, prefix: &str) -> String {
    match kind {
        Kind::Http => format!("{}/{prefix}", env["SCAN_TEST_HTTP_URL"]),
        Kind::S3 => format!("s3://{}/{prefix}", env["SCAN_TEST_S3_BUCKET"]),
    }
}

/// A deterministic stage: `data` (a digest of its params and inputs) and `dir/` (`files` files of
/// `size` bytes, plus `big` bytes in `dir/big.bin`), all derived from that digest.
const STAGE_PY: &str = r#"
import sys, json, os, random, hashlib
args = sys.argv[1:]
out = params = None
inputs = {}
i = 0
while i < len(args):
    if args[i] == "--out": out = args[i + 1]
    elif args[i] == "--params": params = args[i + 1]
    elif args[i] == "--input":
        n, p = args[i + 1].split("=", 1)
        inputs[n] = p
    i += 2
p = json.load(open(params))
log = os.environ.get("SCAN_TEST_LOG")
if log:
    with open(log, "a") as f:
        f.write(p["name"] + "\n")
h = hashlib.sha256(json.dumps(p, sort_keys=True).encode())
for n, path in sorted(inputs.items()):
    h.update(n.encode())
    if os.path.isdir(path):
        for d, _, fs in sorted(os.walk(path)):
            for f in sorted(fs):
                h.update(open(os.path.join(d, f), "rb").read())
    else:
        h.update(open(path, "rb").read())
digest = h.hexdigest()
with open(os.path.join(out, "data"), "w") as f:
    f.write(p["name"] + " " + digest + "\n")
os.makedirs(os.path.join(out, "dir", "sub"))
rnd = random.Random(digest)
for k in range(p.get("files", 2)):
    sub = "sub" if k % 2 else ""
    with open(os.path.join(out, "dir", sub, "f%d.bin" % k), "wb") as f:
        f.write(rnd.randbytes(p.get("size", 1000)))
if p.get("big"):
    with open(os.path.join(out, "dir", "big.bin"), "wb") as f:
        f.write(rnd.randbytes(p["big"]))
"#;

/// a (reads raw/) → b → c → d (d also reads b's directory).
fn pipeline(remote: &str, a_params: &str) -> String {
    let py = python();
    let py = py.display();
    format!(
        r#"[stages.a]
cmd = ["{py}", "stage.py"]
params = {{ name = "a", size = 3000{a_params} }}
inputs = {{ raw = "raw" }}
outputs = ["data", "dir"]

[stages.b]
cmd = ["{py}", "stage.py"]
params = {{ name = "b", files = 4, size = 20000 }}
inputs = {{ x = "a.data", d = "a.dir" }}
outputs = ["data", "dir"]

[stages.c]
cmd = ["{py}", "stage.py"]
params = {{ name = "c" }}
inputs = {{ x = "b.data" }}
outputs = ["data", "dir"]

[stages.d]
cmd = ["{py}", "stage.py"]
params = {{ name = "d" }}
inputs = {{ x = "c.data", y = "b.dir" }}
outputs = ["data", "dir"]

[remote]
url = "{remote}"
"#
    )
}

fn workspace(remote: &str, a_params: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("stage.py", STAGE_PY);
    ws.write("raw/images.txt", "raw images\n");
    ws.write("pipeline.toml", &pipeline(remote, a_params));
    ws
}

/// A teammate's checkout: pipeline.toml, pipeline.lock and the script, no raw data, no store.
fn checkout_of(ws: &Workspace) -> Workspace {
    let t = Workspace::new();
    for f in ["pipeline.toml", "pipeline.lock", "stage.py"] {
        std::fs::copy(ws.join(f), t.join(f)).expect("copy");
    }
    t
}

fn cmd(ws: &Workspace, env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(bin("scan"));
    c.current_dir(ws.path())
        .env_remove("SCAN_STORE")
        .env_remove("SCAN_REMOTE")
        .envs(env)
        .env("SCAN_TEST_LOG", ws.join("stages.log"))
        .args(args);
    c
}

fn scan(ws: &Workspace, env: &Env, args: &[&str]) -> Output {
    cmd(ws, env, args).output().expect("spawn scan")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(ws: &Workspace, env: &Env, args: &[&str]) -> Output {
    let o = scan(ws, env, args);
    assert!(o.status.success(), "scan {args:?} failed:\n{}", text(&o));
    o
}

fn json(ws: &Workspace, env: &Env, args: &[&str]) -> serde_json::Value {
    let o = ok(ws, env, args);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

/// Per-stage status of `scan run --json`.
fn statuses(v: &serde_json::Value) -> BTreeMap<String, String> {
    // A run with `--set` is a named variant: `[{"experiment": …, "stages": […]}]`.
    let v = match v.get(0).and_then(|e| e.get("stages")) {
        Some(stages) => stages,
        None => v,
    };
    v.as_array()
        .expect("array")
        .iter()
        .map(|o| {
            (
                o["stage"].as_str().unwrap_or("").to_string(),
                o["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Stage names run since the last call.
fn ran(ws: &Workspace) -> Vec<String> {
    let p = ws.join("stages.log");
    let s = std::fs::read_to_string(&p).unwrap_or_default();
    let _ = std::fs::remove_file(&p);
    s.lines().map(str::to_string).collect()
}

/// The bytes of output `spec` (STAGE.OUTPUT) of a file output.
fn output(ws: &Workspace, env: &Env, spec: &str) -> Vec<u8> {
    let o = ok(ws, env, &["show", spec]);
    let path = String::from_utf8_lossy(&o.stdout).trim().to_string();
    std::fs::read(path).expect("read output")
}

fn push_then_pull(kind: Kind) {
    let env = servers();
    let remote = url(env, kind, &unique("pushpull"));
    let ws = workspace(&remote, "");
    let v = json(&ws, env, &["run", "--push", "--json"]);
    assert_eq!(
        statuses(&v),
        map(&[("a", "ran"), ("b", "ran"), ("c", "ran"), ("d", "ran")])
    );
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|o| o["uploaded_bytes"].as_u64() > Some(0)),
        "{v}"
    );
    ran(&ws);
    let d_data = output(&ws, env, "d.data");
    // A second push sends nothing: every object is there.
    let p = json(&ws, env, &["push", "--json"]);
    assert_eq!(p["objects"], 0, "{p}");
    assert!(
        p["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "present"),
        "{p}"
    );

    // An empty store in the same workspace: only the final stage's outputs are downloaded.
    std::fs::remove_dir_all(ws.join("artifacts")).unwrap();
    let v = json(&ws, env, &["run", "--json"]);
    assert_eq!(
        statuses(&v),
        map(&[
            ("a", "remote"),
            ("b", "remote"),
            ("c", "remote"),
            ("d", "pulled")
        ])
    );
    assert!(ran(&ws).is_empty(), "nothing may run");
    assert_eq!(output(&ws, env, "d.data"), d_data);
    let dir = String::from_utf8_lossy(&ok(&ws, env, &["show", "d.dir"]).stdout)
        .trim()
        .to_string();
    assert!(Path::new(&dir).join("sub/f1.bin").is_file(), "{dir}");
    let status = json(&ws, env, &["status", "--json"]);
    let state: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        state,
        ["remote", "remote", "remote", "fresh"],
        "a, b, c are not downloaded: {status}"
    );
    // A no-op rerun touches nothing.
    let v = json(&ws, env, &["run", "--json"]);
    assert_eq!(statuses(&v)["d"], "cached");

    // A second workspace (its own store), asking for c: c is downloaded, and so is what d reads
    // when d must be built here with another param.
    let ws2 = workspace(&remote, "");
    let v = json(&ws2, env, &["run", "c", "--json"]);
    assert_eq!(
        statuses(&v),
        map(&[("a", "remote"), ("b", "remote"), ("c", "pulled")])
    );
    let v = json(&ws2, env, &["run", "--set", "d.extra=1", "--json"]);
    assert_eq!(
        statuses(&v),
        map(&[
            ("a", "remote"),
            ("b", "remote"),
            ("c", "cached"),
            ("d", "ran")
        ])
    );
    assert_eq!(ran(&ws2), ["d"]);
    let verify = String::from_utf8_lossy(&ok(&ws2, env, &["verify"]).stdout).into_owned();
    assert!(verify.contains(" 0 corrupt"), "{verify}");
}

#[test]
fn remote_http_push_then_pull_into_empty_store_and_second_workspace() {
    push_then_pull(Kind::Http);
}

#[test]
fn remote_s3_push_then_pull_into_empty_store_and_second_workspace() {
    push_then_pull(Kind::S3);
}

#[test]
fn remote_teammate_pulls_mined_stage_with_only_pipeline_and_lock() {
    let env = servers();
    for kind in [Kind::Http, Kind::S3] {
        let remote = url(env, kind, &unique("teammate"));
        let ws = workspace(&remote, "");
        ok(&ws, env, &["run", "--push"]);
        ran(&ws);
        let c_data = output(&ws, env, "c.data");

        // The teammate: no raw/ directory, no store, no stage is run.
        let mate = checkout_of(&ws);
        assert!(!mate.join("raw").exists());
        let v = json(&mate, env, &["pull", "c", "--json"]);
        let st: BTreeMap<String, String> = v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().into(),
                    s["status"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            st,
            map(&[("a", "remote"), ("b", "remote"), ("c", "pulled")]),
            "{kind:?} {v}"
        );
        assert!(v["bytes"].as_u64() > Some(0));
        assert!(ran(&mate).is_empty(), "pull runs nothing");
        assert_eq!(output(&mate, env, "c.data"), c_data, "{kind:?}");
        let status = json(&mate, env, &["status", "--json"]);
        let state: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(state, ["remote", "remote", "fresh", "stale"], "{status}");
        // A stage that must be built from the absent raw data fails clearly.
        let o = scan(&mate, env, &["run", "a", "--set", "a.size=5"]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("raw") && err.contains("absent"), "{err}");
    }
}

/// The file holding object `rel` on the nginx server.
fn nginx_file(env: &Env, prefix: &str, rel: &str) -> PathBuf {
    Path::new(&env["SCAN_REMOTE_DIR"])
        .join("www/remote")
        .join(prefix)
        .join(rel)
}

/// A blob of `stage`'s directory output `dir` (from the record in `ws`'s store).
fn a_blob_of(ws: &Workspace, env: &Env, stage: &str) -> String {
    let status = json(ws, env, &["status", "--json"]);
    let key = status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .and_then(|s| s["key"].as_str())
        .unwrap()
        .to_string();
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ws.join(&format!("artifacts/actions/{key}.json"))).unwrap(),
    )
    .unwrap();
    let manifest_hash = rec["outputs"]["dir"]["hash"].as_str().unwrap();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ws.join(&format!(
            "artifacts/blobs/{}/{manifest_hash}",
            &manifest_hash[..2]
        )))
        .unwrap(),
    )
    .unwrap();
    m["entries"][0]["hash"].as_str().unwrap().to_string()
}

fn corrupt_s3(env: &Env, prefix: &str, rel: &str) {
    let code = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["SCAN_TEST_S3_ENDPOINT"], region_name="us-east-1")
s3.put_object(Bucket=os.environ["SCAN_TEST_S3_BUCKET"], Key=sys.argv[1], Body=b"not what the hash says")
"#;
    let o = Command::new(python())
        .arg("-c")
        .arg(code)
        .arg(format!("{prefix}/{rel}"))
        .envs(env)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn remote_corrupt_object_is_refused_then_rebuilt_and_healed() {
    let env = servers();
    for kind in [Kind::Http, Kind::S3] {
        let prefix = unique("corrupt");
        let remote = url(env, kind, &prefix);
        let ws = workspace(&remote, "");
        ok(&ws, env, &["run", "--push"]);
        ran(&ws);
        let hash = a_blob_of(&ws, env, "c");
        let rel = format!("blobs/{}/{hash}", &hash[..2]);
        match kind {
            Kind::Http => {
                let f = nginx_file(env, &prefix, &rel);
                std::fs::write(&f, b"garbage").unwrap();
            }
            Kind::S3 => corrupt_s3(env, &prefix, &rel),
        }
        // pull: detected (fetched twice), refused, nothing of it enters the store.
        let mate = workspace(&remote, "");
        let o = scan(&mate, env, &["pull", "c"]);
        assert!(!o.status.success(), "{kind:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("corrupt") && err.contains(&rel) && err.contains(&remote),
            "{err}"
        );
        assert!(!mate.join(&format!("artifacts/{rel}")).exists());
        assert!(!ok(&mate, env, &["status"]).stdout.is_empty());
        // run: a warning, c is built here (b's outputs are downloaded for it), and --push puts
        // the good bytes back.
        let o = ok(&mate, env, &["run", "c", "--push"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("warning") && err.contains("building it here"),
            "{err}"
        );
        assert_eq!(ran(&mate), ["c"]);
        // A third workspace now pulls c without complaint.
        let third = workspace(&remote, "");
        let v = json(&third, env, &["run", "c", "--json"]);
        assert_eq!(statuses(&v)["c"], "pulled", "{kind:?}");
        assert!(ran(&third).is_empty());
    }
}

/// Stops the servers of a private runtime dir when dropped (even if the test panics).
struct PrivateServers {
    dir: PathBuf,
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/remote-down.sh"))
            .arg("--purge")
            .env("SCAN_REMOTE_DIR", &self.dir)
            .stderr(Stdio::null())
            .status();
    }
}

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn remote_server_killed_mid_push_leaves_nothing_half_visible_and_rerun_completes() {
    // Its own nginx (and moto) on other ports: killing the shared one would break other tests.
    let dir = std::env::temp_dir().join(format!("scan-remote-kill-{}", std::process::id()));
    let extra = [
        ("SCAN_REMOTE_DIR", dir.display().to_string()),
        ("SCAN_NGINX_PORT", "18090".to_string()),
        ("SCAN_S3_PORT", "19010".to_string()),
    ];
    let env = remote_up(&extra);
    let _guard = PrivateServers { dir: dir.clone() };
    let prefix = unique("kill");
    let remote = format!("{}/{prefix}", env["SCAN_TEST_HTTP_URL"]);
    // a writes a 96 MiB blob (streamed: one PUT that takes a while), plus small ones.
    let ws = workspace(&remote, ", big = 100663296");
    ok(&ws, &env, &["run", "a", "--remote", "none"]);
    let mut push = cmd(&ws, &env, &["push", "a"])
        .env("SCAN_REMOTE_RETRIES", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // nginx spools a request body to its temp dir: once a file is there, a PUT is under way.
    let body = dir.join("nginx/tmp/body");
    let t = Instant::now();
    while !std::fs::read_dir(&body)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        assert!(t.elapsed() < Duration::from_secs(60), "no upload seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = std::fs::read_to_string(dir.join("nginx/nginx.pid")).unwrap();
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = push.wait().unwrap();
    let mut err = String::new();
    push.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "the push must fail: {err}");
    assert!(
        err.contains(&remote) && err.contains("blobs/"),
        "names remote and object: {err}"
    );
    // Nothing half-visible: no record, and every object there hashes to its name.
    let root = dir.join("www/remote").join(&prefix);
    assert!(
        !root.join("actions").exists() || root.join("actions").read_dir().unwrap().next().is_none()
    );
    let mut seen = 0;
    for shard in std::fs::read_dir(root.join("blobs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert_eq!(
                blake3_hex(&std::fs::read(f.path()).unwrap()),
                name,
                "half-written object"
            );
            seen += 1;
        }
    }
    assert!(
        seen < 6,
        "the push was interrupted, not finished ({seen} objects)"
    );
    // The server comes back; the rerun completes; a reader gets everything, verified.
    let env = remote_up(&extra);
    let p = json(&ws, &env, &["push", "a", "--json"]);
    assert!(p["objects"].as_u64() > Some(0), "{p}");
    let mate = workspace(&remote, ", big = 100663296");
    let v = json(&mate, &env, &["run", "a", "--json"]);
    assert_eq!(statuses(&v)["a"], "pulled");
    assert!(ran(&mate).is_empty());
    assert!(String::from_utf8_lossy(&ok(&mate, &env, &["verify"]).stdout).contains(" 0 corrupt"));
}

#[test]
fn remote_two_concurrent_pushers_of_the_same_stage() {
    let env = servers();
    for kind in [Kind::Http, Kind::S3] {
        let remote = url(env, kind, &unique("concurrent"));
        let w1 = workspace(&remote, ", files = 12");
        let w2 = workspace(&remote, ", files = 12");
        for w in [&w1, &w2] {
            ok(w, env, &["run", "--remote", "none"]);
        }
        let children: Vec<_> = [&w1, &w2]
            .iter()
            .map(|w| {
                cmd(w, env, &["push", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut sent = 0;
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{kind:?}: {}", text(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            sent += v["objects"].as_u64().unwrap();
        }
        assert!(sent > 0);
        let w3 = workspace(&remote, ", files = 12");
        let v = json(&w3, env, &["run", "--json"]);
        assert_eq!(statuses(&v)["d"], "pulled", "{kind:?}");
        assert!(ran(&w3).is_empty());
        let p = json(&w1, env, &["push", "--json"]);
        assert_eq!(p["objects"], 0, "{kind:?}: the remote is complete: {p}");
    }
}

#[test]
fn remote_down_warns_and_builds_locally_unless_required() {
    let env = servers();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let remote = format!("http://127.0.0.1:{port}/nothing-listens");
    let ws = workspace(&remote, "");
    let o = ok(&ws, env, &["run"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning")
            && err.contains(&remote)
            && err.contains("continuing without the remote"),
        "{err}"
    );
    assert_eq!(
        err.matches("continuing without the remote").count(),
        1,
        "warned once: {err}"
    );
    assert_eq!(ran(&ws), ["a", "b", "c", "d"]);
    let ws2 = workspace(&remote, "");
    let o = scan(&ws2, env, &["run", "--require-remote"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&remote) && err.contains("actions/"), "{err}");
    let o = scan(&ws2, env, &["pull"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn remote_noop_run_makes_no_network_request() {
    let env = servers();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    std::thread::spawn(move || {
        for c in listener.incoming() {
            h.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    let remote = format!("http://127.0.0.1:{port}/r");
    let ws = workspace(&remote, "");
    ok(&ws, env, &["run", "--remote", "none"]);
    ran(&ws);
    for args in [
        &["run"][..],
        &["run", "-j", "2"],
        &["status"],
        &["explain", "d"],
        &["show", "d.data"],
    ] {
        let o = ok(&ws, env, args);
        assert!(ran(&ws).is_empty());
        if args[0] == "run" {
            assert!(String::from_utf8_lossy(&o.stderr).contains("everything is up to date"));
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a no-op must not contact the remote"
    );
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            files_under(&p, out);
        } else if t.is_file() {
            out.push(p);
        }
    }
}

#[test]
fn remote_credentials_are_never_written() {
    let mut env = servers().clone();
    let secret = format!("SeCrEt{}x", std::process::id());
    env.insert("AWS_ACCESS_KEY_ID".into(), format!("AKIA{secret}"));
    env.insert("AWS_SECRET_ACCESS_KEY".into(), format!("sk-{secret}"));
    env.insert(
        "SCAN_REMOTE_HTTP_AUTHORIZATION".into(),
        format!("Bearer {secret}"),
    );
    let mut outputs = String::new();
    let mut dirs = Vec::new();
    for kind in [Kind::Http, Kind::S3] {
        let prefix = unique("creds");
        let remote = url(&env, kind, &prefix);
        let ws = workspace(&remote, "");
        let mate = workspace(&remote, "");
        for (w, args) in [
            (&ws, &["run", "--push", "--json"][..]),
            (&ws, &["push"]),
            (&ws, &["status", "--json"]),
            (&ws, &["explain", "d", "--json"]),
            (&mate, &["pull", "c"]),
            (&mate, &["run", "-j", "2"]),
            (&mate, &["gc", "--keep-runs", "0"]),
        ] {
            let o = ok(w, &env, args);
            outputs.push_str(&text(&o));
        }
        if let Kind::Http = kind {
            dirs.push(
                Path::new(&env["SCAN_REMOTE_DIR"])
                    .join("www/remote")
                    .join(&prefix),
            );
        }
        dirs.push(ws.path().to_path_buf());
        dirs.push(mate.path().to_path_buf());
        std::mem::forget(ws);
        std::mem::forget(mate);
    }
    let mut files = Vec::new();
    for d in &dirs {
        files_under(d, &mut files);
    }
    assert!(files.len() > 20, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds a credential",
            f.display()
        );
    }
    assert!(!outputs.contains(&secret), "a credential was printed");
    for d in dirs.iter().filter(|d| d.starts_with(std::env::temp_dir())) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn remote_gc_on_a_shared_store_keeps_other_workspaces_results() {
    let env = servers();
    let shared = tempfile::tempdir().unwrap();
    let mut env = env.clone();
    env.insert("SCAN_STORE".into(), shared.path().display().to_string());
    let store_cmd = |ws: &Workspace, args: &[&str]| {
        let mut c = cmd(ws, &env, args);
        c.env("SCAN_STORE", shared.path());
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    let w1 = workspace("file:///nonexistent-unused", "");
    let w2 = workspace("file:///nonexistent-unused", ", seed = 4");
    store_cmd(&w1, &["run", "--remote", "none"]);
    store_cmd(&w2, &["run", "--remote", "none"]);
    ran(&w1);
    ran(&w2);
    store_cmd(&w1, &["gc", "--keep-runs", "0"]);
    store_cmd(&w2, &["run", "--remote", "none"]);
    assert!(
        ran(&w2).is_empty(),
        "gc from w1 removed what w2's lock file needs"
    );
    // Once w2 is gone, its root goes and so do its results.
    drop(w2);
    store_cmd(&w1, &["gc", "--keep-runs", "0"]);
    let roots = std::fs::read_dir(shared.path().join("roots"))
        .unwrap()
        .count();
    assert_eq!(roots, 1);
}

#[test]
fn remote_export_to_stdout_imports_from_stdin() {
    let env = servers();
    let w1 = workspace("file:///nonexistent-unused", "");
    ok(&w1, env, &["run", "--remote", "none"]);
    ran(&w1);
    let w2 = workspace("file:///nonexistent-unused", "");
    let mut export = cmd(&w1, env, &["export", "d", "-o", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut import = cmd(&w2, env, &["import", "-"])
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success());
    assert!(import.status.success(), "{}", text(&import));
    import.stdout.truncate(200);
    let v = json(&w2, env, &["run", "--remote", "none", "--json"]);
    assert!(statuses(&v).values().all(|s| s == "cached"), "{v}");
    assert!(ran(&w2).is_empty());
}

#[test]
fn remote_file_url_round_trip() {
    let env = servers();
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("file://{}", dir.path().display());
    let ws = workspace(&remote, ", big = 9000000");
    ok(&ws, env, &["run", "--push"]);
    let mate = checkout_of(&ws);
    let v = json(&mate, env, &["pull", "d", "--json"]);
    assert_eq!(v["stages"][3]["status"], "pulled", "{v}");
    assert!(dir.path().join("actions").read_dir().unwrap().count() == 4);
}
