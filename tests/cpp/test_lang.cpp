// Unit tests of the per-thread language: typing of the op table's OPX rows,
// the verifier's checks, constant folding with the generated code's
// semantics, function-constant specialisation and the emitters' spellings.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/ir/builder.h"
#include "enigma/ir/const_eval.h"
#include "enigma/ir/lang.h"
#include "enigma/ir/passes.h"
#include "enigma/ir/verifier.h"
#include "enigma/support/error.h"
#include "test_support.h"

namespace enigma {
namespace {

using namespace test;

// A kernel with one buffer per dtype (A: float, B: half, C: int, D: uchar, E: ulong, F: bool).
struct K {
  Builder b{"k"};
  ValueId f, h, i, u8, u64, flag;
  K() {
    b.set_location("user.py", 7);
    for (auto [n, t] : {std::pair{"A", Scalar::F32},
                        {"B", Scalar::F16},
                        {"C", Scalar::I32},
                        {"D", Scalar::U8},
                        {"E", Scalar::U64},
                        {"F", Scalar::B1}})
      b.add_buffer_param(n, S(t));
    f = b.load(0, I(0));
    h = b.load(1, I(0));
    i = b.load(2, I(0));
    u8 = b.load(3, I(0));
    u64 = b.load(4, I(0));
    flag = b.load(5, I(0));
  }
  DType t(ValueId v) const { return b.type_of(v); }
};

int count(const Kernel& k, OpCode code) {
  int n = 0;
  walk(k.body, [&](const Op& op) { n += op.code == code; });
  return n;
}

TEST(LangTable, EveryOpxRowIsConsistent) {
  int rows = 0;
  for (int c = 0; c < num_opcodes(); ++c) {
    const OpInfo& oi = info(static_cast<OpCode>(c));
    if (!*oi.operand_classes) continue;
    ++rows;
    EXPECT_TRUE(oi.pure) << oi.name;
    EXPECT_TRUE(*oi.result_rule && *oi.tolerance && *oi.c_expr) << oi.name;
    if (oi.num_operands >= 0 && oi.category == OpCategory::Math) {
      EXPECT_EQ(operand_classes(oi.code).size(), static_cast<size_t>(oi.num_operands)) << oi.name;
    }
  }
  EXPECT_EQ(rows, 29 + 7 + 4 + 5 + 10 + 6 + 8 + 12 + 7);  // 29 unary float math: 24 of the reference + 5
  EXPECT_EQ(spell_template(info(OpCode::AbsDiffUnary).c_expr, "metal::"), "T(metal::absdiff(a, T(0)))");
  EXPECT_EQ(spell_template(info(OpCode::ExtractBits).c_expr, "en_"), "en_extract_bits(a, A, B)");
}

TEST(LangTyping, FloatOpsKeepTheirDtypeAndRejectIntegers) {
  K k;
  EXPECT_EQ(k.t(k.b.math(OpCode::Sqrt, {k.h})), S(Scalar::F16));
  EXPECT_EQ(k.t(k.b.math(OpCode::Fmin, {k.h, k.f})), S(Scalar::F32));     // half with float promotes
  EXPECT_EQ(k.t(k.b.math(OpCode::Fmin, {k.h, F(2.0)})), S(Scalar::F16));  // literals are weak
  EXPECT_EQ(k.t(k.b.math(OpCode::Clamp, {k.h, I(0), I(1)})), S(Scalar::F16));
  EXPECT_EQ(k.t(k.b.math(OpCode::Sqrt, {I(4)})), S(Scalar::F32));  // an int literal alone in a float op
  EXPECT_EQ(k.t(k.b.math(OpCode::IsNan, {k.h})), S(Scalar::B1));
  std::string e = error_of([&] { k.b.math(OpCode::Sqrt, {k.i}); });
  EXPECT_NE(e.find("user.py:7: kernel 'k': sqrt: operand 1 must be a float"), std::string::npos) << e;
  EXPECT_NE(e.find("got int"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Fmax, {k.f, k.i}); }).find("operand 2 must be a float"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Exp, {k.flag}); }).find("got bool"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Pow, {k.f}); }).find("expects 2 operand(s), got 1"), std::string::npos);
}

