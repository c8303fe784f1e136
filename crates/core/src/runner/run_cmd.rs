//! `scan run`: the base pipeline, one named experiment (`--exp NAME`), or a sweep — `--set` with
//! several values, `--seeds N`, or the `[sweep]` table (`--sweep`) — whose variants run together so that
//! shared stages run once ([`super::schedule::run_many`]).

use std::path::Path;

use super::schedule::{self, RunOptions, StageOutcome, Unit};
use super::sweep::{self, Seeds, Variant};
use super::{Ctx, RunnerError};
use crate::exp::ExperimentLog;

/// What to run, beyond the targets and `-j`.
#[derive(Debug, Clone, Default)]
pub struct SweepArgs {
    /// `--set` arguments (values may be lists or ranges).
    pub sets: Vec<String>,
    /// `--seeds N`.
    pub seeds: Option<u64>,
    /// `--seed-stages` (default: the SCAN and self-labeling stages).
    pub seed_stages: Vec<String>,
    /// `--name PREFIX` for the variants.
    pub name: Option<String>,
    /// `--sweep`: run the `[sweep]` table.
    pub sweep: bool,
    /// `--exp NAME`: rerun a recorded experiment.
    pub exp: Option<String>,
}

/// The variants a command line asks for; empty for the base pipeline.
pub fn variants(
    pipeline: &Path,
    store: Option<&Path>,
    a: &SweepArgs,
) -> Result<Vec<Variant>, RunnerError> {
    if let Some(name) = &a.exp {
        if !a.sets.is_empty() || a.seeds.is_some() || a.sweep {
            return Err(RunnerError::Usage(
                "--exp reruns a recorded experiment: it takes no --set, --seeds or --sweep".into(),
            ));
        }
        return Ok(vec![experiment(pipeline, name)?]);
    }
    if a.sets.is_empty() && a.seeds.is_none() && !a.sweep {
        return Ok(Vec::new());
    }
    let base = Ctx::load(pipeline, store, &[])?;
    if a.sweep {
        let table = base.pipeline.sweep.as_ref().ok_or_else(|| {
            RunnerError::Usage(format!(
                "--sweep: {} has no [sweep] table",
                pipeline.display()
            ))
        })?;
        return sweep::from_file(table, &base.pipeline);
    }
    let axes = sweep::parse_sets(&a.sets)?;
    let seeds = a.seeds.map(|count| Seeds {
        count,
        stages: if a.seed_stages.is_empty() {
            sweep::default_seed_stages(&base.pipeline)
        } else {
            a.seed_stages.clone()
        },
    });
    if seeds.as_ref().is_some_and(|s| s.stages.is_empty()) {
        return Err(RunnerError::Usage(
            "--seeds: the pipeline has no SCAN or self-labeling stage; name the stages whose `seed` \
             param to vary with --seed-stages"
                .into(),
        ));
    }
    sweep::expand(&axes, seeds.as_ref(), &[], a.name.as_deref())
}

/// The recorded experiment `name` as a variant.
pub fn experiment(pipeline: &Path, name: &str) -> Result<Variant, RunnerError> {
    let path = crate::exp::log_path(pipeline);
    let log = ExperimentLog::read(&path).map_err(|e| RunnerError::Failed(e.to_string()))?;
    let e = log
        .find(name, &path)
        .map_err(|e| RunnerError::Usage(e.to_string()))?;
    Ok(e.variant())
}

/// The context of `variant` (`None`: the base pipeline).
pub fn load(
    pipeline: &Path,
    store: Option<&Path>,
    variant: Option<&Variant>,
) -> Result<Ctx, RunnerError> {
    Ctx::load(
        pipeline,
        store,
        &variant.map(Variant::sets).unwrap_or_default(),
    )
}

/// Run; returns each unit's name and outcomes.
pub fn run(
    pipeline: &Path,
    store: Option<&Path>,
    opts: &RunOptions,
    a: &SweepArgs,
) -> Result<Vec<(String, Vec<StageOutcome>)>, RunnerError> {
    let variants = variants(pipeline, store, a)?;
    if variants.is_empty() {
        let ctx = Ctx::load(pipeline, store, &[])?
            .with_remote(opts.remote.as_deref(), opts.require_remote)?;
        return Ok(vec![("base".into(), schedule::run(&ctx, opts)?)]);
    }
    let ctxs: Vec<Ctx> = variants
        .iter()
        .map(|v| {
            load(pipeline, store, Some(v))?.with_remote(opts.remote.as_deref(), opts.require_remote)
        })
        .collect::<Result<_, _>>()?;
    if opts.dry_run {
        let mut out = Vec::new();
        for (v, ctx) in variants.iter().zip(&ctxs) {
            println!("== {}", v.name);
            let sel = schedule::select(ctx, &opts.targets)?;
            out.push((v.name.clone(), schedule::dry_run(ctx, &sel)?));
        }
        return Ok(out);
    }
    eprintln!(
        "scan: {} variants: {}",
        variants.len(),
        variants
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let units: Vec<Unit> = variants
        .iter()
        .zip(&ctxs)
        .map(|(v, ctx)| Unit {
            ctx,
            variant: Some(v.clone()),
        })
        .collect();
    let results = schedule::run_many(&units, opts)?;
    Ok(variants.into_iter().map(|v| v.name).zip(results).collect())
}
