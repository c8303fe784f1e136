//! Integration tests: the batched augmentations (METHOD.md §3 SimCLR, §7 strong). `pil` compares every
//! op and both pipelines with Python PIL doing the same on fixed images (the reference pipeline's
//! semantics, oracle in `augment/oracle.py`); `props` checks shapes, ranges, probabilities,
//! determinism and Cutout geometry; `views` checks that each augmentation setting of `scan` and
//! `selflabel` builds the view the reference builds for it. This file holds the shared fixture.

mod pil;
mod props;
mod strength;
mod views;

use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use super::common::{run_python, Workspace};

/// The PIL oracle: `python oracle.py spec.json`.
const ORACLE: &str = include_str!("augment/oracle.py");

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

/// One batch of test images.
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
    /// uint8 `[n, h, w, c]`.
    fn tensor(&self) -> Tensor {
        Tensor::from_slice(&self.data).view(self.shape.map(|v| v as i64))
    }
    fn label(&self) -> String {
        format!("{}x{}x{}", self.shape[1], self.shape[2], self.shape[3])
    }
}

/// The batches of the PIL comparisons: RGB and L, square and non-square.
fn batches() -> Vec<Batch> {
    vec![
        Batch::new(3, 32, 32, 3, 1),
        Batch::new(3, 32, 32, 1, 2),
        Batch::new(3, 24, 40, 3, 3),
        Batch::new(3, 28, 20, 1, 4),
    ]
}

/// Runs the oracle on jobs `(kind, batch, cases)`; returns each job's raw output bytes.
fn oracle(ws: &Workspace, jobs: &[(&str, &Batch, Vec<Value>)]) -> Vec<Vec<u8>> {
    let mut spec = Vec::new();
    for (k, (kind, batch, cases)) in jobs.iter().enumerate() {
        let input = ws.join(&format!("in{k}.bin"));
        std::fs::write(&input, &batch.data).unwrap();
        let output = ws.join(&format!("out{k}.bin"));
        spec.push(json!({"kind": kind, "shape": batch.shape, "input": input, "output": output, "cases": cases}));
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
    let differing = diffs.iter().filter(|&&d| d > 0).count();
    (
        diffs.iter().copied().max().unwrap_or(0),
        differing as f64 / diffs.len().max(1) as f64,
    )
}

fn u8_vec(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(&t.to_device(Device::Cpu).contiguous().view([-1])).unwrap()
}

fn f32_vec(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    Vec::<f32>::try_from(&t.view([-1])).unwrap()
}
