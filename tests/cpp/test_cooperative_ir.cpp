// Unit tests of the cooperative IR: threadgroup arrays and memory ids,
// collectives, atomics, simdgroup matrices, async copies, the uniformity
// analysis and the CPU work-group-loop emission.
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "enigma/codegen/codegen.h"
#include "enigma/ir/builder.h"
#include "enigma/ir/passes.h"
#include "enigma/ir/printer.h"
#include "enigma/ir/uniformity.h"
#include "enigma/ir/verifier.h"
#include "enigma/support/error.h"
#include "test_support.h"

namespace enigma {
namespace {

using namespace test;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(CooperativeIR, ThreadgroupArraysAreMemoryIds) {
  Builder b("k");
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  int64_t sh = b.threadgroup_alloc(S(Scalar::F32), 64, "sh");
  EXPECT_TRUE(is_threadgroup_memory(sh));
  ValueId lid = b.thread_query(ThreadQuery::ThreadIndexInThreadgroup, 0);
  b.store(sh, lid, Literal::of_float(1.0));
  b.barrier(kMemThreadgroup);
  b.store(out, lid, b.load(sh, lid));
  Kernel k = b.finish();
  EXPECT_EQ(k.tg_arrays.size(), 1u);
  EXPECT_EQ(k.threadgroup_memory_bytes(), 256u);
  EXPECT_EQ(k.memory_name(sh), "sh");
  std::string ir = print(k);
  EXPECT_NE(ir.find("threadgroup sh: float[64]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("barrier mem_threadgroup"), std::string::npos) << ir;
  EXPECT_NE(ir.find("load sh["), std::string::npos) << ir;
  std::string msl = emit_msl(k);
  EXPECT_NE(msl.find("threadgroup float sh[64];"), std::string::npos) << msl;
  EXPECT_NE(msl.find("threadgroup_barrier(mem_flags::mem_threadgroup);"), std::string::npos) << msl;
}

TEST(CooperativeIR, NamesAndFlagsAreChecked) {
  Builder b("k");
  b.add_buffer_param("A", S(Scalar::F32));
  EXPECT_NE(error_of([&] { b.threadgroup_alloc(S(Scalar::F32), 4, "A"); }).find("already"), std::string::npos);
  EXPECT_NE(error_of([&] { b.threadgroup_alloc(S(Scalar::F32), 0, "z"); }).find("positive"), std::string::npos);
  EXPECT_NE(error_of([&] { b.barrier(99); }).find("mem_flags"), std::string::npos);
  int64_t f = 0;
  EXPECT_TRUE(parse_mem_flags("mem_device_and_threadgroup", &f));
  EXPECT_EQ(f, kMemDevice | kMemThreadgroup);
  EXPECT_FALSE(parse_mem_flags("mem_all", &f));
  MemoryOrder o;
  EXPECT_TRUE(parse_memory_order("acq_rel", &o));
  EXPECT_EQ(o, MemoryOrder::AcqRel);
  EXPECT_FALSE(parse_memory_order("consume", &o));
}

TEST(CooperativeIR, CollectiveTyping) {
  Builder b("k");
  int a = b.add_buffer_param("A", S(Scalar::F32));
  int v = b.add_buffer_param("V", DType::vector(Scalar::F32, 4));
  int l = b.add_buffer_param("L", S(Scalar::I64));
  ValueId x = b.load(a, I(0));
  EXPECT_EQ(b.type_of(b.collective(OpCode::SimdSum, x)), S(Scalar::F32));
  // Vectors reduce lane-wise and stay vectors (reference bug 26.1.10 fixed).
  EXPECT_EQ(b.type_of(b.collective(OpCode::SimdMax, b.load(v, I(0)))), DType::vector(Scalar::F32, 4));
  EXPECT_NE(error_of([&] { b.collective(OpCode::SimdAnd, x); }).find("integer"), std::string::npos);
  EXPECT_NE(error_of([&] { b.collective(OpCode::SimdSum, b.load(l, I(0))); }).find("simd_sum"), std::string::npos);
  // Shuffles move 64-bit values; the lane becomes uint.
  ValueId s = b.collective(OpCode::QuadShuffleXor, b.load(l, I(0)), I(1));
  EXPECT_EQ(b.type_of(s), S(Scalar::I64));
  EXPECT_EQ(collective_info(OpCode::QuadShuffleXor).width, 4);
  EXPECT_TRUE(collective_info(OpCode::SimdPrefixInclusiveProduct).scan);
  EXPECT_TRUE(collective_info(OpCode::SimdPrefixInclusiveProduct).inclusive);
}

TEST(CooperativeIR, AtomicsTyping) {
  Builder b("k");
  int i = b.add_buffer_param("I", S(Scalar::I32));
  int f = b.add_buffer_param("F", S(Scalar::F32));
  int h = b.add_buffer_param("H", S(Scalar::F16));
  ValueId old = b.atomic(OpCode::AtomicFetchAdd, i, I(0), {I(1)});
  EXPECT_EQ(b.type_of(old), S(Scalar::I32));
  ValueId ok = b.atomic(OpCode::AtomicCompareExchange, i, I(0), {I(0), I(1)}, MemoryOrder::AcqRel);
  EXPECT_EQ(b.type_of(ok), S(Scalar::B1));
  EXPECT_EQ(b.type_of(b.atomic(OpCode::AtomicFetchAdd, f, I(0), {Literal::of_float(1.0)})), S(Scalar::F32));
  EXPECT_NE(error_of([&] { b.atomic(OpCode::AtomicFetchMin, f, I(0), {Literal::of_float(1.0)}); }).find("atomics need"),
            std::string::npos);
  EXPECT_NE(error_of([&] { b.atomic(OpCode::AtomicFetchAdd, h, I(0), {I(1)}); }).find("atomics need"),
            std::string::npos);
  EXPECT_EQ(b.atomic(OpCode::AtomicStore, i, I(1), {I(2)}), kNoValue);
  Kernel k = b.finish();
  EXPECT_TRUE(k.params[0].written);
  std::string ir = print(k);
  EXPECT_NE(ir.find("atomic_compare_exchange_weak I["), std::string::npos) << ir;
  EXPECT_NE(ir.find("acq_rel"), std::string::npos) << ir;
}

TEST(CooperativeIR, MatricesAndAsyncCopies) {
  Builder b("k");
  int a = b.add_buffer_param("A", S(Scalar::F16));
  int out = b.add_buffer_param("Out", S(Scalar::F32));
  int64_t t = b.threadgroup_alloc(S(Scalar::F16), 64, "t");
  ValueId ev = b.async_copy_1d(t, I(0), a, I(0), I(64));
  b.async_wait({ev});
  ValueId m = b.simd_matrix_load(t, I(0), I(8), DType::simd_matrix(Scalar::F16, 8, 8));
  ValueId c = b.simd_matrix_fill(Literal::of_float(0.0), DType::simd_matrix(Scalar::F32, 8, 8));
  ValueId d = b.simd_matrix_mma(m, m, c);
  EXPECT_EQ(b.type_of(d), DType::simd_matrix(Scalar::F32, 8, 8));
  b.simd_matrix_store(d, out, I(0), I(8));
  EXPECT_NE(error_of([&] { b.simd_matrix_store(m, out, I(0), I(8)); }).find("must match"), std::string::npos);
  EXPECT_NE(error_of([&] { b.async_copy_1d(out, I(0), a, I(0), I(1)); }).find("threadgroup"), std::string::npos);
  EXPECT_NE(error_of([&] { b.async_wait({m}); }).find("events"), std::string::npos);
  Kernel k = b.finish();
  optimize(k);
  std::string ir = print(k);
  EXPECT_NE(ir.find("vector<8x8xf16>"), std::string::npos) << ir;
  std::string msl = emit_msl(k);
  EXPECT_NE(msl.find("air.simdgroup_async_copy_1d.p3i8.p1i8"), std::string::npos);
  EXPECT_LT(msl.find("air.wait_simdgroup_events"), msl.find("kernel void"));
  EXPECT_NE(msl.find("simdgroup_multiply_accumulate("), std::string::npos);
}

// ---- uniformity --------------------------------------------------------------

struct UK {
  Builder b{"u"};
  int A, Out;
  UK() {
    b.set_location("kern.py", 10);
    A = b.add_buffer_param("A", S(Scalar::U32));
    Out = b.add_buffer_param("Out", S(Scalar::U32));
  }
  // Stores each of `values` to Out[index] (so none is dead), finishes the
  // kernel and returns the uniformity of every value.
  std::vector<Uniformity> store_and_analyze(ValueId index, std::initializer_list<ValueId> values) {
    for (ValueId v : values) b.store(Out, index, v);
    return analyze_uniformity(b.finish());
  }
};

TEST(Uniformity, SourcesAndPropagation) {
  UK u;
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId grp = u.b.thread_query(ThreadQuery::ThreadgroupPositionInGrid, 0);
  ValueId sg = u.b.thread_query(ThreadQuery::SimdgroupIndexInThreadgroup, 0);
  ValueId uni = u.b.load(u.A, grp);                    // uniform index: uniform
  ValueId var = u.b.load(u.A, tid);                    // varying index: varying
  ValueId mix = u.b.binary(OpCode::Add, uni, sg);      // per simdgroup
  ValueId red = u.b.collective(OpCode::SimdSum, var);  // same within a simdgroup
  ValueId at = u.b.atomic(OpCode::AtomicFetchAdd, u.Out, I(0), {I(1)});
  auto res = u.b.begin_for(I(0), I(4), I(1), S(Scalar::U32), {I(0)});
  ValueId nx = u.b.binary(OpCode::Add, res[1], var);  // carried value becomes varying
  auto loop = u.b.end_for({nx});
  auto lv = u.store_and_analyze(tid, {loop[0], mix, red, at});
  EXPECT_EQ(lv[grp], Uniformity::Uniform);
  EXPECT_EQ(lv[uni], Uniformity::Uniform);
  EXPECT_EQ(lv[var], Uniformity::Varying);
  EXPECT_EQ(lv[mix], Uniformity::Simdgroup);
  EXPECT_EQ(lv[red], Uniformity::Simdgroup);
  EXPECT_EQ(lv[at], Uniformity::Varying);
  EXPECT_EQ(lv[res[0]], Uniformity::Uniform);  // induction variable of a uniform loop
  EXPECT_EQ(lv[res[1]], Uniformity::Varying);
  EXPECT_EQ(lv[loop[0]], Uniformity::Varying);
}

TEST(Uniformity, BarrierUnderUniformControlIsFine) {
  UK u;
  ValueId grp = u.b.thread_query(ThreadQuery::ThreadgroupPositionInGrid, 0);
  u.b.begin_if(u.b.compare(CmpPred::Eq, u.b.load(u.A, grp), I(1)));
  u.b.barrier(kMemThreadgroup);
  u.b.end_if();
  u.b.begin_for(I(0), u.b.load(u.A, I(0)), I(1), S(Scalar::U32), {});
  u.b.barrier(kMemDevice);
  u.b.end_for({});
  EXPECT_NO_THROW(u.b.finish());
}

TEST(Uniformity, BarrierUnderVaryingControlNamesBothLines) {
  UK u;
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  u.b.set_location("kern.py", 12);
  u.b.begin_if(u.b.compare(CmpPred::Lt, tid, I(3)));
  u.b.set_location("kern.py", 13);
  u.b.barrier(kMemThreadgroup);
  u.b.end_if();
  std::string e = error_of([&] { u.b.finish(); });
  EXPECT_NE(e.find("kern.py:13: kernel 'u': barrier"), std::string::npos) << e;
  EXPECT_NE(e.find("if_ condition at kern.py:12"), std::string::npos) << e;
}

TEST(Uniformity, VaryingWhileAndLoopCarriedBounds) {
  UK u;
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  auto args = u.b.begin_while({tid});
  auto body = u.b.while_body(u.b.compare(CmpPred::Lt, args[0], I(10)));
  u.b.barrier(kMemNone);
  u.b.end_while({u.b.binary(OpCode::Add, body[0], I(1))});
  EXPECT_NE(error_of([&] { u.b.finish(); }).find("while_ condition"), std::string::npos);
}

// A per-thread array is as varying as what is written into it.
TEST(Uniformity, PerThreadArrays) {
  UK u;
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId grp = u.b.thread_query(ThreadQuery::ThreadgroupPositionInGrid, 0);
  int uni = u.b.local_array(S(Scalar::U32), 2, I(0), "uni");
  int var = u.b.local_array(S(Scalar::U32), 2, I(0), "var");
  int cond = u.b.local_array(S(Scalar::U32), 2, I(0), "cond");
  u.b.local_store(uni, I(1), grp);
  u.b.local_store(var, I(1), tid);
  u.b.begin_if(u.b.compare(CmpPred::Lt, tid, I(3)));  // a uniform value under varying control
  u.b.local_store(cond, I(0), grp);
  u.b.end_if();
  ValueId lu = u.b.local_load(uni, I(1)), lv = u.b.local_load(var, I(0)), lc = u.b.local_load(cond, I(1));
  ValueId ti = u.b.load_if(u.b.threadgroup_alloc(S(Scalar::U32), 4, "t"), I(0), Literal::of_bool(true), I(0));
  auto lvl = u.store_and_analyze(tid, {lu, lv, lc, ti});
  EXPECT_EQ(lvl[lu], Uniformity::Uniform);
  EXPECT_EQ(lvl[lv], Uniformity::Varying);
  EXPECT_EQ(lvl[lc], Uniformity::Varying);
  EXPECT_EQ(lvl[ti], Uniformity::Uniform);  // load_if on a threadgroup array at a uniform index
}

TEST(Uniformity, SimdgroupUniformControlAllowsSimdOpsNotBarriers) {
  UK u;
  ValueId sg = u.b.thread_query(ThreadQuery::SimdgroupIndexInThreadgroup, 0);
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  u.b.begin_if(u.b.compare(CmpPred::Eq, sg, I(0)));
  ValueId s = u.b.collective(OpCode::SimdSum, u.b.load(u.A, tid));
  u.b.barrier(kMemNone, /*simdgroup=*/true);
  u.b.store(u.Out, tid, s);
  u.b.end_if();
  EXPECT_NO_THROW(u.b.finish());  // simd_barrier under per-simdgroup control is fine
  UK v;
  ValueId sg2 = v.b.thread_query(ThreadQuery::SimdgroupIndexInThreadgroup, 0);
  v.b.begin_if(v.b.compare(CmpPred::Eq, sg2, I(0)));
  v.b.barrier(kMemThreadgroup);
  v.b.end_if();
  EXPECT_NE(error_of([&] { v.b.finish(); }).find("threadgroup"), std::string::npos);
}

// ---- CPU emission ---------------------------------------------------------------

TEST(CpuWorkGroupLoops, BarrierSplitsIntoThreadLoopsAndSpills) {
  UK u;
  int64_t sh = u.b.threadgroup_alloc(S(Scalar::U32), 256, "sh");
  ValueId lid = u.b.thread_query(ThreadQuery::ThreadIndexInThreadgroup, 0);
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId x = u.b.load(u.A, tid);
  u.b.store(sh, lid, x);
  u.b.barrier(kMemThreadgroup);
  u.b.store(u.Out, tid, u.b.binary(OpCode::Add, u.b.load(sh, I(0)), x));  // x lives across the barrier
  Kernel k = u.b.finish();
  CpuEmitOptions unchecked;  // checked memory adds a per-row copy of each loop
  unchecked.bounds_check = false;
  std::string cpu = emit_cpu(k, unchecked);
  EXPECT_EQ(count(cpu, "for (uint32_t en_gx = en_bx;"), 2u) << cpu;
  EXPECT_NE(cpu.find("L->scratch("), std::string::npos);
  EXPECT_NE(cpu.find("en_s" + std::to_string(x) + "_r[en_gx] = "), std::string::npos) << cpu;
  EXPECT_NE(cpu.find("// barrier(mem_threadgroup)"), std::string::npos);
}

TEST(CpuWorkGroupLoops, KernelsWithoutSyncKeepOneLoop) {
  UK u;
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  u.b.store(u.Out, tid, u.b.load(u.A, tid));
  Kernel k = u.b.finish();
  CpuEmitOptions unchecked;
  unchecked.bounds_check = false;
  std::string cpu = emit_cpu(k, unchecked);
  EXPECT_EQ(count(cpu, "for (uint32_t en_gx = en_bx;"), 1u);
  EXPECT_EQ(cpu.find("L->scratch("), std::string::npos);
  // Checked: a copy proved in bounds per row (no checks) and a checked one.
  std::string checked = emit_cpu(k);
  EXPECT_EQ(count(checked, "for (uint32_t en_gx = en_bx;"), 2u) << checked;
  std::string fast = checked.substr(0, checked.find("} else {"));
  EXPECT_EQ(fast.find("en_ok"), std::string::npos) << checked;
}

TEST(CpuWorkGroupLoops, VaryingIfWithSimdOpRunsUnderAMask) {
  UK u;
  ValueId tid = u.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  u.b.begin_if(u.b.compare(CmpPred::Lt, tid, I(40)));
  u.b.store(u.Out, tid, u.b.collective(OpCode::SimdSum, u.b.load(u.A, tid)));
  u.b.end_if();
  std::string cpu = emit_cpu(u.b.finish());
  EXPECT_NE(cpu.find("en_m0_r[en_gx] = en_c;"), std::string::npos) << cpu;
  EXPECT_NE(cpu.find("if (!en_m0[en_t]) continue;"), std::string::npos) << cpu;
}

}  // namespace
}  // namespace enigma
