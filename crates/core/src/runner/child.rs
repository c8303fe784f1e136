//! Supervising one stage process: its own process group (so a Ctrl-C reaches the runner, which stops
//! the stage itself), death with the runner (`PR_SET_PDEATHSIG`), a progress pipe as descriptor 3
//! (`SCAN_PROGRESS_FD`, see [`crate::progress`]), stdout and stderr teed line by line to the UI and to
//! the key's log with a timestamp on every line, and an interrupt check while it runs: on Ctrl-C or
//! SIGTERM the stage gets SIGTERM, then SIGKILL after a grace period.

use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ui::ui;
use crate::progress::{ProgressEvent, ENV_PROGRESS_FD};

/// How a stage process ended.
#[derive(Debug)]
pub enum Ended {
    Exited(ExitStatus),
    /// Stopped because the runner was interrupted.
    Interrupted,
}

/// Seconds a stage gets to stop after SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// The descriptor number stages find their progress pipe at.
const PROGRESS_FD: i32 = 3;

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Run `cmd` for stage `stage`, logging to `log_path`.
pub fn supervise(mut cmd: Command, stage: &str, log_path: &Path) -> std::io::Result<Ended> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (read_end, write_end) = pipe()?;
    let write_fd = write_end.as_raw_fd();
    cmd.env(ENV_PROGRESS_FD, PROGRESS_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::setpgid(0, 0);
            if libc::dup2(write_fd, PROGRESS_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let log = Mutex::new(fs_err::File::create(log_path)?);
    let mut child = cmd.spawn()?;
    drop(write_end);
    let pid = child.id() as i32;
    let outputs: Vec<Box<dyn std::io::Read + Send>> = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .collect();
    ui().stage_started(stage);
    let ended = std::thread::scope(|sc| {
        for out in outputs {
            let log = &log;
            sc.spawn(move || {
                let mut reader = std::io::BufReader::new(out);
                let mut line = Vec::new();
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end_matches(['\n', '\r']);
                    if let Ok(mut f) = log.lock() {
                        let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now());
                        let _ = writeln!(f, "{stamp} {text}");
                    }
                    ui().stage_line(stage, text);
                    line.clear();
                }
            });
        }
        sc.spawn(move || {
            let reader = std::io::BufReader::new(std::fs::File::from(read_end));
            for line in reader.lines().map_while(Result::ok) {
                if let Ok(e) = serde_json::from_str::<ProgressEvent>(&line) {
                    ui().progress(stage, &e);
                }
            }
        });
        wait(&mut child, pid)
    });
    ui().stage_finished(stage);
    ended
}

/// Wait for the child, stopping it when the runner is interrupted.
fn wait(child: &mut std::process::Child, pid: i32) -> std::io::Result<Ended> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ended::Exited(status));
        }
        if ui().interrupted() {
            // SAFETY: signalling our own child's process group.
            unsafe { libc::kill(-pid, libc::SIGTERM) };
            let t = Instant::now();
            while t.elapsed() < GRACE {
                if child.try_wait()?.is_some() {
                    return Ok(Ended::Interrupted);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            child.wait()?;
            return Ok(Ended::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
