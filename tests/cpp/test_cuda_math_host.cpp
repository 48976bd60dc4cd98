// The CUDA backend's math library (src/semantics/math.h under the CUDA layer
// math_cuda.h) checked against the CPU backend's (math.h under math_cpu.h)
// on the host: the CUDA text is compiled as C++
// with the few CUDA intrinsics it calls written in portable C++, so a
// semantic difference between the two backends shows without a GPU.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

namespace cpu {
#include "semantics/numbers.h"
#include "semantics/math_cpu.h"
#include "semantics/math.h"
}  // namespace cpu

namespace cu {
#include "semantics/types_cuda.h"
__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

// The CUDA intrinsics the library calls, as CUDA documents them.
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline int __ffsll(long long x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1; }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline unsigned long long __brevll(unsigned long long x) {
  unsigned long long r = 0;
  for (int i = 0; i < 64; ++i) r |= ((x >> i) & 1ull) << (63 - i);
  return r;
}
inline unsigned __brev(unsigned x) { return static_cast<unsigned>(__brevll(x) >> 32); }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline long long __mul64hi(long long a, long long b) {
  return static_cast<long long>((static_cast<i128>(a) * b) >> 64);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<u128>(a) * b) >> 64);
}
// The 16-bit float helpers the CUDA file defines bit-identically to the CPU's.
inline float en_rh(float x) { return cpu::en_rh(x); }
inline float en_rb(float x) { return cpu::en_rb(x); }
inline en_u16 en_f2h(float x) { return cpu::en_f2h(x); }
inline float en_h2f(en_u16 x) { return cpu::en_h2f(x); }
inline en_u16 en_f2b(float x) { return cpu::en_f2b(x); }
inline float en_b2f(en_u16 x) { return cpu::en_b2f(x); }
}  // namespace cu

// The CPU layer's spellings; the CUDA layer defines its own.
#undef EN_FN
#undef EN_MEMBER
#undef EN_LIBM
#undef EN_LIBM_D
#undef EN_RINT
#define __device__
#define __forceinline__ inline
namespace cu {
#include "semantics/math_cuda.h"
#include "semantics/math.h"
}  // namespace cu
#undef __device__
#undef __forceinline__

