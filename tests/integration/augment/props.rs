//! Properties without an oracle: shapes and value ranges, exact flip mirroring, per-sample
//! parameters, probabilities, torchvision's crop fallback, Cutout geometry, determinism
//! and (feature `cuda-tests`) bit-identical results on CUDA.

use scan::augment::{
    random_resized_crop_box, AugRng, CropBox, Cutout, Normalize, SimclrAugment, SimclrParams,
    StrongAugment, StrongParams,
};
use tch::{Kind, Tensor};

use super::{f32_vec, Batch};

fn simclr_batch() -> (SimclrAugment, Tensor) {
    (
        SimclrAugment::cifar(32, Normalize::cifar10()),
        Batch::new(6, 32, 32, 3, 21).tensor(),
    )
}

#[test]
fn simclr_shapes_ranges_and_determinism() {
    let (aug, x) = simclr_batch();
    let a = aug.apply(&x, &mut AugRng::new(5));
    assert_eq!(a.size(), [6, 3, 32, 32]);
    assert_eq!(a.kind(), Kind::Float);
    let n = &aug.normalize;
    let v = f32_vec(&a);
    for (i, val) in v.iter().enumerate() {
        let ch = (i / 1024) % 3;
        let (lo, hi) = (
            (-n.mean[ch] / n.std[ch]) as f32,
            ((1.0 - n.mean[ch]) / n.std[ch]) as f32,
        );
        assert!(
            val.is_finite() && *val >= lo - 1e-5 && *val <= hi + 1e-5,
            "value {val} outside [{lo}, {hi}]"
        );
    }
    let b = aug.apply(&x, &mut AugRng::new(5));
    assert!(a.equal(&b), "same seed must give the same output");
    let c = aug.apply(&x, &mut AugRng::new(6));
    assert!(!a.equal(&c), "different seeds must differ");
    // One-channel images (Fashion-MNIST): shape and determinism.
    let aug1 = SimclrAugment::cifar(
        28,
        Normalize {
            mean: vec![0.286],
            std: vec![0.353],
        },
    );
    let x1 = Batch::new(4, 28, 28, 1, 22).tensor();
    let o1 = aug1.apply(&x1, &mut AugRng::new(1));
    assert_eq!(o1.size(), [4, 1, 28, 28]);
    assert!(o1.equal(&aug1.apply(&x1, &mut AugRng::new(1))));
}

#[test]
fn simclr_flip_exactly_mirrors_and_samples_differ() {
    let (aug, x) = simclr_batch();
    let params = aug.sample_params(6, 32, 32, &mut AugRng::new(9));
    let flipped: Vec<SimclrParams> = params
        .iter()
        .map(|p| SimclrParams {
            flip: !p.flip,
            ..*p
        })
        .collect();
    let a = aug.apply_with_params(&x, &params);
    let b = aug.apply_with_params(&x, &flipped);
    assert!(
        a.equal(&b.flip([3i64].as_slice())),
        "a flipped view must mirror the unflipped one exactly"
    );
    // The same image six times in one batch: every sample gets its own parameters.
    let same = x.narrow(0, 0, 1).expand([6, 32, 32, 3], false).contiguous();
    let out = aug.apply(&same, &mut AugRng::new(3));
    for i in 0..6 {
        for j in 0..i {
            assert!(
                !out.get(i).equal(&out.get(j)),
                "samples {i} and {j} got identical views"
            );
        }
    }
}

#[test]
fn simclr_probabilities_and_crop_boxes() {
    let (aug, _) = simclr_batch();
    let n = 20_000;
    let params = aug.sample_params(n, 32, 40, &mut AugRng::new(17));
    let frac = |f: &dyn Fn(&SimclrParams) -> bool| {
        params.iter().filter(|p| f(p)).count() as f64 / n as f64
    };
    let gray = frac(&|p| p.gray);
    let jitter = frac(&|p| p.jitter.is_some());
    let flip = frac(&|p| p.flip);
    assert!((gray - 0.2).abs() < 0.015, "grayscale fraction {gray}");
    assert!((jitter - 0.8).abs() < 0.015, "jitter fraction {jitter}");
    assert!((flip - 0.5).abs() < 0.015, "flip fraction {flip}");
    for p in &params {
        let b = p.crop;
        assert!(
            b.top >= 0 && b.left >= 0 && b.top + b.height <= 32 && b.left + b.width <= 40,
            "{b:?}"
        );
        // Rounding to integers can move area and ratio a little outside the drawn ranges.
        let area = (b.height * b.width) as f64 / (32.0 * 40.0);
        let ratio = b.width as f64 / b.height as f64;
        assert!(
            (0.17..=1.0).contains(&area) && (0.6..=1.6).contains(&ratio),
            "{b:?}"
        );
        if let Some(j) = p.jitter {
            assert!((0.6..1.4).contains(&j.brightness) && (0.6..1.4).contains(&j.contrast));
            assert!((0.6..1.4).contains(&j.saturation) && (-0.1..0.1).contains(&j.hue));
        }
    }
    // Grayscale views have equal channels.
    let x = Batch::new(64, 16, 16, 3, 5).tensor();
    let aug16 = SimclrAugment::cifar(
        16,
        Normalize {
            mean: vec![0.5],
            std: vec![0.25],
        },
    );
    let params = aug16.sample_params(64, 16, 16, &mut AugRng::new(2));
    let px = aug16.pixels_with_params(&x, &params);
    for (i, p) in params.iter().enumerate() {
        let img = px.get(i as i64);
        let equal = img.get(0).equal(&img.get(1)) && img.get(1).equal(&img.get(2));
        assert!(
            !p.gray || equal,
            "sample {i}: grayscale view with unequal channels"
        );
    }
}

