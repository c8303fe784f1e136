//! Integration tests: the batched augmentations (spec §3 SimCLR, §7 strong) against Python PIL doing
//! the same ops on the same fixed images (the reference pipeline's semantics), plus the statistical,
//! determinism and speed properties that need no oracle.

use scan::augment::{
    apply_op, AugRng, CropBox, Cutout, Jitter, Normalize, SimclrAugment, SimclrParams,
    StrongAugment, StrongOp, StrongParams,
};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use super::common::{run_python, Workspace};

/// The PIL oracle: runs the jobs of a JSON spec on raw uint8 NHWC files and writes raw outputs.
const ORACLE: &str = r#"
import json, sys
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

def to_pil(a):
    return Image.fromarray(a[:, :, 0], 'L') if a.shape[2] == 1 else Image.fromarray(a, 'RGB')

def from_pil(im, c):
    a = np.asarray(im, dtype=np.uint8)
    return a.reshape(a.shape[0], a.shape[1], c)

def strong_op(img, op, v):
    # The reference's data/augment.py ops, with the sign already applied to v.
    if op == 'Identity': return img
    if op == 'AutoContrast': return ImageOps.autocontrast(img)
    if op == 'Equalize': return ImageOps.equalize(img)
    if op == 'Rotate': return img.rotate(v)
    if op == 'Solarize': return ImageOps.solarize(img, v)
    if op == 'Color': return ImageEnhance.Color(img).enhance(v)
    if op == 'Contrast': return ImageEnhance.Contrast(img).enhance(v)
    if op == 'Brightness': return ImageEnhance.Brightness(img).enhance(v)
    if op == 'Sharpness': return ImageEnhance.Sharpness(img).enhance(v)
    if op == 'ShearX': return img.transform(img.size, Image.AFFINE, (1, v, 0, 0, 1, 0))
    if op == 'ShearY': return img.transform(img.size, Image.AFFINE, (1, 0, 0, v, 1, 0))
    if op == 'TranslateX': return img.transform(img.size, Image.AFFINE, (1, 0, v * img.size[0], 0, 1, 0))
    if op == 'TranslateY': return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, v * img.size[1]))
    if op == 'Posterize': return ImageOps.posterize(img, max(1, int(v)))
    raise ValueError(op)

def hue(img, factor):
    # torchvision's PIL adjust_hue without torchvision: 8-bit HSV, H += trunc(f*255) mod 256.
    if img.mode == 'L': return img
    h, s, v = img.convert('HSV').split()
    nh = (np.asarray(h).astype(np.int64) + int(np.trunc(factor * 255))) % 256
    return Image.merge('HSV', (Image.fromarray(nh.astype(np.uint8), 'L'), s, v)).convert('RGB')

def simclr(img, p, size):
    t, l, h, w = p['box']
    img = img.crop((l, t, l + w, t + h)).resize((size, size), Image.BILINEAR)
    if p['flip']: img = img.transpose(Image.FLIP_LEFT_RIGHT)
    j = p['jitter']
    if j is not None:
        for k in j['order']:
            if k == 0: img = ImageEnhance.Brightness(img).enhance(j['b'])
            elif k == 1: img = ImageEnhance.Contrast(img).enhance(j['c'])
            elif k == 2: img = ImageEnhance.Color(img).enhance(j['s'])
            else: img = hue(img, j['h'])
    if p['gray'] and img.mode == 'RGB':
        g = np.asarray(img.convert('L'))
        img = Image.fromarray(np.dstack([g, g, g]), 'RGB')
    return img

def strong(img, p, size, c, mean, std):
    if p['flip']: img = img.transpose(Image.FLIP_LEFT_RIGHT)
    t, l = p['crop']
    img = img.crop((l, t, l + size, t + size))
    for op, v in p['ops']:
        img = strong_op(img, op, v)
    x = from_pil(img, c).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    y1, y2, x1, x2 = p['cut']
    x[y1:y2, x1:x2, :] = 0
    return np.ascontiguousarray(x.transpose(2, 0, 1))

spec = json.load(open(sys.argv[1]))
for job in spec['jobs']:
    n, h, w, c = job['shape']
    imgs = np.fromfile(job['input'], dtype=np.uint8).reshape(n, h, w, c)
    outs = []
    for case in job['cases']:
        for i in range(n):
            im = to_pil(imgs[i])
            if job['kind'] == 'op':
                outs.append(from_pil(strong_op(im, case['op'], case['v']), c))
            elif job['kind'] == 'simclr':
                outs.append(from_pil(simclr(im, case['params'][i], case['size']), c))
            else:
                outs.append(strong(im, case['params'][i], case['size'], c, case['mean'], case['std']))
    np.concatenate([o.ravel() for o in outs]).tofile(job['output'])