TEST(LangTyping, IntegerOps) {
  K k;
  EXPECT_EQ(k.t(k.b.math(OpCode::Popcount, {k.u8})), S(Scalar::U8));
  EXPECT_EQ(k.t(k.b.math(OpCode::IMin, {k.u8, I(3)})), S(Scalar::U8));
  EXPECT_EQ(k.t(k.b.math(OpCode::AddSat, {k.u8, k.i})), S(Scalar::I32));  // wider wins
  EXPECT_EQ(k.t(k.b.math(OpCode::Abs, {k.i})), S(Scalar::I32));
  EXPECT_EQ(k.t(k.b.math(OpCode::Abs, {k.f})), S(Scalar::F32));
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Clz, {k.f}); }).find("integer scalar or vector, got float"),
            std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::IMax, {k.u8, I(300)}); }).find("300 does not fit in uchar"),
            std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::SubSat, {k.i, F(0.5)}); }).find("float literal"), std::string::npos);
}

TEST(LangTyping, BitRangesAreCompileTimeAndChecked) {
  K k;
  ValueId x = k.b.math(OpCode::ExtractBits, {k.u8}, 2, 6);
  EXPECT_EQ(k.t(x), S(Scalar::U8));
  EXPECT_NE(error_of([&] {
              k.b.math(OpCode::ExtractBits, {k.u8}, 4, 5);
            }).find("bit range offset=4, bits=5 does not fit in 8 bits"),
            std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::InsertBits, {k.u64, k.u64}, -1, 2); }).find("bit range"),
            std::string::npos);
  EXPECT_EQ(k.t(k.b.math(OpCode::InsertBits, {k.u64, k.u64}, 0, 64)), S(Scalar::U64));
}

TEST(LangTyping, VectorsSplatScalarsAndCheckSizes) {
  K k;
  ValueId v4 = k.b.make_vec({k.f, k.f, F(1.0), I(2)});
  EXPECT_EQ(k.t(v4), V(Scalar::F32, 4));
  ValueId h3 = k.b.make_vec({k.h, k.h, k.h});
  EXPECT_EQ(k.t(h3), V(Scalar::F16, 3));
  EXPECT_EQ(k.t(k.b.make_vec({k.i, k.f})), V(Scalar::F32, 2));                  // promotes
  EXPECT_EQ(k.t(k.b.make_vec({k.i, k.flag}, Scalar::F32)), V(Scalar::F32, 2));  // make_float2 converts
  EXPECT_EQ(k.t(k.b.make_vec({I(1), I(2)})), V(Scalar::U32, 2));
  EXPECT_EQ(k.t(k.b.math(OpCode::Clamp, {v4, F(0.0), k.f})), V(Scalar::F32, 4));  // scalars splat
  EXPECT_EQ(k.t(k.b.math(OpCode::IsInf, {h3})), V(Scalar::B1, 3));
  EXPECT_EQ(k.t(k.b.vec_extract(v4, 3)), S(Scalar::F32));
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Fmin, {v4, h3}); }).find("vector sizes differ"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.vec_extract(h3, 3); }).find("lane 3 is out of range for vec<3,half>"),
            std::string::npos);
  EXPECT_NE(error_of([&] { k.b.make_vec({k.f}); }).find("expects 2, 3 or 4 scalars"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.make_vec({v4, k.f}); }).find("must be a scalar"), std::string::npos);
}

