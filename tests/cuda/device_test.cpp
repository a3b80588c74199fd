// The device layer: clear errors for a missing GPU index and for out-of-memory, the caching
// allocator's reuse and statistics, and host <-> device copies.
#include <cuda_runtime.h>

#include "core/allocator.h"
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

TEST(CudaDevice, BadIndexNamesTheDeviceCount) {
  LF_REQUIRE_GPU();
  int n = 0;
  ASSERT_EQ(cudaGetDeviceCount(&n), cudaSuccess);
  try {
    backend_for(Device::cuda(n + 3));
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cuda:" + std::to_string(n + 3)), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(n) + " device"), std::string::npos) << msg;
  }
  EXPECT_THROW(Tensor::empty({4}, DType::F32, Device::cuda(n + 3)), Error);
}

TEST(CudaDevice, OutOfMemoryIsAClearError) {
  LF_REQUIRE_GPU();
  const int64_t ten_tb = int64_t(10) << 40;
  try {
    Tensor t = Tensor::empty({ten_tb / 4}, DType::F32, gpu());
    FAIL() << "allocating 10 TB succeeded";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("out of GPU memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("requested"), std::string::npos) << msg;
    EXPECT_NE(msg.find("peak"), std::string::npos) << msg;
    EXPECT_NE(msg.find("reserved"), std::string::npos) << msg;
    EXPECT_NE(msg.find("smaller batch"), std::string::npos) << msg;
  }
  // The device is still usable afterwards.
  Tensor ok = full({16}, 3.0, DType::F32, gpu());
  EXPECT_EQ(host_values(ok)[15], 3.0);
}

TEST(CudaDevice, CachingAllocatorReusesBlocksAndTracksPeak) {
  LF_REQUIRE_GPU();
  Allocator& a = allocator_for(gpu());
  a.reset_peak();
  const AllocatorStats s0 = a.stats();
  void* p1 = a.allocate(3 << 20);
  const AllocatorStats s1 = a.stats();
  EXPECT_GE(s1.bytes_in_use - s0.bytes_in_use, 3 << 20);
  EXPECT_GE(s1.peak_bytes_in_use, s1.bytes_in_use);
  EXPECT_GE(s1.bytes_reserved, s1.bytes_in_use);
  a.deallocate(p1, 3 << 20);
  const AllocatorStats s2 = a.stats();
  EXPECT_EQ(s2.bytes_in_use, s0.bytes_in_use);
  EXPECT_EQ(s2.peak_bytes_in_use, s1.peak_bytes_in_use);
  void* p2 = a.allocate((3 << 20) - 100);  // same size class: the cached block comes back
  EXPECT_EQ(p2, p1);
  EXPECT_EQ(a.stats().bytes_reserved, s2.bytes_reserved);
  a.deallocate(p2, (3 << 20) - 100);
}

TEST(CudaDevice, HostDeviceRoundTrip) {
  LF_REQUIRE_GPU();
  Generator g(11);
  for (DType t : {DType::F32, DType::BF16, DType::I64, DType::U8, DType::F64}) {
    Tensor h = random_host(g, {3, 1000, 7}, t, -100, 100);
    Tensor d = h.to(gpu());
    EXPECT_TRUE(d.device().is_cuda());
    EXPECT_TRUE(bit_equal(d.to(Device::cpu()), h)) << dtype_name(t);
  }
  // Empty tensors cross too.
  Tensor e = Tensor::empty({0, 5}, DType::F32).to(gpu());
  EXPECT_EQ(e.numel(), 0);
}

TEST(CudaDevice, CrossDeviceCopyOfViewsAndConversions) {
  LF_REQUIRE_GPU();
  Generator g(12);
  Tensor h = random_host(g, {8, 6}, DType::F32);
  // A transposed host view and a dtype change go through staging in the op layer.
  Tensor dst = Tensor::empty({6, 8}, DType::BF16, gpu());
  copy_(dst, transpose(h, 0, 1));
  Tensor want = contiguous(transpose(h, 0, 1)).to(DType::BF16);
  EXPECT_TRUE(bit_equal(dst, want));
}

}  // namespace
}  // namespace lmforge