"#;

/// Deterministic test images `[n, h, w, c]`: image k is a gradient plus noise (k % 3 = 0), a
/// low-contrast version (1), or a few flat grey levels with noise (2).
fn images(n: usize, h: usize, w: usize, c: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 33) as f64 / (1u64 << 31) as f64 - 0.5
    };
    let mut out = Vec::with_capacity(n * h * w * c);
    for k in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let g = 255.0 * x as f64 / w as f64 * 0.7
                        + 90.0 * y as f64 / h as f64
                        + 40.0 * ch as f64;
                    let v = match k % 3 {
                        0 => g - 40.0 + 70.0 * noise(),
                        1 => 70.0 + 0.35 * g + 20.0 * noise(),
                        _ => 60.0 * ((g / 80.0).floor() + ch as f64) + 4.0 * noise().signum(),
                    };
                    out.push(v.clamp(0.0, 255.0).round() as u8);
                }
            }
        }
    }
    out
}

/// One batch of test images and its tensor.
struct Batch {
    shape: [usize; 4],
    data: Vec<u8>,
}

impl Batch {
    fn new(n: usize, h: usize, w: usize, c: usize, seed: u64) -> Self {
        Batch {
            shape: [n, h, w, c],
            data: images(n, h, w, c, seed),
        }
    }
    fn tensor(&self) -> Tensor {
        let s = self.shape.map(|v| v as i64);
        Tensor::from_slice(&self.data).view(s)
    }
    fn label(&self) -> String {
        format!("{}x{}x{}", self.shape[1], self.shape[2], self.shape[3])
    }
}

/// The batches the PIL comparisons use: RGB and L, square and non-square.
fn batches() -> Vec<Batch> {
    vec![
        Batch::new(3, 32, 32, 3, 1),
        Batch::new(3, 32, 32, 1, 2),
        Batch::new(3, 24, 40, 3, 3),
        Batch::new(3, 28, 20, 1, 4),
    ]
}

/// Runs the oracle on jobs `(kind, batch, cases)` and returns each job's raw output bytes.
fn oracle(ws: &Workspace, jobs: &[(&str, &Batch, Vec<Value>)]) -> Vec<Vec<u8>> {
    let mut spec = Vec::new();
    for (k, (kind, batch, cases)) in jobs.iter().enumerate() {
        let input = ws.join(&format!("in{k}.bin"));
        std::fs::write(&input, &batch.data).unwrap();
        spec.push(json!({"kind": kind, "shape": batch.shape, "input": input, "output": ws.join(&format!("out{k}.bin")), "cases": cases}));
    }
    let spec_path = ws.write("spec.json", &json!({ "jobs": spec }).to_string());
    run_python(ORACLE, &[spec_path.to_str().unwrap()]);
    (0..jobs.len())
        .map(|k| std::fs::read(ws.join(&format!("out{k}.bin"))).unwrap())
        .collect()
}

/// (max |difference|, fraction of differing values) of two uint8 buffers.
fn compare(a: &[u8], b: &[u8]) -> (i32, f64) {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    let diffs: Vec<i32> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as i32 - y as i32).abs())
        .collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    (
        max,
        diffs.iter().filter(|&&d| d > 0).count() as f64 / diffs.len().max(1) as f64,
    )
}

fn u8_vec(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(&t.to_device(Device::Cpu).contiguous().view([-1])).unwrap()
}

fn f32_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(
        &t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .view([-1]),
    )
    .unwrap()
}

/// Magnitudes each op is checked at (signed where the op takes a random sign).
fn magnitudes(op: StrongOp) -> Vec<f64> {
    match op {
        StrongOp::Identity | StrongOp::AutoContrast | StrongOp::Equalize => vec![0.5],
        StrongOp::Rotate => vec![-30.0, -17.3, 0.0, 4.25, 12.5, 29.9],
        StrongOp::Solarize => vec![0.0, 37.5, 128.0, 200.2, 255.9],
        StrongOp::Color | StrongOp::Contrast | StrongOp::Brightness | StrongOp::Sharpness => {
            vec![0.05, 0.37, 0.95, 1.6]
        }
        StrongOp::ShearX | StrongOp::ShearY => vec![-0.1, -0.033, 0.071, 0.1],
        StrongOp::TranslateX | StrongOp::TranslateY => vec![-0.1, -0.047, 0.063, 0.1],
        StrongOp::Posterize => vec![4.0, 5.7, 7.99],
    }
}