TEST(LangTyping, GeometryPackingAndMatrices) {
  K k;
  ValueId v3 = k.b.make_vec({k.f, k.f, k.f}), v4 = k.b.make_vec({k.f, k.f, k.f, k.f}), h2 = k.b.make_vec({k.h, k.h});
  EXPECT_EQ(k.t(k.b.math(OpCode::Dot, {v3, v3})), S(Scalar::F32));
  EXPECT_EQ(k.t(k.b.math(OpCode::Length, {h2})), S(Scalar::F16));
  EXPECT_EQ(k.t(k.b.math(OpCode::Cross, {v3, v3})), V(Scalar::F32, 3));
  EXPECT_EQ(k.t(k.b.math(OpCode::Refract, {v3, v3, F(1.5)})), V(Scalar::F32, 3));
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Cross, {v4, v4}); }).find("float 3-vector"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Dot, {k.f, k.f}); }).find("float vector, got float"), std::string::npos);
  EXPECT_EQ(k.t(k.b.math(OpCode::PackUnorm4x8, {v4})), S(Scalar::U32));
  EXPECT_EQ(k.t(k.b.math(OpCode::PackSnorm2x16, {h2})), S(Scalar::U32));  // half lanes convert to float
  EXPECT_EQ(k.t(k.b.math(OpCode::UnpackUnorm10a2, {k.u8})), V(Scalar::F32, 4));
  EXPECT_NE(error_of([&] { k.b.math(OpCode::PackUnorm4x8, {v3}); }).find("float 4-vector"), std::string::npos);
  ValueId m = k.b.make_matrix({v3, v3});  // float2x3
  EXPECT_EQ(k.t(m), DType::matrix(Scalar::F32, 2, 3));
  EXPECT_EQ(k.t(m).str(), "float2x3");
  EXPECT_EQ(k.t(k.b.matrix_column(m, 1)), V(Scalar::F32, 3));
  EXPECT_EQ(k.t(k.b.math(OpCode::Transpose, {m})), DType::matrix(Scalar::F32, 3, 2));
  ValueId mt = k.b.math(OpCode::Transpose, {m});
  EXPECT_EQ(k.t(k.b.matmul(m, mt)), DType::matrix(Scalar::F32, 3, 3));
  EXPECT_EQ(k.t(k.b.matmul(mt, v3)), V(Scalar::F32, 2));
  EXPECT_EQ(k.t(k.b.matmul(k.b.make_vec({k.f, k.f}), mt)), V(Scalar::F32, 3));
  EXPECT_NE(error_of([&] { k.b.matmul(m, m); }).find("2 columns, the right one 3 rows"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.math(OpCode::Determinant, {m}); }).find("square"), std::string::npos);
  EXPECT_EQ(k.t(k.b.convert(m, DType::matrix(Scalar::F16, 2, 3))), DType::matrix(Scalar::F16, 2, 3));
  EXPECT_NE(error_of([&] { k.b.convert(m, DType::matrix(Scalar::F16, 3, 3)); }).find("shapes must match"),
            std::string::npos);
  EXPECT_EQ(parse_dtype("half4x2")->str(), "half4x2");
  EXPECT_FALSE(parse_dtype("float5x2"));
  EXPECT_EQ(DType::matrix(Scalar::F32, 3, 3).size_bytes(), 48);  // columns padded like float3
  EXPECT_NO_THROW(k.b.finish());
}

