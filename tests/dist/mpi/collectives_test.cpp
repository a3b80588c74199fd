// Each MPI collective against a plain reference, run by mpirun with any number of ranks
// (tests/CMakeLists.txt starts it with 2): every rank fills its input from a formula of its rank
// and the element index, so each rank can compute what every collective must return on its own.
// Sums are chosen exact in the dtype (small integers and halves), so the expected values are
// exact too. A separate binary: MPI is initialised once, by its main().
#include <gtest/gtest.h>

#include <numeric>

#include "dist/mpi_communicator.h"
#include "ops/ops.h"

namespace lmforge::dist {
namespace {

Communicator* g_comm = nullptr;

// Rank r's value at index i: small integers and halves, exact in bf16 / f16 sums of a few ranks.
double value(int r, int64_t i) { return double((r + 1) * ((i % 7) - 3)) * 0.5; }

Tensor input_of(int r, int64_t n, DType dtype) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = value(r, i);
  return from_vector<double>(v, {n}).to(dtype);
}

std::vector<double> as_doubles(const Tensor& t) { return to_vector<double>(t.to(DType::F64)); }

class MpiCollectives : public ::testing::TestWithParam<DType> {};

TEST_P(MpiCollectives, AllReduceSumAndAverage) {
  const int w = g_comm->world_size(), me = g_comm->rank();
  const int64_t n = 1003;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
    Tensor t = input_of(me, n, GetParam());
    g_comm->all_reduce(t, op);
    const auto got = as_doubles(t);
    for (int64_t i = 0; i < n; ++i) {
      double want = 0;
      for (int r = 0; r < w; ++r) want += value(r, i);
      if (op == ReduceOp::Avg) want /= w;
      ASSERT_DOUBLE_EQ(got[size_t(i)], want) << "element " << i;
    }
  }
}

TEST_P(MpiCollectives, ReduceScatterGivesEachRankItsBlock) {
  const int w = g_comm->world_size(), me = g_comm->rank();
  const int64_t block = 37;
  Tensor out = zeros({block}, GetParam());
  g_comm->reduce_scatter(input_of(me, block * w, GetParam()), out, ReduceOp::Sum);
  const auto got = as_doubles(out);
  for (int64_t i = 0; i < block; ++i) {
    double want = 0;
    for (int r = 0; r < w; ++r) want += value(r, me * block + i);
    ASSERT_DOUBLE_EQ(got[size_t(i)], want) << "element " << i;
  }
}

TEST_P(MpiCollectives, AllGatherConcatenatesInRankOrder) {
  const int w = g_comm->world_size(), me = g_comm->rank();
  const int64_t n = 29;
  Tensor out = zeros({n * w}, GetParam());
  g_comm->all_gather(input_of(me, n, GetParam()), out);
  const auto got = as_doubles(out);
  for (int r = 0; r < w; ++r)
    for (int64_t i = 0; i < n; ++i) ASSERT_DOUBLE_EQ(got[size_t(r * n + i)], value(r, i)) << r << " " << i;
}

TEST_P(MpiCollectives, BroadcastCopiesTheRoot) {
  const int w = g_comm->world_size(), me = g_comm->rank();
  const int root = w - 1;
  Tensor t = input_of(me, 64, GetParam());
  g_comm->broadcast(t, root);
  const auto got = as_doubles(t);
  for (int64_t i = 0; i < 64; ++i) ASSERT_DOUBLE_EQ(got[size_t(i)], value(root, i));
}

TEST_P(MpiCollectives, AllToAllRoutesRowsByCount) {
  // Rank r sends q + 1 rows to rank q; row k of those carries (r, q, k) in its 3 columns.
  const int w = g_comm->world_size(), me = g_comm->rank();
  std::vector<int64_t> send(static_cast<size_t>(w)), recv(static_cast<size_t>(w));
  std::vector<double> rows;
  for (int q = 0; q < w; ++q) {
    send[size_t(q)] = q + 1;
    recv[size_t(q)] = me + 1;
    for (int k = 0; k <= q; ++k) rows.insert(rows.end(), {double(me), double(q), double(k)});
  }
  const int64_t n_in = int64_t(rows.size() / 3);
  Tensor in = from_vector<double>(rows, {n_in, 3}).to(GetParam());
  Tensor out = zeros({int64_t(w) * (me + 1), 3}, GetParam());
  g_comm->all_to_all(in, send, out, recv);
  const auto got = as_doubles(out);
  size_t at = 0;
  for (int r = 0; r < w; ++r)
    for (int k = 0; k <= me; ++k, at += 3) {
      EXPECT_EQ(got[at], r);
      EXPECT_EQ(got[at + 1], me);
      EXPECT_EQ(got[at + 2], k);
    }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MpiCollectives,
                         ::testing::Values(DType::F32, DType::BF16, DType::F16, DType::F64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(MpiCommunicator, IntegerSumsAndBarrier) {
  const int w = g_comm->world_size(), me = g_comm->rank();
  Tensor t = from_vector<int64_t>({int64_t(me), int64_t(1) << 40}, {2});
  g_comm->all_reduce(t, ReduceOp::Sum);
  const auto got = to_vector<int64_t>(t);
  EXPECT_EQ(got[0], int64_t(w) * (w - 1) / 2);
  EXPECT_EQ(got[1], int64_t(w) << 40);
  g_comm->barrier();
}

}  // namespace
}  // namespace lmforge::dist

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = lmforge::dist::make_mpi_communicator();
  comm->set_timeout_seconds(60);
  lmforge::dist::g_comm = comm.get();
  // Every rank prints its results; mpirun's status is non-zero when any rank fails.
  const int rc = RUN_ALL_TESTS();
  comm.reset();
  return rc;
}
