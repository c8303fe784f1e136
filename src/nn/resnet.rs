//! ResNet-18 backbone of the reference code (METHOD.md §3.1): CIFAR variant (3×3 stride-1 stem, no
//! max-pool) and STL variant (adds MaxPool2d(2, 2, padding 1) after the stem). `width` scales the
//! base channel count (64 in the paper) so tests and the CPU quickstart can use a tiny network.
//!
//! Init as the reference: convs kaiming-normal (fan_out, relu), BatchNorm weight 1 / bias 0,
//! eps 1e-5, momentum 0.1. Variable names are the reference state_dict's (`backbone.layer1.0.conv1.weight`, …).

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::batch_norm::BatchNorm;

/// Which stem the backbone uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 32×32 (also fine at 28×28): no max-pool.
    Cifar,
    /// 96×96: max-pool after the stem.
    Stl,
}

/// Kaiming-normal, fan_out, ReLU gain: std = sqrt(2 / (out_channels · k · k)).
fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let std = (2.0 / (cout * k * k) as f64).sqrt();
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: std,
        },
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    conv2: nn::Conv2D,
    bn2: BatchNorm,
    shortcut: Option<(nn::Conv2D, BatchNorm)>,
}

impl BasicBlock {
    fn new(p: &nn::Path, cin: i64, cout: i64, stride: i64) -> Self {
        let shortcut = (stride != 1 || cin != cout).then(|| {
            let s = p / "shortcut";
            (
                conv(&s / "0", cin, cout, 1, stride, 0),
                BatchNorm::new(&s / "1", cout),
            )
        });
        BasicBlock {
            conv1: conv(p / "conv1", cin, cout, 3, stride, 1),
            bn1: BatchNorm::new(p / "bn1", cout),
            conv2: conv(p / "conv2", cout, cout, 3, 1, 1),
            bn2: BatchNorm::new(p / "bn2", cout),
            shortcut,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward(&x.apply(&self.conv1), None, true, train);
        let short = match &self.shortcut {
            Some((c, b)) => x.apply(c).apply_t(b, train),
            None => x.shallow_clone(),
        };
        self.bn2
            .forward(&out.apply(&self.conv2), Some(&short), true, train)
    }
}

/// The ResNet-18 backbone: images `[B, C, H, W]` → features `[B, 8·width]`.
#[derive(Debug)]
pub struct ResNet18 {
    arch: Arch,
    conv1: nn::Conv2D,
    bn1: BatchNorm,
    blocks: Vec<BasicBlock>,
    feat_dim: i64,
}

impl ResNet18 {
    /// Build under `p` (normally `root / "backbone"`).
    pub fn new(p: &nn::Path, arch: Arch, in_channels: i64, width: i64) -> Self {
        let widths = [width, 2 * width, 4 * width, 8 * width];
        let mut blocks = Vec::with_capacity(8);
        let mut cin = width;
        for (i, &w) in widths.iter().enumerate() {
            let layer = p / format!("layer{}", i + 1);
            let stride = if i == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(&(&layer / "0"), cin, w, stride));
            blocks.push(BasicBlock::new(&(&layer / "1"), w, w, 1));
            cin = w;
        }
        ResNet18 {
            arch,
            conv1: conv(p / "conv1", in_channels, width, 3, 1, 1),
            bn1: BatchNorm::new(p / "bn1", width),
            blocks,
            feat_dim: 8 * width,
        }
    }

    /// Feature dimension (512 for width 64).
    pub fn feat_dim(&self) -> i64 {
        self.feat_dim
    }
}

impl ModuleT for ResNet18 {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = self.bn1.forward(&x.apply(&self.conv1), None, true, train);
        if self.arch == Arch::Stl {
            out = out.max_pool2d([2, 2], [2, 2], [1, 1], [1, 1], false);
        }
        for b in &self.blocks {
            out = b.forward_t(&out, train);
        }
        // Adaptive average pool to 1×1 (equals the STL variant's AvgPool2d(7) at 96×96 input).
        out.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
