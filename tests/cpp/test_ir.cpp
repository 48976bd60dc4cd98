// Unit tests of the IR layer: dtype table, builder typing, verifier, printer,
// constant evaluation and the optimisation passes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "codegen/c_family.h"
#include "enigma/codegen/codegen.h"
#include "enigma/ir/builder.h"
#include "enigma/ir/const_eval.h"
#include "enigma/ir/passes.h"
#include "enigma/ir/printer.h"
#include "enigma/ir/verifier.h"
#include "enigma/support/error.h"
#include "test_support.h"

namespace enigma {
namespace {

using namespace test;

int count_ops(const Kernel& k, OpCode code) {
  int n = 0;
  walk(k.body, [&](const Op& op) { n += op.code == code; });
  return n;
}

// ---- dtypes -----------------------------------------------------------------

TEST(DType, ParsesEverySpelling) {
  EXPECT_EQ(parse_dtype("float")->elem, Scalar::F32);
  EXPECT_EQ(parse_dtype("f16")->elem, Scalar::F16);
  EXPECT_EQ(parse_dtype("bfloat")->elem, Scalar::BF16);
  EXPECT_EQ(parse_dtype("uint8")->elem, Scalar::U8);
  EXPECT_EQ(parse_dtype("i1")->elem, Scalar::B1);
  EXPECT_EQ(parse_dtype("bool")->elem, Scalar::B1);
  EXPECT_EQ(parse_dtype("ulong")->elem, Scalar::U64);
  auto v = parse_dtype("vec<4,float>");
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->is_vector());
  EXPECT_EQ(v->lanes, 4);
  EXPECT_EQ(v->str(), "vec<4,float>");
  auto m = parse_dtype("simdgroup_matrix<8,8,half>");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, DType::Kind::SimdMatrix);
  EXPECT_EQ(m->str(), "simdgroup_matrix<8,8,half>");
}

TEST(DType, RejectsUnknownSpellings) {
  for (const char* bad : {"double", "float5", "vec<5,float>", "vec<4,double>", "", "int32x",
                          "simdgroup_matrix<4,4,float>", "simdgroup_matrix<8,8,int>"})
    EXPECT_FALSE(parse_dtype(bad)) << bad;
}

TEST(DType, PromotionTable) {
  EXPECT_EQ(promote(Scalar::I32, Scalar::U32), Scalar::U32);  // equal width: unsigned wins
  EXPECT_EQ(promote(Scalar::I8, Scalar::I32), Scalar::I32);   // wider wins
  EXPECT_EQ(promote(Scalar::U16, Scalar::I32), Scalar::I32);
  EXPECT_EQ(promote(Scalar::I64, Scalar::F16), Scalar::F16);  // float beats integer
  EXPECT_EQ(promote(Scalar::F16, Scalar::BF16), Scalar::F32);
  EXPECT_EQ(promote(Scalar::F16, Scalar::F32), Scalar::F32);
  EXPECT_EQ(promote(Scalar::B1, Scalar::U8), Scalar::U8);
  for (int a = 0; a < kNumScalars; ++a)
    for (int b = 0; b < kNumScalars; ++b)
      EXPECT_EQ(promote(static_cast<Scalar>(a), static_cast<Scalar>(b)),
                promote(static_cast<Scalar>(b), static_cast<Scalar>(a)));
}

TEST(DType, Sizes) {
  EXPECT_EQ(S(Scalar::B1).size_bytes(), 1);
  EXPECT_EQ(S(Scalar::BF16).size_bytes(), 2);
  EXPECT_EQ(S(Scalar::U64).size_bytes(), 8);
  EXPECT_EQ(DType::vector(Scalar::F32, 3).size_bytes(), 16);  // padded like Metal
}

// ---- builder typing -------------------------------------------------------

struct AddKernel {
  Builder b{"k"};
  int A, B, C;
  AddKernel(Scalar ta, Scalar tb, Scalar tc) {
    b.set_location("file.py", 3);
    A = b.add_buffer_param("A", S(ta));
    B = b.add_buffer_param("B", S(tb));
    C = b.add_buffer_param("C", S(tc));
  }
};

