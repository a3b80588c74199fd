// Tensor layout: views share storage, contiguous() copies only when needed, bad shapes throw.
#include <gtest/gtest.h>

#include "ops/ops.h"

namespace lmforge {
namespace {

Tensor iota(Shape s) { return arange(shape_numel(s), DType::F32).reshape(s); }

TEST(TensorView, ViewsShareStorage) {
  Tensor x = iota({2, 3, 4});
  for (const Tensor& v : {x.view({6, 4}), x.reshape({4, 6}), x.permute({2, 0, 1}), x.transpose(0, 2),
                          x.narrow(1, 1, 2), slice(x, 2, 0, 4, 2), x.unsqueeze(0), x.narrow(0, 0, 1).squeeze(0),
                          x.narrow(2, 0, 1).expand({2, 3, 5}), select(x, 1, 2)}) {
    EXPECT_TRUE(v.shares_storage(x)) << v.str();
  }
}

TEST(TensorView, ContiguousCopiesOnlyWhenNeeded) {
  Tensor x = iota({3, 4});
  EXPECT_TRUE(x.is_contiguous());
  Tensor same = x.contiguous();
  EXPECT_TRUE(same.shares_storage(x));
  EXPECT_EQ(same.data_ptr(), x.data_ptr());
  Tensor t = x.transpose(0, 1);
  EXPECT_FALSE(t.is_contiguous());
  Tensor c = t.contiguous();
  EXPECT_FALSE(c.shares_storage(x));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(to_vector<float>(c), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  // A narrowed row block stays contiguous; a column block does not.
  EXPECT_TRUE(x.narrow(0, 1, 2).is_contiguous());
  EXPECT_FALSE(x.narrow(1, 1, 2).is_contiguous());
}

TEST(TensorView, ContiguousFromADimension) {
  Tensor x = iota({2, 5, 3, 4});
  // A narrow of dim 1 leaves each [3, 3, 4] block dense: contiguous from dim 1 on, not as a whole.
  Tensor rows = x.narrow(1, 1, 3);
  EXPECT_FALSE(rows.is_contiguous());
  EXPECT_TRUE(rows.is_contiguous_from(1));
  EXPECT_TRUE(rows.is_contiguous_from(2));
  // A narrow of dim 2 leaves the [2, 4] blocks dense but gaps between them.
  Tensor cols = x.narrow(2, 0, 2);
  EXPECT_TRUE(cols.is_contiguous_from(2));
  EXPECT_FALSE(cols.is_contiguous_from(1));
  // The dims 0 and 1 swapped: the blocks after them are still dense, the whole is not.
  Tensor swapped = x.transpose(0, 1);
  EXPECT_TRUE(swapped.is_contiguous_from(2));
  EXPECT_FALSE(swapped.is_contiguous_from(0));
  // A narrow of the last dim breaks every block; a size-1 dim may carry any stride.
  EXPECT_FALSE(x.narrow(3, 0, 2).is_contiguous_from(2));
  EXPECT_TRUE(x.narrow(2, 1, 1).is_contiguous_from(2));
  EXPECT_TRUE(x.is_contiguous_from(4));  // no dims from there: an empty block is dense
  EXPECT_EQ(x.is_contiguous_from(0), x.is_contiguous());
}

TEST(TensorView, ReshapeOfNonViewableLayoutCopies) {
  Tensor x = iota({3, 4});
  Tensor r = x.transpose(0, 1).reshape({12});
  EXPECT_FALSE(r.shares_storage(x));
  EXPECT_THROW(x.transpose(0, 1).view({12}), Error);
  EXPECT_EQ(to_vector<float>(r)[1], 4.0f);
}

TEST(TensorView, StridesAndOffsets) {
  Tensor x = iota({4, 5});
  Tensor v = x.narrow(0, 1, 2).narrow(1, 2, 3);
  EXPECT_EQ(v.offset(), 1 * 5 + 2);
  EXPECT_EQ(v.strides(), (Shape{5, 1}));
  EXPECT_EQ(to_vector<float>(v), (std::vector<float>{7, 8, 9, 12, 13, 14}));
  Tensor e = x.narrow(1, 0, 1).expand({4, 3});
  EXPECT_EQ(e.strides(), (Shape{5, 0}));
}

TEST(TensorView, CpuStorageIs64ByteAligned) {
  for (int64_t n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n}, DType::U8);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u);
  }
}

TEST(TensorErrors, MismatchesNameTheOpAndShapes) {
  Tensor a = zeros({2, 3}), b = zeros({4, 3});
  try {
    add(a, b);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("add"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 3]"), std::string::npos) << m;
  }
  try {
    matmul(zeros({2, 3}), zeros({4, 5}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
  }
  EXPECT_THROW(matmul(zeros({2, 3}), zeros({3, 2}, DType::F64)), Error);
  EXPECT_THROW(embedding(zeros({5, 2}), from_vector<int64_t>(std::vector<int64_t>{1, 5}, {2})), Error);
  EXPECT_THROW(index_select(zeros({5, 2}), 0, from_vector<int64_t>(std::vector<int64_t>{-1}, {1})), Error);
  EXPECT_THROW(zeros({2}).to(Device::cuda(7)).numel(), Error);
  EXPECT_THROW(zeros({2, 3}).transpose(0, 5), Error);
  EXPECT_THROW(zeros({2, 3}).narrow(1, 2, 2), Error);
}

TEST(TopK, TiesKeepLowerIndexFirst) {
  Tensor x = from_vector<float>(std::vector<float>{1, 3, 3, 2, 3}, {5});
  auto [v, i] = topk(x, 3);
  EXPECT_EQ(to_vector<int64_t>(i), (std::vector<int64_t>{1, 2, 4}));
  auto [sv, si] = sort(x, -1, /*descending=*/false);
  EXPECT_EQ(to_vector<int64_t>(si), (std::vector<int64_t>{0, 3, 1, 2, 4}));
}

}  // namespace
}  // namespace lmforge
