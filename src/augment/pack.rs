//! Staging of per-sample parameters: everything an augmentation call needs is collected on the CPU
//! and copied to the device in two transfers (one float64, one int64 buffer), then sliced there.
//! A host-to-device copy synchronises the stream, so one copy per op group would serialise the GPU.

use tch::{Device, Kind, Tensor};

/// A slice of the staged float64 or int64 buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    start: i64,
    len: i64,
}

/// CPU-side staging area.
#[derive(Debug, Default)]
pub(crate) struct Pack {
    f: Vec<f64>,
    i: Vec<i64>,
}

impl Pack {
    pub fn push_f(&mut self, v: &[f64]) -> Slot {
        let s = Slot {
            start: self.f.len() as i64,
            len: v.len() as i64,
        };
        self.f.extend_from_slice(v);
        s
    }
    pub fn push_i(&mut self, v: &[i64]) -> Slot {
        let s = Slot {
            start: self.i.len() as i64,
            len: v.len() as i64,
        };
        self.i.extend_from_slice(v);
        s
    }
    /// Copies both buffers to `dev` (at most two transfers).
    pub fn upload(mut self, dev: Device) -> Packed {
        // Never empty, so that `from_slice` and `narrow` stay well defined.
        self.f.push(0.0);
        self.i.push(0);
        Packed {
            f: Tensor::from_slice(&self.f).to_device(dev),
            i: Tensor::from_slice(&self.i).to_device(dev),
        }
    }
}

/// Device-side buffers.
pub(crate) struct Packed {
    f: Tensor,
    i: Tensor,
}

impl Packed {
    /// Float64 values of `s` (1-D).
    pub fn f(&self, s: Slot) -> Tensor {
        self.f.narrow(0, s.start, s.len)
    }
    /// Float64 values of `s` as per-sample `[n, 1, 1, 1]` of `kind`.
    pub fn per_sample(&self, s: Slot, kind: Kind) -> Tensor {
        self.f(s).to_kind(kind).view([-1, 1, 1, 1])
    }
    /// Int64 values of `s` (1-D).
    pub fn i(&self, s: Slot) -> Tensor {
        self.i.narrow(0, s.start, s.len)
    }
}
