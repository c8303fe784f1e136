//! SGD with momentum and Adam, written out as tensor updates so that their state (momentum buffers,
//! moments, step count) lives in checkpoints and a killed run resumes bit-for-bit where it stopped.
//! Both use **coupled** L2 weight decay (gradient += wd·param) as `torch.optim.SGD`/`torch.optim.Adam`
//! (METHOD.md §3.5, §5.4, §6.5); the update formulas are PyTorch's.

use tch::{Kind, Tensor};

/// Which optimizer and its hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub enum OptimKind {
    /// `torch.optim.SGD(momentum, dampening=0, nesterov=False, weight_decay)`.
    Sgd { momentum: f64, weight_decay: f64 },
    /// `torch.optim.Adam(betas, eps, weight_decay)` (coupled L2, not AdamW).
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
}

/// Optimizer over a fixed list of trainable parameters.
pub struct Optimizer {
    pub kind: OptimKind,
    pub params: Vec<(String, Tensor)>,
    /// SGD: momentum buffer; Adam: first moment. Same order as `params`.
    pub state1: Vec<Tensor>,
    /// Adam: second moment (unused by SGD).
    pub state2: Vec<Tensor>,
    pub step: i64,
}

impl Optimizer {
    /// `params`: (name, trainable tensor) pairs, in a stable order (sorted by name).
    pub fn new(kind: OptimKind, mut params: Vec<(String, Tensor)>) -> Self {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let state1 = params.iter().map(|(_, p)| p.zeros_like()).collect();
        let state2 = params.iter().map(|(_, p)| p.zeros_like()).collect();
        Optimizer {
            kind,
            params,
            state1,
            state2,
            step: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let t = self.step as f64;
        for (i, (_, p)) in self.params.iter_mut().enumerate() {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            match self.kind {
                OptimKind::Sgd {
                    momentum,
                    weight_decay,
                } => {
                    let d = &g + weight_decay * &*p;
                    let buf = &mut self.state1[i];
                    if self.step == 1 {
                        buf.copy_(&d);
                    } else {
                        let _ = buf.g_mul_scalar_(momentum).g_add_(&d);
                    }
                    let _ = p.g_sub_(&(&*buf * lr));
                }
                OptimKind::Adam {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let g = &g + weight_decay * &*p;
                    let m = &mut self.state1[i];
                    let _ = m.g_mul_scalar_(beta1).g_add_(&(&g * (1.0 - beta1)));
                    let v = &mut self.state2[i];
                    let _ = v.g_mul_scalar_(beta2).g_add_(&(&g * &g * (1.0 - beta2)));
                    let bc1 = 1.0 - beta1.powf(t);
                    let bc2 = 1.0 - beta2.powf(t);
                    let denom = v.sqrt() / bc2.sqrt() + eps;
                    let _ = p.g_sub_(&(&*m / denom * (lr / bc1)));
                }
            }
        }
    }

    /// Named state tensors for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("optim.s1.{name}"), self.state1[i].shallow_clone()));
            if matches!(self.kind, OptimKind::Adam { .. }) {
                out.push((format!("optim.s2.{name}"), self.state2[i].shallow_clone()));
            }
        }
        out
    }

    /// Restore state tensors saved by [`Optimizer::state_tensors`].
    pub fn load_state(
        &mut self,
        get: &dyn Fn(&str) -> Option<Tensor>,
        step: i64,
    ) -> Result<(), String> {
        let _guard = tch::no_grad_guard();
        for (i, (name, _)) in self.params.iter().enumerate() {
            let s1 = get(&format!("optim.s1.{name}"))
                .ok_or(format!("optimizer state of `{name}` missing"))?;
            self.state1[i].copy_(&s1.to_kind(Kind::Float));
            if matches!(self.kind, OptimKind::Adam { .. }) {
                let s2 = get(&format!("optim.s2.{name}"))
                    .ok_or(format!("optimizer state of `{name}` missing"))?;
                self.state2[i].copy_(&s2.to_kind(Kind::Float));
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Per-epoch cosine schedule without warm-up (METHOD.md §3):
/// lr_e = η_min + (lr − η_min)(1 + cos(π e / E))/2, η_min = lr·0.1³.
pub fn cosine_lr(lr: f64, epoch: usize, epochs: usize) -> f64 {
    let eta_min = lr * 0.1f64.powi(3);
    eta_min
        + (lr - eta_min)
            * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs.max(1) as f64).cos())
            / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_endpoints() {
        assert!((cosine_lr(0.4, 0, 10) - 0.4).abs() < 1e-12);
        // Half way: (lr + η_min)/2.
        assert!((cosine_lr(0.4, 5, 10) - (0.4 + 0.0004) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn sgd_matches_closed_form() {
        // f(p) = p²/2 → g = p. p0 = 1, lr 0.1, momentum 0.9, wd 0.5: d = 1.5p.
        let p = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut opt = Optimizer::new(
            OptimKind::Sgd {
                momentum: 0.9,
                weight_decay: 0.5,
            },
            vec![("p".into(), p.shallow_clone())],
        );
        let mut expect_p = 1.0f64;
        let mut buf = 0.0f64;
        for s in 0..3 {
            opt.zero_grad();
            (&p * &p * 0.5).sum(Kind::Float).backward();
            opt.step(0.1);
            let d = 1.5 * expect_p;
            buf = if s == 0 { d } else { 0.9 * buf + d };
            expect_p -= 0.1 * buf;
        }
        assert!((p.double_value(&[0]) - expect_p).abs() < 1e-6);
    }
}