TEST(Builder, LiteralTyping) {
  Builder b("k");
  EXPECT_EQ(b.type_of(b.literal(I(3))).elem, Scalar::U32);    // int alone -> uint
  EXPECT_EQ(b.type_of(b.literal(F(3.0))).elem, Scalar::F32);  // float alone -> float
  EXPECT_EQ(b.type_of(b.literal(Literal::of_bool(true))).elem, Scalar::B1);
  b.add_buffer_param("A", S(Scalar::I32));
  ValueId x = b.load(0, I(0));
  EXPECT_EQ(b.type_of(b.binary(OpCode::Add, x, I(2))).elem, Scalar::I32);    // takes the partner's dtype
  EXPECT_EQ(b.type_of(b.binary(OpCode::Mul, F(2.5), x)).elem, Scalar::F32);  // float literal with int -> f32
}

TEST(Builder, PromotesWithExplicitConversions) {
  AddKernel k(Scalar::I32, Scalar::U32, Scalar::F32);
  ValueId a = k.b.load(k.A, I(0)), c = k.b.load(k.B, I(0));
  ValueId s = k.b.binary(OpCode::Add, a, c);
  EXPECT_EQ(k.b.type_of(s).elem, Scalar::U32);
  Kernel kern = k.b.finish();
  EXPECT_EQ(count_ops(kern, OpCode::Convert), 1);  // i32 -> u32 made explicit
}

TEST(Builder, NarrowArithmeticKeepsItsDtype) {
  AddKernel k(Scalar::I8, Scalar::I8, Scalar::I8);
  ValueId s = k.b.binary(OpCode::Add, k.b.load(k.A, I(0)), k.b.load(k.B, I(0)));
  EXPECT_EQ(k.b.type_of(s).elem, Scalar::I8);
  EXPECT_EQ(k.b.type_of(k.b.binary(OpCode::Add, k.b.load(k.A, I(0)), k.b.load(k.C, I(0)))).elem, Scalar::I8);
}

TEST(Builder, ShiftsKeepTheShiftedDtype) {
  AddKernel k(Scalar::U8, Scalar::I64, Scalar::U8);
  ValueId s = k.b.binary(OpCode::Shl, k.b.load(k.A, I(0)), k.b.load(k.B, I(0)));
  EXPECT_EQ(k.b.type_of(s).elem, Scalar::U8);
  ValueId r = k.b.binary(OpCode::Shl, I(1), k.b.load(k.B, I(0)));  // reflected: literal takes the count's dtype
  EXPECT_EQ(k.b.type_of(r).elem, Scalar::I64);
}

TEST(Builder, ComparisonsAreBool) {
  AddKernel k(Scalar::F32, Scalar::I32, Scalar::B1);
  ValueId c = k.b.compare(CmpPred::Lt, k.b.load(k.A, I(0)), k.b.load(k.B, I(0)));
  EXPECT_EQ(k.b.type_of(c), S(Scalar::B1));
  k.b.store(k.C, I(0), c);
  EXPECT_NO_THROW(k.b.finish());
}

TEST(Builder, ErrorsNameKernelOpLocationAndDtypes) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::B1);
  ValueId f = k.b.load(k.A, I(0));
  std::string e = error_of([&] { k.b.binary(OpCode::And, f, f); });
  EXPECT_NE(e.find("file.py:3"), std::string::npos) << e;
  EXPECT_NE(e.find("kernel 'k'"), std::string::npos) << e;
  EXPECT_NE(e.find("and"), std::string::npos) << e;
  EXPECT_NE(e.find("float"), std::string::npos) << e;
  ValueId bl = k.b.load(k.C, I(0));
  EXPECT_NE(error_of([&] { k.b.binary(OpCode::Add, bl, bl); }).find("bool"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.binary(OpCode::Shl, f, I(1)); }).find("integer"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.unary(OpCode::Not, f); }).find("integer or bool"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.load(k.A, F(1.5)); }).find("index"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.bitcast(f, S(Scalar::U16)); }).find("same size"), std::string::npos);
  EXPECT_NE(error_of([&] { k.b.begin_if(f); }).find("bool"), std::string::npos);
}

