// The entry points of Backend (backend.h): each checks its kernel's contract once, for every
// backend (an Error naming the kernel and the argument), then runs the backend's do_ method
// through run(), which times it while kernel profiling is on. The checks are comparisons of
// shapes, dtypes, devices and strides: no allocation, no wait on a device.
//
// A backend's do_ method may rely on everything checked here and checks only what is its own
// (an index range on the device, a layout one of its kernels needs).
#include <cmath>
#include <initializer_list>
#include <limits>

#include "backend/backend.h"
#include "backend/op_profile.h"

namespace lmforge {

namespace {

// A named argument of a kernel, for error messages.
struct Arg {
  const char* name;
  const Tensor& t;
};

// Every defined argument lives on `device`.
void check_devices(Device device, const char* kernel, std::initializer_list<Arg> args) {
  for (const Arg& a : args)
    if (a.t.defined())
      LF_CHECK(a.t.device() == device, "{}: {} {} is not on {}", kernel, a.name, a.t.str(), device.str());
}

void check_contiguous(const char* kernel, std::initializer_list<Arg> args) {
  for (const Arg& a : args)
    if (a.t.defined()) LF_CHECK(a.t.is_contiguous(), "{}: {} {} must be contiguous", kernel, a.name, a.t.str());
}

void check_same_shape(const char* kernel, const Arg& like, std::initializer_list<Arg> args) {
  for (const Arg& a : args)
    if (a.t.defined())
      LF_CHECK(a.t.shape() == like.t.shape(), "{}: {} has shape {} but {} has shape {}", kernel, a.name,
               shape_str(a.t.shape()), like.name, shape_str(like.t.shape()));
}

void check_same_dtype(const char* kernel, const Arg& like, std::initializer_list<Arg> args) {
  for (const Arg& a : args)
    if (a.t.defined())
      LF_CHECK(a.t.dtype() == like.t.dtype(), "{}: {} is {} but {} is {}", kernel, a.name, dtype_name(a.t.dtype()),
               like.name, dtype_name(like.t.dtype()));
}

void check_fused_dtype(const char* kernel, DType t) {
  LF_CHECK(is_fused_dtype(t), "{}: dtype {} is not supported (expected f64, f32, bf16 or f16)", kernel,
           dtype_name(t));
}

void check_not_bool(const char* kernel, const Tensor& x, const char* hint) {
  LF_CHECK(x.dtype() != DType::Bool, "{}: bool tensors are not supported{}", kernel, hint);
}

void check_index(const char* kernel, const Tensor& index) {
  LF_CHECK(index.dtype() == DType::I64 || index.dtype() == DType::I32,
           "{}: index dtype {} is not supported (expected i64 or i32)", kernel, dtype_name(index.dtype()));
}

// Statistics (norm mean/rstd, lse, losses) and weight gradients of the fused kernels: contiguous
// f32, or f64 when the data is f64.
void check_stat(const char* kernel, const Arg& a, DType data) {
  if (!a.t.defined()) return;
  LF_CHECK(a.t.dtype() == stat_dtype(data) && a.t.is_contiguous(), "{}: {} is {}, expected a contiguous {} tensor",
           kernel, a.name, a.t.str(), dtype_name(stat_dtype(data)));
}

// x [.., C] contiguous and the tensors laid out like it; weight and bias [C].
void check_norm(const char* kernel, const Tensor& x, std::initializer_list<Arg> like_x, const Tensor& weight,
                const Tensor& bias) {
  LF_CHECK(x.dim() >= 1, "{}: x must have at least one dimension, got {}", kernel, x.str());
  check_fused_dtype(kernel, x.dtype());
  check_contiguous(kernel, {{"x", x}});
  check_contiguous(kernel, like_x);
  check_same_shape(kernel, {"x", x}, like_x);
  check_same_dtype(kernel, {"x", x}, like_x);
  for (const Arg& a : {Arg{"weight", weight}, Arg{"bias", bias}})
    if (a.t.defined())
      LF_CHECK(a.t.dim() == 1 && a.t.numel() == x.size(-1), "{}: {} is {}, expected [{}]", kernel, a.name,
               a.t.str(), x.size(-1));
}

// q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] with H a multiple of Hkv, last dims
// contiguous; mask [B, H, T, S] of the statistics dtype. Returns Dv.
int64_t check_attention(const char* kernel, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) {
  check_fused_dtype(kernel, q.dtype());
  LF_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "{}: q, k, v must be 4-d, got {}, {}, {}", kernel, q.str(),
           k.str(), v.str());
  check_same_dtype(kernel, {"q", q}, {{"k", k}, {"v", v}});
  const int64_t nb = q.size(0), nt = q.size(1), nh = q.size(2), d = q.size(3), ns = k.size(1), nhkv = k.size(2);
  LF_CHECK(k.size(0) == nb && v.size(0) == nb && v.size(1) == ns && v.size(2) == nhkv && k.size(3) == d,
           "{}: k {} and v {} do not fit q {} ([B, S, Hkv, D] and [B, S, Hkv, Dv])", kernel, k.str(), v.str(),
           q.str());
  LF_CHECK(nhkv > 0 && nh % nhkv == 0, "{}: q's {} heads are not a multiple of k's {}", kernel, nh, nhkv);
  LF_CHECK((d <= 1 || (q.stride(3) == 1 && k.stride(3) == 1)) && (v.size(3) <= 1 || v.stride(3) == 1),
           "{}: the last dim of q, k and v must be contiguous", kernel);
  if (mask.defined())
    LF_CHECK(mask.dtype() == stat_dtype(q.dtype()) && mask.shape() == Shape({nb, nh, nt, ns}),
             "{}: mask is {}, expected {} [{}, {}, {}, {}]", kernel, mask.str(), dtype_name(stat_dtype(q.dtype())),
             nb, nh, nt, ns);
  return v.size(3);
}

// One tensor of an AdamW step: contiguous, sizes equal, param f64/f32/bf16/f16, grad of its dtype
// or f32, moments of the statistics dtype.
void check_adamw(const char* kernel, const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                 const Tensor& exp_avg_sq) {
  check_contiguous(kernel, {{"param", param}, {"grad", grad}, {"exp_avg", exp_avg}, {"exp_avg_sq", exp_avg_sq}});
  for (const Arg& a : {Arg{"grad", grad}, Arg{"exp_avg", exp_avg}, Arg{"exp_avg_sq", exp_avg_sq}})
    LF_CHECK(a.t.numel() == param.numel(), "{}: {} has {} elements but param has {}", kernel, a.name, a.t.numel(),
             param.numel());
  LF_CHECK(is_fused_dtype(param.dtype()), "{}: parameter dtype {} is not supported (expected f32, f64, bf16 or f16)",
           kernel, dtype_name(param.dtype()));
  LF_CHECK(grad.dtype() == param.dtype() || grad.dtype() == DType::F32,
           "{}: gradient dtype {} does not match parameter dtype {} (expected {} or f32)", kernel,
           dtype_name(grad.dtype()), dtype_name(param.dtype()), dtype_name(param.dtype()));
  check_stat(kernel, {"exp_avg", exp_avg}, param.dtype());
  check_stat(kernel, {"exp_avg_sq", exp_avg_sq}, param.dtype());
}

// The profile key's dtype part.
std::string dt(const Tensor& t) { return t.defined() ? std::string(dtype_name(t.dtype())) : std::string("-"); }

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

// Set while a profiled kernel runs on this thread: kernels it calls itself (a GEMM's epilogue, a
// multi-tensor step's single-tensor steps) are part of its time, not entries of their own.
thread_local bool t_in_profiled_kernel = false;

}  // namespace

