#include "dist/data_parallel.h"

#include <algorithm>

#include "core/error.h"
#include "ops/ops.h"
#include "optim/clip.h"

namespace lmforge::dist {

namespace {
Tensor flat_view(const Tensor& t) { return view(t, {t.numel()}); }
}  // namespace

DataParallel::DataParallel(Communicator& comm, const std::vector<nn::NamedParameter>& params,
                           DataParallelOptions options)
    : comm_(comm), params_(params), options_(options) {
  LF_CHECK(options.zero_stage >= 0 && options.zero_stage <= 2, "dist.zero must be 0, 1 or 2, got {}",
           options.zero_stage);
  LF_CHECK(options.bucket_elements > 0, "dist.bucket_mb must be > 0");
  LF_CHECK(!params.empty(), "data parallel: the model has no parameters");
  device_ = params[0].tensor.device();
  for (const auto& p : params_) {
    LF_CHECK(p.tensor.dtype() == DType::F32 && p.tensor.device() == device_ && p.tensor.is_contiguous(),
             "data parallel: parameter {} must be a contiguous f32 tensor on {}, got {}", p.name, device_.str(),
             p.tensor.str());
    offsets_.push_back(total_);
    total_ += p.tensor.numel();
  }
  const int64_t w = comm_.world_size();
  padded_ = (total_ + w - 1) / w * w;
  shard_ = padded_ / w;
  const int64_t staging = options_.zero_stage == 0 ? std::min(options_.bucket_elements, total_)
                                                   : std::max<int64_t>(w, options_.bucket_elements / w * w);
  staging_ = zeros({std::min(staging, padded_)}, DType::F32, device_);
  if (options_.zero_stage == 0) return;

  NoGradGuard no_grad;
  shard_grad_ = zeros({shard_}, DType::F32, device_);
  const int64_t begin = int64_t(comm_.rank()) * shard_;
  own_pieces_ = pieces_in(begin, begin + shard_);
  for (const Piece& pc : own_pieces_) {
    const auto& p = params_[pc.param];
    Tensor slice = narrow(flat_view(p.tensor.detach()), 0, pc.param_offset, pc.length);
    shard_params_.push_back({.name = p.name, .tensor = slice, .kind = p.kind, .compute_copy = nullptr});
  }
  shard_optimizer_ = std::make_unique<optim::AdamW>(shard_params_, options_.adamw);
}

DataParallel::~DataParallel() = default;

std::vector<DataParallel::Piece> DataParallel::pieces_in(int64_t begin, int64_t end) const {
  std::vector<Piece> out;
  end = std::min(end, total_);
  if (begin >= end) return out;
  // The first parameter whose range ends after `begin`.
  size_t i = size_t(std::upper_bound(offsets_.begin(), offsets_.end(), begin) - offsets_.begin()) - 1;
  for (; i < params_.size() && offsets_[i] < end; ++i) {
    const int64_t lo = std::max(begin, offsets_[i]);
    const int64_t hi = std::min(end, offsets_[i] + params_[i].tensor.numel());
    if (hi > lo) out.push_back({.param = i, .param_offset = lo - offsets_[i], .flat_offset = lo, .length = hi - lo});
  }
  return out;
}

void DataParallel::agree_on_gradients() {
  NoGradGuard no_grad;
  std::vector<float> mine(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) mine[i] = params_[i].tensor.grad().defined() ? 1.f : 0.f;
  Tensor flags = from_vector<float>(mine, {int64_t(mine.size())}, Device::cpu());
  if (comm_.device_type() != DeviceType::CPU) flags = flags.to(device_);
  comm_.all_reduce(flags, ReduceOp::Sum);
  const std::vector<float> any = to_vector<float>(flags.to(Device::cpu()));
  has_grad_.assign(params_.size(), false);
  for (size_t i = 0; i < params_.size(); ++i) {
    has_grad_[i] = any[i] > 0;
    const Tensor& p = params_[i].tensor;
    Tensor g = p.grad();
    if (has_grad_[i] && !g.defined()) p.set_grad(zeros(p.shape(), DType::F32, device_));
    else if (g.defined() && !g.is_contiguous()) p.set_grad(contiguous(g));
  }
}

void DataParallel::gather_flat_grads(int64_t begin, int64_t end, Tensor dst) const {
  if (end > total_) {
    Tensor pad = narrow(dst, 0, std::max<int64_t>(0, total_ - begin), end - std::max(begin, total_));
    zero_(pad);
  }
  for (const Piece& pc : pieces_in(begin, end)) {
    Tensor out = narrow(dst, 0, pc.flat_offset - begin, pc.length);
    const Tensor g = params_[pc.param].tensor.grad();
    if (g.defined()) copy_(out, narrow(flat_view(g), 0, pc.param_offset, pc.length));
    else zero_(out);
  }
}

void DataParallel::sync_gradients() {
  NoGradGuard no_grad;
  agree_on_gradients();
  const int64_t w = comm_.world_size();
  if (options_.zero_stage == 0) {
    const int64_t bucket = staging_.numel();
    for (int64_t a = 0; a < total_; a += bucket) {
      const int64_t b = std::min(total_, a + bucket);
      const auto pieces = pieces_in(a, b);
      if (pieces.size() == 1) {
        // Inside one gradient: reduced where it lies.
        const Piece& pc = pieces[0];
        if (!has_grad_[pc.param]) continue;
        Tensor g = narrow(flat_view(params_[pc.param].tensor.grad()), 0, pc.param_offset, pc.length);
        comm_.all_reduce(g, ReduceOp::Avg);
        continue;
      }
      Tensor buf = narrow(staging_, 0, 0, b - a);
      gather_flat_grads(a, b, buf);
      comm_.all_reduce(buf, ReduceOp::Avg);
      for (const Piece& pc : pieces) {
        if (!has_grad_[pc.param]) continue;
        Tensor g = narrow(flat_view(params_[pc.param].tensor.grad()), 0, pc.param_offset, pc.length);
        copy_(g, narrow(buf, 0, pc.flat_offset - a, pc.length));
      }
    }
    return;
  }
  // Zero 1, 2: chunk k of every rank's shard travels in one reduce-scatter of w · chunk elements.
  const int64_t chunk = staging_.numel() / w;
  for (int64_t k = 0; k < shard_; k += chunk) {
    const int64_t c = std::min(chunk, shard_ - k);
    Tensor buf = narrow(staging_, 0, 0, w * c);
    for (int64_t r = 0; r < w; ++r) gather_flat_grads(r * shard_ + k, r * shard_ + k + c, narrow(buf, 0, r * c, c));
    Tensor out = narrow(shard_grad_, 0, k, c);
    comm_.reduce_scatter(buf, out, ReduceOp::Avg);
  }
  for (size_t j = 0; j < own_pieces_.size(); ++j) {
    const Piece& pc = own_pieces_[j];
    const int64_t at = pc.flat_offset - int64_t(comm_.rank()) * shard_;
    if (has_grad_[pc.param]) shard_params_[j].tensor.set_grad(narrow(shard_grad_, 0, at, pc.length));
    else shard_params_[j].tensor.zero_grad();
  }
  // Zero 2: the full gradients are not needed any more.
  if (options_.zero_stage == 2)
    for (const auto& p : params_) p.tensor.zero_grad();
}

Tensor DataParallel::grad_norm_squared() {
  NoGradGuard no_grad;
  if (options_.zero_stage == 0) return optim::grad_norm_squared(params_);
  TensorList grads;
  for (const auto& p : shard_params_)
    if (p.tensor.grad().defined()) grads.push_back(p.tensor.grad());
  Tensor sq = grads.empty() ? zeros({}, DType::F64, device_) : sum_of_squares_tensor(grads, device_);
  sq = contiguous(sq.reshape({1}));
  comm_.all_reduce(sq, ReduceOp::Sum);
  return sq.reshape({});
}

void DataParallel::step(double lr, double grad_scale, const optim::AdamW::DeviceClip& clip) {
  LF_ASSERT(shard_optimizer_, "DataParallel::step under zero 0");
  shard_optimizer_->step(lr, grad_scale, clip);
  all_gather_parameters();
}

void DataParallel::cancel_step() { shard_optimizer_->cancel_step(); }
int64_t DataParallel::step_count() const { return shard_optimizer_->step_count(); }

void DataParallel::all_gather_parameters() {
  NoGradGuard no_grad;
  const int64_t w = comm_.world_size(), me = comm_.rank();
  const int64_t chunk = staging_.numel() / w;
  Tensor mine = zeros({chunk}, DType::F32, device_);
  for (int64_t k = 0; k < shard_; k += chunk) {
    const int64_t c = std::min(chunk, shard_ - k);
    Tensor in = narrow(mine, 0, 0, c), out = narrow(staging_, 0, 0, w * c);
    const int64_t begin = me * shard_ + k;
    if (begin + c > total_) zero_(in);
    for (const Piece& pc : pieces_in(begin, begin + c)) {
      Tensor dst = narrow(in, 0, pc.flat_offset - begin, pc.length);
      copy_(dst, narrow(flat_view(params_[pc.param].tensor.detach()), 0, pc.param_offset, pc.length));
    }
    comm_.all_gather(in, out);
    for (int64_t r = 0; r < w; ++r) {
      if (r == me) continue;
      const int64_t from = r * shard_ + k;
      for (const Piece& pc : pieces_in(from, from + c)) {
        Tensor dst = narrow(flat_view(params_[pc.param].tensor.detach()), 0, pc.param_offset, pc.length);
        copy_(dst, narrow(out, 0, r * c + pc.flat_offset - from, pc.length));
      }
    }
  }
  // The masters changed: compute copies made from them are stale.
  for (const auto& p : params_) p.tensor.bump_version();
}

void DataParallel::gather_optimizer_state(optim::AdamW& full) {
  LF_ASSERT(shard_optimizer_, "gather_optimizer_state under zero 0");
  NoGradGuard no_grad;
  const auto shard_state = shard_optimizer_->state_tensors();  // (exp_avg, exp_avg_sq) per piece
  const int64_t me = comm_.rank();
  std::vector<std::pair<std::string, Tensor>> gathered;
  for (int moment = 0; moment < 2; ++moment) {
    Tensor mine = zeros({shard_}, DType::F32, device_);
    for (size_t j = 0; j < own_pieces_.size(); ++j) {
      Tensor dst = narrow(mine, 0, own_pieces_[j].flat_offset - me * shard_, own_pieces_[j].length);
      copy_(dst, shard_state[2 * j + size_t(moment)].second);
    }
    Tensor all = zeros({padded_}, DType::F32, device_);
    comm_.all_gather(mine, all);
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor& p = params_[i].tensor;
      gathered.push_back({params_[i].name + (moment == 0 ? ".exp_avg" : ".exp_avg_sq"),
                          narrow(all, 0, offsets_[i], p.numel()).reshape(p.shape())});
    }
  }
  full.load_state(gathered, shard_optimizer_->step_count(), "the gathered optimizer shards");
}

void DataParallel::load_optimizer_state(const optim::AdamW& full) {
  LF_ASSERT(shard_optimizer_, "load_optimizer_state under zero 0");
  NoGradGuard no_grad;
  const auto full_state = full.state_tensors();  // parameter order, (exp_avg, exp_avg_sq) each
  auto shard_state = shard_optimizer_->state_tensors();
  for (size_t j = 0; j < own_pieces_.size(); ++j) {
    const Piece& pc = own_pieces_[j];
    for (size_t m = 0; m < 2; ++m) {
      Tensor dst = shard_state[2 * j + m].second;
      copy_(dst, narrow(flat_view(full_state[2 * pc.param + m].second), 0, pc.param_offset, pc.length));
    }
  }
  shard_optimizer_->set_step_count(full.step_count());
}

}  // namespace lmforge::dist