TEST(LangFolding, ScalarMathFoldsWithTheRuntimeSemantics) {
  auto fold1 = [](OpCode op, Scalar t, double x) {
    Const c;
    c.f = x;
    return fold_math(op, t, {c})->f;
  };
  EXPECT_EQ(fold1(OpCode::Round, Scalar::F32, 2.5), 3.0);
  EXPECT_EQ(fold1(OpCode::Round, Scalar::F32, -0.5), -1.0);
  EXPECT_TRUE(std::signbit(fold1(OpCode::Sign, Scalar::F32, -0.0)));
  EXPECT_EQ(fold1(OpCode::Sign, Scalar::F32, std::nan("")), 0.0);
  EXPECT_EQ(fold1(OpCode::Saturate, Scalar::F32, std::nan("")), 0.0);
  EXPECT_EQ(fold1(OpCode::Fract, Scalar::F32, -1e-30), 0x1.fffffep-1);
  EXPECT_EQ(fold1(OpCode::Fract, Scalar::F16, -0x1p-24), 0x1.ffcp-1);  // rounded to half, kept below 1
  EXPECT_EQ(fold1(OpCode::Sqrt, Scalar::F16, 2.0), static_cast<double>(0x1.6ap+0f));
  Const nan, one;
  nan.f = std::nan("");
  one.f = 1.0;
  EXPECT_EQ(fold_math(OpCode::Fmin, Scalar::F32, {nan, one})->f, 1.0);  // the non-NaN operand
  EXPECT_EQ(fold_math(OpCode::Step, Scalar::F32, {one, nan})->f, 1.0);
  EXPECT_EQ(fold_math(OpCode::IsNormal, Scalar::F16, {[] {
                        Const c;
                        c.f = 1e-5;
                        return c;
                      }()})
                ->i,
            0);
  auto ci = [](int64_t v) {
    Const c;
    c.i = v;
    return c;
  };
  EXPECT_EQ(fold_math(OpCode::Clz, Scalar::U8, {ci(0)})->i, 8);
  EXPECT_EQ(fold_math(OpCode::Ctz, Scalar::I64, {ci(0)})->i, 64);
  EXPECT_EQ(fold_math(OpCode::Abs, Scalar::I32, {ci(std::numeric_limits<int32_t>::min())})->i,
            std::numeric_limits<int32_t>::min());
  EXPECT_EQ(fold_math(OpCode::AbsDiff, Scalar::I8, {ci(-128), ci(127)})->i, -1);  // 255 in 8 bits
  EXPECT_EQ(fold_math(OpCode::AddSat, Scalar::I8, {ci(100), ci(100)})->i, 127);
  EXPECT_EQ(fold_math(OpCode::SubSat, Scalar::U16, {ci(1), ci(2)})->i, 0);
  EXPECT_EQ(fold_math(OpCode::MulHi, Scalar::U64, {ci(-1), ci(-1)})->i, -2);  // (2^64-1)^2 >> 64
  EXPECT_EQ(fold_math(OpCode::MadSat, Scalar::I64, {ci(int64_t{1} << 62), ci(4), ci(0)})->i,
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(fold_math(OpCode::Rotate, Scalar::U8, {ci(0x81), ci(9)})->i, 0x03);  // count modulo 8
  EXPECT_EQ(fold_math(OpCode::ReverseBits, Scalar::U16, {ci(1)})->i, 0x8000);
  EXPECT_EQ(fold_math(OpCode::ExtractBits, Scalar::I8, {ci(0x70)}, BitRange{4, 3})->i, -1);  // sign-extends
  EXPECT_EQ(fold_math(OpCode::ExtractBits, Scalar::U8, {ci(0x70)}, BitRange{4, 3})->i, 7);
  EXPECT_EQ(fold_math(OpCode::InsertBits, Scalar::U32, {ci(0xFFFFFFFF), ci(0)}, BitRange{8, 8})->i, 0xFFFF00FF);
}

TEST(LangFolding, PassesFoldConstantsAndLaneExtraction) {
  K k;
  ValueId s = k.b.math(OpCode::Popcount, {k.b.literal(I(255), S(Scalar::U8))});
  ValueId v = k.b.make_vec({k.f, k.i});
  k.b.store(0, I(0), k.b.vec_extract(v, 1));
  k.b.store(3, I(0), s);
  Kernel kern = k.b.finish();
  optimize(kern);
  EXPECT_EQ(count(kern, OpCode::Popcount), 0);
  EXPECT_EQ(count(kern, OpCode::VecExtract), 0);
  EXPECT_EQ(count(kern, OpCode::MakeVec), 0);  // dead once its lane is forwarded
}

TEST(LangFunctionConstants, DeclaredOnceSpecialisedAndEmitted) {
  Builder b("fc");
  b.set_location("user.py", 3);
  b.add_buffer_param("Out", S(Scalar::F32));
  ValueId c = b.function_constant(S(Scalar::F32), 2);
  ValueId again = b.function_constant(S(Scalar::F32), 2);
  b.store(0, I(0), b.binary(OpCode::Add, c, again));
  EXPECT_NE(error_of([&] { b.function_constant(S(Scalar::I32), 2); }).find("already declared as float"),
            std::string::npos);
  EXPECT_NE(error_of([&] { b.function_constant(S(Scalar::BF16), 3); }).find("other than bfloat"), std::string::npos);
  Kernel k = b.finish();
  optimize(k);
  ASSERT_EQ(k.function_constants.size(), 1u);
  EXPECT_EQ(count(k, OpCode::FuncConst), 1);  // CSE merged the two reads
  std::string msl = emit_msl(k);
  EXPECT_NE(msl.find("constant float en_fc2 [[function_constant(2)]];"), std::string::npos) << msl;
  EXPECT_LT(msl.find("en_fc2 [["), msl.find("kernel void"));
  EXPECT_THROW(emit_cpu(k), KernelError);  // the CPU needs values
  Kernel spec = k;
  Const v;
  v.f = 1.5;
  specialize_function_constants(spec, {{2, v}});
  optimize(spec);
  EXPECT_EQ(count(spec, OpCode::FuncConst), 0);
  EXPECT_EQ(count(spec, OpCode::Add), 0);  // folded to 3.0
  EXPECT_NE(emit_cpu(spec).find("3.0f"), std::string::npos);
  Kernel missing = k;
  EXPECT_THROW(specialize_function_constants(missing, {}), KernelError);
}

TEST(LangMemory, LoadIfAndLocalArrays) {
  Builder b("mem");
  b.set_location("user.py", 9);
  b.add_buffer_param("A", S(Scalar::F16));
  b.add_buffer_param("Out", S(Scalar::F16));
  ValueId i = b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId mask = b.compare(CmpPred::Lt, i, I(4));
  ValueId x = b.load_if(0, i, mask, F(0.5));
  EXPECT_EQ(b.type_of(x), S(Scalar::F16));
  EXPECT_NE(error_of([&] { b.load_if(0, i, i, I(0)); }).find("mask must be a bool scalar"), std::string::npos);
  int arr = b.local_array(S(Scalar::F32), 8, F(0.0), "acc");
  b.local_store(arr, i, x);  // half stored into a float array converts
  EXPECT_NE(error_of([&] { b.local_load(arr, I(8)); }).find("index 8 out of range for 8 elements"), std::string::npos);
  EXPECT_NE(error_of([&] { b.local_array(S(Scalar::F32), 1 << 20, F(0.0), "big"); }).find("bytes per thread"),
            std::string::npos);
  b.begin_for(I(0), I(2), I(1), S(Scalar::I32), {});
  int inner = b.local_array(S(Scalar::I32), 2, I(0), "inner");
  b.end_for({});
  EXPECT_NE(error_of([&] { b.local_load(inner, I(0)); }).find("created inside a for_range"), std::string::npos);
  b.store(1, i, b.local_load(arr, b.binary(OpCode::Add, i, I(1))));
  Kernel k = b.finish();
  optimize(k);
  EXPECT_EQ(count(k, OpCode::LocalAlloc), 2);
  std::string cpu = emit_cpu(k);
  EXPECT_NE(cpu.find("en_clamp_index("), std::string::npos);  // dynamic index: clamped
  EXPECT_NE(cpu.find("? en_h2f(A["), std::string::npos);      // masked load reads only when true
  std::string msl = emit_msl(k);
  EXPECT_NE(msl.find("float en_reg0[8];"), std::string::npos) << msl;
}

TEST(LangVerifier, RejectsIllTypedLanguageOps) {
  K k;
  ValueId v = k.b.make_vec({k.f, k.f});
  k.b.store(0, I(0), k.b.math(OpCode::Dot, {v, v}));
  Kernel kern = k.b.finish();
  walk(kern.body, [&](Op& op) {
    if (op.code != OpCode::Dot) return;
    op.type = DType::vector(Scalar::F32, 2);
    kern.values[op.result()].type = op.type;
  });
  std::string e = error_of([&] { verify(kern); });
  EXPECT_NE(e.find("invalid IR: dot: result must be float"), std::string::npos) << e;
}

}  // namespace
}  // namespace enigma