bool Backend::profiling() { return op_profile::enabled(); }

void Backend::record_profiled(const std::string& key, const std::function<void()>& call) {
  struct Nested {
    Nested() { t_in_profiled_kernel = true; }
    ~Nested() { t_in_profiled_kernel = false; }
  } nested;
  const Timing t = time_on_device(call);
  op_profile::record(key, t.device_s, t.host_s);
}

template <class Key, class Call>
decltype(auto) Backend::run(const Key& key, Call&& call) {
  using R = decltype(call());
  if (!profiling() || t_in_profiled_kernel) [[likely]]
    return call();
  if constexpr (std::is_void_v<R>) {
    record_profiled(key(), call);
  } else {
    R r;
    record_profiled(key(), [&] { r = call(); });
    return r;
  }
}

// ---- memory ----

void Backend::copy(const Tensor& src, const Tensor& dst) {
  const Device d = device();
  LF_CHECK(src.shape() == dst.shape(), "copy: src {} and dst {} differ in shape", src.str(), dst.str());
  // One side may be on the host (the GPU backends' host<->device copies), never both on a device
  // that is not this one.
  const bool src_ok = src.device() == d || src.device().is_cpu(), dst_ok = dst.device() == d || dst.device().is_cpu();
  LF_CHECK(src_ok && dst_ok && (src.device() == d || dst.device() == d), "copy between {} and {} on the {} backend",
           src.device().str(), dst.device().str(), d.str());
  const bool crossing = src.device() != dst.device();
  run([&] { return fmt::format("copy {}{}->{}", crossing ? "host/device " : "", dt(src), dt(dst)); },
      [&] { do_copy(src, dst); });
}

std::unique_ptr<PendingRead> Backend::read_async(const Tensor& src) {
  check_devices(device(), "read_async", {{"src", src}});
  check_contiguous("read_async", {{"src", src}});
  return run([&] { return "read_async " + dt(src); }, [&] { return do_read_async(src); });
}

void Backend::fill(const Tensor& dst, double value) {
  check_devices(device(), "fill", {{"dst", dst}});
  run([&] { return "fill " + dt(dst); }, [&] { do_fill(dst, value); });
}

void Backend::arange(const Tensor& dst, double start, double step) {
  check_devices(device(), "arange", {{"dst", dst}});
  check_contiguous("arange", {{"dst", dst}});
  run([&] { return "arange " + dt(dst); }, [&] { do_arange(dst, start, step); });
}