namespace {

template <class T>
std::vector<T> int_inputs() {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {0,
                      1,
                      2,
                      3,
                      7,
                      L::max(),
                      static_cast<T>(L::max() - 1),
                      L::min(),
                      static_cast<T>(L::min() + 1),
                      static_cast<T>(L::max() / 2),
                      static_cast<T>(L::max() / 2 + 1)};
  if constexpr (std::is_signed_v<T>) {
    for (T x : {T(-1), T(-2), T(-3), T(-7), static_cast<T>(L::min() / 2)}) v.push_back(x);
  }
  std::mt19937_64 rng(42);
  for (int i = 0; i < 24; ++i) v.push_back(static_cast<T>(rng() >> (rng() % 64)));
  return v;
}

// The CUDA type of the same width and signedness (long long for int64_t).
template <class T>
using Cu =
    std::conditional_t<sizeof(T) == 8, std::conditional_t<std::is_signed_v<T>, long long, unsigned long long>, T>;

template <class T>
void check_integers() {
  using C = Cu<T>;
  const auto in = int_inputs<T>();
  int bad = 0;
  auto eq = [&](const char* op, T a, T b, T c, T got, T want) {
    if (got != want && bad++ < 8)
      ADD_FAILURE() << op << "(" << +a << ", " << +b << ", " << +c << "): cuda " << +got << ", cpu " << +want << " ("
                    << sizeof(T) * 8 << "-bit " << (std::is_signed_v<T> ? "signed" : "unsigned") << ")";
  };
  for (T a : in) {
    eq("abs", a, 0, 0, static_cast<T>(cu::en_abs(C(a))), cpu::en_abs(a));
    eq("popcount", a, 0, 0, static_cast<T>(cu::en_popcount(C(a))), cpu::en_popcount(a));
    eq("clz", a, 0, 0, static_cast<T>(cu::en_clz(C(a))), cpu::en_clz(a));
    eq("ctz", a, 0, 0, static_cast<T>(cu::en_ctz(C(a))), cpu::en_ctz(a));
    eq("reverse_bits", a, 0, 0, static_cast<T>(cu::en_reverse_bits(C(a))), cpu::en_reverse_bits(a));
    const unsigned w = sizeof(T) * 8;
    for (unsigned off : {0u, 1u, 3u, w / 2, w - 1})
      for (unsigned bits : {0u, 1u, 2u, 5u, w / 2, w}) {
        if (off + bits > w) continue;
        eq("extract_bits", a, T(off), T(bits), static_cast<T>(cu::en_extract_bits(C(a), off, bits)),
           cpu::en_extract_bits(a, off, bits));
        for (T b : {T(0), T(-1), static_cast<T>(0x5A5A5A5A5A5A5A5Aull), a})
          eq("insert_bits", a, b, T(off * 100 + bits), static_cast<T>(cu::en_insert_bits(C(a), C(b), off, bits)),
             cpu::en_insert_bits(a, b, off, bits));
      }
    for (T b : in) {
      eq("min", a, b, 0, static_cast<T>(cu::en_min(C(a), C(b))), cpu::en_min(a, b));
      eq("max", a, b, 0, static_cast<T>(cu::en_max(C(a), C(b))), cpu::en_max(a, b));
      eq("absdiff", a, b, 0, static_cast<T>(cu::en_absdiff(C(a), C(b))), cpu::en_absdiff(a, b));
      eq("addsat", a, b, 0, static_cast<T>(cu::en_addsat(C(a), C(b))), cpu::en_addsat(a, b));
      eq("subsat", a, b, 0, static_cast<T>(cu::en_subsat(C(a), C(b))), cpu::en_subsat(a, b));
      eq("mulhi", a, b, 0, static_cast<T>(cu::en_mulhi(C(a), C(b))), cpu::en_mulhi(a, b));
      eq("rotate", a, b, 0, static_cast<T>(cu::en_rotate(C(a), C(b))), cpu::en_rotate(a, b));
      for (T c : in) {
        eq("madsat", a, b, c, static_cast<T>(cu::en_madsat(C(a), C(b), C(c))), cpu::en_madsat(a, b, c));
        eq("clamp", a, b, c, static_cast<T>(cu::en_clamp(C(a), C(b), C(c))), cpu::en_clamp(a, b, c));
      }
    }
  }
  // float -> T saturates, NaN is 0.
  for (float f : {0.0f,
                  -0.0f,
                  0.5f,
                  -0.5f,
                  -1.0f,
                  1e10f,
                  -1e10f,
                  127.5f,
                  128.0f,
                  -128.5f,
                  -129.0f,
                  255.9f,
                  256.0f,
                  65535.5f,
                  65536.0f,
                  2147483520.0f,
                  2147483648.0f,
                  -2147483648.0f,
                  -2147483904.0f,
                  4294967040.0f,
                  4294967296.0f,
                  9.2233715e18f,
                  9.223372e18f,
                  -9.223372e18f,
                  1.8446743e19f,
                  1.8446744e19f,
                  INFINITY,
                  -INFINITY,
                  NAN}) {
    T got = static_cast<T>(cu::en_cvt<C, float>(f)), want = cpu::en_cvt<T, float>(f);
    if (got != want && bad++ < 8) ADD_FAILURE() << "cvt(" << f << "): cuda " << +got << ", cpu " << +want;
  }
}

TEST(CudaMathHost, IntegerHelpersMatchTheCpu) {
  check_integers<int8_t>();
  check_integers<uint8_t>();
  check_integers<int16_t>();
  check_integers<uint16_t>();
  check_integers<int32_t>();
  check_integers<uint32_t>();
  check_integers<int64_t>();
  check_integers<uint64_t>();
}

std::vector<float> float_inputs() {
  std::vector<float> v = {0.0f,     -0.0f,    0.5f,        -0.5f,   1.0f,   -1.0f,  1.5f,    -1.5f,
                          2.5f,     -2.5f,    0.49999997f, 1e-8f,   -1e-8f, 1e-40f, -1e-40f, 6.1e-5f,
                          6.2e-5f,  0x1p-14f, 0.99999994f, -1e-30f, 3.0f,   1e30f,  -1e30f,  8388607.5f,
                          65504.0f, INFINITY, -INFINITY,   NAN,     -NAN};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-4.0f, 4.0f);
  for (int i = 0; i < 40; ++i) v.push_back(d(rng));
  return v;
}

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b) || (a != a && b != b);
}

