//! Benchmark: one SimCLR training step of the quickstart's network on the CPU — ResNet-18 of
//! width 8 on 1×28×28 images, two views of 256 images in one forward pass, bf16 autocast and
//! channels-last, NT-Xent loss, backward and SGD — with the narrow channels-last BatchNorm kernel
//! and with libtorch's `batch_norm` + `add` + `relu`, alternating in rounds so that both see the
//! same machine state. Prints the median step time of each and their ratio, then the same for one
//! BatchNorm + residual + ReLU of the first stage alone (forward, and forward + backward).
//!
//! `cargo bench --bench train_step [-- ROUNDS STEPS]` (default 8 rounds of 5 steps each).

use std::time::Instant;

use scan::nn::batch_norm::with_libtorch_batch_norm;
use scan::nn::precision::Precision;
use scan::nn::{Arch, Model, ModelConfig};
use scan::train::optim::{OptimKind, Optimizer};
use tch::{Device, Kind, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (rounds, steps) = (*args.first().unwrap_or(&8), *args.get(1).unwrap_or(&5));
    scan::nn::init_threads();
    tch::manual_seed(0);
    let config = ModelConfig {
        arch: Arch::Cifar,
        in_channels: 1,
        width: 8,
        proj_dim: 128,
        num_heads: 0,
        num_classes: 0,
    };
    let mut model = Model::simclr(config, Device::Cpu);
    model.use_channels_last();
    let params = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let mut opt = Optimizer::new(
        OptimKind::Sgd {
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        params,
    );
    let x = Tensor::randn([512, 1, 28, 28], (Kind::Float, Device::Cpu));
    let mut step = |model: &Model| {
        let z = Precision::Bf16.autocast(Device::Cpu, || model.simclr_forward(&x, true));
        let loss = scan::losses::simclr_loss(&z.to_kind(Kind::Float), 0.1);
        opt.zero_grad();
        loss.backward();
        opt.step(0.01);
    };
    // Warm-up: oneDNN builds its kernels on first use.
    for _ in 0..2 {
        step(&model);
        with_libtorch_batch_norm(|| step(&model));
    }
    let (mut fused, mut libtorch) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for _ in 0..steps {
            let t = Instant::now();
            step(&model);
            fused.push(t.elapsed().as_secs_f64() * 1e3);
        }
        for _ in 0..steps {
            let t = Instant::now();
            with_libtorch_batch_norm(|| step(&model));
            libtorch.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (f, l) = (median(fused), median(libtorch));
    println!(
        "SimCLR step, width 8, 2×256 images 28×28, bf16 + channels-last, {} threads, {rounds}×{steps} steps each:",
        tch::get_num_threads()
    );
    println!("  libtorch batch_norm + add + relu: median {l:.1} ms");
    println!("  narrow channels-last kernel:      median {f:.1} ms");
    println!("  ratio: {:.2}×", l / f);
    layer_alone(rounds, steps);
}

/// One BatchNorm + residual + ReLU of the first stage alone, forward and backward.
fn layer_alone(rounds: usize, steps: usize) {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let bn = scan::nn::batch_norm::BatchNorm::new(vs.root() / "bn", 8);
    let cl = |t: Tensor| scan::nn::precision::channels_last(&t).to_kind(Kind::BFloat16);
    let x = cl(Tensor::randn([512, 8, 28, 28], (Kind::Float, Device::Cpu))).set_requires_grad(true);
    let r = cl(Tensor::randn([512, 8, 28, 28], (Kind::Float, Device::Cpu))).set_requires_grad(true);
    let dy = cl(Tensor::randn([512, 8, 28, 28], (Kind::Float, Device::Cpu)));
    let run = || {
        let t = Instant::now();
        let y = bn.forward(&x, Some(&r), true, true);
        let f = t.elapsed().as_secs_f64() * 1e3;
        let _ = Tensor::run_backward(&[(&y * &dy).sum(Kind::Float)], &[&x, &r], false, false);
        (f, t.elapsed().as_secs_f64() * 1e3)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds * steps {
        a.push(run());
        b.push(with_libtorch_batch_norm(run));
    }
    let m = |v: &[(f64, f64)]| {
        (
            median(v.iter().map(|p| p.0).collect()),
            median(v.iter().map(|p| p.1).collect()),
        )
    };
    let ((fa, ta), (fb, tb)) = (m(&a), m(&b));
    println!("BatchNorm + residual + ReLU, [512, 8, 28, 28] bf16 channels-last, forward / forward + backward:");
    println!("  libtorch:                         median {fb:.1} / {tb:.1} ms");
    println!("  narrow channels-last kernel:      median {fa:.1} / {ta:.1} ms");
    println!("  ratio: {:.2}× / {:.2}×", fb / fa, tb / ta);
}