TEST(Builder, LiteralMustFitItsPartner) {
  AddKernel k(Scalar::U8, Scalar::I8, Scalar::U8);
  ValueId u = k.b.load(k.A, I(0));
  EXPECT_NO_THROW(k.b.binary(OpCode::Add, u, I(255)));
  EXPECT_NO_THROW(k.b.binary(OpCode::And, u, I(-1)));  // all ones
  EXPECT_NE(error_of([&] { k.b.binary(OpCode::Add, u, I(300)); }).find("does not fit"), std::string::npos);
}

TEST(Builder, ValuesCannotEscapeTheirRegion) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  k.b.begin_for(I(0), I(4), I(1), S(Scalar::I32), {});
  ValueId inner = k.b.load(k.A, I(0));
  k.b.end_for({});
  std::string e = error_of([&] { k.b.store(k.C, I(0), inner); });
  EXPECT_NE(e.find("cannot escape"), std::string::npos) << e;
}

TEST(Builder, ForCarriesValuesAndConvertsYields) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  auto args = k.b.begin_for(I(0), I(8), I(1), S(Scalar::I32), {F(0.0)});
  ASSERT_EQ(args.size(), 2u);
  ValueId x = k.b.load(k.A, args[0]);
  ValueId acc = k.b.binary(OpCode::Add, args[1], x);
  auto results = k.b.end_for({acc});
  ASSERT_EQ(results.size(), 1u);
  k.b.store(k.C, I(0), results[0]);
  Kernel kern = k.b.finish();
  EXPECT_EQ(count_ops(kern, OpCode::For), 1);
  std::string text = print(kern);
  EXPECT_NE(text.find("iter_args"), std::string::npos) << text;
}

TEST(Builder, FloatIntoIntegerCarryIsAnError) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  auto args = k.b.begin_for(I(0), I(8), I(1), S(Scalar::I32), {I(0)});
  ValueId x = k.b.load(k.A, args[0]);
  EXPECT_NE(error_of([&] { k.b.end_for({x}); }).find("init"), std::string::npos);
}

TEST(Builder, ZeroStepIsAnError) {
  Builder b("k");
  EXPECT_NE(error_of([&] { b.begin_for(I(0), I(4), I(0), S(Scalar::I32), {}); }).find("step"), std::string::npos);
}

TEST(Builder, UnclosedRegionIsAnError) {
  Builder b("k");
  b.begin_if(Literal::of_bool(true));
  EXPECT_NE(error_of([&] { b.finish(); }).find("still open"), std::string::npos);
}

TEST(Builder, WhileWithCarriedValues) {
  AddKernel k(Scalar::U32, Scalar::U32, Scalar::U32);
  auto cargs = k.b.begin_while({I(0)});
  ValueId cond = k.b.compare(CmpPred::Lt, cargs[0], I(10));
  auto bargs = k.b.while_body(cond);
  ValueId next = k.b.binary(OpCode::Add, bargs[0], I(3));
  auto res = k.b.end_while({next});
  k.b.store(k.C, I(0), res[0]);
  Kernel kern = k.b.finish();
  EXPECT_EQ(count_ops(kern, OpCode::While), 1);
  EXPECT_NO_THROW(verify(kern));
}

// ---- verifier ---------------------------------------------------------------

TEST(Verifier, RejectsTypeMismatch) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId a = k.b.load(k.A, I(0));
  k.b.store(k.C, I(0), k.b.binary(OpCode::Add, a, a));
  Kernel kern = k.b.finish();
  for (Op& op : kern.body.ops)
    if (op.code == OpCode::Add) op.type = S(Scalar::I32);
  std::string e = error_of([&] { verify(kern); });
  EXPECT_NE(e.find("invalid IR"), std::string::npos) << e;
  EXPECT_NE(e.find("add"), std::string::npos) << e;
}

TEST(Verifier, RejectsUseBeforeDefinition) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId a = k.b.load(k.A, I(0));
  k.b.store(k.C, I(0), a);
  Kernel kern = k.b.finish();
  std::swap(kern.body.ops[0], kern.body.ops.back());
  EXPECT_NE(error_of([&] { verify(kern); }).find("invalid IR"), std::string::npos);
}

