//! `scan logs STAGE [-f]`: the log of the stage's current key (every line timestamped by the runner);
//! with `-f`, follow it while the stage is being built — waiting for it to start — until the build ends.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::plan;
use super::{Ctx, RunnerError};
use crate::store::lock::FileLock;

/// Print (and with `follow`, follow) the log of `stage`'s current key.
pub fn logs(ctx: &Ctx, stage: &str, follow: bool) -> Result<u8, RunnerError> {
    if ctx.pipeline.stage(stage).is_none() {
        super::schedule::select(ctx, &[stage.to_string()])?;
    }
    let poll = Duration::from_millis(200);
    // The key is known once the stage's inputs are: while upstream stages still run, wait for them.
    let key = loop {
        let plans = plan::plan(ctx)?;
        let p = plans.iter().find(|p| p.name == stage);
        match p.and_then(|p| p.key.clone()) {
            Some(k) => break k,
            None if follow => std::thread::sleep(poll),
            None => {
                return Err(RunnerError::Failed(format!(
                    "stage `{stage}` is pending (its upstream stages must run first): no log yet; \
                     `scan logs -f {stage}` waits for it"
                )))
            }
        }
    };
    let path = ctx.store.log_path(&key);
    let building = || {
        FileLock::try_acquire(&ctx.store.lock_path(&key))
            .map(|held| held.is_none())
            .unwrap_or(false)
    };
    if !path.is_file() {
        if !follow {
            return Err(RunnerError::Failed(format!(
                "no log for stage `{stage}` (key {}): it has not been built in this store",
                key.short()
            )));
        }
        while !path.is_file() {
            std::thread::sleep(poll);
        }
    }
    let mut file = fs_err::File::open(&path)?;
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        file.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()?;
        let done = ctx.store.read_action(&key).is_some() || !building();
        if !follow || (done && buf.is_empty()) {
            break;
        }
        if buf.is_empty() {
            std::thread::sleep(poll);
        }
        // Continue from where we are (the file only grows while the stage runs).
        let pos = file.stream_position()?;
        file.seek(SeekFrom::Start(pos))?;
    }
    Ok(0)
}