TEST(CudaMathHost, FloatDefinitionsMatchTheCpu) {
  int bad = 0;
  auto eq = [&](const char* op, float a, float b, float got, float want) {
    if (!same_bits(got, want) && bad++ < 8)
      ADD_FAILURE() << op << "(" << a << ", " << b << "): cuda " << got << ", cpu " << want;
  };
  // The functions compared, by their en_ names: of a, and of (a, b).
  // clang-format off: the list is laid out by hand
#define EN_UNARY(X) \
  X(fract) X(fract_h) X(fract_b) X(sign) X(round) X(saturate) X(rsqrt) X(isnan) X(isinf) X(isfinite) X(signbit) \
  X(isnormal) X(isnormal_h)
// clang-format on
#define EN_BINARY(X) X(fmin) X(fmax) X(step)
#define EN_SAME_1(f) eq(#f, a, 0, cu::en_##f(a), cpu::en_##f(a));
#define EN_SAME_2(f) eq(#f, a, b, cu::en_##f(a, b), cpu::en_##f(a, b));
  const auto in = float_inputs();
  for (float a : in) {
    EN_UNARY(EN_SAME_1)
    for (float b : in) {
      EN_BINARY(EN_SAME_2)
      eq("clamp", a, b, cu::en_clamp(a, b, 2.0f), cpu::en_clamp(a, b, 2.0f));
      eq("smoothstep", a, b, cu::en_smoothstep(a, b, 0.25f), cpu::en_smoothstep(a, b, 0.25f));
      eq("mix", a, b, cu::en_mix(a, b, 0.25f), cpu::en_mix(a, b, 0.25f));
    }
  }
#undef EN_SAME_2
#undef EN_SAME_1
#undef EN_BINARY
#undef EN_UNARY
}

TEST(CudaMathHost, PackingMatchesTheCpu) {
  const auto in = float_inputs();
  int bad = 0;
  auto eq = [&](const char* op, uint32_t got, uint32_t want) {
    if (got != want && bad++ < 8) ADD_FAILURE() << op << ": cuda " << got << ", cpu " << want;
  };
  for (size_t i = 0; i + 3 < in.size(); ++i) {
    float a = in[i], b = in[i + 1], c = in[i + 2], d = in[i + 3];
    cu::en_vec<float, 4> g(a, b, c, d);
    cpu::en_vec<float, 4> w(a, b, c, d);
    cu::en_vec<float, 2> g2(a, b);
    cpu::en_vec<float, 2> w2(a, b);
    eq("unorm4x8", cu::en_pack_float_to_unorm4x8(g), cpu::en_pack_float_to_unorm4x8(w));
    eq("snorm4x8", cu::en_pack_float_to_snorm4x8(g), cpu::en_pack_float_to_snorm4x8(w));
    eq("srgb4x8", cu::en_pack_float_to_srgb_unorm4x8(g), cpu::en_pack_float_to_srgb_unorm4x8(w));
    eq("unorm10a2", cu::en_pack_float_to_unorm10a2(g), cpu::en_pack_float_to_unorm10a2(w));
    eq("unorm2x16", cu::en_pack_float_to_unorm2x16(g2), cpu::en_pack_float_to_unorm2x16(w2));
    eq("snorm2x16", cu::en_pack_float_to_snorm2x16(g2), cpu::en_pack_float_to_snorm2x16(w2));
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 4096; ++i) {
    uint32_t p = i < 256 ? i * 0x01010101u : static_cast<uint32_t>(rng());
    auto g4 = cu::en_unpack_srgb_unorm4x8_to_float(p);
    auto w4 = cpu::en_unpack_srgb_unorm4x8_to_float(p);
    auto h4 = cu::en_unpack_snorm4x8_to_float(p);
    auto x4 = cpu::en_unpack_snorm4x8_to_float(p);
    auto u4 = cu::en_unpack_unorm10a2_to_float(p);
    auto v4 = cpu::en_unpack_unorm10a2_to_float(p);
    for (int k = 0; k < 4; ++k) {
      eq("unpack srgb", std::bit_cast<uint32_t>(g4.v[k]), std::bit_cast<uint32_t>(w4.v[k]));
      eq("unpack snorm4x8", std::bit_cast<uint32_t>(h4.v[k]), std::bit_cast<uint32_t>(x4.v[k]));
      eq("unpack unorm10a2", std::bit_cast<uint32_t>(u4.v[k]), std::bit_cast<uint32_t>(v4.v[k]));
    }
    auto s2 = cu::en_unpack_snorm2x16_to_float(p);
    auto t2 = cpu::en_unpack_snorm2x16_to_float(p);
    for (int k = 0; k < 2; ++k)
      eq("unpack snorm2x16", std::bit_cast<uint32_t>(s2.v[k]), std::bit_cast<uint32_t>(t2.v[k]));
  }
}