void Backend::random(const Tensor& dst, const RandomArgs& a) {
  check_devices(device(), "random", {{"dst", dst}});
  check_contiguous("random", {{"dst", dst}});
  // The argument rules of core/random_kernels.h's fills, which every backend draws like.
  const int64_t n = dst.numel();
  auto check_offset = [&](const char* op, uint64_t per_block) {
    const uint64_t blocks = n <= 0 ? 0 : (uint64_t(n) + per_block - 1) / per_block;
    LF_CHECK(blocks == 0 || a.offset <= std::numeric_limits<uint64_t>::max() - (blocks - 1),
             "{}: offset {} + {} blocks runs past the end of the Philox counter space", op, a.offset, blocks);
  };
  auto finite = [](const char* op, const char* name, double v) {
    LF_CHECK(std::isfinite(v), "{}: {} must be finite, got {}", op, name, v);
  };
  using K = RandomArgs::Kind;
  const bool wide = dst.dtype() == DType::F64;
  switch (a.kind) {
    case K::RandInt:
      LF_CHECK(dst.dtype() == DType::I64, "randint needs an i64 tensor, got {}", dst.str());
      check_offset("fill_randint", 2);
      LF_CHECK(int64_t(a.a) < int64_t(a.b), "fill_randint: need lo < hi, got [{}, {})", int64_t(a.a), int64_t(a.b));
      break;
    case K::Bernoulli:
      check_offset("fill_bernoulli", 4);
      LF_CHECK(a.a >= 0.0 && a.a <= 1.0, "fill_bernoulli: p must be in [0, 1], got {}", a.a);
      break;
    case K::Uniform: {
      LF_CHECK(is_floating(dst.dtype()), "random floats into a tensor of dtype {}", dtype_name(dst.dtype()));
      check_offset("fill_uniform", wide ? 2 : 4);
      const double lo = wide ? a.a : double(float(a.a)), hi = wide ? a.b : double(float(a.b));
      finite("fill_uniform", "lo", lo);
      finite("fill_uniform", "hi", hi);
      LF_CHECK(lo <= hi && std::isfinite(wide ? hi - lo : double(float(hi) - float(lo))),
               "fill_uniform: need lo <= hi with a finite hi - lo, got [{}, {})", lo, hi);
      break;
    }
    case K::Normal:
      LF_CHECK(is_floating(dst.dtype()), "random floats into a tensor of dtype {}", dtype_name(dst.dtype()));
      check_offset("fill_normal", wide ? 2 : 4);
      finite("fill_normal", "mean", wide ? a.a : double(float(a.a)));
      finite("fill_normal", "std", wide ? a.b : double(float(a.b)));
      LF_CHECK(a.b >= 0.0, "fill_normal: std must be >= 0, got {}", a.b);
      break;
    case K::TruncatedNormal: {
      const char* op = "fill_truncated_normal";
      LF_CHECK(is_floating(dst.dtype()), "random floats into a tensor of dtype {}", dtype_name(dst.dtype()));
      check_offset(op, wide ? 2 : 4);
      const double m = wide ? a.a : double(float(a.a)), s = wide ? a.b : double(float(a.b));
      const double lo = wide ? a.lo : double(float(a.lo)), hi = wide ? a.hi : double(float(a.hi));
      finite(op, "mean", m);
      finite(op, "std", s);
      finite(op, "a", lo);
      finite(op, "b", hi);
      LF_CHECK(s > 0, "{}: std must be > 0, got {}", op, s);
      LF_CHECK(lo < hi, "{}: need a < b (absolute bounds), got [{}, {}]", op, lo, hi);
      break;
    }
  }
  run([&] { return "random " + dt(dst); }, [&] { do_random(dst, a); });
}

// ---- elementwise ----

void Backend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha, double beta) {
  check_devices(device(), "unary", {{"x", x}, {"out", out}});
  check_same_shape("unary", {"out", out}, {{"x", x}});
  check_same_dtype("unary", {"out", out}, {{"x", x}});
  run([&] { return fmt::format("unary {} {}", unary_name(op), dt(x)); },
      [&] { do_unary(op, x, out, alpha, beta); });
}

void Backend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_devices(device(), "binary", {{"a", a}, {"b", b}, {"out", out}});
  check_same_shape("binary", {"out", out}, {{"a", a}, {"b", b}});
  check_same_dtype("binary", {"a", a}, {{"b", b}});
  LF_CHECK(a.dtype() != DType::Bool, "binary op on bool tensors: cast them to a number type first");
  const bool comparison = op >= BinaryOp::Eq && op <= BinaryOp::Ge;
  LF_CHECK(out.dtype() == (comparison ? DType::Bool : a.dtype()), "binary {}: out is {}, expected {}",
           binary_name(op), dtype_name(out.dtype()), dtype_name(comparison ? DType::Bool : a.dtype()));
  run([&] { return fmt::format("binary {} {}", binary_name(op), dt(out)); }, [&] { do_binary(op, a, b, out); });
}

void Backend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_devices(device(), "where", {{"cond", cond}, {"a", a}, {"b", b}, {"out", out}});
  check_same_shape("where", {"out", out}, {{"cond", cond}, {"a", a}, {"b", b}});
  LF_CHECK(cond.dtype() == DType::Bool, "where: cond is {}, expected bool", dtype_name(cond.dtype()));
  check_same_dtype("where", {"out", out}, {{"a", a}, {"b", b}});
  run([&] { return "where " + dt(out); }, [&] { do_where(cond, a, b, out); });
}

