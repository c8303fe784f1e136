//! Stage-protocol glue of the training stages: inputs by name, typed params, outputs in `--out`.

use anyhow::Context;

use super::{cluster, embed, pretext, selflabel};
use crate::stage::StageArgs;

/// `scan-pretext`: inputs `train`, optional `unlabeled`, optional `test` (kNN monitor).
pub fn pretext_stage(args: &StageArgs) -> anyhow::Result<()> {
    let p: pretext::PretextParams = args.load_params()?;
    let (train, unlabeled, test) = (
        args.input("train")?,
        args.optional_input("unlabeled")?,
        args.optional_input("test")?,
    );
    let inputs = pretext::PretextInputs {
        train: &train,
        unlabeled: unlabeled.as_deref(),
        test: test.as_deref(),
    };
    pretext::run(&p, &inputs, &args.out).context("pretext failed")
}

/// `scan-embed`: input `weights` plus any dataset splits (`train`, `test`, …); one output per split.
pub fn embed_stage(args: &StageArgs) -> anyhow::Result<()> {
    let p: embed::EmbedParams = args.load_params()?;
    let weights = args.input("weights")?;
    let splits: Vec<(String, std::path::PathBuf)> = args
        .input_pairs()?
        .into_iter()
        .filter(|(n, _)| n != "weights")
        .collect();
    anyhow::ensure!(
        !splits.is_empty(),
        "no dataset inputs to embed (pass --input train=PATH …)"
    );
    let refs: Vec<(&str, &std::path::Path)> = splits
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    embed::run(&p, &weights, &refs, &args.out).context("embed failed")
}

/// `scan-cluster` (the `scan` stage): inputs `weights`, `train`, `test`, `neighbors_train`, `neighbors_test`.
pub fn cluster_stage(args: &StageArgs) -> anyhow::Result<()> {
    let p: cluster::ScanParams = args.load_params()?;
    let (w, tr, te) = (
        args.input("weights")?,
        args.input("train")?,
        args.input("test")?,
    );
    let (ntr, nte) = (
        args.input("neighbors_train")?,
        args.input("neighbors_test")?,
    );
    let inputs = cluster::ScanInputs {
        weights: &w,
        train: &tr,
        test: &te,
        neighbors_train: &ntr,
        neighbors_test: &nte,
    };
    cluster::run(&p, &inputs, &args.out).context("scan clustering failed")
}

/// `scan-selflabel`: inputs `weights` (SCAN), `train`, optional `test` (monitoring).
pub fn selflabel_stage(args: &StageArgs) -> anyhow::Result<()> {
    let p: selflabel::SelflabelParams = args.load_params()?;
    let (w, tr, te) = (
        args.input("weights")?,
        args.input("train")?,
        args.optional_input("test")?,
    );
    let inputs = selflabel::SelflabelInputs {
        weights: &w,
        train: &tr,
        test: te.as_deref(),
    };
    selflabel::run(&p, &inputs, &args.out).context("self-labeling failed")
}
