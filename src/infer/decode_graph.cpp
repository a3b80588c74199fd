#include "infer/decode_graph.h"

#include "ops/ops.h"

namespace lmforge::infer {

namespace {
void clear_device_positions(nn::KVCache& cache) {
  cache.positions = Tensor();
  for (nn::LayerKVCache& l : cache.layers) {
    l.positions = Tensor();
    l.key_lengths = Tensor();
  }
}
}  // namespace

DecodeGraph::DecodeGraph(const nn::Transformer& model, nn::KVCache& cache, bool use_graph)
    : model_(model), cache_(cache), use_graph_(use_graph) {
  const int64_t b = cache.batch;
  LF_CHECK(b > 0, "DecodeGraph: the KV cache has no rows");
  const Device dev = model.device();
  ids_ = zeros({b, 1}, DType::I64, dev);
  positions_ = zeros({b}, DType::I32, dev);
  host_ids_ = zeros({b, 1}, DType::I64, Device::cpu());
  host_positions_ = zeros({b}, DType::I32, Device::cpu());
  // Positions in device memory where a graph is recorded, and always on the CPU (which records
  // none but runs the same path, so every CPU decode exercises it); otherwise the plain forward.
  device_positions_ = model.config().position == nn::PositionKind::Rope && (use_graph_ || !dev.is_cuda());
  if (!use_graph_) reason_ = "CUDA graphs turned off";
  else if (!device_positions_) reason_ = "learned position embeddings read their positions on the host";
  else if (!dev.is_cuda()) reason_ = "the device runs each kernel as it is called (no graphs)";
}

DecodeGraph::~DecodeGraph() {
  graph_.reset();
  graph_logits_ = Tensor();
  clear_device_positions(cache_);
}

const Tensor& DecodeGraph::step(std::span<const int64_t> tokens) {
  NoGradGuard no_grad;
  const int64_t b = cache_.batch, vocab = model_.config().vocab_size;
  LF_CHECK(int64_t(tokens.size()) == b, "DecodeGraph: {} tokens for a batch of {}", tokens.size(), b);
  LF_CHECK(cache_.length < cache_.capacity, "DecodeGraph: the KV cache holds {} positions and all are written",
           cache_.capacity);
  LF_CHECK(cache_.length < model_.config().context_length, "DecodeGraph: position {} is past the context length {}",
           cache_.length, model_.config().context_length);
  auto* ids = static_cast<int64_t*>(host_ids_.data_ptr());
  auto* pos = static_cast<int32_t*>(host_positions_.data_ptr());
  for (int64_t r = 0; r < b; ++r) {
    // The replayed graph checks nothing: every id is checked here.
    LF_CHECK(tokens[size_t(r)] >= 0 && tokens[size_t(r)] < vocab, "DecodeGraph: token id {} of row {} is outside "
             "the vocabulary [0, {})", tokens[size_t(r)], r, vocab);
    ids[r] = tokens[size_t(r)];
    pos[r] = int32_t(cache_.length);
  }
  copy_(ids_, host_ids_);
  if (!device_positions_) {
    direct_logits_ = model_.forward(ids_, &cache_);  // advances cache_.length
    return direct_logits_;
  }
  copy_(positions_, host_positions_);
  cache_.positions = positions_;
  const Tensor* out = nullptr;
  if (graph_) {
    graph_->replay();
    out = &graph_logits_;
  } else {
    direct_logits_ = model_.forward(ids_, &cache_);
    out = &direct_logits_;
    if (reason_.empty()) {
      // Record the step just run: the buffers hold the same data, so nothing recorded depends on
      // a check the recording would repeat (the ids were found valid by the step above).
      try {
        Tensor recorded;
        graph_ = backend_for(ids_).capture([&] { recorded = model_.forward(ids_, &cache_); });
        if (graph_) graph_logits_ = recorded;
        else reason_ = "the backend cannot record graphs";
      } catch (const Error& e) {
        graph_.reset();
        reason_ = e.what();
      }
    }
  }
  ++cache_.length;
  return *out;
}

}  // namespace lmforge::infer
