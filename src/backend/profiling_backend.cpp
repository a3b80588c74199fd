#include "backend/profiling_backend.h"

#include <iterator>

#include "backend/op_profile.h"

namespace lmforge {

namespace {

const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg",  "exp",     "log",  "sqrt",     "rsqrt",     "abs",    "square",    "tanh",
                                "sigmoid", "silu", "relu", "gelu_erf", "gelu_tanh", "affine", "pow_scalar", "clamp"};
  const auto i = size_t(op);
  return i < std::size(names) ? names[i] : "?";
}

const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt",
                                "ge", "silu_backward", "gelu_erf_backward", "gelu_tanh_backward", "sigmoid_backward",
                                "tanh_backward", "relu_backward"};
  const auto i = size_t(op);
  return i < std::size(names) ? names[i] : "?";
}

const char* reduce_name(ReduceOp op) {
  static const char* names[] = {"sum", "max", "min", "sum_squares"};
  const auto i = size_t(op);
  return i < std::size(names) ? names[i] : "?";
}

std::string dt(const Tensor& t) { return t.defined() ? std::string(dtype_name(t.dtype())) : std::string("-"); }

}  // namespace

// Times `f` on `inner`'s device: everything queued before is finished first, so only f's work
// is measured.
template <class F>
void ProfilingBackend::timed(const std::string& name, F&& f) {
  const Backend::Timing t = inner_.time_on_device(f);
  op_profile::record(name, t.device_s, t.host_s);
}

std::unique_ptr<PendingRead> ProfilingBackend::read_async(const Tensor& src) {
  std::unique_ptr<PendingRead> r;
  timed(fmt::format("read_async {}", dt(src)), [&] { r = inner_.read_async(src); });
  return r;
}

