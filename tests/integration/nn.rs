//! Integration tests: the ResNet-18 weights move between this project and an independent PyTorch
//! implementation of the reference model (`load_state_dict(strict=True)` both ways).

use crate::common::{run_python, Workspace};
use scan::nn::{self, Arch, LoadRule, Model, ModelConfig, NormMeta, WeightsMeta};
use tch::{Device, Kind, Tensor};

/// The reference model (Unsupervised-Classification's resnet_cifar.py / models.py), written out
/// independently in PyTorch, with a width parameter for a tiny network.
const REFERENCE: &str = r#"
import json, sys, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file, save_file
class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False); self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(o)
        self.shortcut = nn.Sequential()
        if s != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))
class ResNet(nn.Module):
    def __init__(self, cin, w, stl):
        super().__init__()
        self.stl = stl
        self.conv1 = nn.Conv2d(cin, w, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(w)
        ws = [w, 2*w, 4*w, 8*w]; prev = w
        for li, o in enumerate(ws):
            s = 1 if li == 0 else 2
            setattr(self, f"layer{li+1}", nn.Sequential(BasicBlock(prev, o, s), BasicBlock(o, o, 1))); prev = o
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stl: out = F.max_pool2d(out, 2, 2, 1)
        for l in [self.layer1, self.layer2, self.layer3, self.layer4]: out = l(out)
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
class Contrastive(nn.Module):
    def __init__(self, cin, w, proj):
        super().__init__(); self.backbone = ResNet(cin, w, False)
        self.contrastive_head = nn.Sequential(nn.Linear(8*w, 8*w), nn.ReLU(), nn.Linear(8*w, proj))
    def forward(self, x): return F.normalize(self.contrastive_head(self.backbone(x)), dim=1)
class Clustering(nn.Module):
    def __init__(self, cin, w, heads, c):
        super().__init__(); self.backbone = ResNet(cin, w, False)
        self.cluster_head = nn.ModuleList([nn.Linear(8*w, c) for _ in range(heads)])
    def forward(self, x):
        f = self.backbone(x); return torch.cat([h(f) for h in self.cluster_head], 1)
src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
m = Contrastive(3, 4, 16) if kind == "simclr" else Clustering(3, 4, 2, 5)
m.load_state_dict(load_file(src), strict=True)
m.eval()
x = torch.sin(torch.arange(2*3*16*16, dtype=torch.float32) * 0.37).view(2, 3, 16, 16)
with torch.no_grad(): y = m(x)
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, dst)
print(json.dumps(y.flatten().tolist()))
"#;

fn input() -> Tensor {
    (Tensor::arange(2 * 3 * 16 * 16, (Kind::Float, Device::Cpu)) * 0.37)
        .sin()
        .view([2, 3, 16, 16])
}

fn config(heads: usize, classes: i64) -> ModelConfig {
    ModelConfig {
        arch: Arch::Cifar,
        in_channels: 3,
        width: 4,
        proj_dim: 16,
        num_heads: heads,
        num_classes: classes,
    }
}

fn forward(m: &Model) -> Vec<f32> {
    let _g = tch::no_grad_guard();
    let x = input();
    let y = match &m.heads {
        nn::Heads::Simclr { .. } => m.simclr_forward(&x, false),
        nn::Heads::Cluster(_) => Tensor::cat(&m.cluster_forward(&x, false), 1),
    };
    Vec::<f32>::try_from(&y.contiguous().view([-1])).expect("to vec")
}

fn meta(kind: &str, model: ModelConfig) -> WeightsMeta {
    WeightsMeta {
        format_version: nn::weights::FORMAT_VERSION,
        kind: kind.into(),
        model,
        best_head: 1,
        normalize: NormMeta {
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        },
        dataset: "test".into(),
        num_batches_tracked: 7,
    }
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + x.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

fn round_trip(kind: &str, heads: usize, classes: i64) {
    let ws = Workspace::new();
    tch::manual_seed(3);
    let cfg = config(heads, classes);
    let model = if kind == "simclr" {
        Model::simclr(cfg.clone(), Device::Cpu)
    } else {
        Model::cluster(cfg.clone(), Device::Cpu)
    };
    // Make the BN running statistics non-trivial so eval mode really uses them.
    {
        let _g = tch::no_grad_guard();
        for (name, mut v) in model.vs.variables() {
            if name.ends_with("running_var") {
                let _ = v.fill_(1.7);
            } else if name.ends_with("running_mean") {
                let _ = v.fill_(0.05);
            }
        }
    }
    let rust_out = forward(&model);
    let a = ws.join("a.safetensors");
    let b = ws.join("b.safetensors");
    nn::weights::save(&model, &meta(kind, cfg.clone()), &a).expect("save");
    let py: Vec<f32> = serde_json::from_str(
        run_python(REFERENCE, &[a.to_str().unwrap(), b.to_str().unwrap(), kind]).trim(),
    )
    .expect("json");
    assert_close(&rust_out, &py, "PyTorch output of Rust weights");
    // Back: the PyTorch-written file (no metadata) loads strictly into a fresh model.
    tch::manual_seed(99);
    let mut back = if kind == "simclr" {
        Model::simclr(cfg, Device::Cpu)
    } else {
        Model::cluster(cfg, Device::Cpu)
    };
    nn::weights::load_into(&mut back, &b, LoadRule::All).expect("load PyTorch file");
    assert_close(&forward(&back), &py, "Rust output of PyTorch weights");
}

#[test]
fn simclr_weights_round_trip_through_pytorch() {
    round_trip("simclr", 0, 0);
}

#[test]
fn cluster_weights_round_trip_through_pytorch() {
    round_trip("scan", 2, 5);
}

#[test]
fn missing_backbone_key_is_an_error() {
    let ws = Workspace::new();
    let cfg = config(1, 5);
    let model = Model::cluster(cfg.clone(), Device::Cpu);
    let a = ws.join("a.safetensors");
    nn::weights::save(&model, &meta("scan", cfg.clone()), &a).expect("save");
    // Drop one backbone tensor with Python and expect a strict-load error naming it.
    let b = ws.join("b.safetensors");
    run_python(
        "import sys\nfrom safetensors.torch import load_file, save_file\nd = load_file(sys.argv[1]); del d['backbone.layer3.1.conv2.weight']; save_file(d, sys.argv[2])",
        &[a.to_str().unwrap(), b.to_str().unwrap()],
    );
    let mut fresh = Model::cluster(cfg, Device::Cpu);
    let err = nn::weights::load_into(&mut fresh, &b, LoadRule::Backbone)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("backbone.layer3.1.conv2.weight") && err.contains("b.safetensors"),
        "{err}"
    );
}

#[test]
fn saved_weights_are_byte_stable() {
    let ws = Workspace::new();
    tch::manual_seed(1);
    let cfg = config(0, 0);
    let model = Model::simclr(cfg.clone(), Device::Cpu);
    let (a, b) = (ws.join("a"), ws.join("b"));
    nn::weights::save(&model, &meta("simclr", cfg.clone()), &a).expect("save");
    nn::weights::save(&model, &meta("simclr", cfg), &b).expect("save");
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}
