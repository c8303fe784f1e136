//! What a user sees: the progress bar with an ETA on a terminal, timestamped plain lines without
//! control codes otherwise, `scan logs`, `scan dag` rendered by Graphviz, and shell completions.

use std::process::Command;

use crate::common::{bin, Workspace};
use crate::pipeline::TINY_PIPELINE;

/// The tiny pipeline, pretext long enough (3 epochs) to draw a bar.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &TINY_PIPELINE.replace(
            "epochs = 1, batch_size = 100, width = 4",
            "epochs = 3, batch_size = 100, width = 4",
        ),
    );
    ws
}

#[test]
fn terminal_gets_a_bar_with_eta_and_a_file_gets_timestamped_lines() {
    let ws = workspace();
    // A pseudo-terminal: util-linux `script` runs the command on one and copies what it draws.
    let cmd = format!("{} run pretext", bin("scan").display());
    let o = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(ws.path())
        .env("TERM", "xterm-256color")
        .env_remove("SCAN_STORE")
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{tty}");
    assert!(tty.contains("\x1b["), "no terminal control codes: {tty}");
    let bar = tty
        .split(['\r', '\n'])
        .find(|l| l.contains("pretext") && l.contains("ETA") && l.contains("epoch"))
        .unwrap_or_else(|| panic!("no pretext bar with an ETA in:\n{tty}"));
    assert!(bar.contains('%'), "{bar}");

    // The same kind of run with stderr in a file: plain, timestamped lines.
    let o = ws
        .scan()
        .args(["run", "--set", "pretext.epochs=2", "pretext"])
        .output()
        .expect("scan run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains('\x1b'), "control codes in a file:\n{err}");
    let stamp = |l: &str| {
        let b = l.as_bytes();
        l.len() > 21
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[19] == b'Z'
            && b[20] == b' '
    };
    for line in err.lines().filter(|l| !l.starts_with("scan: 1 variants")) {
        assert!(stamp(line), "not timestamped: {line:?}\n{err}");
    }
    assert!(
        err.lines()
            .any(|l| l.contains("[pretext]") && l.contains("epoch 1/2") && l.contains("ETA")),
        "{err}"
    );
    // The stage's log: every line timestamped, found by stage name.
    let o = ws
        .scan()
        .args(["--exp", "pretext.epochs=2", "logs", "pretext"])
        .output()
        .expect("scan logs");
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(log.contains("pretext epoch 2/2"), "{log}");
    assert!(
        log.lines().all(|l| l.len() > 24 && &l[10..11] == "T"),
        "{log}"
    );
    // Quiet: nothing but errors.
    let o = ws
        .scan()
        .args(["-q", "run", "pretext"])
        .output()
        .expect("scan -q");
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn dag_renders_with_graphviz_and_mermaid() {
    let ws = workspace();
    let o = ws.scan().args(["dag", "--dot"]).output().expect("scan dag");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dot = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(dot.contains("\"mine\" -> \"scan\""), "{dot}");
    std::fs::write(ws.join("dag.dot"), &dot).unwrap();
    let svg = Command::new("dot")
        .args(["-Tsvg", "dag.dot"])
        .current_dir(ws.path())
        .output()
        .expect("graphviz `dot` (apt-get install graphviz)");
    assert!(
        svg.status.success(),
        "{}",
        String::from_utf8_lossy(&svg.stderr)
    );
    let svg = String::from_utf8_lossy(&svg.stdout);
    assert!(
        svg.contains("<svg") && svg.contains("pretext") && svg.contains("stale"),
        "{svg}"
    );
    let o = ws
        .scan()
        .args(["dag", "--mermaid"])
        .output()
        .expect("scan dag");
    let mm = String::from_utf8_lossy(&o.stdout);
    assert!(
        mm.starts_with("flowchart LR") && mm.contains("s_embed -->|train| s_mine"),
        "{mm}"
    );
    let o = ws.scan().args(["dag"]).output().expect("scan dag");
    assert!(String::from_utf8_lossy(&o.stdout).contains("evaluate [pending]"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(bin("scan"))
            .args(["completions", shell])
            .output()
            .expect("scan completions");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("exp") && text.contains("dag"),
            "{shell}: {text}"
        );
    }
    // The bash script is valid bash.
    let o = Command::new(bin("scan"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let ws = Workspace::new();
    std::fs::write(ws.join("c.bash"), &o.stdout).unwrap();
    let check = Command::new("bash")
        .args(["-n", "c.bash"])
        .current_dir(ws.path())
        .status()
        .unwrap();
    assert!(check.success());
}

#[test]
fn interrupt_stops_the_stage_keeps_its_checkpoint_and_says_how_to_resume() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &TINY_PIPELINE.replace(
            "epochs = 1, batch_size = 100, width = 4",
            "epochs = 30, batch_size = 100, width = 4",
        ),
    );
    let child = ws
        .scan()
        .args(["run", "pretext"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("scan run");
    // Wait for the first finished pretext epoch (its checkpoint is written then).
    let logs = ws.join("artifacts/logs");
    let t = std::time::Instant::now();
    loop {
        let done = std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("pretext epoch 1/30")
            });
        if done {
            break;
        }
        assert!(
            t.elapsed().as_secs() < 300,
            "pretext never finished an epoch"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("checkpoints are kept in") && err.contains("scan run"),
        "{err}"
    );
    let work = ws.join("artifacts/work");
    let kept: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1, "one work dir kept");
    assert!(
        std::fs::read_dir(kept[0].path()).unwrap().count() > 0,
        "checkpoint kept"
    );
    // No stage process is left behind.
    let o = Command::new("pgrep")
        .args(["-f", &ws.path().to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).trim().is_empty(),
        "stage still running"
    );
}