// ---- reductions and row-wise ops ----

void Backend::reduce(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  check_devices(device(), "reduce", {{"x", x}, {"out", out}});
  check_contiguous("reduce", {{"x", x}, {"out", out}});
  LF_CHECK(out.numel() == outer * inner, "reduce: out has {} elements, expected {} x {}", out.numel(), outer, inner);
  check_not_bool("reduce", x, "; cast to a number type first");
  run([&] { return fmt::format("reduce {} {}", reduce_name(op), dt(x)); },
      [&] { do_reduce(op, x, out, outer, r, inner); });
}

void Backend::argmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  check_devices(device(), "argmax", {{"x", x}, {"out", out}});
  check_contiguous("argmax", {{"x", x}});
  LF_CHECK(out.dtype() == DType::I64, "argmax: out is {}, expected i64", dtype_name(out.dtype()));
  run([&] { return "argmax " + dt(x); }, [&] { do_argmax(x, out, outer, r, inner); });
}

void Backend::cumsum_last(const Tensor& x, const Tensor& out) {
  check_devices(device(), "cumsum", {{"x", x}, {"out", out}});
  check_contiguous("cumsum", {{"x", x}, {"out", out}});
  check_same_dtype("cumsum", {"x", x}, {{"out", out}});
  check_not_bool("cumsum", x, "");
  run([&] { return "cumsum " + dt(x); }, [&] { do_cumsum_last(x, out); });
}

void Backend::softmax_forward(const Tensor& x, const Tensor& y, bool log) {
  check_devices(device(), "softmax", {{"x", x}, {"y", y}});
  check_contiguous("softmax", {{"x", x}, {"y", y}});
  run([&] { return "softmax_forward " + dt(x); }, [&] { do_softmax_forward(x, y, log); });
}

void Backend::softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) {
  check_devices(device(), "softmax_backward", {{"y", y}, {"dy", dy}, {"dx", dx}});
  check_contiguous("softmax_backward", {{"y", y}, {"dy", dy}, {"dx", dx}});
  run([&] { return "softmax_backward " + dt(y); }, [&] { do_softmax_backward(y, dy, dx, log); });
}

void Backend::logsumexp_last(const Tensor& x, const Tensor& out) {
  check_devices(device(), "logsumexp", {{"x", x}, {"out", out}});
  check_contiguous("logsumexp", {{"x", x}, {"out", out}});
  run([&] { return "logsumexp " + dt(x); }, [&] { do_logsumexp_last(x, out); });
}

void Backend::topk_last(const Tensor& x, int64_t k, bool largest, const Tensor& values, const Tensor& indices) {
  check_devices(device(), "topk", {{"x", x}, {"values", values}, {"indices", indices}});
  check_contiguous("topk", {{"x", x}, {"values", values}, {"indices", indices}});
  check_not_bool("sort/topk", x, "");
  run([&] { return "topk " + dt(x); }, [&] { do_topk_last(x, k, largest, values, indices); });
}

void Backend::sort_last(const Tensor& x, bool descending, const Tensor& values, const Tensor& indices) {
  check_devices(device(), "sort", {{"x", x}, {"values", values}, {"indices", indices}});
  check_contiguous("sort", {{"x", x}, {"values", values}, {"indices", indices}});
  check_not_bool("sort/topk", x, "");
  run([&] { return "sort " + dt(x); }, [&] { do_sort_last(x, descending, values, indices); });
}

// ---- matrix products ----

void Backend::gemm(const GemmArgs& g) {
  check_devices(device(), "matmul", {{"a", g.a}, {"b", g.b}, {"c", g.c}, {"bias", g.bias}, {"pre_gelu", g.pre_gelu},
                                     {"bias_grad", g.bias_grad}});
  const DType t = g.a.dtype();
  LF_CHECK(is_floating(t), "matmul: dtype {} is not a floating type", dtype_name(t));
  check_same_dtype("matmul", {"a", g.a}, {{"b", g.b}});
  LF_CHECK(g.c.dtype() == t || (g.c.dtype() == DType::F32 && t != DType::F64),
           "matmul: c is {}, expected {} (or f32 for a low-precision product)", dtype_name(g.c.dtype()),
           dtype_name(t));
  if (g.has_epilogue()) {
    LF_CHECK(g.batch == 1, "matmul: an epilogue needs batch 1, got {}", g.batch);
    LF_CHECK(!g.gelu_tanh_grad || (!g.bias.defined() && !g.gelu_tanh && !g.bias_grad.defined() && g.pre_gelu.defined()),
             "matmul: gelu_tanh_grad takes pre_gelu alone (no bias, gelu_tanh or bias_grad)");
    LF_CHECK(!g.bias_grad.defined() || (!g.bias.defined() && !g.gelu_tanh && g.trans_a && g.lda == g.m),
             "matmul: bias_grad needs trans_a with a contiguous A and no other epilogue");
  }
  run([&] { return fmt::format("gemm {}->{}", dt(g.a), dt(g.c)); }, [&] { do_gemm(g); });
}

