//! Training precision and memory format (METHOD.md §9, "Precision").
//!
//! - [`Precision::Fp32`]: everything in fp32.
//! - [`Precision::Bf16`]: the forward pass under autocast to bfloat16 (matmuls and convolutions in
//!   bf16, reductions and the losses in fp32), on the CPU (AVX512-BF16/AMX) or CUDA. Parameters,
//!   gradients and optimizer state stay fp32; bf16 has fp32's exponent range, so no loss scaling.
//! - [`Precision::Fp16`]: autocast to float16 on CUDA, with dynamic loss scaling ([`LossScaler`]).
//! - `auto` resolves per device ([`Precision::resolve`]).
//!
//! Autocast is entered through a small C++ shim (`autocast.cpp`): libtorch's C API only switches
//! CUDA autocast on, in fp16. [`channels_last`] converts 4-D tensors to the NHWC memory layout
//! (same shape, other strides) that oneDNN and cuDNN run fastest.

use tch::{Device, Tensor};

pub use scan_core::params::Precision as PrecisionParam;

/// A resolved training precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Bf16,
    Fp16,
}

extern "C" {
    fn scan_autocast_enter(dev: i32, dtype: i32) -> i32;
    fn scan_autocast_exit(dev: i32) -> i32;
    fn scan_set_deterministic(on: i32) -> i32;
}

/// Deterministic algorithms on CUDA (`deterministic = true`): cuDNN's deterministic kernels, no
/// benchmark autotuning, and an error from any op that has no deterministic implementation.
/// Without it cuDNN picks the fastest kernels, some of which sum in varying order, so a GPU run
/// (and a resumed one) is reproducible only up to floating-point rounding. Also sets
/// `CUBLAS_WORKSPACE_CONFIG`, which deterministic cuBLAS needs, unless it is set.
pub fn set_deterministic(on: bool) -> Result<(), String> {
    if on && std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
    // SAFETY: a plain C function without pointers; it sets libtorch's global context flags.
    match unsafe { scan_set_deterministic(i32::from(on)) } {
        0 => Ok(()),
        _ => Err("libtorch refused to switch deterministic algorithms".into()),
    }
}

impl Precision {
    /// Resolve the param for `device`: `auto` is bf16 on CUDA and fp32 on the CPU (pipelines
    /// opt into bf16 on CPUs that run it natively, such as x86 CPUs with AVX512-BF16); fp16
    /// needs CUDA.
    pub fn resolve(p: PrecisionParam, device: Device) -> Result<Precision, String> {
        match (p, device) {
            (PrecisionParam::Fp32, _) => Ok(Precision::Fp32),
            (PrecisionParam::Bf16, _) => Ok(Precision::Bf16),
            (PrecisionParam::Fp16, Device::Cuda(_)) => Ok(Precision::Fp16),
            (PrecisionParam::Fp16, _) => Err(
                "parameter `precision` = \"fp16\" needs a CUDA device (use \"bf16\" on the CPU)"
                    .into(),
            ),
            (PrecisionParam::Auto, Device::Cuda(_)) => Ok(Precision::Bf16),
            (PrecisionParam::Auto, _) => Ok(Precision::Fp32),
        }
    }

    /// Run `f` under autocast in this precision on `device` (fp32: plainly).
    pub fn autocast<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        let dtype = match self {
            Precision::Fp32 => return f(),
            Precision::Bf16 => 0,
            Precision::Fp16 => 1,
        };
        let dev = i32::from(device.is_cuda());
        // SAFETY: plain C functions without pointers; they only flip libtorch's thread-local
        // autocast state, which `Exit` restores even if `f` panics.
        struct Exit(i32);
        impl Drop for Exit {
            fn drop(&mut self) {
                unsafe { scan_autocast_exit(self.0) };
            }
        }
        if unsafe { scan_autocast_enter(dev, dtype) } != 0 {
            return f();
        }
        let _exit = Exit(dev);
        f()
    }
}

/// `t` (4-D, NCHW) with channels-last strides: the same values and shape, NHWC in memory.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Convert every 4-D variable of `vs` (the convolution weights) to channels-last in place.
pub fn vars_channels_last(vs: &tch::nn::VarStore) {
    let _guard = tch::no_grad_guard();
    for (_, mut v) in vs.variables() {
        if v.dim() == 4 {
            let cl = channels_last(&v);
            v.set_data(&cl);
        }
    }
}