namespace enigma {
namespace {

// Values assigned in the branches of an if merge through one-element
// per-thread arrays declared before the if; the kernel verifies and every
// backend emits it.
TEST(LangControlFlow, IfMergesBranchValuesInTheirCommonType) {
  K k;
  k.b.begin_if(k.flag);
  ValueId a = k.b.binary(OpCode::Add, k.f, F(1.0));
  k.b.begin_else();
  std::vector<ValueId> r = k.b.end_if_merge({a, k.h}, {I(0), k.f}, {"x", "y"});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(k.t(r[0]), S(Scalar::F32));
  EXPECT_EQ(k.t(r[1]), S(Scalar::F32));  // half and float promote to float
  k.b.store(0, I(1), r[0]);
  k.b.store(0, I(2), r[1]);
  Kernel kern = k.b.finish();
  EXPECT_EQ(count(kern, OpCode::LocalAlloc), 2);
  EXPECT_EQ(count(kern, OpCode::LocalStore), 4);
  EXPECT_NO_THROW(emit_msl(kern));
  EXPECT_NO_THROW(emit_cpu(kern, CpuEmitOptions{}));
  EXPECT_NO_THROW(emit_cuda(kern, CudaEmitOptions{}));
}

TEST(LangControlFlow, IfMergeRejectsValuesThatAreNotScalarsOrVectors) {
  K k;
  k.b.begin_if(k.flag);
  k.b.begin_else();
  ValueId m = k.b.simd_matrix_fill(F(0.0), DType::simd_matrix(Scalar::F32, 8, 8));
  std::string e = error_of([&] { k.b.end_if_merge({F(0.0)}, {m}, {"acc"}); });
  EXPECT_NE(e.find("'acc' (assigned in a branch) is a simdgroup_matrix"), std::string::npos) << e;
}

TEST(LangVotes, VotesAreReductionsOverActiveLanes) {
  K k;
  EXPECT_EQ(k.t(k.b.vote("simd_all", k.flag)), S(Scalar::B1));
  EXPECT_EQ(k.t(k.b.vote("simd_ballot", k.flag)), S(Scalar::U64));
  EXPECT_EQ(k.t(k.b.vote("quad_ballot", k.flag)), S(Scalar::U16));
  EXPECT_EQ(k.t(k.b.vote("simd_is_first", Literal::of_bool(true))), S(Scalar::B1));
  EXPECT_NE(error_of([&] { k.b.vote("simd_any", k.f); }).find("simd_any: needs a bool scalar, got float"),
            std::string::npos);
  EXPECT_NE(error_of([&] { k.b.vote("simd_some", k.flag); }).find("unknown vote function"), std::string::npos);
}

}  // namespace
}  // namespace enigma