void Backend::grouped_gemm(const GroupedGemmArgs& g) {
  const char* k = "grouped_gemm";
  check_devices(device(), k, {{"a", g.a}, {"b", g.b}, {"ends", g.ends}, {"c", g.c}});
  check_contiguous(k, {{"a", g.a}, {"b", g.b}, {"ends", g.ends}, {"c", g.c}});
  LF_CHECK(is_floating(g.a.dtype()), "{}: dtype {} is not a floating type", k, dtype_name(g.a.dtype()));
  check_same_dtype(k, {"a", g.a}, {{"b", g.b}, {"c", g.c}});
  check_index(k, g.ends);
  LF_CHECK(g.a.dim() == 2 && g.c.dim() == (g.weight_grad ? 3 : 2) && g.b.dim() == (g.weight_grad ? 2 : 3),
           "{}: a {}, b {} and c {} do not have the dims of {}", k, g.a.str(), g.b.str(), g.c.str(),
           g.weight_grad ? "a weight gradient (a [M, P], b [M, Q], c [G, P, Q])" : "a product (a [M, K], b [G, ., .], c [M, N])");
  const int64_t groups = g.weight_grad ? g.c.size(0) : g.b.size(0);
  LF_CHECK(g.ends.dim() == 1 && g.ends.size(0) == groups, "{}: ends is {}, expected [{}]", k, g.ends.str(), groups);
  if (g.weight_grad) {
    LF_CHECK(g.b.size(0) == g.a.size(0) && g.c.size(1) == g.a.size(1) && g.c.size(2) == g.b.size(1),
             "{}: a {}, b {} and c {} are not a [M, P], b [M, Q], c [G, P, Q]", k, g.a.str(), g.b.str(), g.c.str());
  } else {
    const int64_t kk = g.trans_b ? g.b.size(2) : g.b.size(1), n = g.trans_b ? g.b.size(1) : g.b.size(2);
    LF_CHECK(kk == g.a.size(1) && g.c.size(0) == g.a.size(0) && g.c.size(1) == n,
             "{}: a {}, b {} and c {} are not a [M, K], b {}, c [M, N]", k, g.a.str(), g.b.str(), g.c.str(),
             g.trans_b ? "[G, N, K]" : "[G, K, N]");
  }
  run([&] { return fmt::format("grouped_gemm{} {}", g.weight_grad ? " weight_grad" : "", dt(g.a)); },
      [&] { do_grouped_gemm(g); });
}

void Backend::gemm_quantized(const QuantizedGemmArgs& g) {
  check_devices(device(), "gemm_quantized",
                {{"x", g.x}, {"weight", g.weight}, {"scale", g.scale}, {"bias", g.bias}, {"out", g.out}});
  run([&] { return fmt::format("gemm_quantized {}x{}", dt(g.x), dt(g.weight)); }, [&] { do_gemm_quantized(g); });
}

// ---- indexing ----

void Backend::index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                           int64_t inner) {
  check_devices(device(), "index_select", {{"x", x}, {"index", index}, {"out", out}});
  check_contiguous("index_select", {{"x", x}, {"index", index}, {"out", out}});
  check_index("index_select", index);
  run([&] { return "index_select " + dt(x); }, [&] { do_index_select(x, index, out, outer, n, inner); });
}

void Backend::index_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                        int64_t inner) {
  check_devices(device(), "index_add", {{"dst", dst}, {"index", index}, {"src", src}});
  check_contiguous("index_add", {{"dst", dst}, {"index", index}, {"src", src}});
  check_same_dtype("index_add", {"dst", dst}, {{"src", src}});
  check_index("index_add", index);
  run([&] { return "index_add " + dt(dst); }, [&] { do_index_add(dst, index, src, outer, n, inner); });
}

void Backend::gather(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                     int64_t inner) {
  check_devices(device(), "gather", {{"x", x}, {"index", index}, {"out", out}});
  check_contiguous("gather", {{"x", x}, {"index", index}, {"out", out}});
  check_index("gather", index);
  run([&] { return "gather " + dt(x); }, [&] { do_gather(x, index, out, outer, n, inner); });
}

void Backend::scatter_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                          int64_t inner) {
  check_devices(device(), "scatter_add", {{"dst", dst}, {"index", index}, {"src", src}});
  check_contiguous("scatter_add", {{"dst", dst}, {"index", index}, {"src", src}});
  check_index("scatter_add", index);
  run([&] { return "scatter_add " + dt(dst); }, [&] { do_scatter_add(dst, index, src, outer, n, inner); });
}

void Backend::copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& positions) {
  const char* k = "copy_rows_at";
  check_devices(device(), k, {{"src", src}, {"dst", dst}, {"positions", positions}});
  LF_CHECK(src.dim() >= 2 && dst.dim() == src.dim() && src.size(0) == dst.size(0),
           "{}: src {} and dst {} must be [B, T, ...] and [B, S, ...]", k, src.str(), dst.str());
  for (int64_t i = 2; i < src.dim(); ++i)
    LF_CHECK(src.size(i) == dst.size(i), "{}: src {} and dst {} differ after the second dim", k, src.str(),
             dst.str());
  check_same_dtype(k, {"src", src}, {{"dst", dst}});
  // The dims after the second one: one contiguous block per row in both.
  LF_CHECK(src.is_contiguous_from(2) && dst.is_contiguous_from(2), "{}: the dims after the second one of src {} and dst {} "
           "must be contiguous", k, src.str(), dst.str());
  LF_CHECK(positions.dtype() == DType::I32 && positions.dim() == 1 && positions.size(0) == src.size(0) &&
               positions.is_contiguous(),
           "{}: positions must be i32 [{}] and contiguous, got {}", k, src.size(0), positions.str());
  run([&] { return "copy_rows_at " + dt(src); }, [&] { do_copy_rows_at(src, dst, positions); });
}

