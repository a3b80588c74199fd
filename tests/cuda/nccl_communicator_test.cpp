// The NCCL communicator of a world of one rank, through each collective on GPU tensors, against
// the world-1 reference (SingleProcessCommunicator: the identity, or a copy): every collective's
// contract and NCCL call run, the values come back unchanged. Several ranks run under
// `lmforge train --nproc N` (docs/DISTRIBUTED.md).
#include <gtest/gtest.h>

#include "cuda/cuda_test_util.h"
#include "dist/communicator.h"
#include "dist/nccl_communicator.h"

namespace lmforge::dist {
namespace {

using cuda_test::gpu;

class NcclWorldOne : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    LF_REQUIRE_GPU();
    if (!nccl_available()) GTEST_SKIP() << "built without NCCL";
    nccl_ = make_nccl_communicator(0, 1, 0, nccl_unique_id());
    nccl_->set_timeout_seconds(60);
  }
  // Values exact in every dtype tested.
  Tensor host(int64_t n) const {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(i % 9) - 4.5;
    return from_vector<double>(v, {n}).to(GetParam());
  }
  static std::vector<double> values(const Tensor& t) { return to_vector<double>(t.to(Device::cpu()).to(DType::F64)); }
  std::unique_ptr<Communicator> nccl_;
  SingleProcessCommunicator reference_;
};

TEST_P(NcclWorldOne, EachCollectiveMatchesTheReference) {
  EXPECT_EQ(nccl_->world_size(), 1);
  EXPECT_EQ(nccl_->backend_name(), "nccl");
  const Tensor x = host(1000);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
    Tensor g = x.to(gpu()), c = clone(x);
    nccl_->all_reduce(g, op);
    reference_.all_reduce(c, op);
    EXPECT_EQ(values(g), values(c));
    Tensor gout = zeros({1000}, GetParam(), gpu()), cout = zeros({1000}, GetParam());
    nccl_->reduce_scatter(x.to(gpu()), gout, op);
    reference_.reduce_scatter(x, cout, op);
    EXPECT_EQ(values(gout), values(cout));
  }
  Tensor gathered = zeros({1000}, GetParam(), gpu());
  nccl_->all_gather(x.to(gpu()), gathered);
  EXPECT_EQ(values(gathered), values(x));
  Tensor rows = zeros({250, 4}, GetParam(), gpu());
  nccl_->all_to_all(x.reshape({250, 4}).to(gpu()), {250}, rows, {250});
  EXPECT_EQ(values(rows), values(x));
  Tensor b = x.to(gpu());
  nccl_->broadcast(b, 0);
  EXPECT_EQ(values(b), values(x));
  nccl_->barrier();
  // A CPU tensor is refused by the contract, naming the collective.
  Tensor on_cpu = clone(x);
  EXPECT_THROW(nccl_->all_reduce(on_cpu, ReduceOp::Sum), Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, NcclWorldOne, ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace lmforge::dist