/// Tolerance per op: (max grey-level difference, max fraction of differing values). Every op
/// reproduces PIL's integer arithmetic, so the measured difference is 0 everywhere; the bounds allow
/// ±1 on a sliver of values (a float32 tie broken differently by another Pillow build) and, for the
/// geometry, a few boundary pixels (0.5 %).
fn tolerance(op: StrongOp) -> (i32, f64) {
    match op {
        StrongOp::Rotate
        | StrongOp::ShearX
        | StrongOp::ShearY
        | StrongOp::TranslateX
        | StrongOp::TranslateY => (255, 0.005),
        StrongOp::Identity => (0, 0.0),
        _ => (1, 0.002),
    }
}

#[test]
fn each_strong_op_matches_pil() {
    let ws = Workspace::new();
    let batches = batches();
    let cases: Vec<Value> = StrongOp::ALL
        .iter()
        .flat_map(|&op| {
            magnitudes(op)
                .into_iter()
                .map(move |v| json!({"op": format!("{op:?}"), "v": v}))
        })
        .collect();
    let jobs: Vec<(&str, &Batch, Vec<Value>)> =
        batches.iter().map(|b| ("op", b, cases.clone())).collect();
    let expected = oracle(&ws, &jobs);
    let mut failures = Vec::new();
    let mut worst = std::collections::BTreeMap::new();
    for (batch, want) in batches.iter().zip(&expected) {
        let per_case = batch.data.len();
        let mut k = 0;
        for op in StrongOp::ALL {
            for v in magnitudes(op) {
                let got = u8_vec(&apply_op(&batch.tensor(), op, v));
                let (max, frac) = compare(&got, &want[k * per_case..(k + 1) * per_case]);
                let w = worst.entry(format!("{op:?}")).or_insert((0, 0.0f64));
                *w = (w.0.max(max), w.1.max(frac));
                let (tol_max, tol_frac) = tolerance(op);
                if max > tol_max || frac > tol_frac {
                    failures.push(format!(
                        "{op:?}({v}) on {}: max diff {max}, {:.4} differ",
                        batch.label(),
                        frac
                    ));
                }
                k += 1;
            }
        }
    }
    eprintln!("measured (max diff, fraction differing) per op: {worst:?}");
    assert!(
        failures.is_empty(),
        "ops differ from PIL:\n{}",
        failures.join("\n")
    );
}

/// SimCLR parameters for tests: `box`, flip, jitter.
fn sp(crop: CropBox, flip: bool, jitter: Option<Jitter>, gray: bool) -> SimclrParams {
    SimclrParams {
        crop,
        flip,
        jitter,
        gray,
    }
}

fn params_json(p: &SimclrParams) -> Value {
    let b = p.crop;
    json!({
        "box": [b.top, b.left, b.height, b.width],
        "flip": p.flip,
        "gray": p.gray,
        "jitter": p.jitter.map(|j| json!({"order": j.order, "b": j.brightness, "c": j.contrast, "s": j.saturation, "h": j.hue})),
    })
}