// ---- fused ops ----

void Backend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                                    const Tensor& loss, const Tensor& lse) {
  const char* k = "cross_entropy";
  check_devices(device(), k, {{"logits", logits}, {"targets", targets}, {"loss", loss}, {"lse", lse}});
  check_fused_dtype(k, logits.dtype());
  LF_CHECK(logits.dim() == 2, "{}: logits must be [N, V], got {}", k, logits.str());
  check_contiguous(k, {{"logits", logits}, {"targets", targets}});
  for (const Arg& a : {Arg{"targets", targets}, Arg{"loss", loss}, Arg{"lse", lse}})
    LF_CHECK(a.t.numel() == logits.size(0), "{}: {} has {} elements for {} rows", k, a.name, a.t.numel(),
             logits.size(0));
  check_index(k, targets);
  check_stat(k, {"loss", loss}, logits.dtype());
  check_stat(k, {"lse", lse}, logits.dtype());
  run([&] { return "cross_entropy_forward " + dt(logits); },
      [&] { do_cross_entropy_forward(logits, targets, args, loss, lse); });
}

void Backend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                     const Tensor& dloss, const CrossEntropyArgs& args, const Tensor& dlogits) {
  const char* k = "cross_entropy_backward";
  check_devices(device(), k,
                {{"logits", logits}, {"targets", targets}, {"lse", lse}, {"dloss", dloss}, {"dlogits", dlogits}});
  check_fused_dtype(k, logits.dtype());
  LF_CHECK(logits.dim() == 2, "{}: logits must be [N, V], got {}", k, logits.str());
  check_contiguous(k, {{"logits", logits}, {"targets", targets}, {"dlogits", dlogits}});
  check_same_shape(k, {"logits", logits}, {{"dlogits", dlogits}});
  check_same_dtype(k, {"logits", logits}, {{"dlogits", dlogits}});
  check_index(k, targets);
  check_stat(k, {"lse", lse}, logits.dtype());
  check_stat(k, {"dloss", dloss}, logits.dtype());
  run([&] { return "cross_entropy_backward " + dt(logits); },
      [&] { do_cross_entropy_backward(logits, targets, lse, dloss, args, dlogits); });
}

// A norm that also adds the residual (or the sum's gradient) is keyed apart from the plain norm.
void Backend::rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                               const Tensor& y, const Tensor& sum, const Tensor& rstd) {
  const char* k = "rms_norm";
  check_devices(device(), k, {{"x", x}, {"residual", residual}, {"weight", weight}, {"y", y}, {"sum", sum},
                              {"rstd", rstd}});
  LF_CHECK(residual.defined() == sum.defined(), "{}: residual and sum come together", k);
  check_norm(k, x, {{"y", y}, {"residual", residual}, {"sum", sum}}, weight, Tensor());
  check_stat(k, {"rstd", rstd}, x.dtype());
  run([&] { return (residual.defined() ? "add_rms_norm_forward " : "rms_norm_forward ") + dt(x); },
      [&] { do_rms_norm_forward(x, residual, weight, eps, y, sum, rstd); });
}

void Backend::rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,
                                const Tensor& dsum, const Tensor& dx, const Tensor& dweight) {
  const char* k = "rms_norm_backward";
  check_devices(device(), k, {{"x", x}, {"weight", weight}, {"rstd", rstd}, {"dy", dy}, {"dsum", dsum}, {"dx", dx},
                              {"dweight", dweight}});
  check_norm(k, x, {{"dy", dy}, {"dsum", dsum}, {"dx", dx}}, weight, Tensor());
  check_stat(k, {"rstd", rstd}, x.dtype());
  check_stat(k, {"dweight", dweight}, x.dtype());
  run([&] { return (dsum.defined() ? "add_rms_norm_backward " : "rms_norm_backward ") + dt(x); },
      [&] { do_rms_norm_backward(x, weight, rstd, dy, dsum, dx, dweight); });
}

void Backend::layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                                 double eps, const Tensor& y, const Tensor& sum, const Tensor& mean,
                                 const Tensor& rstd) {
  const char* k = "layer_norm";
  check_devices(device(), k, {{"x", x}, {"residual", residual}, {"weight", weight}, {"bias", bias}, {"y", y},
                              {"sum", sum}, {"mean", mean}, {"rstd", rstd}});
  LF_CHECK(residual.defined() == sum.defined(), "{}: residual and sum come together", k);
  check_norm(k, x, {{"y", y}, {"residual", residual}, {"sum", sum}}, weight, bias);
  check_stat(k, {"mean", mean}, x.dtype());
  check_stat(k, {"rstd", rstd}, x.dtype());
  run([&] { return (residual.defined() ? "add_layer_norm_forward " : "layer_norm_forward ") + dt(x); },
      [&] { do_layer_norm_forward(x, residual, weight, bias, eps, y, sum, mean, rstd); });
}

