//! The strength of each training augmentation as a distribution, not draw by draw: two views of each
//! of 5 000 real Fashion-MNIST test images, ours (each augmentation drawing its own parameters) against
//! the reference's pipeline drawing *its* own parameters in Python (`strength.py`: torchvision's
//! transforms for SimCLR; the reference's RandAugment list, torchvision flip/crop and Cutout for the
//! strong augmentation; ops from Pillow). Per image: mean |view₁ − view₂|, and each view's pixel
//! mean and standard deviation, in normalised units. The per-op and per-draw tests (`pil`, `views`)
//! show that a given draw gives the reference's pixels; this one shows that the draws are as strong as
//! the reference's (a magnitude range, a probability or a sign drawn wrongly would show here).
//!
//! Criterion: the two sample means differ by at most 4 standard errors of their difference.
//! Measured (2-core AMD EPYC, 5 000 images): SimCLR mean |v₁ − v₂| 0.734 vs 0.748 (−2.3 SE), view
//! mean −0.7 SE, view std −0.4 SE; strong 0.613 vs 0.616 (−0.5 SE), +0.1 SE, +0.7 SE. Power: with
//! 3 RandAugment ops instead of 4, the strong mean |v₁ − v₂| falls to 0.571 vs 0.616, −5.2 SE on
//! 2 000 images (fails).

use scan::augment::{AugRng, Normalize, SimclrAugment, StrongAugment};
use serde_json::Value;
use tch::{Kind, Tensor};

use crate::common::{run_python, Workspace};

const STRENGTH: &str = include_str!("strength.py");
const N: usize = 5000;
const MEAN: f64 = 0.2860;
const STD: f64 = 0.3530;

/// Per-image statistics of two views `[n, c, h, w]`: (mean |v1 − v2|, view means, view stds).
fn view_stats(v1: &Tensor, v2: &Tensor) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let per_image =
        |t: Tensor| -> Vec<f64> { Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap() };
    let l1 = per_image(
        (v1 - v2)
            .abs()
            .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float),
    );
    let (mut means, mut stds) = (Vec::new(), Vec::new());
    let flat = |v: &Tensor| v.flatten(1, -1);
    let (m1, m2) = (
        per_image(flat(v1).mean_dim(1, false, Kind::Float)),
        per_image(flat(v2).mean_dim(1, false, Kind::Float)),
    );
    let (s1, s2) = (
        per_image(flat(v1).std_correction(1, 0, false)),
        per_image(flat(v2).std_correction(1, 0, false)),
    );
    for i in 0..m1.len() {
        means.extend([m1[i], m2[i]]);
        stds.extend([s1[i], s2[i]]);
    }
    (l1, means, stds)
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Compare one statistic; returns a line for the log, panics beyond 4 standard errors.
fn compare(what: &str, ours: &[f64], reference: &Value) -> String {
    let reference: Vec<f64> = serde_json::from_value(reference.clone()).expect("reference stats");
    let ((mo, so), (mr, sr)) = (mean_se(ours), mean_se(&reference));
    let z = (mo - mr) / (so * so + sr * sr).sqrt();
    let line = format!(
        "{what}: ours {mo:.4}, reference {mr:.4}, difference {:+.4} ({z:+.2} SE)",
        mo - mr
    );
    assert!(z.abs() <= 4.0, "{line}: beyond 4 standard errors");
    line
}

#[test]
fn augmentation_strength_matches_the_reference() {
    let ws = Workspace::new();
    let images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    let code = format!(
        "{}\n{STRENGTH}",
        super::ORACLE.split("# -- jobs").next().unwrap()
    );
    let (n, mean, std) = (N.to_string(), MEAN.to_string(), STD.to_string());
    run_python(
        &code,
        &[images, &n, &mean, &std, ws.path().to_str().unwrap()],
    );
    let raw = std::fs::read(ws.join("images.u8")).expect("images");
    let x = Tensor::from_slice(&raw).view([N as i64, 28, 28, 1]);
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("reference.json")).unwrap()).unwrap();
    let norm = Normalize {
        mean: vec![MEAN],
        std: vec![STD],
    };
    let simclr = SimclrAugment::cifar(28, norm.clone());
    let strong = StrongAugment {
        crop_size: 28,
        num_ops: 4,
        cutout: 8,
        flip_p: 0.5,
        normalize: norm,
    };
    let mut rng = AugRng::new(0);
    let mut lines = Vec::new();
    for (name, v1, v2) in [
        (
            "simclr",
            simclr.apply(&x, &mut rng),
            simclr.apply(&x, &mut rng),
        ),
        (
            "strong",
            strong.apply(&x, &mut rng),
            strong.apply(&x, &mut rng),
        ),
    ] {
        let (l1, means, stds) = view_stats(&v1, &v2);
        let r = &reference[name];
        lines.push(compare(
            &format!("{name} mean |view1 - view2|"),
            &l1,
            &r["l1"],
        ));
        lines.push(compare(
            &format!("{name} view pixel mean"),
            &means,
            &r["mean"],
        ));
        lines.push(compare(&format!("{name} view pixel std"), &stds, &r["std"]));
    }
    eprintln!("{}", lines.join("\n"));
}
