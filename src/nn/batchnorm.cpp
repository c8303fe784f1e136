// Training-mode BatchNorm2d for channels-last CPU tensors with few channels (C divides 64 and
// C < 16), as one autograd function with hand-written forward and backward passes.
//
// libtorch's channels-last CPU kernel vectorises along the channel dimension, so with 8 channels
// (the first stage of a width-8 ResNet) most SIMD lanes idle and it runs 3–4× slower than its
// NCHW kernel. Here the NHWC buffer is read as a flat array whose element i belongs to channel
// i mod C: every pass runs over blocks of 64 elements with 64 accumulators (lane l holds channel
// l mod C), which the compiler vectorises, and the lanes are folded into channels at the end.
//
// Semantics are `torch.nn.functional.batch_norm(training=True)`: biased batch variance for the
// normalisation, unbiased for the running variance, running stats updated in place with
// `momentum`; the output has the input's dtype (fp32 or bf16; weights fp32). Sums are accumulated
// in float over blocks of at most 256 rows (shifted by a per-channel constant near the mean) and
// in double across blocks and threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <type_traits>
#include <utility>
#include <string>
#include <vector>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t L = 64;      // lanes per block
constexpr int64_t ROWS = 256;  // blocks accumulated in float before flushing to double

template <typename T>
inline float f32(T v) {
  return static_cast<float>(v);
}

// Two per-lane sums over the flat arrays, as 2·L doubles: Σu and Σv of (u, v) = term(i, lane)
// for every element i. Floats within blocks of at most ROWS rows, doubles across blocks and
// threads.
template <typename Term>
std::vector<double> lane_sums(int64_t n, const Term& term) {
  const int threads = at::get_num_threads();
  std::vector<double> part(static_cast<size_t>(threads) * 2 * L, 0.0);
  at::parallel_for(0, n / L, ROWS, [&](int64_t begin, int64_t end) {
    double* out = part.data() + static_cast<size_t>(at::get_thread_num()) * 2 * L;
    for (int64_t s = begin; s < end; s += ROWS) {
      float s1[L] = {0}, s2[L] = {0};
      for (int64_t blk = s; blk < std::min(end, s + ROWS); ++blk) {
        for (int64_t l = 0; l < L; ++l) {
          const auto [u, v] = term(blk * L + l, l);
          s1[l] += u;
          s2[l] += v;
        }
      }
      for (int64_t l = 0; l < L; ++l) out[l] += s1[l], out[L + l] += s2[l];
    }
  });
  std::vector<double> total(2 * L, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < 2 * L; ++i) total[i] += part[static_cast<size_t>(t) * 2 * L + i];
  return total;
}

// Σ(x − k) and Σ(x − k)² per lane; `k` (a per-lane constant near the mean) keeps the float
// block sums away from cancellation.
template <typename T>
std::vector<double> stats(const T* x, const float* k, int64_t n) {
  return lane_sums(n, [&](int64_t i, int64_t l) {
    const float v = f32(x[i]) - k[l];
    return std::pair<float, float>(v, v * v);
  });
}

// y = [relu]((x − k)·a + off [+ r]).
template <typename T, bool RES, bool RELU>
void normalize(T* y, const T* x, const T* r, const float* k, const float* a, const float* off,
               int64_t n) {
  at::parallel_for(0, n / L, ROWS, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const T* px = x + blk * L;
      T* py = y + blk * L;
      for (int64_t l = 0; l < L; ++l) {
        float v = (f32(px[l]) - k[l]) * a[l] + off[l];
        if constexpr (RES) v += f32(r[blk * L + l]);
        if constexpr (RELU) v = v > 0.0f ? v : 0.0f;
        py[l] = static_cast<T>(v);
      }
    }
  });
}

// The gradient at the BatchNorm output: dy, or dy where y > 0 under a fused ReLU.
// Both values are loaded unconditionally: a load under the condition would keep the compiler
// from vectorising the loop.
template <typename T, bool RELU>
inline float grad_at(const T* dy, const T* y, int64_t i) {
  const float g = f32(dy[i]);
  if constexpr (RELU) {
    const float out = f32(y[i]);
    return out > 0.0f ? g : 0.0f;
  }
  return g;
}

// Σg and Σg·(x − mean) per lane for the output gradient g (grad_at); writes g to `dz` (the
// residual's gradient) when DZ.
template <typename T, bool RELU, bool DZ>
std::vector<double> grad_sums(const T* dy, const T* y, const T* x, const float* mean, T* dz,
                              int64_t n) {
  return lane_sums(n, [&](int64_t i, int64_t l) {
    const float g = grad_at<T, RELU>(dy, y, i);
    if constexpr (DZ) dz[i] = static_cast<T>(g);
    return std::pair<float, float>(g, g * (f32(x[i]) - mean[l]));
  });
}