void Backend::layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                  const Tensor& dy, const Tensor& dsum, const Tensor& dx, const Tensor& dweight,
                                  const Tensor& dbias) {
  const char* k = "layer_norm_backward";
  check_devices(device(), k, {{"x", x}, {"weight", weight}, {"mean", mean}, {"rstd", rstd}, {"dy", dy},
                              {"dsum", dsum}, {"dx", dx}, {"dweight", dweight}, {"dbias", dbias}});
  check_norm(k, x, {{"dy", dy}, {"dsum", dsum}, {"dx", dx}}, weight, Tensor());
  check_stat(k, {"mean", mean}, x.dtype());
  check_stat(k, {"rstd", rstd}, x.dtype());
  check_stat(k, {"dweight", dweight}, x.dtype());
  check_stat(k, {"dbias", dbias}, x.dtype());
  run([&] { return (dsum.defined() ? "add_layer_norm_backward " : "layer_norm_backward ") + dt(x); },
      [&] { do_layer_norm_backward(x, weight, mean, rstd, dy, dsum, dx, dweight, dbias); });
}

void Backend::rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
                   bool inverse, const Tensor& positions) {
  const char* k = "rope";
  check_devices(device(), k, {{"x", x}, {"out", out}, {"positions", positions}});
  if (positions.defined()) {
    LF_CHECK(positions.dtype() == DType::I32 && positions.dim() == 1 && positions.size(0) == x.size(0) &&
                 positions.is_contiguous(),
             "{}: positions must be i32 [{}] and contiguous, got {}", k, x.size(0), positions.str());
    LF_CHECK(position_offset == 0, "{}: position_offset must be 0 with positions, got {}", k, position_offset);
  }
  check_fused_dtype(k, x.dtype());
  LF_CHECK(x.dim() == 4, "{}: x must be [B, T, H, D], got {}", k, x.str());
  check_same_shape(k, {"x", x}, {{"out", out}});
  check_same_dtype(k, {"x", x}, {{"out", out}});
  LF_CHECK(x.size(3) % 2 == 0, "{}: head dim {} must be even", k, x.size(3));
  LF_CHECK(x.size(3) <= 1 || (x.stride(3) == 1 && out.stride(3) == 1), "{}: the last dim of x and out must be "
           "contiguous", k);
  run([&] { return "rope " + dt(x); }, [&] { do_rope(x, out, theta, position_offset, interleaved, inverse, positions); });
}

void Backend::swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  const char* k = "swiglu";
  check_devices(device(), k, {{"gate", gate}, {"up", up}, {"out", out}});
  check_fused_dtype(k, gate.dtype());
  check_contiguous(k, {{"gate", gate}, {"up", up}, {"out", out}});
  check_same_shape(k, {"gate", gate}, {{"up", up}, {"out", out}});
  check_same_dtype(k, {"gate", gate}, {{"up", up}, {"out", out}});
  run([&] { return "swiglu_forward " + dt(gate); }, [&] { do_swiglu_forward(gate, up, out); });
}

void Backend::swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                              const Tensor& dup) {
  const char* k = "swiglu_backward";
  check_devices(device(), k, {{"gate", gate}, {"up", up}, {"dout", dout}, {"dgate", dgate}, {"dup", dup}});
  check_fused_dtype(k, gate.dtype());
  check_contiguous(k, {{"gate", gate}, {"up", up}, {"dout", dout}, {"dgate", dgate}, {"dup", dup}});
  check_same_shape(k, {"gate", gate}, {{"up", up}, {"dout", dout}, {"dgate", dgate}, {"dup", dup}});
  check_same_dtype(k, {"gate", gate}, {{"up", up}, {"dout", dout}, {"dgate", dgate}, {"dup", dup}});
  run([&] { return "swiglu_backward " + dt(gate); }, [&] { do_swiglu_backward(gate, up, dout, dgate, dup); });
}

void Backend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                const AttentionArgs& args, const Tensor& out, const Tensor& lse) {
  const char* kn = "attention";
  check_devices(device(), kn, {{"q", q}, {"k", k}, {"v", v}, {"mask", mask}, {"out", out}, {"lse", lse}});
  const int64_t dv = check_attention(kn, q, k, v, mask);
  const Shape out_shape{q.size(0), q.size(1), q.size(2), dv};
  LF_CHECK(out.dtype() == q.dtype() && out.shape() == out_shape && (dv <= 1 || out.stride(3) == 1),
           "{}: out is {}, expected {} [{}] with a contiguous last dim", kn, out.str(), dtype_name(q.dtype()),
           shape_str(out_shape));
  check_stat(kn, {"lse", lse}, q.dtype());
  LF_CHECK(lse.numel() == q.size(0) * q.size(2) * q.size(1), "{}: lse has {} elements, expected [B, H, T]", kn,
           lse.numel());
  if (args.key_lengths.defined()) {
    check_devices(device(), kn, {{"key_lengths", args.key_lengths}});
    LF_CHECK(args.key_lengths.dtype() == DType::I32 && args.key_lengths.dim() == 1 &&
                 args.key_lengths.size(0) == q.size(0) && args.key_lengths.is_contiguous(),
             "{}: key_lengths must be i32 [{}] and contiguous, got {}", kn, q.size(0), args.key_lengths.str());
    LF_CHECK(!mask.defined(), "{}: key_lengths and a mask cannot be combined", kn);
  }
  run([&] { return fmt::format("attention_forward {} d{}", dt(q), q.size(-1)); },
      [&] { do_attention_forward(q, k, v, mask, args, out, lse); });
}

