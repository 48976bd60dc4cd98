// Unit tests of the CPU backend's work-group-loop planner (cpu_plan.h): how
// a cooperative kernel's regions split into thread loops and group-level
// ops, and where each value lives, checked on the plan itself.
#include <gtest/gtest.h>

#include <string>

#include "codegen/cpu_plan.h"
#include "enigma/ir/builder.h"
#include "test_support.h"

namespace enigma {
namespace {

using Kind = CpuPlan::Item::Kind;

using namespace test;

std::vector<Kind> kinds(const std::vector<CpuPlan::Item>& items) {
  std::vector<Kind> out;
  for (const CpuPlan::Item& it : items) out.push_back(it.kind);
  return out;
}

size_t scratch_of(const CpuPlan& p, CpuPlan::Scratch::Kind kind) {
  size_t n = 0;
  for (const CpuPlan::Scratch& s : p.scratch) n += s.kind == kind;
  return n;
}

// Kernel "k" over float buffers A and Out that starts with x = A[tid].
struct ReadsA {
  Builder b{"k"};
  int a = b.add_buffer_param("A", S(Scalar::F32));
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  ValueId tid = b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId x = b.load(a, tid);
};

// s = simd_sum(A[tid]); if lane == 0: part[sg] = s; barrier; Out[tid] = part[0] * 2
TEST(CpuPlanner, BlockReductionSplitsAtSyncOps) {
  Builder b("k");
  int a = b.add_buffer_param("A", S(Scalar::F32));
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  int64_t part = b.threadgroup_alloc(S(Scalar::F32), 32, "part");
  ValueId tid = b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId lane = b.thread_query(ThreadQuery::ThreadIndexInSimdgroup, 0);
  ValueId sg = b.thread_query(ThreadQuery::SimdgroupIndexInThreadgroup, 0);
  ValueId x = b.load(a, tid);
  ValueId s = b.collective(OpCode::SimdSum, x);
  b.begin_if(b.compare(CmpPred::Eq, lane, I(0)));
  b.store(part, sg, s);
  b.end_if();
  b.barrier(kMemThreadgroup);
  ValueId total = b.load(part, I(0));
  b.store(out, tid, b.binary(OpCode::Mul, total, Literal::of_float(2.0)));
  Kernel k = b.finish();

  CpuPlan p = plan_cpu_kernel(k);
  const std::vector<Kind> top = kinds(p.items_of(k.body));
  // The barrier is the only place the threads meet; the simd sum runs at
  // group level between two thread loops.
  size_t syncs = 0, segments = 0;
  for (Kind kd : top) {
    syncs += kd == Kind::Sync;
    segments += kd == Kind::Segment;
  }
  EXPECT_EQ(syncs, 2u);
  EXPECT_GE(segments, 2u);
  // The loaded value feeds a sync op: kept per thread. The sum's result is
  // per thread too. Thread queries are recomputed, never stored.
  EXPECT_TRUE(p.in_array(x));
  EXPECT_TRUE(p.in_array(s));
  EXPECT_FALSE(p.in_array(tid));
  EXPECT_TRUE(p.recompute[tid]);
  EXPECT_FALSE(p.group[tid]);
  EXPECT_FALSE(p.recompute[x]);
  EXPECT_EQ(scratch_of(p, CpuPlan::Scratch::Kind::ThreadValue), 2u);
  EXPECT_EQ(scratch_of(p, CpuPlan::Scratch::Kind::Mask), 0u);  // the if runs inside a thread loop
}

TEST(CpuPlanner, UniformValuesAreComputedOncePerGroup) {
  Builder b("k");
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  ValueId n = b.add_scalar_param("n", S(Scalar::U32));
  ValueId tg = b.thread_query(ThreadQuery::ThreadgroupPositionInGrid, 0);
  ValueId base = b.binary(OpCode::Mul, tg, n);  // the same for every thread of the group
  ValueId lid = b.thread_query(ThreadQuery::ThreadIndexInThreadgroup, 0);
  ValueId s = b.collective(OpCode::SimdSum, b.convert(lid, S(Scalar::F32)));
  b.store(out, b.binary(OpCode::Add, base, lid), s);
  Kernel k = b.finish();
  CpuPlan p = plan_cpu_kernel(k);
  EXPECT_TRUE(p.group[tg]);
  EXPECT_TRUE(p.group[base]);
  EXPECT_FALSE(p.in_array(base));
  EXPECT_FALSE(p.group[lid]);
  EXPECT_TRUE(p.in_array(s));
}

// part[lid] = x; barrier; t = part[0]: read once per group, no per-thread
// copy. A read of `part` in a thread loop that also writes `part` (before or
// after the read) stays per thread.
TEST(CpuPlanner, UniformThreadgroupReadsAreGroupValuesUnlessWrittenAlongside) {
  Builder b("k");
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  int64_t part = b.threadgroup_alloc(S(Scalar::F32), 128, "part");
  int64_t other = b.threadgroup_alloc(S(Scalar::F32), 128, "other");
  ValueId lid = b.thread_query(ThreadQuery::ThreadIndexInThreadgroup, 0);
  b.store(part, lid, b.convert(lid, S(Scalar::F32)));
  b.barrier(kMemThreadgroup);
  ValueId t = b.load(part, I(0));
  ValueId scaled = b.binary(OpCode::Mul, t, Literal::of_float(2.0));
  b.store(other, lid, scaled);
  b.barrier(kMemThreadgroup);
  ValueId v = b.load(part, I(2));  // `part` is written after it in the same thread loop
  b.store(part, b.binary(OpCode::Add, lid, I(64)), v);
  ValueId u = b.load(part, I(1));  // ... and before this one
  b.store(out, lid, b.binary(OpCode::Add, scaled, u));
  const CpuPlan p = plan_cpu_kernel(b.finish());
  for (ValueId once : {t, scaled}) EXPECT_TRUE(p.group[once] && !p.in_array(once)) << once;
  for (ValueId per_thread : {v, u}) EXPECT_FALSE(p.group[per_thread]) << per_thread;
}

// A varying if_ holding a sync op runs at group level under a mask; one on
// `simdgroup_index == g` with no else is a known thread range.
TEST(CpuPlanner, VaryingIfAroundASyncOpGetsAMask) {
  ReadsA r;
  Builder& b = r.b;
  const int out = r.out;
  const ValueId tid = r.tid, x = r.x;
  ValueId cond = b.compare(CmpPred::Gt, x, Literal::of_float(0.0));
  b.begin_if(cond);
  b.store(out, tid, b.collective(OpCode::SimdSum, x));
  b.end_if();
  ValueId sg = b.thread_query(ThreadQuery::SimdgroupIndexInThreadgroup, 0);
  ValueId first = b.compare(CmpPred::Eq, sg, I(0));
  b.begin_if(first);
  b.store(out, tid, b.collective(OpCode::SimdMax, x));
  b.end_if();
  Kernel k = b.finish();
  CpuPlan p = plan_cpu_kernel(k);
  size_t controls = 0;
  for (const CpuPlan::Item& it : p.items_of(k.body)) {
    if (it.kind != Kind::Control) continue;
    ++controls;
    EXPECT_EQ(it.op->code, OpCode::If);
    EXPECT_TRUE(p.mask.count(it.op));
  }
  EXPECT_EQ(controls, 2u);
  EXPECT_EQ(p.mask.size(), 2u);
  EXPECT_EQ(scratch_of(p, CpuPlan::Scratch::Kind::Mask), 4u);  // taken and else masks of each
  EXPECT_TRUE(p.in_array(cond));                               // read by the group-level mask loop
  EXPECT_FALSE(p.in_array(first));                             // a range: no stored condition
}

// Matrices read only by the matrix ops of their own run live in that run's
// loop over the simdgroups; a matrix carried by a loop lives in scratch.
TEST(CpuPlanner, MatrixIntermediatesStayInTheirRun) {
  Builder b("k");
  int a = b.add_buffer_param("A", S(Scalar::F32));
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  const DType m = DType::simd_matrix(Scalar::F32, 8, 8);
  ValueId zero = b.simd_matrix_fill(Literal::of_float(0.0), m);
  std::vector<ValueId> args = b.begin_for(I(0), I(4), I(1), S(Scalar::I32), {zero});
  ValueId ma = b.simd_matrix_load(a, I(0), I(8), m);
  ValueId mb = b.simd_matrix_load(a, I(64), I(8), m);
  ValueId acc = b.simd_matrix_mma(ma, mb, args[1]);
  std::vector<ValueId> res = b.end_for({acc});
  b.simd_matrix_store(res[0], out, I(0), I(8));
  Kernel k = b.finish();
  CpuPlan p = plan_cpu_kernel(k);
  EXPECT_TRUE(p.run_local_matrices.count(ma));
  EXPECT_TRUE(p.run_local_matrices.count(mb));
  EXPECT_FALSE(p.run_local_matrices.count(acc));  // yielded: read after the run
  EXPECT_FALSE(p.run_local_matrices.count(res[0]));
  EXPECT_TRUE(p.in_array(res[0]));
  EXPECT_EQ(p.array[args[1]], p.array[res[0]]);  // the carried value and the result share storage
  // The loop result, its copy buffer, the fill and the product: no scratch for ma/mb.
  EXPECT_EQ(scratch_of(p, CpuPlan::Scratch::Kind::SimdgroupMatrix), 4u);
}

// A per-thread array written before a barrier and read after it is kept
// per thread in scratch; one used in a single thread loop stays a register array.
TEST(CpuPlanner, LocalArraysAcrossBarriersLiveInScratch) {
  Builder b("k");
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  ValueId tid = b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  int across = b.local_array(S(Scalar::F32), 4, Literal::of_float(1.0), "across");
  int inside = b.local_array(S(Scalar::F32), 4, Literal::of_float(2.0), "inside");
  b.local_store(across, I(1), b.local_load(inside, I(2)));
  b.barrier(kMemThreadgroup);
  b.store(out, tid, b.local_load(across, I(1)));
  Kernel k = b.finish();
  CpuPlan p = plan_cpu_kernel(k);
  ASSERT_EQ(p.local_in_scratch.size(), 2u);
  EXPECT_TRUE(p.local_in_scratch[static_cast<size_t>(across)]);
  EXPECT_FALSE(p.local_in_scratch[static_cast<size_t>(inside)]);
  EXPECT_EQ(scratch_of(p, CpuPlan::Scratch::Kind::LocalArray), 1u);
}

// The plan is a pure function of the kernel: planning twice gives the same
// items and storage.
TEST(CpuPlanner, PlanningIsDeterministic) {
  ReadsA r;
  Builder& b = r.b;
  const int out = r.out;
  const ValueId tid = r.tid, x = r.x;
  b.barrier(kMemThreadgroup);
  b.store(out, tid, b.collective(OpCode::QuadSum, x));
  Kernel k = b.finish();
  CpuPlan p1 = plan_cpu_kernel(k), p2 = plan_cpu_kernel(k);
  EXPECT_EQ(p1.array, p2.array);
  EXPECT_EQ(p1.group, p2.group);
  EXPECT_EQ(p1.segment, p2.segment);
  ASSERT_EQ(p1.scratch.size(), p2.scratch.size());
  for (size_t i = 0; i < p1.scratch.size(); ++i) EXPECT_EQ(p1.scratch[i].name, p2.scratch[i].name);
  EXPECT_EQ(kinds(p1.items_of(k.body)), kinds(p2.items_of(k.body)));
  EXPECT_TRUE(p1.in_array(x));  // crosses the barrier
}

}  // namespace
}  // namespace enigma
