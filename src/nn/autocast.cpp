// Autocast for a chosen device type and dtype. libtorch's C API (and so tch) only switches CUDA
// autocast on, always in fp16; these two functions reach the per-device switches of
// `at::autocast` directly, for bf16 on the CPU and bf16 or fp16 on CUDA.
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

namespace {
at::DeviceType device_type(int dev) { return dev == 1 ? at::kCUDA : at::kCPU; }
}  // namespace

extern "C" {
// Enter autocast on device type `dev` (0: CPU, 1: CUDA) in `dtype` (0: bf16, 1: fp16).
// Returns 0 on success, 1 if libtorch refused.
int scan_autocast_enter(int dev, int dtype) {
  try {
    auto d = device_type(dev);
    at::autocast::set_autocast_dtype(d, dtype == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(d, true);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return 1;
  }
}

// Leave autocast on device type `dev`; the cast cache is cleared when the outermost region ends.
int scan_autocast_exit(int dev) {
  try {
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device_type(dev), false);
    return 0;
  } catch (...) {
    return 1;
  }
}
}

extern "C" {
// Deterministic algorithms (cuDNN deterministic kernels, no benchmark autotuning, and an error
// from any op without a deterministic implementation) when `on` is nonzero.
int scan_set_deterministic(int on) {
  try {
    at::globalContext().setDeterministicAlgorithms(on != 0, /*warn_only=*/false);
    at::globalContext().setDeterministicCuDNN(on != 0);
    at::globalContext().setBenchmarkCuDNN(on == 0);
    return 0;
  } catch (...) {
    return 1;
  }
}
}