void Backend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                 const Tensor& out, const Tensor& lse, const Tensor& dout, const AttentionArgs& args,
                                 const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const char* kn = "attention_backward";
  check_devices(device(), kn, {{"q", q}, {"k", k}, {"v", v}, {"mask", mask}, {"out", out}, {"lse", lse},
                               {"dout", dout}, {"dq", dq}, {"dk", dk}, {"dv", dv}});
  const int64_t dv_dim = check_attention(kn, q, k, v, mask);
  const Shape out_shape{q.size(0), q.size(1), q.size(2), dv_dim};
  check_same_dtype(kn, {"q", q}, {{"out", out}, {"dout", dout}, {"dq", dq}, {"dk", dk}, {"dv", dv}});
  LF_CHECK(out.shape() == out_shape && dout.shape() == out_shape, "{}: out {} and dout {} must be [{}]", kn,
           out.str(), dout.str(), shape_str(out_shape));
  check_same_shape(kn, {"q", q}, {{"dq", dq}});
  check_same_shape(kn, {"k", k}, {{"dk", dk}});
  check_same_shape(kn, {"v", v}, {{"dv", dv}});
  LF_CHECK(dv_dim <= 1 || (out.stride(3) == 1 && dout.stride(3) == 1 && dv.stride(3) == 1),
           "{}: the last dim of out, dout and dv must be contiguous", kn);
  LF_CHECK(q.size(3) <= 1 || (dq.stride(3) == 1 && dk.stride(3) == 1), "{}: the last dim of dq and dk must be "
           "contiguous", kn);
  check_stat(kn, {"lse", lse}, q.dtype());
  run([&] { return fmt::format("attention_backward {} d{}", dt(q), q.size(-1)); },
      [&] { do_attention_backward(q, k, v, mask, out, lse, dout, args, dq, dk, dv); });
}

// ---- optimizer ----

void Backend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                         const AdamWArgs& args) {
  check_devices(device(), "adamw_step",
                {{"param", param}, {"grad", grad}, {"exp_avg", exp_avg}, {"exp_avg_sq", exp_avg_sq}});
  check_adamw("adamw_step", param, grad, exp_avg, exp_avg_sq);
  LF_CHECK(!args.device_grad_scale.defined(), "adamw_step: device_grad_scale is for adamw_multi_step only");
  run([&] { return "adamw_step " + dt(param); }, [&] { do_adamw_step(param, grad, exp_avg, exp_avg_sq, args); });
}

void Backend::adamw_multi_step(const std::vector<AdamWTensor>& tensors, const AdamWArgs& args) {
  const char* k = "adamw_multi_step";
  const Tensor& scale = args.device_grad_scale;
  if (scale.defined()) {
    check_devices(device(), k, {{"device_grad_scale", scale}});
    LF_CHECK(scale.dtype() == DType::F64 && scale.numel() == 1, "{}: device_grad_scale must be an f64 scalar, got {}",
             k, scale.str());
  }
  for (const AdamWTensor& t : tensors) {
    check_devices(device(), k, {{"param", t.param}, {"grad", t.grad}, {"exp_avg", t.exp_avg},
                                {"exp_avg_sq", t.exp_avg_sq}, {"compute_copy", t.compute_copy}});
    check_adamw(k, t.param, t.grad, t.exp_avg, t.exp_avg_sq);
    if (t.compute_copy.defined()) {
      LF_CHECK(t.compute_copy.dtype() == DType::BF16 || t.compute_copy.dtype() == DType::F16,
               "{}: compute copy dtype {} is not supported (expected bf16 or f16)", k,
               dtype_name(t.compute_copy.dtype()));
      LF_CHECK(t.compute_copy.is_contiguous() && t.compute_copy.numel() == t.param.numel(),
               "{}: compute copy {} must be contiguous with the parameter's {} elements", k, t.compute_copy.str(),
               t.param.numel());
    }
  }
  run([] { return std::string("adamw_multi_step"); }, [&] { do_adamw_multi_step(tensors, args); });
}

void Backend::multi_sum_of_squares(const std::vector<Tensor>& tensors, const Tensor& out) {
  const char* k = "multi_sum_of_squares";
  check_devices(device(), k, {{"out", out}});
  LF_CHECK(out.dtype() == DType::F64 && out.numel() == 1, "{}: out must be an f64 scalar, got {}", k, out.str());
  for (const Tensor& t : tensors) {
    check_devices(device(), k, {{"tensor", t}});
    check_contiguous(k, {{"tensor", t}});
    LF_CHECK(is_floating(t.dtype()), "{}: tensors must be floating, got {}", k, t.str());
  }
  run([] { return std::string("multi_sum_of_squares"); }, [&] { do_multi_sum_of_squares(tensors, out); });
}

}  // namespace lmforge
