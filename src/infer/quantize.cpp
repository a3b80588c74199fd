#include "infer/quantize.h"

#include <algorithm>
#include <cmath>

#include "core/float_convert.h"
#include "ops/ops.h"

namespace lmforge::infer {

QuantFormat parse_quant_format(const std::string& s) {
  if (s == "int8") return QuantFormat::Int8;
  if (s == "fp8") return QuantFormat::Fp8;
  if (s == "bf16") return QuantFormat::BF16;
  if (s == "f16") return QuantFormat::F16;
  throw Error(fmt::format("unknown quantization format '{}' (expected int8, fp8, bf16 or f16)", s));
}

std::string to_string(QuantFormat f) {
  switch (f) {
    case QuantFormat::Int8: return "int8";
    case QuantFormat::Fp8: return "fp8";
    case QuantFormat::BF16: return "bf16";
    case QuantFormat::F16: return "f16";
  }
  return "?";
}

QuantizedWeight quantize_weight(const Tensor& w, const QuantizeOptions& o) {
  LF_CHECK(w.dim() == 2 && is_floating(w.dtype()), "quantize: a weight must be a floating [out, in] matrix, got {}",
           w.str());
  if (o.format == QuantFormat::BF16 || o.format == QuantFormat::F16)
    return {.data = contiguous(cast(w, o.format == QuantFormat::BF16 ? DType::BF16 : DType::F16)),
            .scale = Tensor(), .group_size = 0};
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = o.group_size > 0 ? o.group_size : in;
  LF_CHECK(in % group == 0, "quantize: --group-size {} does not divide the {} input features of a {} weight", group,
           in, shape_str(w.shape()));
  const int64_t groups = in / group;
  const std::vector<float> v = to_vector<float>(cast(w, DType::F32));
  std::vector<float> scales(size_t(out * groups));
  const bool int8 = o.format == QuantFormat::Int8;
  const float qmax = int8 ? 127.f : 448.f;  // the largest int8 step used, the largest e4m3 value
  Tensor data = Tensor::empty({out, in}, int8 ? DType::I8 : DType::F8E4M3);
  auto* q = static_cast<uint8_t*>(data.data_ptr());
  for (int64_t r = 0; r < out; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      const float* src = v.data() + r * in + g * group;
      float amax = 0;
      for (int64_t i = 0; i < group; ++i) amax = std::max(amax, std::abs(src[i]));
      // An all-zero group keeps scale 0 (dequantises to zeros); the division below uses 1.
      const float scale = amax / qmax;
      scales[size_t(r * groups + g)] = scale;
      const float inv = scale > 0 ? 1.f / scale : 1.f;
      uint8_t* dst = q + r * in + g * group;
      for (int64_t i = 0; i < group; ++i) {
        const float x = src[i] * inv;
        if (int8) {
          const float rounded = std::nearbyint(std::clamp(x, -127.f, 127.f));
          dst[i] = static_cast<uint8_t>(static_cast<int8_t>(rounded));
        } else {
          dst[i] = float_to_e4m3_bits(x);
        }
      }
    }
  QuantizedWeight qw{.data = data.to(w.device()),
                     .scale = from_vector<float>(scales, {out, groups}, w.device()),
                     .group_size = group};
  return qw;
}

QuantizeStats quantize_model(nn::Transformer& model, const QuantizeOptions& options) {
  NoGradGuard no_grad;
  // Every matrix weight must belong to a Linear: one elsewhere (a Mixture-of-Experts layer's
  // stacked expert weights) has no quantized form yet, and is refused before anything changes.
  std::vector<const void*> linear_weights;
  model.for_each_module([&](const std::string&, nn::Module& m) {
    if (const auto* linear = dynamic_cast<nn::Linear*>(&m); linear && linear->weight().defined())
      linear_weights.push_back(linear->weight().impl_ptr().get());
  });
  for (const auto& p : model.named_parameters())
    LF_CHECK(!(p.kind == nn::ParamKind::Matrix || p.kind == nn::ParamKind::ResidualMatrix) ||
                 std::find(linear_weights.begin(), linear_weights.end(), p.tensor.impl_ptr().get()) != linear_weights.end(),
             "quantize: tensor '{}' {} is a matrix weight outside a linear layer (a Mixture-of-Experts layer's "
             "experts), which quantize cannot store narrow yet; only dense models can be quantized",
             p.name, shape_str(p.tensor.shape()));
  QuantizeStats stats;
  for (const auto& p : model.named_parameters()) stats.bytes_before += p.tensor.nbytes();
  model.for_each_module([&](const std::string& name, nn::Module& m) {
    auto* linear = dynamic_cast<nn::Linear*>(&m);
    if (!linear) return;
    LF_CHECK(!linear->quantized_weight(), "quantize: {} is quantized already", name);
    linear->set_quantized_weight(quantize_weight(linear->weight(), options));
    stats.layers++;
  });
  for (const auto& p : model.named_parameters()) stats.bytes_after += p.tensor.nbytes();
  model.for_each_module([&](const std::string&, nn::Module& m) {
    if (const auto* linear = dynamic_cast<nn::Linear*>(&m); linear && linear->quantized_weight())
      stats.bytes_after += linear->quantized_weight()->nbytes();
  });
  return stats;
}

}  // namespace lmforge::infer
