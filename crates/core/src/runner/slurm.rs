//! Running one stage as a Slurm batch job, in place of a local child process.
//!
//! Everything around the process stays with the runner ([`super::exec`]): the staging directory and
//! the work directory live in the store, the runner checks the outputs once the job has ended,
//! commits them as blobs and writes the action record. The job itself only runs the stage's command
//! line. So the store must sit on a filesystem that the submitting machine and the compute nodes both
//! mount at the same path; a job writes nothing but its own staging and work directories, which is
//! why the runner's local per-key locks remain the only locks needed.
//!
//! The job script (`job.sh` in the staging directory) changes into the workspace, exports what the
//! stage protocol passes in the environment (`SCAN_WORK_DIR`, `SCAN_CODE_IDENTITY`,
//! `SCAN_PROVENANCE`, `CUDA_VISIBLE_DEVICES` is left to Slurm) and `exec`s the exact command line a
//! local run would. The rest of the submitting environment (`PATH`, `SLURM_CONF`, library paths)
//! goes along with `--export=ALL`.
//!
//! Waiting does not hammer the controller: `scontrol show job -o ID` is asked at growing intervals
//! (0.25 s up to 5 s) while the job's output file is copied into the key's log as it grows. A job
//! counts as running until it reaches a final state (COMPLETING still runs its epilogue and may
//! still be writing). A job that did not complete is reported with its id, its final JobState
//! (OUT_OF_MEMORY, TIMEOUT, NODE_FAIL, CANCELLED, FAILED, ...), ExitCode and the tail of its output.
//! On Ctrl-C the runner `scancel`s its jobs. A job that was preempted, timed out or cancelled leaves
//! its checkpoints in the key's work directory, and the next `scan run` resumes from them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::executor::{ExecutorFile, Resources};
use super::ui::ui;

/// How a job ended.
#[derive(Debug)]
pub enum JobEnd {
    /// JobState=COMPLETED with ExitCode 0:0.
    Completed { id: String },
    /// Any other final state.
    Failed {
        id: String,
        state: String,
        exit_code: String,
        reason: String,
        tail: String,
    },
    /// The runner was interrupted and cancelled the job.
    Interrupted { id: String },
}

impl JobEnd {
    /// A one-paragraph explanation of a failed job.
    pub fn describe(&self) -> String {
        match self {
            JobEnd::Completed { id } => format!("slurm job {id} completed"),
            JobEnd::Interrupted { id } => format!("slurm job {id} cancelled by an interrupt"),
            JobEnd::Failed {
                id,
                state,
                exit_code,
                reason,
                tail,
            } => {
                let what = match state.as_str() {
                    "OUT_OF_MEMORY" => " (exceeded its memory limit)",
                    "TIMEOUT" => " (reached its time limit)",
                    "NODE_FAIL" => " (its node failed)",
                    "PREEMPTED" => " (preempted)",
                    "CANCELLED" => " (cancelled)",
                    _ if tail.contains("Exceeded job memory limit") => {
                        " (exceeded its memory limit)"
                    }
                    _ => "",
                };
                let reason = if reason.is_empty() || reason == "None" {
                    String::new()
                } else {
                    format!(" Reason={reason}")
                };
                let mut s = format!(
                    "slurm job {id} ended JobState={state}{what} ExitCode={exit_code}{reason}"
                );
                if !tail.is_empty() {
                    s.push_str("; last lines of its output:\n");
                    s.push_str(tail);
                }
                s
            }
        }
    }
}

/// States in which a job is not done yet.
fn still_running(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "RUNNING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_FED"
            | "REQUEUE_HOLD"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "RESV_DEL_HOLD"
            | "SPECIAL_EXIT"
            | "POWER_UP_NODE"
    )
}

/// The `Key=Value` fields of one `scontrol show job -o` line.
pub fn parse_scontrol(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for tok in line.split_whitespace() {
        if let Some((k, v)) = tok.split_once('=') {
            out.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
    }
    out
}

/// The sbatch flags for a stage: resources, then the `[executor]` table, then `extra` as written.
pub fn sbatch_flags(stage: &str, r: &Resources, exe: &ExecutorFile) -> Vec<String> {
    let mut f = vec![
        "--parsable".to_string(),
        format!("--job-name=scan-{stage}"),
        "--export=ALL".into(),
        "--nodes=1".into(),
        "--ntasks=1".into(),
    ];
    if r.gpus() > 0 {
        f.push(format!("--gres=gpu:{}", r.gpus()));
    }
    if let Some(c) = r.cpus {
        f.push(format!("--cpus-per-task={c}"));
    }
    if let Some(m) = &r.mem {
        f.push(format!("--mem={m}"));
    }
    if let Some(t) = &r.time {
        f.push(format!("--time={t}"));
    }
    if let Some(p) = &exe.partition {
        f.push(format!("--partition={p}"));
    }
    if let Some(a) = &exe.account {
        f.push(format!("--account={a}"));
    }
    f.extend(exe.extra.iter().cloned());
    f
}

/// Single-quote for bash.
fn quote(s: &OsStr) -> String {
    let bytes = s.as_bytes();
    let text = String::from_utf8_lossy(bytes);
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The job script: the same working directory, environment additions and command line as `cmd`.
pub fn job_script(cmd: &Command) -> String {
    let mut s =
        String::from("#!/bin/bash\n# Written by scan: one stage, run as a Slurm batch job.\n");
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("cd {} || exit 1\n", quote(dir.as_os_str())));
    }
    s.push_str(&format!("unset {}\n", crate::progress::ENV_PROGRESS_FD));
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.push_str(&format!("export {}={}\n", k.to_string_lossy(), quote(v))),
            None => s.push_str(&format!("unset {}\n", k.to_string_lossy())),
        }
    }
    s.push_str("exec");
    s.push(' ');
    s.push_str(&quote(cmd.get_program()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s.push('\n');
    s
}

fn run_tool(mut c: Command) -> std::io::Result<String> {
    let what = format!("{:?}", c.get_program());
    let out = c.stdin(std::process::Stdio::null()).output().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot run {what} (is Slurm installed and SLURM_CONF set?): {e}"),
        )
    })?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `scontrol show job -o ID` → (JobState, ExitCode, Reason); `None` when Slurm no longer knows it.