TEST(Verifier, ChecksOpAttributesAgainstTheirKind) {
  // Each attribute kind reads back what its factory wrote.
  OpAttrs atomic = OpAttrs::of_atomic(-2, MemoryOrder::AcqRel, MemoryOrder::Acquire);
  EXPECT_EQ(atomic.memory(), -2);
  EXPECT_EQ(atomic.atomic_order(), MemoryOrder::AcqRel);
  EXPECT_EQ(atomic.atomic_failure_order(), MemoryOrder::Acquire);
  EXPECT_EQ(OpAttrs::of_bit_range({5, 7}).bit_range().offset, 5);
  EXPECT_EQ(OpAttrs::of_bit_range({5, 7}).bit_range().bits, 7);
  EXPECT_EQ(OpAttrs::of_query(ThreadQuery::ThreadsPerGrid, 2).query_dim(), 2);
  EXPECT_EQ(OpAttrs::of_copy(-1, 3).copy_source(), 3);
  EXPECT_EQ(atomic.check(OpCode::AtomicCompareExchange), "");
  // An attribute of the wrong kind, or on an op that takes none, is invalid IR.
  EXPECT_NE(atomic.check(OpCode::Load), "");
  EXPECT_NE(OpAttrs::of_memory(2).check(OpCode::Add), "");
  EXPECT_NE(OpAttrs::of_mem_flags(3 | 8).check(OpCode::Barrier), "");
  EXPECT_NE(OpAttrs::of_query(ThreadQuery::ThreadIndexInSimdgroup, 1).check(OpCode::ThreadQuery), "");
  EXPECT_NE(OpAttrs::of_bit_range({-1, 4}).check(OpCode::ExtractBits), "");

  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId a = k.b.load(k.A, I(0));
  k.b.store(k.C, I(0), k.b.binary(OpCode::Add, a, a));
  Kernel kern = k.b.finish();
  for (Op& op : kern.body.ops)
    if (op.code == OpCode::Add) op.set_attrs(OpAttrs::of_memory(k.C));
  std::string e = error_of([&] { verify(kern); });
  EXPECT_NE(e.find("add: takes no attributes"), std::string::npos) << e;
}

TEST(Verifier, RejectsMissingTerminator) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  k.b.begin_for(I(0), I(2), I(1), S(Scalar::I32), {});
  k.b.end_for({});
  Kernel kern = k.b.finish();
  for (Op& op : kern.body.ops)
    if (op.code == OpCode::For) op.regions[0].ops.clear();
  EXPECT_NE(error_of([&] { verify(kern); }).find("yield"), std::string::npos);
}

TEST(Builder, NestingIsLimited) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  for (int i = 0; i < Builder::kMaxNestingDepth; ++i) k.b.begin_for(I(0), I(1), I(1), S(Scalar::I32), {});
  std::string e = error_of([&] { k.b.begin_if(k.b.literal(Literal::of_bool(true))); });
  EXPECT_NE(e.find("nested more than 200 levels"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { k.b.begin_for(I(0), I(1), I(1), S(Scalar::I32), {}); }).find("nested"), std::string::npos);
  for (int i = 0; i < Builder::kMaxNestingDepth; ++i) k.b.end_for({});
  k.b.store(k.C, I(0), k.b.load(k.A, I(0)));
  Kernel kern = k.b.finish();  // 200 levels verify and emit
  EXPECT_FALSE(emit_msl(kern).empty());
  EXPECT_FALSE(emit_cpu(kern).empty());
}

// ---- constant evaluation ------------------------------------------------------

Const ci(int64_t v) {
  Const c;
  c.i = v;
  return c;
}
Const cf(double v) {
  Const c;
  c.f = v;
  return c;
}

