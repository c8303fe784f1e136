//! BatchNorm2d of the backbone, with a faster CPU training path for narrow channels-last layers.
//!
//! libtorch's channels-last CPU kernel vectorises along the channels, so on the 8-channel first
//! stage of a width-8 ResNet-18 most SIMD lanes idle and training-mode BatchNorm is 3–4× slower
//! than on NCHW tensors (BENCHMARKS.md, "BatchNorm on narrow channels-last layers (CPU)"). For
//! those layers — training mode, CPU, channels-last strides, fp32 or bf16, a channel count below 16
//! that divides 64 — [`BatchNorm::forward`] runs `batchnorm.cpp`: the BatchNorm together with the
//! residual sum and the ReLU that follow it in a ResNet block, as one autograd function whose
//! passes read the NHWC buffer as 64-lane blocks. Everything else (evaluation, CUDA, wide layers,
//! NCHW) runs libtorch's `batch_norm`, `add` and `relu`. Both compute
//! `torch.nn.functional.batch_norm` (batch statistics, running statistics updated with `momentum`
//! and the unbiased variance); they differ only in floating-point rounding (tested against
//! libtorch below).

use std::ffi::{c_char, c_void, CStr};
use std::sync::Once;

use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// eps and momentum of every BatchNorm of the reference (PyTorch's defaults).
pub const EPS: f64 = 1e-5;
pub const MOMENTUM: f64 = 0.1;

extern "C" {
    fn scan_bn_channels_last(
        x: *mut c_void,
        weight: *mut c_void,
        bias: *mut c_void,
        residual: *mut c_void,
        running_mean: *mut c_void,
        running_var: *mut c_void,
        relu: i32,
        momentum: f64,
        eps: f64,
    ) -> *mut c_void;
    fn scan_bn_last_error() -> *const c_char;
}

/// A BatchNorm2d layer (affine, with running statistics) under a var-store path; variable names
/// `weight`, `bias`, `running_mean`, `running_var` as PyTorch's.
#[derive(Debug)]
pub struct BatchNorm {
    inner: nn::BatchNorm,
}

