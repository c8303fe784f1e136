//! Integration tests: stages as Slurm batch jobs on a real single-node cluster (started once per test
//! binary by `scripts/slurm-up.sh`, on 127.0.0.1), and GPU assignment with `--gpus` on this machine.
//!
//! The cluster tests run one at a time (a lock): the cluster has few CPUs, and the concurrency test
//! must not wait behind another test's jobs.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{python, Workspace};
use crate::pipeline::{outcomes, TINY_PIPELINE};

/// A script stage for the cluster. Params: `name`, `value`, `sleep` (seconds), `ckpt` (checkpoint
/// in `$SCAN_WORK_DIR` before sleeping; a resumed run skips the sleep), `alloc_mb` (memory to fill),
/// `outs`. It appends `<name> job=<SLURM_JOB_ID> cuda=<CUDA_VISIBLE_DEVICES>` to `$SCAN_TEST_LOG` and
/// its start/end times to `times/<name>-<value>`.
const JOB_PY: &str = r#"
import sys, json, os, time
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
name = p["name"]
start = time.time()
cuda = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
with open(os.environ["SCAN_TEST_LOG"], "a") as f:
    f.write(f"{name} job={os.environ.get('SLURM_JOB_ID', '-')} cuda={cuda}\n")
print(name, "started", flush=True)
resumed = False
if p.get("ckpt"):
    ck = os.path.join(os.environ["SCAN_WORK_DIR"], "ckpt")
    if os.path.exists(ck):
        resumed = True
        print(name, "resuming from", open(ck).read(), flush=True)
    else:
        with open(ck, "w") as f:
            f.write("epoch 1")
        with open(name + ".started", "w") as f:
            f.write(os.environ.get("SLURM_JOB_ID", ""))
        time.sleep(p.get("sleep", 0))
elif p.get("sleep"):
    time.sleep(p["sleep"])
if p.get("alloc_mb"):
    hog = b"x" * (p["alloc_mb"] << 20)
    print("allocated", len(hog) >> 20, "MB", flush=True)
    time.sleep(5)
os.makedirs("times", exist_ok=True)
with open(f"times/{name}-{p.get('value')}", "w") as f:
    f.write(f"{start} {time.time()}")
content = json.dumps({"value": p.get("value"), "resumed": resumed,
                      "inputs": {k: open(v).read() for k, v in sorted(inputs.items())}}, sort_keys=True)
for o in p.get("outs", []):
    with open(os.path.join(out, o), "w") as f:
        f.write(content)
print(name, "done", flush=True)
"#;

/// `SLURM_CONF` of the test cluster, started (once) by the project's script.
fn cluster() -> &'static str {
    static CONF: OnceLock<String> = OnceLock::new();
    CONF.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-up.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("run scripts/slurm-up.sh");
        assert!(
            out.status.success(),
            "scripts/slurm-up.sh failed (it needs root):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .expect("slurm-up.sh prints export SLURM_CONF=...")
            .trim()
            .to_string()
    })
}

/// One cluster test at a time.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn scan_cmd(ws: &Workspace, args: &[&str]) -> Command {
    let mut c = ws.scan();
    c.args(args)
        .env("SLURM_CONF", cluster())
        .env("SCAN_TEST_LOG", ws.join("stages.log"))
        .env("SCAN_THREADS", "1");
    c
}