// dx = g·a + (x − mean)·k1 + k0 for the output gradient g (grad_at).
template <typename T, bool RELU>
void grad_input(T* dx, const T* dy, const T* y, const T* x, const float* mean, const float* a,
                const float* k1, const float* k0, int64_t n) {
  at::parallel_for(0, n / L, ROWS, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const T* px = x + blk * L;
      T* pdx = dx + blk * L;
      for (int64_t l = 0; l < L; ++l) {
        const float g = grad_at<T, RELU>(dy, y, blk * L + l);
        pdx[l] = static_cast<T>(g * a[l] + (f32(px[l]) - mean[l]) * k1[l] + k0[l]);
      }
    }
  });
}

// Fold 64 lane sums into C channel sums.
std::vector<double> fold(const double* lanes, int64_t c) {
  std::vector<double> out(c, 0.0);
  for (int64_t l = 0; l < L; ++l) out[l % c] += lanes[l];
  return out;
}

// Per-lane copies of a per-channel table.
std::vector<float> lanes(const std::vector<double>& per_channel) {
  const int64_t c = static_cast<int64_t>(per_channel.size());
  std::vector<float> out(L);
  for (int64_t l = 0; l < L; ++l) out[l] = static_cast<float>(per_channel[l % c]);
  return out;
}

std::vector<double> to_vec(const at::Tensor& t) {
  auto d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

at::Tensor from_vec(const std::vector<double>& v, const at::TensorOptions& opts) {
  return at::tensor(v, at::kDouble).to(opts);
}

// x as a flat NHWC buffer: channels-last strides, or a copy in that layout.
at::Tensor nhwc(const at::Tensor& x) { return x.contiguous(at::MemoryFormat::ChannelsLast); }

// Calls f(A, B) with std::bool_constant values for the runtime booleans (a, b), so that the
// kernels are compiled per combination.
template <typename F>
void with_flags(bool a, bool b, F&& f) {
  using T = std::true_type;
  using N = std::false_type;
  if (a && b) f(T{}, T{});
  else if (a) f(T{}, N{});
  else if (b) f(N{}, T{});
  else f(N{}, N{});
}

// [relu](batch_norm(x) [+ residual]) in training mode.
struct ChannelsLastBatchNorm : public torch::autograd::Function<ChannelsLastBatchNorm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& residual, bool res,
                            at::Tensor running_mean, at::Tensor running_var, bool relu,
                            double momentum, double eps) {
    const auto x = nhwc(input);
    const auto r = res ? nhwc(residual).to(x.scalar_type()) : at::Tensor();
    const int64_t c = x.size(1), n = x.numel(), m = n / c;
    // Shift: each channel's first value (about a standard deviation from the mean).
    std::vector<double> first(c);
    const auto head = x.permute({0, 2, 3, 1}).reshape({-1, c})[0].to(at::kDouble).contiguous();
    for (int64_t i = 0; i < c; ++i) first[i] = head.data_ptr<double>()[i];
    const auto shift = lanes(first);
    std::vector<double> lane;
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "scan_bn_stats", [&] {
      lane = stats<scalar_t>(x.const_data_ptr<scalar_t>(), shift.data(), n);
    });
    const auto s1 = fold(lane.data(), c), s2 = fold(lane.data() + L, c);
    const auto w = to_vec(weight), b = to_vec(bias);
    std::vector<double> mean(c), invstd(c), scale(c), offset(c), unbiased(c);
    for (int64_t i = 0; i < c; ++i) {
      const double d = s1[i] / m;  // mean − shift
      mean[i] = static_cast<double>(shift[i]) + d;
      const double var = std::max(s2[i] / m - d * d, 0.0);
      invstd[i] = 1.0 / std::sqrt(var + eps);
      // (x − mean)·w·invstd + b = (x − shift)·scale + offset.
      scale[i] = w[i] * invstd[i];
      offset[i] = b[i] - d * scale[i];
      unbiased[i] = m > 1 ? var * m / (m - 1) : var;
    }
    auto y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    const auto a = lanes(scale), off = lanes(offset);
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "scan_bn_forward", [&] {
      with_flags(res, relu, [&](auto res_c, auto relu_c) {
        normalize<scalar_t, decltype(res_c)::value, decltype(relu_c)::value>(
            y.mutable_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(),
            res ? r.const_data_ptr<scalar_t>() : nullptr, shift.data(), a.data(), off.data(), n);
      });
    });
    {
      at::NoGradGuard no_grad;
      const auto opts = running_mean.options();
      running_mean.mul_(1.0 - momentum).add_(from_vec(mean, opts), momentum);
      running_var.mul_(1.0 - momentum).add_(from_vec(unbiased, opts), momentum);
    }
    ctx->save_for_backward({x, weight, relu ? y : x});
    ctx->saved_data["mean"] = at::tensor(mean, at::kDouble);
    ctx->saved_data["invstd"] = at::tensor(invstd, at::kDouble);
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["residual"] = res;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &y = saved[2];
    const bool relu = ctx->saved_data["relu"].toBool();
    const bool dres = ctx->saved_data["residual"].toBool() && ctx->needs_input_grad(3);
    const auto mean = to_vec(ctx->saved_data["mean"].toTensor());
    const auto invstd = to_vec(ctx->saved_data["invstd"].toTensor());
    const auto dy = nhwc(grads[0]).to(x.scalar_type());
    const int64_t c = x.size(1), n = x.numel(), m = n / c;
    const auto mean_l = lanes(mean);
    at::Tensor dz = dres ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::Tensor();
    std::vector<double> lane;
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "scan_bn_grad_sums", [&] {
      with_flags(relu, dres, [&](auto relu_c, auto dz_c) {
        constexpr bool DZ = decltype(dz_c)::value;
        lane = grad_sums<scalar_t, decltype(relu_c)::value, DZ>(
            dy.const_data_ptr<scalar_t>(), relu ? y.const_data_ptr<scalar_t>() : nullptr,
            x.const_data_ptr<scalar_t>(), mean_l.data(),
            DZ ? dz.mutable_data_ptr<scalar_t>() : nullptr, n);
      });
    });
    // Σg and Σg·(x − mean) for the gradient g at the BatchNorm output.
    const auto sum_g = fold(lane.data(), c), sum_gx = fold(lane.data() + L, c);
    const auto w = to_vec(weight);
    std::vector<double> dw(c), a(c), k1(c), k0(c);
    for (int64_t i = 0; i < c; ++i) {
      // Σ g·x̂ with x̂ = (x − mean)·invstd.
      dw[i] = sum_gx[i] * invstd[i];
      // dx = w·invstd·(g − Σg/m − x̂·Σ(g·x̂)/m) = a·g + k1·(x − mean) + k0.
      a[i] = w[i] * invstd[i];
      k1[i] = -a[i] * invstd[i] * dw[i] / m;
      k0[i] = -a[i] * sum_g[i] / m;
    }
    at::Tensor dx;
    if (ctx->needs_input_grad(0)) {
      dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
      const auto la = lanes(a), lk1 = lanes(k1), lk0 = lanes(k0);
      AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "scan_bn_backward", [&] {
        const auto* py = relu ? y.const_data_ptr<scalar_t>() : nullptr;
        with_flags(relu, false, [&](auto relu_c, auto) {
          grad_input<scalar_t, decltype(relu_c)::value>(
              dx.mutable_data_ptr<scalar_t>(), dy.const_data_ptr<scalar_t>(), py,
              x.const_data_ptr<scalar_t>(), mean_l.data(), la.data(), lk1.data(), lk0.data(), n);
        });
      });
    }
    const auto opts = weight.options();
    return {dx,          from_vec(dw, opts), from_vec(sum_g, opts), dz,          at::Tensor(),
            at::Tensor(), at::Tensor(),       at::Tensor(),          at::Tensor(), at::Tensor()};
  }
};

