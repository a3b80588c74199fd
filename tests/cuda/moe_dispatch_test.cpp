// A Mixture-of-Experts layer on the GPU queues its whole forward and backward without the host
// waiting for the GPU: routing (top-k, gathers, the sort by expert, capacity drops), the expert
// GEMMs (grouped_gemm reads the segment ends on the device) and the scatter back. A host wait (a
// copy to the host, a synchronisation, an index range check read back) during CUDA stream capture
// fails the capture, so the layer must run captured for every router. The routing index tensors
// pass their range checks without a wait because the backend knows them valid by how they were
// made (top-k and sort positions, an arange, copies and gathers of those: cuda_backend.h); the
// output is also compared with the CPU's.
#include <cuda_runtime.h>

#include "backend/cuda/cuda_context.h"
#include "cuda_test_util.h"
#include "nn/model_test_util.h"
#include "nn/moe.h"

namespace lmforge {
namespace {
using namespace cuda_test;
using nn::RouterKind;

struct DispatchCase {
  const char* name;
  RouterKind router;
  double capacity_factor;
  double bias_update_rate;
};

class CudaMoeDispatch : public ::testing::TestWithParam<DispatchCase> {};

TEST_P(CudaMoeDispatch, ForwardAndBackwardQueueWithoutWaitingForTheGpu) {
  LF_REQUIRE_GPU();
  const DispatchCase dc = GetParam();
  nn::ModelConfig c = test::tiny_config();
  c.d_model = 16;
  c.n_experts = 8;
  c.d_ff_expert = 24;
  c.top_k = 2;
  c.router = dc.router;
  c.capacity_factor = dc.capacity_factor;
  c.bias_update_rate = dc.bias_update_rate;
  c.resolve();
  const auto build = [&](Device d) {
    auto moe = std::make_unique<nn::MoE>(c, nn::TensorOptions{.dtype = DType::F32, .device = d});
    Generator g(3);
    NoGradGuard ng;
    for (auto& p : moe->named_parameters()) normal_(p.tensor, g, 0.0, 0.5);
    return moe;
  };
  const auto cpu_moe = build(Device::cpu()), gpu_moe = build(gpu());
  Generator g(8);
  const Tensor x_host = random_host(g, {2, 24, c.d_model}, DType::F32, -1, 1);
  const Tensor x = x_host.to(gpu()).set_requires_grad(true);
  const auto step = [&] {
    const Tensor y = gpu_moe->forward(x, nullptr);
    sum(y * y).backward();
    return y;
  };
  const Tensor first = step();  // warms the allocator's cache and the kernels' attributes
  EXPECT_TRUE(close(first, cpu_moe->forward(x_host, nullptr), 1e-5));
  gpu_be().synchronize();

  cudaStream_t stream = cuda::cuda_context(0).stream;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), cudaSuccess);
  bool threw = false;
  try {
    step();
  } catch (const std::exception& e) {
    threw = true;
    ADD_FAILURE() << "the layer waited for the GPU while being captured: " << e.what();
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (graph) cudaGraphDestroy(graph);
  (void)cudaGetLastError();
  EXPECT_FALSE(threw);
  EXPECT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
}

INSTANTIATE_TEST_SUITE_P(Routers, CudaMoeDispatch,
                         ::testing::Values(DispatchCase{"softmax_topk", RouterKind::SoftmaxTopK, 0.0, 0.0},
                                           DispatchCase{"capacity_drops", RouterKind::SoftmaxTopK, 0.75, 0.0},
                                           DispatchCase{"sigmoid_bias", RouterKind::SigmoidTopK, 0.0, 0.01},
                                           DispatchCase{"expert_choice", RouterKind::ExpertChoice, 1.0, 0.0}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace lmforge