impl BatchNorm {
    /// Weight 1, bias 0, eps [`EPS`], momentum [`MOMENTUM`] (the reference's init).
    pub fn new(p: nn::Path, channels: i64) -> Self {
        let cfg = nn::BatchNormConfig {
            eps: EPS,
            momentum: MOMENTUM,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        BatchNorm {
            inner: nn::batch_norm2d(p, channels, cfg),
        }
    }

    /// `[relu](bn(x) [+ residual])`: the layer, the residual connection and the ReLU of a ResNet
    /// block in one call. In training on a narrow channels-last CPU tensor this is one fused kernel
    /// (one pass for the statistics, one for the output, two for the gradients); otherwise
    /// libtorch's `batch_norm`, `add` and `relu`.
    pub fn forward(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        relu: bool,
        train: bool,
    ) -> Tensor {
        if train && narrow_kernel_enabled() && self.narrow_channels_last(x, residual) {
            if let Some(y) = self.forward_narrow(x, residual, relu) {
                return y;
            }
        }
        let y = self.inner.forward_t(x, train);
        let y = match residual {
            Some(r) => y + r,
            None => y,
        };
        if relu {
            y.relu()
        } else {
            y
        }
    }

    /// Whether training on `x` (and `residual`) takes the narrow channels-last CPU path.
    fn narrow_channels_last(&self, x: &Tensor, residual: Option<&Tensor>) -> bool {
        if x.device() != Device::Cpu || x.dim() != 4 {
            return false;
        }
        let Ok((n, c, h, w)) = x.size4() else {
            return false;
        };
        // NHWC-dense: channels-last strides (any stride for a dimension of size 1).
        let dense = |t: &Tensor| {
            t.size() == [n, c, h, w]
                && [n, c, h, w]
                    .iter()
                    .zip([h * w * c, 1, w * c, c])
                    .zip(t.stride())
                    .all(|((&size, want), got)| size == 1 || want == got)
        };
        c > 0
            && c < 16
            && 64 % c == 0
            && (n * c * h * w) % 64 == 0
            && matches!(x.kind(), Kind::Float | Kind::BFloat16)
            && dense(x)
            && residual
                .is_none_or(|r| r.kind() == x.kind() && r.device() == Device::Cpu && dense(r))
    }

    /// The narrow channels-last kernel; `None` (after one warning) if libtorch refused it.
    fn forward_narrow(&self, x: &Tensor, residual: Option<&Tensor>, relu: bool) -> Option<Tensor> {
        let (Some(ws), Some(bs)) = (&self.inner.ws, &self.inner.bs) else {
            return None;
        };
        let ptr = |t: &Tensor| t.as_ptr() as *mut c_void;
        // SAFETY: every pointer is a live tensor handle borrowed for the call (or null for no
        // residual); the function returns a new owned handle (or null) and keeps no argument.
        let out = unsafe {
            scan_bn_channels_last(
                ptr(x),
                ptr(ws),
                ptr(bs),
                residual.map_or(std::ptr::null_mut(), ptr),
                ptr(&self.inner.running_mean),
                ptr(&self.inner.running_var),
                i32::from(relu),
                MOMENTUM,
                EPS,
            )
        };
        if out.is_null() {
            static WARN: Once = Once::new();
            WARN.call_once(|| {
                // SAFETY: a NUL-terminated thread-local string owned by the shim.
                let msg = unsafe { CStr::from_ptr(scan_bn_last_error()) };
                eprintln!(
                    "warning: narrow channels-last BatchNorm unavailable ({}); using libtorch's",
                    msg.to_string_lossy()
                );
            });
            return None;
        }
        // SAFETY: `out` is a new heap-allocated tensor handle that the Rust tensor now owns.
        Some(unsafe { Tensor::from_ptr(out.cast()) })
    }
}

thread_local! {
    static LIBTORCH_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the narrow channels-last kernel switched off on this thread (every BatchNorm
/// runs libtorch's `batch_norm`): for comparing the two in tests and benchmarks.
pub fn with_libtorch_batch_norm<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            LIBTORCH_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(LIBTORCH_ONLY.with(|c| c.replace(true)));
    f()
}

fn narrow_kernel_enabled() -> bool {
    !LIBTORCH_ONLY.with(std::cell::Cell::get)
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward(x, None, false, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::precision::channels_last;

    fn randn_cl(shape: [i64; 4], kind: Kind, scale: f64, shift: f64) -> Tensor {
        channels_last(&(Tensor::randn(shape, (Kind::Float, Device::Cpu)) * scale + shift))
            .to_kind(kind)
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[])
    }

    /// Runs `[relu](bn(x) [+ r])` forward and backward under the narrow kernel or libtorch's
    /// `batch_norm` + `add` + `relu` ([`with_libtorch_batch_norm`]): the output, the gradients of
    /// x, weight, bias and r, and the running statistics.
    fn run(native: bool, x: &Tensor, r: Option<&Tensor>, relu: bool, dy: &Tensor) -> Vec<Tensor> {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let bn = BatchNorm::new(vs.root() / "bn", x.size()[1]);
        tch::manual_seed(5);
        tch::no_grad(|| {
            let _ = bn
                .inner
                .ws
                .as_ref()
                .unwrap()
                .shallow_clone()
                .uniform_(0.5, 1.5);
            let _ = bn
                .inner
                .bs
                .as_ref()
                .unwrap()
                .shallow_clone()
                .uniform_(-0.5, 0.5);
        });
        if x.kind() == Kind::Double {
            vs.double();
        }
        let x = x.detach().set_requires_grad(true);
        let r = r.map(|r| r.detach().set_requires_grad(true));
        assert!(native || bn.narrow_channels_last(&x, r.as_ref()));
        let y = if native {
            with_libtorch_batch_norm(|| bn.forward(&x, r.as_ref(), relu, true))
        } else {
            bn.forward(&x, r.as_ref(), relu, true)
        };
        let (ws, bs) = (bn.inner.ws.as_ref().unwrap(), bn.inner.bs.as_ref().unwrap());
        let mut wrt = vec![&x, ws, bs];
        wrt.extend(r.as_ref());
        let loss = (&y * dy).sum(Kind::Double);
        let mut out = vec![y.detach()];
        out.extend(Tensor::run_backward(&[loss], &wrt, false, false));
        out.push(bn.inner.running_mean.copy());
        out.push(bn.inner.running_var.copy());
        out
    }

    /// Largest difference between the narrow kernel and libtorch over every output, relative to
    /// the largest magnitude of the libtorch value (`l2`: the norm of the difference relative to
    /// the norm of the libtorch value).
    fn compare(shape: [i64; 4], kind: Kind, residual: bool, relu: bool, l2: bool) -> f64 {
        tch::manual_seed(3);
        let x = randn_cl(shape, kind, 2.0, 0.7);
        let r = residual.then(|| randn_cl(shape, kind, 1.0, 0.0));
        let dy = randn_cl(shape, kind, 1.0, 0.0);
        let want = run(true, &x, r.as_ref(), relu, &dy);
        let got = run(false, &x, r.as_ref(), relu, &dy);
        want.iter()
            .zip(&got)
            .map(|(w, g)| {
                if l2 {
                    let d = (w.to_kind(Kind::Double) - g.to_kind(Kind::Double)).norm();
                    d.double_value(&[])
                        / w.to_kind(Kind::Double).norm().double_value(&[]).max(1e-12)
                } else {
                    max_abs_diff(w, g) / w.abs().max().double_value(&[]).max(1e-12)
                }
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn matches_libtorch_fp32() {
        // Measured: at most 4e-6 (float rounding of the two summation orders).
        for shape in [[64, 8, 28, 28], [16, 4, 7, 8], [8, 1, 4, 4], [4, 2, 4, 4]] {
            for (residual, relu) in [(false, false), (false, true), (true, true), (true, false)] {
                let d = compare(shape, Kind::Float, residual, relu, false);
                assert!(d < 2e-5, "{shape:?} residual {residual} relu {relu}: {d}");
            }
        }
    }

    /// Relative L2 error of each output against the same computation in float64.
    fn errors_vs_f64(native: bool, x: &Tensor, r: Option<&Tensor>, dy: &Tensor) -> Vec<f64> {
        let exact = run(
            true,
            &x.to_kind(Kind::Double),
            r.map(|r| r.to_kind(Kind::Double)).as_ref(),
            true,
            &dy.to_kind(Kind::Double),
        );
        run(native, x, r, true, dy)
            .iter()
            .zip(&exact)
            .map(|(g, e)| {
                (g.to_kind(Kind::Double) - e).norm().double_value(&[])
                    / e.norm().double_value(&[]).max(1e-12)
            })
            .collect()
    }

    #[test]
    fn bf16_as_accurate_as_libtorch() {
        // bf16 in, bf16 out: both paths round, so each is compared with float64 on the same
        // inputs. libtorch rounds the BatchNorm output and its sum with the residual separately,
        // the kernel once.
        tch::manual_seed(3);
        let shape = [64, 8, 28, 28];
        let x = randn_cl(shape, Kind::BFloat16, 2.0, 0.7);
        let r = randn_cl(shape, Kind::BFloat16, 1.0, 0.0);
        let dy = randn_cl(shape, Kind::BFloat16, 1.0, 0.0);
        for r in [None, Some(&r)] {
            let ours = errors_vs_f64(false, &x, r, &dy);
            let theirs = errors_vs_f64(true, &x, r, &dy);
            eprintln!(
                "bf16 residual {}: ours {ours:?} libtorch {theirs:?}",
                r.is_some()
            );
            for (o, t) in ours.iter().zip(&theirs) {
                assert!(*o <= 1.5 * t + 1e-6, "ours {ours:?} libtorch {theirs:?}");
            }
        }
    }

    #[test]
    fn wide_nchw_eval_and_cuda_take_libtorch() {
        let vs = nn::VarStore::new(Device::Cpu);
        let bn = BatchNorm::new(vs.root() / "bn", 16);
        let wide = randn_cl([2, 16, 4, 4], Kind::Float, 1.0, 0.0);
        assert!(!bn.narrow_channels_last(&wide, None));
        let bn8 = BatchNorm::new(vs.root() / "bn8", 8);
        let nchw = Tensor::randn([2, 8, 4, 4], (Kind::Float, Device::Cpu));
        assert!(!bn8.narrow_channels_last(&nchw, None));
        let cl = channels_last(&nchw);
        assert!(bn8.narrow_channels_last(&cl, None));
        assert!(!bn8.narrow_channels_last(&cl, Some(&nchw)));
        assert!(!bn8.narrow_channels_last(&cl.to_kind(Kind::Double), None));
    }
}