TEST(ConstEval, DefinedIntegerCornerCases) {
  EXPECT_EQ(fold_scalar_op(OpCode::Div, Scalar::I32, ci(7), ci(0))->i, 0);
  EXPECT_EQ(fold_scalar_op(OpCode::Rem, Scalar::I32, ci(7), ci(0))->i, 7);
  EXPECT_EQ(fold_scalar_op(OpCode::Div, Scalar::I32, ci(INT32_MIN), ci(-1))->i, INT32_MIN);
  EXPECT_EQ(fold_scalar_op(OpCode::Rem, Scalar::I32, ci(INT32_MIN), ci(-1))->i, 0);
  EXPECT_EQ(fold_scalar_op(OpCode::Div, Scalar::I64, ci(INT64_MIN), ci(-1))->i, INT64_MIN);
  EXPECT_EQ(fold_scalar_op(OpCode::FloorDiv, Scalar::I32, ci(-7), ci(2))->i, -4);
  EXPECT_EQ(fold_scalar_op(OpCode::Rem, Scalar::I32, ci(-7), ci(2))->i, -1);
  EXPECT_EQ(fold_scalar_op(OpCode::Shl, Scalar::U32, ci(1), ci(33))->i, 2);     // count mod 32
  EXPECT_EQ(fold_scalar_op(OpCode::Shr, Scalar::I8, ci(-128), ci(9))->i, -64);  // count mod 8, arithmetic
  EXPECT_EQ(fold_scalar_op(OpCode::Add, Scalar::I8, ci(127), ci(1))->i, -128);  // wraps
  EXPECT_EQ(fold_scalar_op(OpCode::Mul, Scalar::U16, ci(65535), ci(65535))->i, 1);
  EXPECT_EQ(fold_scalar_op(OpCode::Add, Scalar::I32, ci(INT32_MAX), ci(1))->i, INT32_MIN);
  EXPECT_EQ(fold_scalar_op(OpCode::Neg, Scalar::I32, ci(INT32_MIN))->i, INT32_MIN);
}

TEST(ConstEval, ComparisonsSignedness) {
  // cmp_lt on uint values compares as signed of the width; cmp_ult as unsigned.
  EXPECT_TRUE(fold_compare(CmpPred::Lt, Scalar::U32, ci(0xFFFFFFFFll), ci(0)));
  EXPECT_FALSE(fold_compare(CmpPred::Ult, Scalar::U32, ci(0xFFFFFFFFll), ci(0)));
  EXPECT_FALSE(fold_compare(CmpPred::Lt, Scalar::I32, ci(-1), ci(-2)));
  EXPECT_TRUE(fold_compare(CmpPred::Ugt, Scalar::I32, ci(-1), ci(5)));
  double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(fold_compare(CmpPred::Ne, Scalar::F32, cf(nan), cf(1)));
  EXPECT_FALSE(fold_compare(CmpPred::Eq, Scalar::F32, cf(nan), cf(nan)));
  EXPECT_FALSE(fold_compare(CmpPred::Lt, Scalar::F32, cf(nan), cf(1)));
}

TEST(ConstEval, ConversionsSaturate) {
  EXPECT_EQ(convert_const(cf(1e10), Scalar::F32, Scalar::I32).i, INT32_MAX);
  EXPECT_EQ(convert_const(cf(-1e10), Scalar::F32, Scalar::I32).i, INT32_MIN);
  EXPECT_EQ(convert_const(cf(-5.0), Scalar::F32, Scalar::U32).i, 0);
  EXPECT_EQ(convert_const(cf(std::nan("")), Scalar::F32, Scalar::I64).i, 0);
  EXPECT_EQ(convert_const(cf(-2.9), Scalar::F32, Scalar::I8).i, -2);  // truncates toward zero
  EXPECT_EQ(convert_const(ci(300), Scalar::I32, Scalar::U8).i, 44);   // integer narrowing wraps
  EXPECT_EQ(convert_const(ci(-1), Scalar::I32, Scalar::U64).i, -1);   // all ones
  EXPECT_EQ(convert_const(ci(5), Scalar::I32, Scalar::B1).i, 1);
}

TEST(ConstEval, HalfAndBfloatRounding) {
  EXPECT_EQ(normalize_const(Scalar::F16, cf(1.0 / 3.0)).f, 0.333251953125);
  EXPECT_TRUE(std::isinf(normalize_const(Scalar::F16, cf(65520.0)).f));
  EXPECT_EQ(normalize_const(Scalar::F16, cf(65519.0)).f, 65504.0);
  EXPECT_EQ(normalize_const(Scalar::F16, cf(std::ldexp(1.0, -25))).f, 0.0);  // ties to even (0)
  EXPECT_EQ(normalize_const(Scalar::F16, cf(std::ldexp(3.0, -25))).f, std::ldexp(1.0, -23));
  EXPECT_EQ(const_bits(Scalar::F16, cf(-2.0)), 0xC000u);
  EXPECT_EQ(const_bits(Scalar::BF16, cf(1.0)), 0x3F80u);
  EXPECT_EQ(normalize_const(Scalar::BF16, cf(1.0 + 1.0 / 256)).f, 1.0);  // tie to even
  EXPECT_EQ(bitcast_const(cf(1.0), Scalar::F32, Scalar::U32).i, 0x3F800000);
}