#[test]
fn simclr_crop_resize_flip_and_jitter_match_pil() {
    let ws = Workspace::new();
    let batches = batches();
    let jit = |order: [usize; 4], b: f64, c: f64, s: f64, h: f64| {
        Some(Jitter {
            order,
            brightness: b,
            contrast: c,
            saturation: s,
            hue: h,
        })
    };
    // Per case and per image (3 per batch): boxes inside the smallest image (24 × 20).
    let cases: Vec<(i64, Vec<SimclrParams>)> = vec![
        // Crop + bilinear upscale (non-square boxes), flip.
        (
            32,
            vec![
                sp(
                    CropBox {
                        top: 3,
                        left: 2,
                        height: 11,
                        width: 17,
                    },
                    false,
                    None,
                    false,
                ),
                sp(
                    CropBox {
                        top: 0,
                        left: 0,
                        height: 20,
                        width: 15,
                    },
                    true,
                    None,
                    false,
                ),
                sp(
                    CropBox {
                        top: 10,
                        left: 5,
                        height: 14,
                        width: 9,
                    },
                    false,
                    None,
                    false,
                ),
            ],
        ),
        // Downscale (PIL's anti-aliasing support) and an identity-sized box.
        (
            12,
            vec![
                sp(
                    CropBox {
                        top: 1,
                        left: 1,
                        height: 23,
                        width: 19,
                    },
                    false,
                    None,
                    false,
                ),
                sp(
                    CropBox {
                        top: 0,
                        left: 3,
                        height: 12,
                        width: 12,
                    },
                    true,
                    None,
                    false,
                ),
                sp(
                    CropBox {
                        top: 2,
                        left: 0,
                        height: 17,
                        width: 20,
                    },
                    false,
                    None,
                    false,
                ),
            ],
        ),
        // Each jitter component alone (factors on both sides of 1), then all four in two orders, grayscale.
        (
            16,
            vec![
                sp(
                    CropBox {
                        top: 0,
                        left: 0,
                        height: 16,
                        width: 16,
                    },
                    false,
                    jit([0, 1, 2, 3], 1.37, 1.0, 1.0, 0.0),
                    false,
                ),
                sp(
                    CropBox {
                        top: 4,
                        left: 2,
                        height: 16,
                        width: 16,
                    },
                    false,
                    jit([1, 0, 2, 3], 1.0, 0.63, 1.0, 0.0),
                    false,
                ),
                sp(
                    CropBox {
                        top: 8,
                        left: 4,
                        height: 16,
                        width: 16,
                    },
                    false,
                    jit([2, 1, 0, 3], 1.0, 1.0, 1.39, 0.0),
                    false,
                ),
            ],
        ),
        (
            16,
            vec![
                sp(
                    CropBox {
                        top: 0,
                        left: 0,
                        height: 16,
                        width: 16,
                    },
                    false,
                    jit([3, 1, 2, 0], 0.61, 1.3, 1.0, 0.07),
                    false,
                ),
                sp(
                    CropBox {
                        top: 4,
                        left: 2,
                        height: 16,
                        width: 16,
                    },
                    true,
                    jit([3, 0, 1, 2], 1.0, 1.0, 1.0, -0.093),
                    false,
                ),
                sp(
                    CropBox {
                        top: 8,
                        left: 4,
                        height: 16,
                        width: 16,
                    },
                    false,
                    jit([0, 1, 2, 3], 0.6, 1.4, 0.65, -0.1),
                    true,
                ),
            ],
        ),
        (
            20,
            vec![
                sp(
                    CropBox {
                        top: 1,
                        left: 0,
                        height: 18,
                        width: 13,
                    },
                    true,
                    jit([2, 3, 0, 1], 1.21, 0.74, 0.6, 0.033),
                    false,
                ),
                sp(
                    CropBox {
                        top: 0,
                        left: 5,
                        height: 24,
                        width: 15,
                    },
                    false,
                    jit([1, 3, 2, 0], 0.93, 1.12, 1.33, -0.051),
                    true,
                ),
                sp(
                    CropBox {
                        top: 3,
                        left: 3,
                        height: 9,
                        width: 16,
                    },
                    false,
                    None,
                    true,
                ),
            ],
        ),
    ];
    let job_cases: Vec<Value> = cases
        .iter()
        .map(|(size, ps)| json!({"size": size, "params": ps.iter().map(params_json).collect::<Vec<_>>()}))
        .collect();
    let jobs: Vec<(&str, &Batch, Vec<Value>)> = batches
        .iter()
        .map(|b| ("simclr", b, job_cases.clone()))
        .collect();
    let expected = oracle(&ws, &jobs);
    let mut failures = Vec::new();
    for (batch, want) in batches.iter().zip(&expected) {
        let mut offset = 0;
        for (k, (size, ps)) in cases.iter().enumerate() {
            let aug = SimclrAugment::cifar(*size, Normalize::cifar10());
            let got = u8_vec(&scan::augment::to_u8_nhwc(
                &aug.pixels_with_params(&batch.tensor(), ps),
            ));
            let (max, frac) = compare(&got, &want[offset..offset + got.len()]);
            offset += got.len();
            // Exact in practice; ±1 on at most 0.2 % of values is allowed (float32 ties).
            if max > 1 || frac > 0.002 {
                failures.push(format!(
                    "case {k} on {}: max diff {max}, {frac:.4} differ",
                    batch.label()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "SimCLR differs from PIL:\n{}",
        failures.join("\n")
    );
}

#[test]
fn strong_pipeline_matches_pil_reference() {
    let ws = Workspace::new();
    let batches = [Batch::new(4, 32, 32, 3, 11), Batch::new(4, 28, 28, 1, 12)];
    let mut failures = Vec::new();
    let mut jobs = Vec::new();
    let mut results = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let normalize = if batch.shape[3] == 3 {
            Normalize::cifar10()
        } else {
            Normalize {
                mean: vec![0.286],
                std: vec![0.353],
            }
        };
        let aug = StrongAugment {
            crop_size: 24,
            num_ops: 4,
            cutout: 10,
            flip_p: 0.5,
            normalize,
        };
        let mut rng = AugRng::new(40 + b as u64);
        // Several rounds, so that every op appears in several slots.
        let mut cases = Vec::new();
        for _ in 0..6 {
            let params =
                aug.sample_params(4, batch.shape[1] as i64, batch.shape[2] as i64, &mut rng);
            results.push(f32_vec(&aug.apply_with_params(&batch.tensor(), &params)));
            let pj: Vec<Value> = params
                .iter()
                .map(|p| {
                    let (y1, y2, x1, x2) = p.cutout.bounds(24, 24);
                    let ops: Vec<Value> = p.ops.iter().map(|(op, v)| json!([format!("{op:?}"), v])).collect();
                    json!({"flip": p.flip, "crop": [p.crop_top, p.crop_left], "ops": ops, "cut": [y1, y2, x1, x2]})
                })
                .collect();
            let n = aug.normalize.clone();
            cases.push(json!({"size": 24, "params": pj, "mean": n.mean, "std": n.std}));
        }
        jobs.push(("strong", batch, cases));
    }
    let expected = oracle(&ws, &jobs);
    for (k, want) in expected.iter().enumerate() {
        let want: Vec<f32> = want
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let got: Vec<f32> = results[k * 6..(k + 1) * 6].concat();
        assert_eq!(got.len(), want.len());
        // PIL is uint8 → one grey level is 1/255/std ≈ 0.02 after normalisation.
        let off: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        let bad = off.iter().filter(|&&d| d > 1e-5).count();
        let worst = off.iter().cloned().fold(0.0, f32::max);
        if worst > 0.021 || bad as f64 > 0.002 * off.len() as f64 {
            failures.push(format!("batch {k}: worst {worst}, {bad} values differ"));
        }
    }
    assert!(
        failures.is_empty(),
        "strong pipeline differs from PIL:\n{}",
        failures.join("\n")
    );
}

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
    let b = scan::augment::random_resized_crop_box(10, 40, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
    assert_eq!(
        b,
        CropBox {
            top: 0,
            left: 13,
            height: 10,
            width: 13
        }
    );
    let b = scan::augment::random_resized_crop_box(40, 10, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
    assert_eq!(
        b,
        CropBox {
            top: 13,
            left: 0,
            height: 13,
            width: 10
        }
    );
    let b = scan::augment::random_resized_crop_box(20, 20, (2.0, 3.0), (0.75, 4.0 / 3.0), &mut rng);
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

#[test]
fn augmentations_are_fast_on_cpu() {
    let x = Batch::new(256, 28, 28, 1, 41).tensor();
    let norm = Normalize {
        mean: vec![0.286],
        std: vec![0.353],
    };
    let simclr = SimclrAugment::cifar(28, norm.clone());
    let strong = StrongAugment {
        crop_size: 28,
        num_ops: 4,
        cutout: 16,
        flip_p: 0.5,
        normalize: norm,
    };
    let mut rng = AugRng::new(0);
    let _ = simclr.apply(&x, &mut rng); // warm-up
    let t = std::time::Instant::now();
    let _ = simclr.apply(&x, &mut rng);
    let t_simclr = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let _ = strong.apply(&x, &mut rng);
    let t_strong = t.elapsed().as_secs_f64();
    eprintln!("256 images 28x28: simclr {t_simclr:.3} s, strong {t_strong:.3} s");
    // Well under a second on an idle core; the bound leaves room for a loaded CI machine.
    assert!(
        t_simclr < 2.0 && t_strong < 2.0,
        "too slow: simclr {t_simclr} s, strong {t_strong} s"
    );
}

#[cfg(feature = "cuda-tests")]
#[test]
fn cuda_matches_cpu_exactly() {
    assert!(tch::Cuda::is_available(), "cuda-tests need a CUDA device");
    let dev = Device::Cuda(0);
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
        .to_device(Device::Cpu);
    assert!(
        a.equal(&b),
        "SimCLR: CUDA differs from CPU by {}",
        (a - b).abs().max().double_value(&[])
    );
    let a = strong.apply(&x, &mut AugRng::new(4));
    let b = strong
        .apply(&x.to_device(dev), &mut AugRng::new(4))
        .to_device(Device::Cpu);
    assert!(
        a.equal(&b),
        "strong: CUDA differs from CPU by {}",
        (a - b).abs().max().double_value(&[])
    );
}