/// Dynamic loss scaling for fp16 training, with PyTorch's `GradScaler` semantics: the loss is
/// multiplied by `scale` before backward; before the optimizer step the gradients are divided by
/// it and checked; a step with a non-finite gradient is skipped and the scale halved
/// (`backoff`), and after `growth_interval` consecutive finite steps it is doubled (`growth`).
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    pub scale: f64,
    /// Finite steps since the last change of the scale.
    pub good_steps: u64,
    pub growth: f64,
    pub backoff: f64,
    pub growth_interval: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
            growth: 2.0,
            backoff: 0.5,
            growth_interval: 2000,
        }
    }
}

impl LossScaler {
    /// The loss to call `backward` on.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * self.scale
    }

    /// Divide the gradients of `params` by the scale; returns whether all are finite, and updates
    /// the scale (backoff on an overflow, growth after `growth_interval` good steps).
    pub fn unscale_and_update(&mut self, params: &mut [(String, Tensor)]) -> bool {
        let _guard = tch::no_grad_guard();
        let inv = 1.0 / self.scale;
        let mut finite = true;
        for (_, p) in params.iter_mut() {
            let mut g = p.grad();
            if !g.defined() {
                continue;
            }
            let _ = g.g_mul_scalar_(inv);
            if finite {
                let ok = g.isfinite().all().int64_value(&[]) != 0;
                finite &= ok;
            }
        }
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= self.growth;
                self.good_steps = 0;
            }
        } else {
            self.scale *= self.backoff;
            self.good_steps = 0;
        }
        finite
    }

    /// The state for a checkpoint: `[scale, good_steps]`.
    pub fn state(&self) -> serde_json::Value {
        serde_json::json!({"scale": self.scale, "good_steps": self.good_steps})
    }

    /// Restore from [`LossScaler::state`].
    pub fn restore(&mut self, v: &serde_json::Value) -> Result<(), String> {
        let scale = v["scale"].as_f64().filter(|s| s.is_finite() && *s > 0.0);
        let good = v["good_steps"].as_u64();
        match (scale, good) {
            (Some(s), Some(g)) => {
                self.scale = s;
                self.good_steps = g;
                Ok(())
            }
            _ => Err(format!(
                "loss scaler state {v} is not `{{scale, good_steps}}`"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn scaler_skips_overflow_backs_off_and_grows() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut params = vec![("p".to_string(), p.shallow_clone())];
        let mut s = LossScaler {
            growth_interval: 2,
            ..Default::default()
        };
        // A finite step: gradients unscaled to the true gradient (2·p for sum p²).
        let loss = || (&p * &p).sum(Kind::Float);
        s.scale_loss(&loss()).backward();
        assert!(s.unscale_and_update(&mut params));
        let g = Vec::<f32>::try_from(&p.grad()).unwrap();
        assert_eq!(g, vec![2.0, 4.0]);
        assert_eq!((s.scale, s.good_steps), (65536.0, 1));
        // A synthetic overflow: the scaled gradient exceeds fp32's range and becomes inf.
        let _ = p.grad().zero_();
        let huge = (&p * 1e30f64).sum(Kind::Float) * 1e30f64;
        s.scale_loss(&huge).backward();
        assert!(!s.unscale_and_update(&mut params), "overflow detected");
        assert_eq!((s.scale, s.good_steps), (32768.0, 0));
        // Two finite steps: the scale doubles.
        for _ in 0..2 {
            let _ = p.grad().zero_();
            s.scale_loss(&loss()).backward();
            assert!(s.unscale_and_update(&mut params));
        }
        assert_eq!((s.scale, s.good_steps), (65536.0, 0));
        let mut r = LossScaler {
            growth_interval: 2,
            scale: 1.0,
            good_steps: 7,
            ..Default::default()
        };
        r.restore(&s.state()).unwrap();
        assert_eq!(r, s);
    }

    #[test]
    fn channels_last_keeps_values_and_changes_strides() {
        let t = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]);
        let c = channels_last(&t);
        assert_eq!(c.size(), t.size());
        assert_eq!(c.stride(), vec![60, 1, 15, 3]);
        assert!(c.equal(&t));
    }

    #[test]
    fn bf16_autocast_runs_matmuls_in_bf16_and_restores() {
        let a = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
        let y = Precision::Bf16.autocast(Device::Cpu, || a.matmul(&a));
        assert_eq!(y.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "autocast left on");
        let y = Precision::Fp32.autocast(Device::Cpu, || a.matmul(&a));
        assert_eq!(y.kind(), Kind::Float);
    }
}
