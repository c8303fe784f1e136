//! Integration tests: the runner (`scan run/status/explain/show`), with small Python script stages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{python, Workspace};

/// A generic stage following the stage protocol. Params: `name`, `value` (goes into the outputs),
/// `noise` (does not), `outs` (file outputs), `dirs` (directory outputs). It appends its name to
/// `$SCAN_TEST_LOG`; with `$SCAN_TEST_SLEEP=<name>:<seconds>` it writes `<name>.started` (its pid) into the
/// log's directory and sleeps first; `fail = true` makes it exit 3.
pub const STAGE_PY: &str = r#"
import sys, json, os, time
args = sys.argv[1:]
out = params = None
inputs = {}
i = 0
while i < len(args):
    if args[i] == "--out":
        out = args[i + 1]
    elif args[i] == "--params":
        params = args[i + 1]
    elif args[i] == "--input":
        n, p = args[i + 1].split("=", 1)
        inputs[n] = p
    i += 2
p = json.load(open(params))
name = p["name"]
log = os.environ.get("SCAN_TEST_LOG")
if log:
    with open(log, "a") as f:
        f.write(name + "\n")
sleep = os.environ.get("SCAN_TEST_SLEEP", "")
if sleep.startswith(name + ":"):
    with open(os.path.join(os.path.dirname(log), name + ".started"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(float(sleep.split(":")[1]))
if p.get("fail"):
    sys.exit(3)
def read(path):
    if os.path.isdir(path):
        return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)
    return open(path).read()
content = json.dumps({"value": p.get("value"), "inputs": {k: read(v) for k, v in sorted(inputs.items())}}, sort_keys=True)
print(name, "writing", p.get("outs", []), p.get("dirs", []))
for o in p.get("outs", []):
    with open(os.path.join(out, o), "w") as f:
        f.write(content)
for d in p.get("dirs", []):
    os.makedirs(os.path.join(out, d, "sub"))
    with open(os.path.join(out, d, "a.png"), "wb") as f:
        f.write(b"\x89PNG" + content.encode())
    with open(os.path.join(out, d, "sub", "b.txt"), "w") as f:
        f.write("b")
"#;

/// A 4-stage pipeline a → b → c → d (d also reads raw.txt and writes a directory `report`).
pub fn pipeline_toml(py: &Path) -> String {
    let py = py.display();
    format!(
        r#"[pipeline]
name = "test"

[stages.a]
cmd = ["{py}", "stage.py"]
params = {{ name = "a", value = 1, noise = 0, outs = ["data"] }}
outputs = ["data"]

[stages.b]
cmd = ["{py}", "stage.py"]
params = {{ name = "b", value = 2, outs = ["feat"] }}
inputs = {{ data = "a.data" }}
outputs = ["feat"]

[stages.c]
cmd = ["{py}", "stage.py"]
params = {{ name = "c", value = 3, weight = 5.0, outs = ["model"] }}
inputs = {{ feat = "b.feat" }}
outputs = ["model"]

[stages.d]
cmd = ["{py}", "stage.py"]
params = {{ name = "d", value = 4, outs = ["summary"], dirs = ["report"] }}
inputs = {{ model = "c.model", raw = "raw.txt" }}
outputs = ["summary", "report"]
"#
    )
}

/// A workspace holding the 4-stage pipeline, its stage script and raw input.
pub fn setup() -> Workspace {
    let ws = Workspace::new();
    ws.write("stage.py", STAGE_PY);
    ws.write("raw.txt", "raw data\n");
    ws.write("pipeline.toml", &pipeline_toml(&python()));
    ws
}

/// `scan ARGS` in `ws` with the stage log at `<ws>/stages.log`.
pub fn scan(ws: &Workspace, args: &[&str]) -> Output {
    cmd(ws, args).output().expect("spawn scan")
}

pub fn cmd(ws: &Workspace, args: &[&str]) -> Command {
    let mut c = ws.scan();
    c.args(args)
        .env("SCAN_TEST_LOG", ws.join("stages.log"))
        .env_remove("SCAN_TEST_SLEEP");
    c
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(ws: &Workspace, args: &[&str]) -> String {
    let o = scan(ws, args);
    assert!(o.status.success(), "scan {args:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stage names logged since the last call (the log is truncated).
pub fn ran(ws: &Workspace) -> Vec<String> {
    let p = ws.join("stages.log");
    let s = std::fs::read_to_string(&p).unwrap_or_default();
    let _ = std::fs::remove_file(&p);
    s.lines().map(str::to_string).collect()
}

pub fn edit(ws: &Workspace, from: &str, to: &str) {
    let p = ws.join("pipeline.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{from} not in pipeline");
    std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
}

fn wait_for(path: &Path, timeout: Duration) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < timeout,
            "timed out waiting for {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn unchanged_pipeline_runs_nothing() {
    let ws = setup();
    ok(&ws, &["run"]);
    assert_eq!(ran(&ws), ["a", "b", "c", "d"]);
    let lock1 = std::fs::read_to_string(ws.join("pipeline.lock")).unwrap();
    assert!(
        !lock1.contains("started") && lock1.contains("[stages.c.params]"),
        "{lock1}"
    );
    let out = ok(&ws, &["run"]);
    assert!(ran(&ws).is_empty(), "nothing may run: {out}");
    assert_eq!(out.matches("cached").count(), 4, "{out}");
    assert_eq!(
        std::fs::read_to_string(ws.join("pipeline.lock")).unwrap(),
        lock1,
        "pipeline.lock must be stable"
    );
    let status = ok(&ws, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|s| s["state"] == "fresh"),
        "{status}"
    );
}

#[test]
fn param_change_reruns_stage_and_downstream_only() {
    let ws = setup();
    ok(&ws, &["run"]);
    ran(&ws);
    edit(&ws, "value = 3", "value = 30");
    ok(&ws, &["run"]);
    assert_eq!(ran(&ws), ["c", "d"]);
    // --set overrides for one run without editing the file; going back reuses the cached result.
    ok(&ws, &["run", "--set", "b.value=7"]);
    assert_eq!(ran(&ws), ["b", "c", "d"]);
    ok(&ws, &["run"]);
    assert!(ran(&ws).is_empty());
    // Selecting a target runs only what it needs.
    edit(&ws, "value = 1,", "value = 11,");
    ok(&ws, &["run", "b"]);
    assert_eq!(ran(&ws), ["a", "b"]);
}

#[test]
fn early_cutoff_when_output_is_byte_identical() {
    let ws = setup();
    ok(&ws, &["run"]);
    ran(&ws);
    edit(&ws, "noise = 0", "noise = 1");
    let out = ok(&ws, &["run"]);
    assert_eq!(ran(&ws), ["a"], "{out}");
    assert!(out.contains("b              cached"), "{out}");
}

#[test]
fn explain_names_every_reason() {
    let ws = setup();
    let e = ok(&ws, &["explain", "c"]);
    assert!(e.contains("never built"), "{e}");
    ok(&ws, &["run"]);
    assert!(ok(&ws, &["explain", "c"]).contains("up to date"));
    edit(&ws, "weight = 5.0", "weight = 2.0");
    edit(&ws, "value = 3", "value = 4");
    let e = ok(&ws, &["explain", "c"]);
    assert!(e.contains("param c.weight 5.0 → 2.0"), "{e}");
    assert!(e.contains("param c.value 3 → 4"), "{e}");
    let d = ok(&ws, &["explain", "d"]);
    assert!(
        d.contains("input c.model may change: upstream stage `c` must run first"),
        "{d}"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(&ws, &["explain", "c", "--json"])).unwrap();
    assert_eq!(j["state"], "stale");
    assert_eq!(j["reasons"].as_array().unwrap().len(), 2, "{j}");
    // --set float override of a float param with an integer literal stays a float.
    let e = ok(
        &ws,
        &["explain", "c", "--set", "c.weight=3", "--set", "c.value=3"],
    );
    assert!(e.contains("param c.weight 5.0 → 3.0"), "{e}");
    // An input file change and a code change are named too.
    ok(&ws, &["run"]);
    ran(&ws);
    ws.write("raw.txt", "other\n");
    ws.write("stage.py", &format!("{STAGE_PY}\n# edited\n"));
    let e = ok(&ws, &["explain", "d"]);
    assert!(e.contains("input raw.txt changed ("), "{e}");
    assert!(e.contains("code file stage.py changed ("), "{e}");
    let dry = ok(&ws, &["run", "--dry-run"]);
    assert!(dry.contains("would run") && ran(&ws).is_empty(), "{dry}");
}

#[test]
fn show_prints_artifact_paths_and_dir_output_round_trips() {
    let ws = setup();
    ok(&ws, &["run"]);
    ran(&ws);
    let model = PathBuf::from(ok(&ws, &["show", "c.model"]).trim());
    assert!(std::fs::read_to_string(&model)
        .unwrap()
        .contains("\"value\": 3"));
    let report = PathBuf::from(ok(&ws, &["show", "d.report"]).trim());
    assert!(report.is_dir(), "{}", report.display());
    assert_eq!(
        std::fs::read_to_string(report.join("sub/b.txt")).unwrap(),
        "b"
    );
    assert!(std::fs::read(report.join("a.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(report.join("a.png"))
            .unwrap()
            .permissions()
            .mode()
            & 0o222,
        0,
        "read-only"
    );
    // Remove the materialised tree: it is rebuilt from the blobs, identical.
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(ws.join("artifacts/trees"))
        .status();
    std::fs::remove_dir_all(ws.join("artifacts/trees")).unwrap();
    let again = PathBuf::from(ok(&ws, &["show", "d.report"]).trim());
    assert_eq!(again, report);
    assert_eq!(
        std::fs::read_to_string(again.join("sub/b.txt")).unwrap(),
        "b"
    );
    ok(&ws, &["run"]);
    assert!(ran(&ws).is_empty());
}

#[test]
fn failed_stage_leaves_nothing_and_exits_1() {
    let ws = setup();
    edit(&ws, "name = \"b\",", "name = \"b\", fail = true,");
    let o = scan(&ws, &["run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stage `b` failed"),
        "{}",
        text(&o)
    );
    assert_eq!(ran(&ws), ["a", "b"]);
    let tmp = ws.join("artifacts/tmp");
    assert!(
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0,
        "staging left behind"
    );
    // A stage that does not write its declared outputs fails too.
    edit(&ws, "fail = true,", "outs = [],");
    edit(&ws, "outs = [\"feat\"] }", "}");
    let o = scan(&ws, &["run"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing outputs [\"feat\"]"),
        "{}",
        text(&o)
    );
}

fn invalid(ws: &Workspace, toml: &str, want: &[&str]) {
    ws.write("pipeline.toml", toml);
    let o = scan(ws, &["run"]);
    assert_eq!(o.status.code(), Some(2), "{toml}\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for w in want {
        assert!(err.contains(w), "{toml}\nexpected `{w}` in:\n{err}");
    }
}

#[test]
fn invalid_pipelines_exit_2_naming_stage_and_key() {
    let ws = setup();
    let head = "[stages.a]\ncmd = [\"sh\"]\noutputs = [\"o\"]\n";
    invalid(
        &ws,
        &format!("{head}bogus = 1\n"),
        &["stage `a`", "unknown field `bogus`"],
    );
    invalid(
        &ws,
        "[stages.a]\ncmd = \"sh\"\noutputs = [\"o\"]\n",
        &["stage `a`, key `cmd`", "expected a sequence"],
    );
    invalid(
        &ws,
        "[stages.a]\ncmd = [\"sh\"]\noutputs = [\"o\", \"o\"]\n",
        &["stage `a`", "output `o` is declared twice"],
    );
    invalid(
        &ws,
        &format!("{head}inputs = {{ x = \"a.nope\" }}\n"),
        &["stage `a`", "input `x`", "has no output `nope`"],
    );
    invalid(
        &ws,
        &format!("{head}inputs = {{ x = \"zz.o\" }}\n"),
        &["stage `a`", "input `x`", "zz.o"],
    );
    invalid(
        &ws,
        &format!("{head}inputs = {{ x = \"b.o\" }}\n[stages.b]\ncmd = [\"sh\"]\noutputs = [\"o\"]\ninputs = {{ x = \"a.o\" }}\n"),
        &["dependency cycle", "a → b → a"],
    );
    invalid(
        &ws,
        "[stages.a]\ncmd = [\"sh\"]\noutputs = [\"o\"]\nparams = 3\n",
        &["stage `a`, key `params`", "expected a map"],
    );
    invalid(
        &ws,
        "[stages.a]\ncmd = [\"no-such-program-xyz\"]\noutputs = [\"o\"]\n",
        &["stage `a`", "no-such-program-xyz"],
    );
    invalid(
        &ws,
        "[stages.a]\ncmd = [\"sh\"]\n",
        &["stage `a`", "missing field `outputs`"],
    );
    invalid(&ws, "[stages.a\n", &["TOML syntax error"]);
    invalid(&ws, "[stagez.a]\n", &["unknown field `stagez`"]);
    ws.write("pipeline.toml", &pipeline_toml(&python()));
    for args in [
        &["run", "nope"][..],
        &["run", "--set", "zz.k=1"],
        &["run", "--set", "novalue"],
        &["explain", "zz"],
        &["show", "a.zz"],
    ] {
        let o = scan(&ws, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    }
    assert!(ran(&ws).is_empty());
}

#[test]
fn kill9_mid_stage_then_rerun_redoes_only_unfinished_work() {
    let ws = setup();
    let mut child = cmd(&ws, &["run"])
        .env("SCAN_TEST_SLEEP", "b:30")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = ws.join("b.started");
    wait_for(&marker, Duration::from_secs(60));
    let stage_pid: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The stage dies with the runner (PR_SET_PDEATHSIG).
    let t = Instant::now();
    while Path::new(&format!("/proc/{stage_pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{stage_pid}/status"))
            .unwrap_or_default()
            .contains("State:\tZ")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stage {stage_pid} survived its runner"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ran(&ws), ["a", "b"]);
    let out = ok(&ws, &["run"]);
    assert_eq!(ran(&ws), ["b", "c", "d"], "{out}");
    assert!(
        std::fs::read_dir(ws.join("artifacts/tmp")).unwrap().count() == 0,
        "stale staging dir left"
    );
}

#[test]
fn two_concurrent_runs_share_work() {
    let ws = setup();
    let first = cmd(&ws, &["run"])
        .env("SCAN_TEST_SLEEP", "b:2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&ws.join("b.started"), Duration::from_secs(60));
    let second = scan(&ws, &["run"]);
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("waiting for key") && err.contains("pid="),
        "{err}"
    );
    let mut log = ran(&ws);
    log.sort();
    assert_eq!(log, ["a", "b", "c", "d"], "each stage built once");
}

#[test]
fn parallel_jobs_run_independent_stages_together() {
    // x and y wait for each other's start marker: only a parallel run finishes.
    let ws = Workspace::new();
    let py = python();
    let script = r#"
import sys, os, time, json
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
me = json.load(open(args["--params"]))["me"]
open(me + ".started", "w").close()
other = "y" if me == "x" else "x"
t = time.time()
while not os.path.exists(other + ".started"):
    if time.time() - t > 20: sys.exit(4)
    time.sleep(0.02)
open(os.path.join(args["--out"], "o"), "w").write(me)
"#;
    ws.write("s.py", script);
    let py = py.display();
    ws.write(
        "pipeline.toml",
        &format!("[stages.x]\ncmd = [\"{py}\", \"s.py\"]\nparams = {{ me = \"x\" }}\noutputs = [\"o\"]\n[stages.y]\ncmd = [\"{py}\", \"s.py\"]\nparams = {{ me = \"y\" }}\noutputs = [\"o\"]\n"),
    );
    ok(&ws, &["run", "--jobs", "2"]);
}

/// `scan identity` prints each built-in stage's code identity, computed from the source at build
/// time; the key of a built-in stage carries it (not a hash of whatever binary is found).
fn identities() -> std::collections::BTreeMap<String, String> {
    let o = Command::new(crate::common::bin("scan"))
        .arg("identity")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(b, id)| (b.to_string(), id.trim().to_string()))
        .collect()
}

#[test]
fn builtin_code_identity_comes_from_the_source_not_the_binary() {
    let ids = identities();
    for b in [
        "scan-ingest",
        "scan-pretext",
        "scan-embed",
        "scan-mine",
        "scan-cluster",
        "scan-selflabel",
        "scan-evaluate",
    ] {
        assert_eq!(ids.get(b).map(String::len), Some(64), "{b}: {ids:?}");
    }
    let ws = Workspace::new();
    let bin_dir = ws.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let scan_copy = bin_dir.join("scan");
    std::fs::copy(crate::common::bin("scan"), &scan_copy).unwrap();
    let fake = |marker: &str| {
        let script = format!(
            "#!/bin/sh\n# {marker}\nwhile [ $# -gt 0 ]; do [ \"$1\" = --out ] && out=$2; shift; done\necho {marker} $SCAN_CODE_IDENTITY >> \"$SCAN_TEST_LOG\"\necho same > \"$out/neighbors\"\n"
        );
        let p = bin_dir.join("scan-mine");
        std::fs::write(&p, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    fake("build1");
    ws.write(
        "pipeline.toml",
        "[stages.mine]\ncmd = [\"scan-mine\"]\nparams = { k_train = 20 }\noutputs = [\"neighbors\"]\n",
    );
    let run = || {
        let o = Command::new(&scan_copy)
            .arg("run")
            .current_dir(ws.path())
            .env("SCAN_TEST_LOG", ws.join("stages.log"))
            .env_remove("SCAN_STORE")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    };
    run();
    // The stage is told the identity its key was computed with.
    assert_eq!(ran(&ws), [format!("build1 {}", ids["scan-mine"])]);
    let lock = std::fs::read_to_string(ws.join("pipeline.lock")).unwrap();
    assert!(
        lock.contains(&format!(
            "code = \"builtin:scan-mine@{}\"",
            ids["scan-mine"]
        )),
        "{lock}"
    );
    // Resolved params: the defaults are in the key and in the lock.
    assert!(lock.contains("k_test = 5"), "{lock}");
    // Another binary under the same name does not change the key: identity is the source's.
    fake("build2");
    run();
    assert!(ran(&ws).is_empty());
}

#[test]
fn a_stage_binary_refuses_a_key_computed_for_other_sources() {
    let ids = identities();
    let ws = Workspace::new();
    let run = |identity: &str| {
        Command::new(crate::common::bin("scan-mine"))
            .args(["--out", &ws.join("out").to_string_lossy()])
            .args(["--params", &ws.join("p.json").to_string_lossy()])
            .env("SCAN_CODE_IDENTITY", identity)
            .output()
            .unwrap()
    };
    ws.write("p.json", "{}");
    let stale = run(&"0".repeat(64));
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(err.contains("built from other sources"), "{err}");
    // With the identity `scan` computed, it gets past the check (and fails on the missing input).
    let ok = run(&ids["scan-mine"]);
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(!err.contains("built from other sources"), "{err}");
    assert!(err.contains("missing required input"), "{err}");
}

#[test]
fn explain_shows_defaults_as_such() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        "[stages.mine]\ncmd = [\"scan-mine\"]\nparams = { k_train = 7 }\noutputs = [\"neighbors\"]\n",
    );
    // The lock an older build, whose code default for `k_test` was 9, would have left.
    ws.write(
        "pipeline.lock",
        &format!(
            "version = 2\n[stages.mine]\nkey = \"{k}\"\ncmd = [\"scan-mine\"]\ncode = \"builtin:scan-mine@{id}\"\nexplicit = [\"k_train\"]\n[stages.mine.params]\ndevice = \"auto\"\nk_test = 9\nk_train = 5\n[stages.mine.outputs]\n",
            k = "0".repeat(64),
            id = identities()["scan-mine"]
        ),
    );
    let o = Command::new(crate::common::bin("scan"))
        .args(["explain", "mine"])
        .current_dir(ws.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains("param mine.k_test 9 (default) → 5 (default)"),
        "{out}"
    );
    assert!(out.contains("param mine.k_train 5 → 7"), "{out}");
}

#[test]
fn scan_binary_does_not_link_libtorch() {
    // Loading libtorch costs ~0.5 s per start; the runner must stay in milliseconds (BENCHMARKS.md).
    let bytes = std::fs::read(crate::common::bin("scan")).expect("read scan binary");
    let needle = b"libtorch_cpu.so";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "target/release/scan references libtorch_cpu.so"
    );
}

#[test]
fn doctor_reports_torch_2_11_without_ld_library_path() {
    let ws = crate::common::Workspace::new();
    let out = ws
        .scan()
        .arg("doctor")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("scan doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("libtorch:"))
        .unwrap_or_else(|| panic!("no libtorch line in:\n{text}"));
    assert!(version.trim().starts_with("2.11.0"), "{text}");
    assert!(
        text.contains("cuda:") && text.contains("torch threads:") && text.contains("store:"),
        "{text}"
    );
}