void ProfilingBackend::copy(const Tensor& src, const Tensor& dst) {
  const bool host = src.device() != dst.device();
  timed(fmt::format("copy {}{}->{}", host ? "host/device " : "", dt(src), dt(dst)), [&] { inner_.copy(src, dst); });
}
void ProfilingBackend::fill(const Tensor& dst, double value) {
  timed("fill " + dt(dst), [&] { inner_.fill(dst, value); });
}
void ProfilingBackend::arange(const Tensor& dst, double start, double step) {
  timed("arange " + dt(dst), [&] { inner_.arange(dst, start, step); });
}
void ProfilingBackend::random(const Tensor& dst, const RandomArgs& args) {
  timed("random " + dt(dst), [&] { inner_.random(dst, args); });
}
void ProfilingBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha, double beta) {
  timed(fmt::format("unary {} {}", unary_name(op), dt(x)), [&] { inner_.unary(op, x, out, alpha, beta); });
}
void ProfilingBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  timed(fmt::format("binary {} {}", binary_name(op), dt(out)), [&] { inner_.binary(op, a, b, out); });
}
void ProfilingBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  timed("where " + dt(out), [&] { inner_.where(cond, a, b, out); });
}
void ProfilingBackend::reduce(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r,
                              int64_t inner) {
  timed(fmt::format("reduce {} {}", reduce_name(op), dt(x)), [&] { inner_.reduce(op, x, out, outer, r, inner); });
}
void ProfilingBackend::argmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  timed("argmax " + dt(x), [&] { inner_.argmax(x, out, outer, r, inner); });
}
void ProfilingBackend::cumsum_last(const Tensor& x, const Tensor& out) {
  timed("cumsum " + dt(x), [&] { inner_.cumsum_last(x, out); });
}
void ProfilingBackend::gemm(const GemmArgs& g) {
  timed(fmt::format("gemm {}->{}", dt(g.a), dt(g.c)), [&] { inner_.gemm(g); });
}
void ProfilingBackend::softmax_forward(const Tensor& x, const Tensor& y, bool log) {
  timed("softmax_forward " + dt(x), [&] { inner_.softmax_forward(x, y, log); });
}
void ProfilingBackend::softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) {
  timed("softmax_backward " + dt(y), [&] { inner_.softmax_backward(y, dy, dx, log); });
}
void ProfilingBackend::logsumexp_last(const Tensor& x, const Tensor& out) {
  timed("logsumexp " + dt(x), [&] { inner_.logsumexp_last(x, out); });
}
void ProfilingBackend::topk_last(const Tensor& x, int64_t k, bool largest, const Tensor& values,
                                 const Tensor& indices) {
  timed("topk " + dt(x), [&] { inner_.topk_last(x, k, largest, values, indices); });
}
void ProfilingBackend::sort_last(const Tensor& x, bool descending, const Tensor& values, const Tensor& indices) {
  timed("sort " + dt(x), [&] { inner_.sort_last(x, descending, values, indices); });
}
void ProfilingBackend::index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer,
                                    int64_t n, int64_t inner) {
  timed("index_select " + dt(x), [&] { inner_.index_select(x, index, out, outer, n, inner); });
}
void ProfilingBackend::index_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                                 int64_t inner) {
  timed("index_add " + dt(dst), [&] { inner_.index_add(dst, index, src, outer, n, inner); });
}
void ProfilingBackend::gather(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                              int64_t inner) {
  timed("gather " + dt(x), [&] { inner_.gather(x, index, out, outer, n, inner); });
}
void ProfilingBackend::scatter_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer,
                                   int64_t n, int64_t inner) {
  timed("scatter_add " + dt(dst), [&] { inner_.scatter_add(dst, index, src, outer, n, inner); });
}
void ProfilingBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets,
                                             const CrossEntropyArgs& args, const Tensor& loss, const Tensor& lse) {
  timed("cross_entropy_forward " + dt(logits), [&] { inner_.cross_entropy_forward(logits, targets, args, loss, lse); });
}
void ProfilingBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                              const Tensor& dloss, const CrossEntropyArgs& args,
                                              const Tensor& dlogits) {
  timed("cross_entropy_backward " + dt(logits),
        [&] { inner_.cross_entropy_backward(logits, targets, lse, dloss, args, dlogits); });
}
// A norm that also adds the residual (or the sum's gradient) is keyed apart from the plain norm.
void ProfilingBackend::rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                        const Tensor& y, const Tensor& sum, const Tensor& rstd) {
  timed((residual.defined() ? "add_rms_norm_forward " : "rms_norm_forward ") + dt(x),
        [&] { inner_.rms_norm_forward(x, residual, weight, eps, y, sum, rstd); });
}
void ProfilingBackend::rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,
                                         const Tensor& dsum, const Tensor& dx, const Tensor& dweight) {
  timed((dsum.defined() ? "add_rms_norm_backward " : "rms_norm_backward ") + dt(x),
        [&] { inner_.rms_norm_backward(x, weight, rstd, dy, dsum, dx, dweight); });
}
void ProfilingBackend::layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight,
                                          const Tensor& bias, double eps, const Tensor& y, const Tensor& sum,
                                          const Tensor& mean, const Tensor& rstd) {
  timed((residual.defined() ? "add_layer_norm_forward " : "layer_norm_forward ") + dt(x),
        [&] { inner_.layer_norm_forward(x, residual, weight, bias, eps, y, sum, mean, rstd); });
}
void ProfilingBackend::layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean,
                                           const Tensor& rstd, const Tensor& dy, const Tensor& dsum, const Tensor& dx,
                                           const Tensor& dweight, const Tensor& dbias) {
  timed((dsum.defined() ? "add_layer_norm_backward " : "layer_norm_backward ") + dt(x),
        [&] { inner_.layer_norm_backward(x, weight, mean, rstd, dy, dsum, dx, dweight, dbias); });
}
void ProfilingBackend::rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset,
                            bool interleaved, bool inverse) {
  timed("rope " + dt(x), [&] { inner_.rope(x, out, theta, position_offset, interleaved, inverse); });
}
void ProfilingBackend::swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  timed("swiglu_forward " + dt(gate), [&] { inner_.swiglu_forward(gate, up, out); });
}
void ProfilingBackend::swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                                       const Tensor& dup) {
  timed("swiglu_backward " + dt(gate), [&] { inner_.swiglu_backward(gate, up, dout, dgate, dup); });
}
void ProfilingBackend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                         const AttentionArgs& args, const Tensor& out, const Tensor& lse) {
  timed(fmt::format("attention_forward {} d{}", dt(q), q.size(-1)),
        [&] { inner_.attention_forward(q, k, v, mask, args, out, lse); });
}
void ProfilingBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                          const Tensor& out, const Tensor& lse, const Tensor& dout,
                                          const AttentionArgs& args, const Tensor& dq, const Tensor& dk,
                                          const Tensor& dv) {
  timed(fmt::format("attention_backward {} d{}", dt(q), q.size(-1)),
        [&] { inner_.attention_backward(q, k, v, mask, out, lse, dout, args, dq, dk, dv); });
}
void ProfilingBackend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                                  const Tensor& exp_avg_sq, const AdamWArgs& args) {
  timed("adamw_step " + dt(param), [&] { inner_.adamw_step(param, grad, exp_avg, exp_avg_sq, args); });
}

void ProfilingBackend::adamw_multi_step(const std::vector<AdamWTensor>& tensors, const AdamWArgs& args) {
  timed("adamw_multi_step", [&] { inner_.adamw_multi_step(tensors, args); });
}
void ProfilingBackend::multi_sum_of_squares(const std::vector<Tensor>& tensors, const Tensor& out) {
  timed("multi_sum_of_squares", [&] { inner_.multi_sum_of_squares(tensors, out); });
}

}  // namespace lmforge