fn job_state(id: &str) -> std::io::Result<Option<(String, String, String)>> {
    let mut c = Command::new("scontrol");
    c.args(["show", "job", "-o", id]);
    let out = c.stdin(std::process::Stdio::null()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Invalid job id") {
            return Ok(None);
        }
        return Err(std::io::Error::other(format!(
            "scontrol show job {id}: {}",
            err.trim()
        )));
    }
    let f = parse_scontrol(text.lines().next().unwrap_or(""));
    let state = f.get("JobState").cloned().unwrap_or_default();
    Ok(Some((
        state,
        f.get("ExitCode").cloned().unwrap_or_default(),
        f.get("Reason").cloned().unwrap_or_default(),
    )))
}

/// Copies new complete lines of the job's output file into the key's log (timestamped) and the UI.
struct Follower<'a> {
    path: &'a Path,
    pos: u64,
    partial: Vec<u8>,
    log: fs_err::File,
    stage: &'a str,
    tail: std::collections::VecDeque<String>,
}

impl Follower<'_> {
    fn line(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim_end_matches(['\n', '\r']);
        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        let _ = writeln!(self.log, "{stamp} {text}");
        ui().stage_line(self.stage, text);
        if self.tail.len() == 20 {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_string());
    }

    fn poll(&mut self, last: bool) {
        if let Ok(mut f) = std::fs::File::open(self.path) {
            if f.seek(SeekFrom::Start(self.pos)).is_ok() {
                let mut buf = Vec::new();
                if let Ok(n) = f.read_to_end(&mut buf) {
                    self.pos += n as u64;
                    self.partial.extend_from_slice(&buf);
                }
            }
        }
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.line(&line);
        }
        if last && !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.line(&rest);
        }
    }
}

/// Submit `cmd` for `stage` as a batch job (script and output in `staging`), follow its output into
/// `log_path`, and wait for it to end.
pub fn run(
    cmd: &Command,
    stage: &str,
    resources: &Resources,
    exe: &ExecutorFile,
    staging: &Path,
    log_path: &Path,
) -> std::io::Result<JobEnd> {
    let script = staging.join("job.sh");
    fs_err::write(&script, job_script(cmd))?;
    let output = staging.join("job.out");
    let mut sbatch = Command::new("sbatch");
    sbatch
        .args(sbatch_flags(stage, resources, exe))
        .arg(format!("--output={}", output.display()));
    if let Some(dir) = cmd.get_current_dir() {
        sbatch.arg(format!("--chdir={}", dir.display()));
    }
    sbatch.arg(&script);
    ui().detail(&format!("{stage}: {sbatch:?}"));
    let out = run_tool(sbatch)?;
    let id = out
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(std::io::Error::other(format!(
            "sbatch printed `{}`, not a job id",
            out.trim()
        )));
    }
    let mut log = fs_err::File::create(log_path)?;
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let _ = writeln!(log, "{stamp} [scan] submitted as slurm job {id}");
    ui().info(&format!("{stage}: submitted as slurm job {id}"));
    let mut follow = Follower {
        path: &output,
        pos: 0,
        partial: Vec::new(),
        log,
        stage,
        tail: Default::default(),
    };
    ui().stage_started(stage);
    let result = wait(&id, &mut follow);
    follow.poll(true);
    ui().stage_finished(stage);
    let (state, exit_code, reason) = match result? {
        Waited::Interrupted => return Ok(JobEnd::Interrupted { id }),
        Waited::Done(s, e, r) => (s, e, r),
    };
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let _ = writeln!(
        follow.log,
        "{stamp} [scan] slurm job {id}: JobState={state} ExitCode={exit_code}"
    );
    if state == "COMPLETED" && exit_code == "0:0" {
        return Ok(JobEnd::Completed { id });
    }
    Ok(JobEnd::Failed {
        id,
        state,
        exit_code,
        reason,
        tail: Vec::from(follow.tail).join("\n"),
    })
}