#[test]
fn random_resized_crop_fallback_is_torchvision_centre_crop() {
    let mut rng = AugRng::new(0);
    // A scale range no box can satisfy forces the fallback; a 10 × 40 image has ratio 4 > 4/3.
    let b = random_resized_crop_box(10, 40, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
    assert_eq!(
        b,
        CropBox {
            top: 0,
            left: 13,
            height: 10,
            width: 13
        }
    );
    let b = random_resized_crop_box(40, 10, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
    assert_eq!(
        b,
        CropBox {
            top: 13,
            left: 0,
            height: 13,
            width: 10
        }
    );
    let b = random_resized_crop_box(20, 20, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
    assert_eq!(
        b,
        CropBox {
            top: 0,
            left: 0,
            height: 20,
            width: 20
        }
    );
}

#[test]
fn cutout_zeroes_exactly_one_square() {
    // Mean 0.5 never normalises an integer pixel to exactly 0, so zeros come from Cutout only.
    let norm = Normalize {
        mean: vec![0.5],
        std: vec![0.25],
    };
    let aug = StrongAugment {
        crop_size: 28,
        num_ops: 4,
        cutout: 12,
        flip_p: 0.5,
        normalize: norm,
    };
    let x = Batch::new(32, 28, 28, 1, 8).tensor();
    let params = aug.sample_params(32, 28, 28, &mut AugRng::new(77));
    let out = aug.apply(&x, &mut AugRng::new(77));
    assert!(
        out.equal(&aug.apply_with_params(&x, &params)),
        "apply must use the rng exactly as sample_params"
    );
    assert_eq!(out.size(), [32, 1, 28, 28]);
    let v = f32_vec(&out);
    for (i, p) in params.iter().enumerate() {
        let Cutout { len, cy, cx } = p.cutout;
        assert!((1..=12).contains(&len) && (0..28).contains(&cy) && (0..28).contains(&cx));
        let half = len / 2;
        let (y1, y2, x1, x2) = (
            (cy - half).max(0),
            (cy + half).min(28),
            (cx - half).max(0),
            (cx + half).min(28),
        );
        for y in 0..28 {
            for x in 0..28 {
                let zero = v[i * 784 + (y * 28 + x) as usize] == 0.0;
                let inside = y >= y1 && y < y2 && x >= x1 && x < x2;
                assert_eq!(
                    zero,
                    inside,
                    "sample {i} pixel ({y}, {x}), square {:?}",
                    (y1, y2, x1, x2)
                );
            }
        }
        assert!(y2 - y1 <= 12 && x2 - x1 <= 12);
    }
}

#[test]
fn strong_crop_flip_and_determinism() {
    let aug = StrongAugment {
        crop_size: 20,
        num_ops: 0,
        cutout: 1,
        flip_p: 0.5,
        normalize: Normalize {
            mean: vec![0.0],
            std: vec![1.0 / 255.0],
        },
    };
    let x = Batch::new(8, 28, 24, 3, 31).tensor();
    let params: Vec<StrongParams> = aug.sample_params(8, 28, 24, &mut AugRng::new(4));
    assert!(params
        .iter()
        .any(|p| p.crop_top != params[0].crop_top || p.crop_left != params[0].crop_left));
    // With no ops, std 1/255 and cutout of side 1 (an empty square) the output is the crop itself.
    let out = aug.apply_with_params(&x, &params);
    for (i, p) in params.iter().enumerate() {
        let src = x.get(i as i64).permute([2, 0, 1]).to_kind(Kind::Float);
        let src = if p.flip {
            src.flip([2i64].as_slice())
        } else {
            src
        };
        let want = src.narrow(1, p.crop_top, 20).narrow(2, p.crop_left, 20);
        let diff = (out.get(i as i64) - want).abs().max().double_value(&[]);
        assert!(diff < 1e-3, "sample {i}: crop/flip mismatch {diff}");
    }
    let full = StrongAugment {
        crop_size: 28,
        num_ops: 4,
        cutout: 16,
        flip_p: 0.5,
        normalize: Normalize::cifar10(),
    };
    let y = Batch::new(8, 28, 28, 3, 32).tensor();
    let a = full.apply(&y, &mut AugRng::new(1));
    assert!(a.equal(&full.apply(&y, &mut AugRng::new(1))));
    assert!(!a.equal(&full.apply(&y, &mut AugRng::new(2))));
}

#[cfg(feature = "cuda-tests")]
#[test]
fn cuda_matches_cpu_exactly() {
    assert!(tch::Cuda::is_available(), "cuda-tests need a CUDA device");
    let dev = tch::Device::Cuda(0);
    let x = Batch::new(64, 32, 32, 3, 51).tensor();
    let simclr = SimclrAugment::cifar(32, Normalize::cifar10());
    let strong = StrongAugment {
        crop_size: 32,
        num_ops: 4,
        cutout: 16,
        flip_p: 0.5,
        normalize: Normalize::cifar10(),
    };
    let a = simclr.apply(&x, &mut AugRng::new(3));
    let b = simclr
        .apply(&x.to_device(dev), &mut AugRng::new(3))
        .to_device(tch::Device::Cpu);
    assert!(
        a.equal(&b),
        "SimCLR: CUDA differs from CPU by {}",
        (a - b).abs().max().double_value(&[])
    );
    let a = strong.apply(&x, &mut AugRng::new(4));
    let b = strong
        .apply(&x.to_device(dev), &mut AugRng::new(4))
        .to_device(tch::Device::Cpu);
    assert!(
        a.equal(&b),
        "strong: CUDA differs from CPU by {}",
        (a - b).abs().max().double_value(&[])
    );
}
