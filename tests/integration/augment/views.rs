//! The augmentation settings of the training stages against the reference's transforms: `scan`'s
//! `augmentation` (`strong`, the `simclr` ablation) and `selflabel`'s `weak_augmentation` /
//! `strong_augmentation` (`none`, `strong`, `simclr`), each built exactly as the stage builds it from
//! its params ([`ViewAugment::for_scan`], [`selflabel::views`]), are applied to fixed images and
//! compared with the oracle building the same view with PIL and NumPy (the reference's pipeline:
//! torchvision's transforms on PIL images, ToTensor, Normalize, Cutout) from the parameters our
//! generator drew. Measured difference: 0 for every setting, and the comparison is exact.

use scan::augment::{AugRng, Normalize, SimclrAugment, StrongAugment};
use scan::nn::NormMeta;
use scan::params::{ScanParams, SelflabelParams, ViewAugmentation};
use scan::train::cluster::ViewAugment;
use scan::train::selflabel;
use serde_json::{json, Value};

use super::pil::params_json;
use super::{f32_vec, oracle, Batch};
use crate::common::Workspace;

/// The reference's view for `kind` with the parameters our generator draws from `seed`, as an
/// oracle case; and the augmentation object the reference semantics correspond to.
fn reference_case(
    kind: ViewAugmentation,
    batch: &Batch,
    size: i64,
    norm: &Normalize,
    cutout: i64,
    num_ops: usize,
    seed: u64,
) -> Value {
    let [n, h, w, _] = batch.shape;
    let (h, w) = (h as i64, w as i64);
    let mut rng = AugRng::new(seed);
    let params: Vec<Value> = match kind {
        ViewAugmentation::None => Vec::new(),
        ViewAugmentation::Simclr => SimclrAugment::cifar(size, norm.clone())
            .sample_params(n, h, w, &mut rng)
            .iter()
            .map(params_json)
            .collect(),
        ViewAugmentation::Strong => StrongAugment {
            crop_size: size,
            num_ops,
            cutout,
            flip_p: 0.5,
            normalize: norm.clone(),
        }
        .sample_params(n, h, w, &mut rng)
        .iter()
        .map(|p| {
            let (y1, y2, x1, x2) = p.cutout.bounds(size, size);
            let ops: Vec<Value> = p
                .ops
                .iter()
                .map(|(op, v)| json!([format!("{op:?}"), v]))
                .collect();
            json!({"flip": p.flip, "crop": [p.crop_top, p.crop_left], "ops": ops, "cut": [y1, y2, x1, x2]})
        })
        .collect(),
    };
    let name = match kind {
        ViewAugmentation::None => "none",
        ViewAugmentation::Simclr => "simclr",
        ViewAugmentation::Strong => "strong",
    };
    json!({"view": name, "size": size, "params": params, "mean": norm.mean, "std": norm.std})
}

#[test]
fn each_augmentation_setting_builds_the_reference_view() {
    use ViewAugmentation::{None as Plain, Simclr, Strong};
    let ws = Workspace::new();
    // The quickstart's settings (cutout 8, 4 ops) on grey 28×28 and the paper's (16, 4) on RGB.
    let setups = [
        (Batch::new(5, 28, 28, 1, 61), 8, 4, vec![0.286], vec![0.353]),
        (
            Batch::new(5, 32, 32, 3, 62),
            16,
            4,
            vec![0.4914, 0.4822, 0.4465],
            vec![0.2023, 0.1994, 0.2010],
        ),
    ];
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    let mut labels = Vec::new();
    for (b, (batch, cutout, num_ops, mean, std)) in setups.iter().enumerate() {
        let norm_meta = NormMeta {
            mean: mean.clone(),
            std: std.clone(),
        };
        let norm = Normalize {
            mean: mean.clone(),
            std: std.clone(),
        };
        let size = batch.shape[1].min(batch.shape[2]) as i64;
        let mut cases = Vec::new();
        let mut add = |label: String, view: &ViewAugment, kind: ViewAugmentation, seed: u64| {
            let got = view.apply(&batch.tensor(), &mut AugRng::new(seed));
            ours.push(f32_vec(&got));
            labels.push(label);
            cases.push(reference_case(
                kind, batch, size, &norm, *cutout, *num_ops, seed,
            ));
        };
        // scan: `augmentation` = strong (the reference) and simclr (the ablation).
        for (k, kind) in [Strong, Simclr].into_iter().enumerate() {
            let p = ScanParams {
                augmentation: kind,
                cutout: *cutout,
                num_ops: *num_ops,
                ..ScanParams::default()
            };
            let view = ViewAugment::for_scan(&p, size, &norm_meta).expect("view");
            add(
                format!("scan {kind:?} on batch {b}"),
                &view,
                kind,
                100 + k as u64,
            );
        }
        // selflabel: weak / strong views under the reference setting and the ablations.
        for (k, (weak, strong)) in [(Plain, Strong), (Strong, Simclr), (Simclr, Plain)]
            .into_iter()
            .enumerate()
        {
            let p = SelflabelParams {
                weak_augmentation: weak,
                strong_augmentation: strong,
                cutout: *cutout,
                num_ops: *num_ops,
                ..SelflabelParams::default()
            };
            let (wv, sv) = selflabel::views(&p, size, &norm_meta).expect("views");
            add(
                format!("selflabel weak {weak:?} on batch {b}"),
                &wv,
                weak,
                200 + 2 * k as u64,
            );
            add(
                format!("selflabel strong {strong:?} on batch {b}"),
                &sv,
                strong,
                201 + 2 * k as u64,
            );
        }
        jobs.push(("view", batch, cases));
    }
    let expected = oracle(&ws, &jobs);
    let want: Vec<f32> = expected
        .concat()
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut offset = 0;
    let mut failures = Vec::new();
    for (got, label) in ours.iter().zip(&labels) {
        let theirs = &want[offset..offset + got.len()];
        offset += got.len();
        let worst = got
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{label}: max |Δ| {worst:e}");
        if worst > 0.0 {
            failures.push(format!("{label}: max |Δ| {worst}"));
        }
    }
    assert_eq!(offset, want.len(), "oracle output size");
    assert!(
        failures.is_empty(),
        "views differ from the reference:\n{}",
        failures.join("\n")
    );
}