enum Waited {
    Done(String, String, String),
    Interrupted,
}

/// Wait for job `id` to reach a final state, with growing intervals between queries.
fn wait(id: &str, follow: &mut Follower) -> std::io::Result<Waited> {
    let mut interval = Duration::from_millis(250);
    let mut next = Instant::now();
    let mut errors = 0;
    loop {
        if ui().interrupted() {
            return cancel(id, follow);
        }
        if Instant::now() >= next {
            follow.poll(false);
            match job_state(id) {
                Ok(Some((state, exit, reason))) => {
                    errors = 0;
                    if !still_running(&state) {
                        return Ok(Waited::Done(state, exit, reason));
                    }
                }
                Ok(None) => {
                    return Ok(Waited::Done(
                        "UNKNOWN".into(),
                        "?".into(),
                        "the controller no longer knows the job".into(),
                    ))
                }
                // A busy or restarting controller: keep asking, give up after a while.
                Err(e) => {
                    errors += 1;
                    if errors > 20 {
                        return Err(e);
                    }
                }
            }
            next = Instant::now() + interval;
            interval = (interval * 2).min(Duration::from_secs(5));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `scancel` the job and wait (a bounded while) for it to end.
fn cancel(id: &str, follow: &mut Follower) -> std::io::Result<Waited> {
    let mut c = Command::new("scancel");
    c.arg(id);
    if let Err(e) = run_tool(c) {
        ui().error(&format!("scancel {id}: {e}"));
    }
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        follow.poll(false);
        match job_state(id) {
            Ok(Some((state, _, _))) if still_running(&state) => {}
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(Waited::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_line_and_states() {
        let f = parse_scontrol(
            "JobId=12 JobName=scan-a UserId=root(0) JobState=OUT_OF_MEMORY Reason=OutOfMemory \
             Dependency=(null) ExitCode=0:125 RunTime=00:00:02 Command=/s/job.sh",
        );
        assert_eq!(f["JobState"], "OUT_OF_MEMORY");
        assert_eq!(f["ExitCode"], "0:125");
        assert_eq!(f["Reason"], "OutOfMemory");
        assert!(still_running("COMPLETING"));
        assert!(still_running("PENDING"));
        for end in [
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "NODE_FAIL",
            "PREEMPTED",
            "BOOT_FAIL",
            "DEADLINE",
        ] {
            assert!(!still_running(end), "{end}");
        }
    }

    #[test]
    fn failures_are_described_by_state() {
        let f = |state: &str, tail: &str| {
            JobEnd::Failed {
                id: "7".into(),
                state: state.into(),
                exit_code: "0:15".into(),
                reason: "None".into(),
                tail: tail.into(),
            }
            .describe()
        };
        let t = f(
            "TIMEOUT",
            "epoch 3\n*** JOB 7 CANCELLED DUE TO TIME LIMIT ***",
        );
        assert!(
            t.starts_with(
                "slurm job 7 ended JobState=TIMEOUT (reached its time limit) ExitCode=0:15"
            ),
            "{t}"
        );
        assert!(t.ends_with("DUE TO TIME LIMIT ***"), "{t}");
        assert!(f("OUT_OF_MEMORY", "").contains("exceeded its memory limit"));
        assert!(f("FAILED", "slurmstepd: error: Exceeded job memory limit")
            .contains("JobState=FAILED (exceeded its memory limit)"));
        assert!(f("NODE_FAIL", "").contains("node failed"));
        assert!(!f("FAILED", "boom").contains("("));
    }

    #[test]
    fn flags_and_script() {
        let r = Resources {
            gpus: Some(2),
            cpus: Some(8),
            mem: Some("32G".into()),
            time: Some("4:00:00".into()),
        };
        let exe = ExecutorFile {
            kind: None,
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            extra: vec!["--qos=long".into()],
        };
        let f = sbatch_flags("pretext", &r, &exe);
        for want in [
            "--parsable",
            "--job-name=scan-pretext",
            "--gres=gpu:2",
            "--cpus-per-task=8",
            "--mem=32G",
            "--time=4:00:00",
            "--partition=gpu",
            "--account=lab",
            "--qos=long",
        ] {
            assert!(f.contains(&want.to_string()), "{want} in {f:?}");
        }
        assert!(
            !sbatch_flags("a", &Resources::default(), &ExecutorFile::default())
                .iter()
                .any(|f| f.starts_with("--gres") || f.starts_with("--mem"))
        );
        let mut c = Command::new("/bin/prog");
        c.arg("--out")
            .arg("/s/it's out")
            .current_dir("/ws")
            .env("SCAN_WORK_DIR", "/store/work/k");
        let s = job_script(&c);
        assert!(s.contains("cd '/ws' || exit 1\n"), "{s}");
        assert!(s.contains("export SCAN_WORK_DIR='/store/work/k'\n"), "{s}");
        assert!(
            s.ends_with("exec '/bin/prog' '--out' '/s/it'\\''s out'\n"),
            "{s}"
        );
    }
}
