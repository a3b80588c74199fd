#include "dist/communicator.h"

#include <fmt/format.h>

#include "core/error.h"
#include "dist/watchdog.h"
#include "ops/ops.h"

namespace lmforge::dist {

Communicator::Communicator() : watchdog_(std::make_unique<Watchdog>()) {}
Communicator::~Communicator() = default;

void Communicator::set_timeout_seconds(double seconds) {
  watchdog_->set_timeout_seconds(seconds);
  watchdog_->set_rank(rank());
}
double Communicator::timeout_seconds() const { return watchdog_->timeout_seconds(); }

void Communicator::check_tensor(std::string_view collective, std::string_view arg, const Tensor& t) const {
  LF_CHECK(t.defined(), "{}: {} is an undefined tensor", collective, arg);
  LF_CHECK(t.is_contiguous(), "{}: {} must be contiguous, got {}", collective, arg, t.str());
  LF_CHECK(t.device().type == device_type(), "{}: {} is on {}, but the {} communicator moves {} tensors", collective,
           arg, t.device().str(), backend_name(), device_type() == DeviceType::CPU ? "CPU" : "CUDA");
  const DType d = t.dtype();
  const bool floating = d == DType::F64 || d == DType::F32 || d == DType::BF16 || d == DType::F16;
  const bool integer = d == DType::I32 || d == DType::I64;
  LF_CHECK(floating || integer, "{}: {} has dtype {}; collectives take f64, f32, bf16, f16, i32 or i64", collective,
           arg, dtype_name(d));
}

namespace {
void scale_in_place(Tensor& t, double factor) {
  NoGradGuard no_grad;
  Tensor scaled = mul(t, factor);
  copy_(t, scaled);
}
std::string sizes_message(const Tensor& a, const Tensor& b) { return fmt::format("{} and {}", a.str(), b.str()); }
}  // namespace

void Communicator::all_reduce(Tensor& t, ReduceOp op) {
  check_tensor("all_reduce", "the tensor", t);
  LF_CHECK(op == ReduceOp::Sum || is_floating(t.dtype()), "all_reduce: Avg needs a floating dtype, got {}",
           dtype_name(t.dtype()));
  {
    Watchdog::Scope guard(*watchdog_, fmt::format("all_reduce of {} elements", t.numel()));
    do_all_reduce_sum(t);
  }
  if (op == ReduceOp::Avg && world_size() > 1) scale_in_place(t, 1.0 / world_size());
}

void Communicator::reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op) {
  check_tensor("reduce_scatter", "input", input);
  check_tensor("reduce_scatter", "output", output);
  LF_CHECK(input.dtype() == output.dtype(), "reduce_scatter: input and output dtypes differ ({})",
           sizes_message(input, output));
  LF_CHECK(input.numel() == output.numel() * world_size(),
           "reduce_scatter: input must hold world_size ({}) times the output's elements, got {}", world_size(),
           sizes_message(input, output));
  LF_CHECK(op == ReduceOp::Sum || is_floating(input.dtype()), "reduce_scatter: Avg needs a floating dtype");
  {
    Watchdog::Scope guard(*watchdog_, fmt::format("reduce_scatter of {} elements", input.numel()));
    do_reduce_scatter_sum(input, output);
  }
  if (op == ReduceOp::Avg && world_size() > 1) scale_in_place(output, 1.0 / world_size());
}

void Communicator::all_gather(const Tensor& input, Tensor& output) {
  check_tensor("all_gather", "input", input);
  check_tensor("all_gather", "output", output);
  LF_CHECK(input.dtype() == output.dtype(), "all_gather: input and output dtypes differ ({})",
           sizes_message(input, output));
  LF_CHECK(output.numel() == input.numel() * world_size(),
           "all_gather: output must hold world_size ({}) times the input's elements, got {}", world_size(),
           sizes_message(input, output));
  Watchdog::Scope guard(*watchdog_, fmt::format("all_gather of {} elements", output.numel()));
  do_all_gather(input, output);
}

void Communicator::all_to_all(const Tensor& input, const std::vector<int64_t>& send_rows, Tensor& output,
                              const std::vector<int64_t>& recv_rows) {
  check_tensor("all_to_all", "input", input);
  check_tensor("all_to_all", "output", output);
  LF_CHECK(input.dtype() == output.dtype(), "all_to_all: input and output dtypes differ ({})",
           sizes_message(input, output));
  LF_CHECK(input.dim() >= 1 && output.dim() >= 1, "all_to_all: tensors need a row dimension, got {}",
           sizes_message(input, output));
  const size_t w = size_t(world_size());
  LF_CHECK(send_rows.size() == w && recv_rows.size() == w,
           "all_to_all: send and receive counts need one entry per rank ({}), got {} and {}", w, send_rows.size(),
           recv_rows.size());
  const int64_t in_row = input.shape()[0] > 0 ? input.numel() / input.shape()[0] : 0;
  const int64_t out_row = output.shape()[0] > 0 ? output.numel() / output.shape()[0] : 0;
  int64_t sent = 0, received = 0;
  for (size_t q = 0; q < w; ++q) {
    LF_CHECK(send_rows[q] >= 0 && recv_rows[q] >= 0, "all_to_all: negative row count for rank {}", q);
    sent += send_rows[q];
    received += recv_rows[q];
  }
  LF_CHECK(sent == input.shape()[0], "all_to_all: send counts add up to {} rows, the input has {}", sent,
           input.shape()[0]);
  LF_CHECK(received == output.shape()[0], "all_to_all: receive counts add up to {} rows, the output has {}",
           received, output.shape()[0]);
  LF_CHECK(sent == 0 || received == 0 || in_row == out_row, "all_to_all: rows of {} and {} elements differ", in_row,
           out_row);
  Watchdog::Scope guard(*watchdog_, fmt::format("all_to_all of {} rows", sent));
  do_all_to_all(input, send_rows, output, recv_rows);
}

void Communicator::broadcast(Tensor& t, int root) {
  check_tensor("broadcast", "the tensor", t);
  LF_CHECK(root >= 0 && root < world_size(), "broadcast: root {} is not a rank of a world of {}", root, world_size());
  Watchdog::Scope guard(*watchdog_, fmt::format("broadcast of {} elements from rank {}", t.numel(), root));
  do_broadcast(t, root);
}

void Communicator::barrier() {
  Watchdog::Scope guard(*watchdog_, "barrier");
  do_barrier();
}

void SingleProcessCommunicator::do_reduce_scatter_sum(const Tensor& input, Tensor& output) {
  NoGradGuard no_grad;
  copy_(output, input.reshape(output.shape()));
}

void SingleProcessCommunicator::do_all_gather(const Tensor& input, Tensor& output) {
  NoGradGuard no_grad;
  copy_(output, input.reshape(output.shape()));
}

void SingleProcessCommunicator::do_all_to_all(const Tensor& input, const std::vector<int64_t>&, Tensor& output,
                                              const std::vector<int64_t>&) {
  NoGradGuard no_grad;
  if (input.numel() > 0) copy_(output, input.reshape(output.shape()));
}

}  // namespace lmforge::dist
