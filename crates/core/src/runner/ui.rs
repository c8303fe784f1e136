//! What the runner shows while it works. On a terminal: one `indicatif` bar per running stage, with its
//! epoch, latest loss and metric, elapsed time and ETA, and stage output printed above the bars. Not on a
//! terminal (CI logs, `2> file`): plain lines, each with an RFC 3339 timestamp, progress once per epoch,
//! no control codes. `-q` shows only errors; `-v` adds the commands run.
//!
//! Interrupts (Ctrl-C, SIGTERM) set a flag that the stage supervisors poll: they stop their stage (or
//! `scancel` its Slurm job), and the run reports which checkpoints were kept and how to resume.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::ProgressEvent;

/// How much the runner says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// The runner's output.
pub struct Ui {
    verbosity: Verbosity,
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, (ProgressBar, Instant)>>,
    interrupted: Arc<AtomicBool>,
}

static UI: OnceLock<Ui> = OnceLock::new();

/// The process-wide UI (plain, normal verbosity unless [`init`] ran first).
pub fn ui() -> &'static Ui {
    UI.get_or_init(|| Ui::new(Verbosity::Normal, false))
}

/// Set the verbosity and whether bars may be drawn (stderr is a terminal); call once, early.
pub fn init(verbosity: Verbosity) {
    let tty = std::io::stderr().is_terminal()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(false);
    let _ = UI.set(Ui::new(verbosity, tty));
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Ui {
    fn new(verbosity: Verbosity, tty: bool) -> Ui {
        let multi = (tty && verbosity > Verbosity::Quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Ui {
            verbosity,
            multi,
            bars: Mutex::new(BTreeMap::new()),
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// Whether bars are drawn.
    pub fn is_tty(&self) -> bool {
        self.multi.is_some()
    }

    fn print(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{} {line}", now());
            }
        }
    }

    /// A runner message (`scan: …`), shown unless quiet.
    pub fn info(&self, msg: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.print(&format!("scan: {msg}"));
        }
    }

    /// A detail shown with `-v`.
    pub fn detail(&self, msg: &str) {
        if self.verbosity >= Verbosity::Verbose {
            self.print(&format!("scan: {msg}"));
        }
    }

    /// An error or warning: always shown.
    pub fn error(&self, msg: &str) {
        self.print(&format!("scan: {msg}"));
    }

    /// One line of a stage's output, shown unless quiet.
    pub fn stage_line(&self, stage: &str, line: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.print(&format!("[{stage}] {line}"));
        }
    }

    /// A stage started: a bar (terminal) once it reports progress.
    pub fn stage_started(&self, stage: &str) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new(1));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12.bold} [{bar:30.cyan/blue}] {percent:>3}% {msg} {elapsed_precise} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(stage.to_string());
            bar.set_message("starting");
            bar.enable_steady_tick(Duration::from_millis(500));
            bars.insert(stage.to_string(), (bar, Instant::now()));
        } else {
            bars.insert(stage.to_string(), (ProgressBar::hidden(), Instant::now()));
        }
    }

    /// A progress event from `stage`.
    pub fn progress(&self, stage: &str, e: &ProgressEvent) {
        let Ok(bars) = self.bars.lock() else { return };
        let Some((bar, started)) = bars.get(stage) else {
            return;
        };
        let mut msg = Vec::new();
        if let (Some(ep), Some(eps)) = (e.epoch, e.epochs) {
            msg.push(format!("epoch {ep}/{eps}"));
        }
        if let Some(l) = e.loss {
            msg.push(format!("loss {l:.4}"));
        }
        if let Some((name, v)) = &e.metric {
            msg.push(format!("{name} {v:.4}"));
        }
        if let Some(r) = e.images_per_s {
            msg.push(format!("{r:.0} img/s"));
        }
        let msg = msg.join(" ");
        if self.multi.is_some() {
            bar.set_length(e.total.max(1));
            bar.set_position(e.done.min(e.total));
            bar.set_message(msg);
        } else if e.epoch_end && self.verbosity >= Verbosity::Normal {
            let elapsed = started.elapsed();
            let frac = e.done as f64 / e.total.max(1) as f64;
            let eta = if frac > 0.0 {
                fmt_duration(elapsed.mul_f64((1.0 - frac) / frac))
            } else {
                "?".into()
            };
            self.print(&format!(
                "[{stage}] {:>3.0}% {msg} elapsed {} ETA {eta}",
                frac * 100.0,
                fmt_duration(elapsed)
            ));
        }
    }

    /// A stage ended: its bar goes away.
    pub fn stage_finished(&self, stage: &str) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some((bar, _)) = bars.remove(stage) {
                bar.finish_and_clear();
                if let Some(m) = &self.multi {
                    m.remove(&bar);
                }
            }
        }
    }

    /// Catch SIGINT and SIGTERM from now on: they set the interrupt flag instead of killing `scan`.
    pub fn catch_interrupts(&self) {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&self.interrupted));
        }
    }

    /// Whether an interrupt arrived.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }
}
