#include "ops/quantized_matmul.h"

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

void check_quantized_weight(const QuantizedWeight& w, const std::string& what) {
  LF_CHECK(w.data.defined() && w.data.dim() == 2, "{}: quantized weight data must be [out, in]", what);
  const DType dt = w.data.dtype();
  const int64_t out = w.data.size(0), in = w.data.size(1);
  if (dt == DType::BF16 || dt == DType::F16) {
    LF_CHECK(!w.scale.defined(), "{}: a {} weight has no scales", what, dtype_name(dt));
    return;
  }
  LF_CHECK(dt == DType::I8 || dt == DType::F8E4M3,
           "{}: quantized weight dtype {} is not one of i8, f8e4m3, bf16, f16", what, dtype_name(dt));
  LF_CHECK(w.scale.defined(), "{}: the {} weight's scales are missing", what, dtype_name(dt));
  LF_CHECK(w.scale.dtype() == DType::F32, "{}: scales must be f32, got {}", what, dtype_name(w.scale.dtype()));
  LF_CHECK(w.group_size > 0 && in % w.group_size == 0,
           "{}: group size {} does not divide the {} input features", what, w.group_size, in);
  LF_CHECK(w.scale.dim() == 2 && w.scale.size(0) == out && w.scale.size(1) == in / w.group_size,
           "{}: scales have shape {} but [{}, {}] is needed for group size {}", what, shape_str(w.scale.shape()), out,
           in / w.group_size, w.group_size);
}

Tensor linear_quantized(const Tensor& x, const QuantizedWeight& w, const Tensor& b) {
  LF_CHECK(is_floating(x.dtype()), "linear_quantized: input dtype {} is not floating", dtype_name(x.dtype()));
  LF_CHECK(x.dim() >= 1 && x.size(-1) == w.in_features(),
           "linear_quantized: input {} has {} features but the weight expects {}", x.str(),
           x.dim() >= 1 ? x.size(-1) : 0, w.in_features());
  LF_CHECK(x.device() == w.data.device(), "linear_quantized: input on {} but the weight on {}", x.device().str(),
           w.data.device().str());
  const int64_t k = w.in_features(), n = w.out_features();
  Shape out_shape = x.shape();
  out_shape.back() = n;
  const Tensor x2 = contiguous(x.detach()).view({-1, k});
  Tensor out = Tensor::empty({x2.size(0), n}, x.dtype(), x.device());
  Tensor bias;
  if (b.defined()) {
    LF_CHECK(b.dim() == 1 && b.size(0) == n, "linear_quantized: bias {} does not match {} outputs", b.str(), n);
    bias = contiguous(cast(b.detach(), x.dtype()));
  }
  Backend& backend = backend_for(x);
  if (backend.supports(Kernel::gemm_quantized, w.data.dtype())) {
    backend.gemm_quantized(
        {.x = x2, .weight = w.data, .scale = w.scale, .bias = bias, .out = out, .group_size = w.group_size});
  } else {
    // A backend without the kernel for this weight dtype: this layer's weight is dequantised for
    // this call only, in x's dtype, and multiplied by the ordinary GEMM.
    NoGradGuard no_grad;
    out = linear(x2, cast(dequantize(w), x.dtype()), bias);
  }
  out = out.view(out_shape);
  if (any_requires_grad({x, b})) record_op_without_backward("linear_quantized", {x, b}, {out});
  return out;
}

Tensor linear_fixed_order(const Tensor& x, const Tensor& w, const Tensor& b) {
  LF_CHECK(w.dim() == 2 && (w.dtype() == DType::F32 || w.dtype() == DType::BF16 || w.dtype() == DType::F16),
           "linear_fixed_order: weight must be an f32, bf16 or f16 [out, in] matrix, got {}", w.str());
  return linear_quantized(x, {.data = contiguous(w.detach()), .scale = Tensor(), .group_size = 0}, b);
}

Tensor dequantize(const QuantizedWeight& w) {
  Tensor f = cast(w.data, DType::F32);
  if (!w.scale.defined()) return f;
  const int64_t out = w.out_features(), in = w.in_features(), groups = in / w.group_size;
  Tensor grouped = f.view({out, groups, w.group_size}) * w.scale.view({out, groups, 1});
  return contiguous(grouped).view({out, in});
}

}  // namespace lmforge