// ---- passes ----------------------------------------------------------------

TEST(Passes, FoldsConstantsWithBackendSemantics) {
  AddKernel k(Scalar::I32, Scalar::I32, Scalar::I32);
  ValueId c7 = k.b.literal(I(7), S(Scalar::I32));
  ValueId c0 = k.b.literal(I(0), S(Scalar::I32));
  k.b.store(k.C, I(0), k.b.binary(OpCode::Div, c7, c0));
  k.b.store(k.C, I(1), k.b.binary(OpCode::Add, c7, I(3)));
  Kernel kern = k.b.finish();
  optimize(kern);
  EXPECT_EQ(count_ops(kern, OpCode::Div), 0);
  EXPECT_EQ(count_ops(kern, OpCode::Add), 0);
  std::string text = print(kern);
  EXPECT_NE(text.find("constant 10 : int"), std::string::npos) << text;
}

TEST(Passes, FoldsSelectWithConstantCondition) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId a = k.b.load(k.A, I(0)), b = k.b.load(k.B, I(0));
  ValueId cond = k.b.compare(CmpPred::Gt, I(3), I(2));
  k.b.store(k.C, I(0), k.b.select(cond, a, b));
  Kernel kern = k.b.finish();
  optimize(kern);
  EXPECT_EQ(count_ops(kern, OpCode::Select), 0);
  EXPECT_EQ(count_ops(kern, OpCode::Load), 1);  // B's load became dead
}

TEST(Passes, CseMergesPureOpsAcrossNestedRegionsButNotLoads) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId t0 = k.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId a0 = k.b.load(k.A, t0);
  k.b.store(k.C, t0, a0);
  k.b.begin_if(k.b.compare(CmpPred::Lt, t0, I(5)));
  ValueId t1 = k.b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId a1 = k.b.load(k.A, t1);
  k.b.store(k.C, t1, k.b.binary(OpCode::Add, a1, a0));
  k.b.end_if();
  Kernel kern = k.b.finish();
  optimize(kern);
  EXPECT_EQ(count_ops(kern, OpCode::ThreadQuery), 1);
  EXPECT_EQ(count_ops(kern, OpCode::Load), 2);  // memory reads are not merged
  EXPECT_NO_THROW(verify(kern));
}

TEST(Passes, DceKeepsStoresAndDropsUnusedPureOps) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId a = k.b.load(k.A, I(0));
  k.b.binary(OpCode::Mul, a, a);  // unused
  k.b.store(k.C, I(0), a);
  k.b.begin_if(Literal::of_bool(false));
  k.b.end_if();  // empty if
  Kernel kern = k.b.finish();
  optimize(kern);
  EXPECT_EQ(count_ops(kern, OpCode::Mul), 0);
  EXPECT_EQ(count_ops(kern, OpCode::If), 0);
  EXPECT_EQ(count_ops(kern, OpCode::Store), 1);
}

// ---- printer and emitters -----------------------------------------------------

TEST(Printer, ShowsParamsOpsAndLocations) {
  AddKernel k(Scalar::F32, Scalar::F32, Scalar::F32);
  ValueId t = k.b.thread_query(ThreadQuery::ThreadPositionInGrid, 1);
  k.b.store(k.C, t, k.b.binary(OpCode::Add, k.b.load(k.A, t), k.b.load(k.B, t)));
  std::string text = print(k.b.finish());
  for (const char* part : {"kernel @k(A: device float*, B: device float*, C: device float*)",
                           "thread_position_in_grid.y : uint", "store C[", "// file.py:3"})
    EXPECT_NE(text.find(part), std::string::npos) << text;
}