fn scan(ws: &Workspace, args: &[&str]) -> Output {
    scan_cmd(ws, args).output().expect("spawn scan")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `scan run --json ARGS`: the outcomes, asserting success.
fn run_ok(ws: &Workspace, args: &[&str]) -> (Vec<serde_json::Value>, String) {
    let mut all = vec!["run", "--json"];
    all.extend_from_slice(args);
    let o = scan(ws, &all);
    assert!(o.status.success(), "scan {all:?} failed:\n{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    (
        outcomes(&v),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn keys(outs: &[serde_json::Value]) -> Vec<(String, String)> {
    outs.iter()
        .map(|o| {
            (
                o["stage"].as_str().unwrap().to_string(),
                o["key"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// Job ids the runner reported submitting.
fn job_ids(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split("submitted as slurm job ").nth(1))
        .map(|s| s.trim().to_string())
        .collect()
}

fn script_ws(toml: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("job.py", JOB_PY);
    ws.write("raw.txt", "raw\n");
    ws.write(
        "pipeline.toml",
        &toml.replace("PY", &python().display().to_string()),
    );
    ws
}

const CHAIN: &str = r#"
[stages.a]
cmd = ["PY", "job.py"]
params = { name = "a", value = 1, outs = ["data"] }
inputs = { raw = "raw.txt" }
outputs = ["data"]
resources = { cpus = 1, mem = "200M", time = "5:00" }

[stages.b]
cmd = ["PY", "job.py"]
params = { name = "b", value = 2, outs = ["feat"] }
inputs = { data = "a.data" }
outputs = ["feat"]

[stages.c]
cmd = ["PY", "job.py"]
params = { name = "c", value = 3, outs = ["model"] }
inputs = { feat = "b.feat", data = "a.data" }
outputs = ["model"]
"#;

#[test]
fn slurm_chain_has_the_keys_and_bytes_of_a_local_run() {
    let _one = exclusive();
    let local = script_ws(CHAIN);
    let (lo, _) = run_ok(&local, &[]);
    let remote = script_ws(CHAIN);
    let (ro, err) = run_ok(&remote, &["--executor", "slurm"]);
    assert_eq!(keys(&lo), keys(&ro), "{err}");
    assert!(ro.iter().all(|o| o["status"] == "ran"), "{ro:?}");
    assert_eq!(job_ids(&err).len(), 3, "one job per stage:\n{err}");
    let log = std::fs::read_to_string(remote.join("stages.log")).unwrap();
    assert!(
        log.lines().all(|l| !l.contains("job=-")),
        "every stage ran inside a job:\n{log}"
    );
    for out in ["a.data", "b.feat", "c.model"] {
        let path = |ws: &Workspace| {
            let o = scan(ws, &["show", out]);
            assert!(o.status.success(), "{}", text(&o));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        assert_eq!(
            std::fs::read(path(&local)).unwrap(),
            std::fs::read(path(&remote)).unwrap(),
            "{out}"
        );
    }
    // The job's output reached the key's log; a second run submits nothing.
    let o = scan(&remote, &["logs", "b"]);
    let logs = String::from_utf8_lossy(&o.stdout);
    assert!(logs.contains("submitted as slurm job"), "{logs}");
    assert!(logs.contains("b done"), "{logs}");
    assert!(logs.contains("JobState=COMPLETED"), "{logs}");
    let (again, err) = run_ok(&remote, &["--executor", "slurm"]);
    assert!(again.iter().all(|o| o["status"] == "cached"), "{again:?}");
    assert!(job_ids(&err).is_empty(), "{err}");
    // [executor] in the file does the same as the flag.
    let filed = script_ws(&format!(
        "[executor]\nkind = \"slurm\"\nextra = [\"--comment=scan-test\"]\n{CHAIN}"
    ));
    let (fo, err) = run_ok(&filed, &[]);
    assert_eq!(keys(&lo), keys(&fo));
    assert_eq!(job_ids(&err).len(), 3, "{err}");
}

#[test]
fn slurm_sweep_fans_out_as_concurrent_jobs_sharing_upstream() {
    let _one = exclusive();
    let ws = script_ws(
        r#"
[stages.a]
cmd = ["PY", "job.py"]
params = { name = "a", value = 0, outs = ["data"] }
outputs = ["data"]

[stages.b]
cmd = ["PY", "job.py"]
params = { name = "b", value = 1, sleep = 4, outs = ["feat"] }
inputs = { data = "a.data" }
outputs = ["feat"]
resources = { cpus = 1, mem = "200M" }
"#,
    );
    let (outs, err) = run_ok(
        &ws,
        &["-j", "2", "--executor", "slurm", "--set", "b.value=1,2"],
    );
    assert_eq!(outs.len(), 4, "{outs:?}");
    let ids = job_ids(&err);
    assert_eq!(ids.len(), 3, "a once, b twice:\n{err}");
    let log = std::fs::read_to_string(ws.join("stages.log")).unwrap();
    assert_eq!(
        log.lines().filter(|l| l.starts_with("a ")).count(),
        1,
        "{log}"
    );
    let times = |v: &str| -> (f64, f64) {
        let t = std::fs::read_to_string(ws.join(&format!("times/b-{v}"))).unwrap();
        let mut it = t.split(' ').map(|x| x.parse::<f64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    let (s1, e1) = times("1");
    let (s2, e2) = times("2");
    assert!(
        s1.max(s2) < e1.min(e2),
        "the two b jobs overlapped: {s1}-{e1}, {s2}-{e2}\n{err}"
    );
}

#[test]
fn slurm_cancelled_job_is_reported_and_the_rerun_resumes() {
    let _one = exclusive();
    let ws = script_ws(
        r#"
[stages.train]
cmd = ["PY", "job.py"]
params = { name = "train", value = 1, sleep = 120, ckpt = true, outs = ["weights"] }
outputs = ["weights"]
"#,
    );
    let child = scan_cmd(&ws, &["run", "--executor", "slurm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn scan");
    let started = ws.join("train.started");
    let t = Instant::now();
    while !started.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    let id = std::fs::read_to_string(&started).unwrap();
    assert!(!id.is_empty());
    let c = Command::new("scancel")
        .arg(&id)
        .env("SLURM_CONF", cluster())
        .status()
        .unwrap();
    assert!(c.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains(&format!("slurm job {id} ended JobState=CANCELLED")),
        "{err}"
    );
    assert!(err.contains("ExitCode="), "{err}");
    assert!(
        err.contains("train started"),
        "the tail of its output:\n{err}"
    );
    // The rerun is a new job that finds the checkpoint.
    let (outs, err) = run_ok(&ws, &["--executor", "slurm"]);
    assert_eq!(outs[0]["status"], "ran");
    assert!(err.contains("resuming from epoch 1"), "{err}");
    let path = String::from_utf8_lossy(&scan(&ws, &["show", "train.weights"]).stdout)
        .trim()
        .to_string();
    let w = std::fs::read_to_string(path).unwrap();
    assert!(w.contains("\"resumed\": true"), "{w}");
}

#[test]
fn slurm_job_over_its_memory_limit_is_reported() {
    let _one = exclusive();
    let ws = script_ws(
        r#"
[stages.hog]
cmd = ["PY", "job.py"]
params = { name = "hog", value = 1, alloc_mb = 600, outs = ["o"] }
outputs = ["o"]
resources = { mem = "100M", time = "2:00" }
"#,
    );
    let o = scan(&ws, &["run", "--executor", "slurm"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // cgroup enforcement ends the job OUT_OF_MEMORY; polling ends it FAILED with a note in its output.
    assert!(
        err.contains("JobState=OUT_OF_MEMORY (exceeded its memory limit)")
            || err.contains("JobState=FAILED (exceeded its memory limit)"),
        "{err}"
    );
    assert!(err.contains("slurm job "), "{err}");
    // Nothing was committed; the work dir is kept for a rerun.
    assert!(ws
        .join("artifacts/work")
        .read_dir()
        .unwrap()
        .next()
        .is_some());
}

/// Reaching the time limit: Slurm's smallest limit is a minute and the kill comes 60–90 s in, so
/// this test takes about that long.
#[test]
fn slurm_job_over_its_time_limit_is_reported() {
    let _one = exclusive();
    let ws = script_ws(
        r#"
[stages.slow]
cmd = ["PY", "job.py"]
params = { name = "slow", value = 1, sleep = 300, ckpt = true, outs = ["o"] }
outputs = ["o"]
resources = { time = "1" }
"#,
    );
    let o = scan(&ws, &["run", "--executor", "slurm"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("JobState=TIMEOUT (reached its time limit)"),
        "{err}"
    );
    // The checkpoint survived: the next attempt resumes and finishes.
    let (outs, err) = run_ok(&ws, &["--executor", "slurm"]);
    assert_eq!(outs[0]["status"], "ran");
    assert!(err.contains("resuming from epoch 1"), "{err}");
}

#[test]
fn slurm_runs_the_tiny_builtin_pipeline_with_a_local_runs_keys() {
    let _one = exclusive();
    let local = Workspace::new();
    local.write("pipeline.toml", TINY_PIPELINE);
    let (lo, _) = run_ok(&local, &[]);
    let remote = Workspace::new();
    remote.write("pipeline.toml", TINY_PIPELINE);
    let (ro, err) = run_ok(&remote, &["--executor", "slurm", "-j", "2"]);
    // Every key up to selflabel is equal, so every output those keys read is byte-identical. The
    // training stages' `curves` record throughput (images/s), which differs between any two runs,
    // local or not, so evaluate (which reads the curves) gets a new key either way.
    let upto = |o: &[serde_json::Value]| {
        keys(o)
            .into_iter()
            .filter(|(s, _)| s != "evaluate")
            .collect::<Vec<_>>()
    };
    assert_eq!(upto(&lo), upto(&ro), "{err}");
    assert_eq!(job_ids(&err).len(), 7, "{err}");
    for out in ["evaluate.metrics", "selflabel.weights", "mine.metrics"] {
        let path = |ws: &Workspace| {
            let o = scan(ws, &["show", out]);
            assert!(o.status.success(), "{}", text(&o));
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        assert_eq!(
            std::fs::read(path(&local)).unwrap(),
            std::fs::read(path(&remote)).unwrap(),
            "{out}"
        );
    }
}

/// The devices stage `name` saw, from the stage log.
fn cuda_of(log: &str, name: &str) -> Vec<String> {
    let line = log
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in {log}"));
    let v = line.split("cuda=").nth(1).unwrap();
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `--gpus`: each running stage that declares GPUs gets its own devices; the others get none.
#[test]
fn local_gpus_are_assigned_per_running_stage() {
    let ws = script_ws(
        r#"
[stages.g1]
cmd = ["PY", "job.py"]
params = { name = "g1", value = 1, sleep = 2, outs = ["o"] }
outputs = ["o"]
resources = { gpus = 1 }

[stages.g2]
cmd = ["PY", "job.py"]
params = { name = "g2", value = 1, sleep = 2, outs = ["o"] }
outputs = ["o"]
resources = { gpus = 2 }

[stages.g3]
cmd = ["PY", "job.py"]
params = { name = "g3", value = 1, sleep = 2, outs = ["o"] }
outputs = ["o"]
resources = { gpus = 1 }

[stages.cpu]
cmd = ["PY", "job.py"]
params = { name = "cpu", value = 1, outs = ["o"] }
outputs = ["o"]
"#,
    );
    run_ok(&ws, &["-j", "4", "--gpus", "0,1,2,3"]);
    let log = std::fs::read_to_string(ws.join("stages.log")).unwrap();
    let cuda = |name: &str| cuda_of(&log, name);
    let mut all: Vec<String> = ["g1", "g2", "g3"].iter().flat_map(|s| cuda(s)).collect();
    assert_eq!(cuda("g1").len(), 1, "{log}");
    assert_eq!(cuda("g2").len(), 2, "{log}");
    assert!(
        cuda("cpu").is_empty(),
        "no GPU for a stage that declares none:\n{log}"
    );
    all.sort();
    assert_eq!(all, ["0", "1", "2", "3"], "distinct devices:\n{log}");

    // More demand than devices: stages wait for free ones, never share.
    let _ = std::fs::remove_file(ws.join("stages.log"));
    let o = scan(
        &ws,
        &[
            "run",
            "-j",
            "4",
            "--gpus",
            "5,6",
            "--set",
            "g1.value=2",
            "--set",
            "g2.value=2",
            "--set",
            "g3.value=2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = std::fs::read_to_string(ws.join("stages.log")).unwrap();
    let times = |name: &str| -> (f64, f64) {
        let t = std::fs::read_to_string(ws.join(&format!("times/{name}-2"))).unwrap();
        let mut it = t.split(' ').map(|x| x.parse::<f64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    let overlap = |a: &str, b: &str| {
        let ((s1, e1), (s2, e2)) = (times(a), times(b));
        s1.max(s2) < e1.min(e2)
    };
    let cuda = |name: &str| cuda_of(&log, name);
    let mut two = cuda("g2");
    two.sort();
    assert_eq!(two, ["5", "6"], "{log}");
    assert!(!overlap("g2", "g1") && !overlap("g2", "g3"), "{log}");
    if overlap("g1", "g3") {
        assert_ne!(cuda("g1"), cuda("g3"), "{log}");
    }
    let o = scan(&ws, &["run", "--gpus", "0", "--set", "g2.value=3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs 2 GPUs but --gpus lists only 1"),
        "{}",
        text(&o)
    );
    // Without --gpus nothing is set.
    let _ = std::fs::remove_file(ws.join("stages.log"));
    let o = scan(&ws, &["run", "--set", "cpu.value=9"]);
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(ws.join("stages.log")).unwrap();
    assert!(log.contains("cpu job=- cuda=<unset>"), "{log}");
}

/// A sweep over four values with `--gpus` uses four devices at once.
#[test]
fn local_gpus_sweep_variants_get_distinct_devices() {
    let ws = script_ws(
        r#"
[stages.train]
cmd = ["PY", "job.py"]
params = { name = "train", value = 0, sleep = 2, outs = ["o"] }
outputs = ["o"]
resources = { gpus = 1 }
"#,
    );
    run_ok(
        &ws,
        &["-j", "4", "--gpus", "0,1,2,3", "--set", "train.value=1..4"],
    );
    let log = std::fs::read_to_string(ws.join("stages.log")).unwrap();
    let mut devs: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("cuda=").nth(1))
        .collect();
    devs.sort();
    assert_eq!(devs, ["0", "1", "2", "3"], "{log}");
}

/// Ctrl-C (SIGINT to the runner) cancels the submitted job; its checkpoint is kept for the rerun.
#[test]
fn slurm_interrupt_cancels_the_submitted_job() {
    let _one = exclusive();
    let ws = script_ws(
        r#"
[stages.train]
cmd = ["PY", "job.py"]
params = { name = "train", value = 7, sleep = 120, ckpt = true, outs = ["weights"] }
outputs = ["weights"]
"#,
    );
    let child = scan_cmd(&ws, &["run", "--executor", "slurm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn scan");
    let started = ws.join("train.started");
    let t = Instant::now();
    while !started.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let id = std::fs::read_to_string(&started).unwrap();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "the runner stopped promptly"
    );
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("checkpoints are kept"), "{err}");
    let state = Command::new("scontrol")
        .args(["show", "job", "-o", &id])
        .env("SLURM_CONF", cluster())
        .output()
        .unwrap();
    let state = String::from_utf8_lossy(&state.stdout);
    assert!(state.contains("JobState=CANCELLED"), "{state}");
    let (_, err) = run_ok(&ws, &["--executor", "slurm"]);
    assert!(err.contains("resuming from epoch 1"), "{err}");
}