thread_local std::string last_error;

}  // namespace

extern "C" {
// y = [relu](batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum, eps)
// [+ residual]) for a 4-D CPU tensor (fp32 or bf16) whose channel count divides 64 and whose
// element count is a multiple of 64; `residual` may be null, `relu` is 0 or 1. Returns a new tensor
// handle, or null with the message in scan_bn_last_error().
at::Tensor* scan_bn_channels_last(at::Tensor* x, at::Tensor* weight, at::Tensor* bias,
                                  at::Tensor* residual, at::Tensor* running_mean,
                                  at::Tensor* running_var, int relu, double momentum, double eps) {
  try {
    TORCH_CHECK(x->dim() == 4 && x->device().is_cpu(), "a 4-D CPU tensor");
    const int64_t c = x->size(1);
    TORCH_CHECK(c > 0 && L % c == 0 && x->numel() % L == 0,
                "C dividing 64, numel a multiple of 64");
    TORCH_CHECK(x->scalar_type() == at::kFloat || x->scalar_type() == at::kBFloat16,
                "fp32 or bf16 input");
    TORCH_CHECK(!residual || residual->sizes() == x->sizes(), "a residual of the input's shape");
    // Without a residual, x stands in for it (autograd functions take defined tensors); its
    // gradient from that slot is undefined.
    auto y = ChannelsLastBatchNorm::apply(*x, *weight, *bias, residual ? *residual : *x,
                                          residual != nullptr, *running_mean, *running_var,
                                          relu != 0, momentum, eps);
    return new at::Tensor(std::move(y));
  } catch (const std::exception& e) {
    last_error = e.what();
    return nullptr;
  }
}

const char* scan_bn_last_error() { return last_error.c_str(); }
}