TEST(Emitters, MslAndCppShareTheKernel) {
  Builder b("scale");
  int a = b.add_buffer_param("A", S(Scalar::F32));
  ValueId n = b.add_scalar_param("n", S(Scalar::U32));
  int out = b.add_buffer_param("out", S(Scalar::F32));
  ValueId t = b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  b.store(out, t, b.binary(OpCode::Div, b.load(a, t), n));
  Kernel k = b.finish();
  std::string msl = emit_msl(k);
  EXPECT_NE(msl.find("#include <metal_stdlib>"), std::string::npos);
  EXPECT_NE(msl.find("kernel void scale("), std::string::npos) << msl;
  EXPECT_NE(msl.find("const device float* A [[buffer(0)]]"), std::string::npos) << msl;
  EXPECT_NE(msl.find("constant uint& n [[buffer(1)]]"), std::string::npos) << msl;
  EXPECT_NE(msl.find("device float* out [[buffer(2)]]"), std::string::npos) << msl;
  EXPECT_NE(msl.find("[[thread_position_in_grid]]"), std::string::npos) << msl;
  std::string cpp = emit_cpu(k);
  EXPECT_NE(cpp.find("extern \"C\""), std::string::npos);
  EXPECT_NE(cpp.find("enigma_kernel"), std::string::npos);
  // Checked memory by default: the store is checked and reported, the load not reported.
  EXPECT_NE(cpp.find("en_report_oob(L, static_cast<uint64_t>(2ll)"), std::string::npos) << cpp;
  EXPECT_EQ(cpp.find("en_report_oob(L, static_cast<uint64_t>(0ll)"), std::string::npos) << cpp;
  std::string dbg = emit_cpu(k, CpuEmitOptions{"enigma_kernel", true});
  EXPECT_NE(dbg.find("en_report_oob(L, static_cast<uint64_t>(0ll)"), std::string::npos);
  CpuEmitOptions unchecked;
  unchecked.bounds_check = false;
  EXPECT_EQ(emit_cpu(k, unchecked).find("en_report_oob(L,"), std::string::npos) << "no checks when opted out";
  MslEmitOptions msl_unchecked;
  msl_unchecked.bounds_check = false;
  EXPECT_NE(msl.find("constant ulong* en_lens [[buffer(3)]]"), std::string::npos) << msl;
  EXPECT_EQ(emit_msl(k, msl_unchecked).find("en_lens"), std::string::npos);
}

TEST(Emitters, ParameterNamesCannotCollideWithKeywords) {
  EXPECT_EQ(sanitize_identifier("A"), "A");
  EXPECT_EQ(sanitize_identifier("float"), "p_float");
  EXPECT_EQ(sanitize_identifier("kernel"), "p_kernel");
  EXPECT_EQ(sanitize_identifier("x_3"), "p_x_3");
  EXPECT_EQ(sanitize_identifier("en_tg"), "p_en_tg");
  EXPECT_EQ(sanitize_identifier("a__b"), "a_b");  // runs of '_' collapse: "__" is reserved in C++
  EXPECT_EQ(sanitize_identifier("my kernel"), "my_kernel");
  EXPECT_EQ(sanitize_identifier("\xc3\x84"), "xc3x84");  // Ä: each byte as xHH
  EXPECT_EQ(sanitize_identifier("3d"), "p_3d");
}

TEST(Emitters, NamesThatCleanAlikeStayDistinct) {
  std::vector<std::string> names = {"a b", "a_b", "a-b", "\xc3\x84", "\xc3\x96", "x", "x"};
  std::vector<std::string> ids = unique_identifiers(names);
  ASSERT_EQ(ids.size(), names.size());
  std::set<std::string> distinct(ids.begin(), ids.end());
  EXPECT_EQ(distinct.size(), ids.size());
  EXPECT_EQ(ids[0], "a_b");
  EXPECT_EQ(ids[1], "a_b_n2");
  EXPECT_EQ(ids[2], "a_b_n3");
  EXPECT_EQ(comment_text("k\n#include <x>\\"), "k_#include <x>_");
  EXPECT_EQ(comment_text("a?"
                         "?/"),
            "a__/");                              // no trigraph can continue the comment
  EXPECT_EQ(comment_text("\xc3\x84?'"), "___'");  // no "??'" trigraph for NVRTC
  EXPECT_EQ(comment_text(std::string(100, 'a')), std::string(80, 'a') + "...");
}

}  // namespace
}  // namespace enigma