TEST(CudaMathHost, VectorsAndMatricesMatchTheCpu) {
  // Integer lanes wrap; matrices multiply in the same order.
  cu::en_vec<int, 4> a(2147483647, -2147483647 - 1, 5, -7), b(1, -1, 3, 2);
  cpu::en_vec<int32_t, 4> x(2147483647, -2147483647 - 1, 5, -7), y(1, -1, 3, 2);
  auto s = a + b, d = a - b, p = a * b, n = -a;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(s.v[k], static_cast<int32_t>(static_cast<uint32_t>(x.v[k]) + static_cast<uint32_t>(y.v[k])));
    EXPECT_EQ(d.v[k], static_cast<int32_t>(static_cast<uint32_t>(x.v[k]) - static_cast<uint32_t>(y.v[k])));
    EXPECT_EQ(p.v[k], static_cast<int32_t>(static_cast<uint32_t>(x.v[k]) * static_cast<uint32_t>(y.v[k])));
    EXPECT_EQ(n.v[k], static_cast<int32_t>(0u - static_cast<uint32_t>(x.v[k])));
  }
  cu::en_vec<unsigned short, 2> u(65535, 40000);
  auto uu = u * u;
  EXPECT_EQ(uu.v[0], 1);
  EXPECT_EQ(uu.v[1], static_cast<unsigned short>(40000u * 40000u));
  cu::en_mat<float, 3, 3> m(cu::en_vec<float, 3>(1.5f, -2.0f, 0.25f), cu::en_vec<float, 3>(3.0f, 0.1f, -1.0f),
                            cu::en_vec<float, 3>(0.3f, 7.0f, 2.0f));
  cpu::en_mat<float, 3, 3> mm(cpu::en_vec<float, 3>(1.5f, -2.0f, 0.25f), cpu::en_vec<float, 3>(3.0f, 0.1f, -1.0f),
                              cpu::en_vec<float, 3>(0.3f, 7.0f, 2.0f));
  EXPECT_TRUE(same_bits(cu::en_determinant(m), cpu::en_determinant(mm)));
  auto mv = m * cu::en_vec<float, 3>(0.1f, 0.2f, 0.3f);
  auto wv = mm * cpu::en_vec<float, 3>(0.1f, 0.2f, 0.3f);
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(same_bits(mv.v[k], wv.v[k]));
  // as_type between a half4 and a uint2 keeps the bits.
  cu::en_vec<unsigned short, 4> h(0x3C00, 0x8001, 0x7E00, 0xFFFF);
  auto bits = cu::en_bitcast<cu::en_vec<unsigned, 2>>(h);
  EXPECT_EQ(bits.v[0], 0x80013C00u);
  EXPECT_EQ(bits.v[1], 0xFFFF7E00u);
}

}  // namespace
