//! The SimCLR model (backbone + `contrastive_head`: Linear(d→d), ReLU, Linear(d→proj_dim), output
//! L2-normalised; METHOD.md §3) and the clustering model (backbone + `num_heads` linear
//! `cluster_head.{h}` on raw backbone features; METHOD.md §5). Linear layers use PyTorch's default
//! init (weight and bias U(±1/√fan_in)).

use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use super::resnet::{Arch, ResNet18};

/// Architecture hyper-parameters, stored in every weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    pub in_channels: i64,
    /// Base channel width (64 = the paper's ResNet-18).
    pub width: i64,
    /// SimCLR projection dimension (128).
    pub proj_dim: i64,
    /// Number of cluster heads (0 for a SimCLR model).
    pub num_heads: usize,
    /// Clusters per head (0 for a SimCLR model).
    pub num_classes: i64,
}

/// What the heads of a model are.
#[derive(Debug)]
pub enum Heads {
    Simclr { fc1: nn::Linear, fc2: nn::Linear },
    Cluster(Vec<nn::Linear>),
}

/// A backbone with its heads and the variables they live in.
pub struct Model {
    pub vs: nn::VarStore,
    pub backbone: ResNet18,
    pub heads: Heads,
    pub config: ModelConfig,
    /// Whether inputs and convolution weights use the channels-last (NHWC) memory layout.
    pub channels_last: bool,
}

fn torch_linear(p: nn::Path, fan_in: i64, fan_out: i64) -> nn::Linear {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let init = nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    nn::linear(
        p,
        fan_in,
        fan_out,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        },
    )
}

impl Model {
    /// Backbone plus SimCLR head.
    pub fn simclr(config: ModelConfig, device: Device) -> Model {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let backbone = ResNet18::new(
            &(&root / "backbone"),
            config.arch,
            config.in_channels,
            config.width,
        );
        let d = backbone.feat_dim();
        let head = &root / "contrastive_head";
        let heads = Heads::Simclr {
            fc1: torch_linear(&head / "0", d, d),
            fc2: torch_linear(&head / "2", d, config.proj_dim),
        };
        Model {
            vs,
            backbone,
            heads,
            config,
            channels_last: false,
        }
    }

    /// Backbone plus `config.num_heads` cluster heads of `config.num_classes` outputs.
    pub fn cluster(config: ModelConfig, device: Device) -> Model {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let backbone = ResNet18::new(
            &(&root / "backbone"),
            config.arch,
            config.in_channels,
            config.width,
        );
        let d = backbone.feat_dim();
        let head = &root / "cluster_head";
        let heads = Heads::Cluster(
            (0..config.num_heads)
                .map(|h| torch_linear(&head / h, d, config.num_classes))
                .collect(),
        );
        Model {
            vs,
            backbone,
            heads,
            config,
            channels_last: false,
        }
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Switch to the channels-last memory layout: convolution weights now, each input as it comes
    /// (same values and shapes; oneDNN and cuDNN pick faster kernels for it).
    pub fn use_channels_last(&mut self) {
        super::precision::vars_channels_last(&self.vs);
        self.channels_last = true;
    }

    /// Raw backbone features `[B, d]`.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        if self.channels_last {
            self.backbone
                .forward_t(&super::precision::channels_last(x), train)
        } else {
            self.backbone.forward_t(x, train)
        }
    }

    /// L2-normalised SimCLR output `[B, proj_dim]` (panics if this is not a SimCLR model: a
    /// programming error, never user input).
    pub fn simclr_forward(&self, x: &Tensor, train: bool) -> Tensor {
        let Heads::Simclr { fc1, fc2 } = &self.heads else {
            panic!("simclr_forward on a clustering model")
        };
        let z = self.features(x, train).apply(fc1).relu().apply(fc2);
        l2_normalize(&z)
    }

    /// Logits of every cluster head, `[B, C]` each, from backbone features.
    pub fn head_logits(&self, features: &Tensor) -> Vec<Tensor> {
        let Heads::Cluster(heads) = &self.heads else {
            panic!("head_logits on a SimCLR model")
        };
        heads.iter().map(|h| features.apply(h)).collect()
    }

    /// Logits of every cluster head for images `x`.
    pub fn cluster_forward(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        self.head_logits(&self.features(x, train))
    }
}

/// Row-wise L2 normalisation as `torch.nn.functional.normalize(dim=1)` (eps 1e-12).
pub fn l2_normalize(z: &Tensor) -> Tensor {
    let norm = z.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    z / norm
}
