// The CPU layer under math.h: the spellings of the host C++ compiler and its
// standard library. Compiled into the core after numbers.h and pasted into
// generated CPU kernels; includers provide <cstdint>, <cmath>, <cstring>,
// <limits>, <type_traits>.
#define EN_FN static inline
#define EN_MEMBER
#define EN_LIBM(name) std::name
#define EN_LIBM_D(name) std::name
#define EN_RINT std::nearbyint

typedef std::int8_t en_i8;
typedef std::uint8_t en_u8;
typedef std::int16_t en_i16;
typedef std::uint16_t en_u16;
typedef std::int32_t en_i32;
typedef std::uint32_t en_u32;
typedef std::int64_t en_i64;
typedef std::uint64_t en_u64;
__extension__ typedef __int128 en_i128;
__extension__ typedef unsigned __int128 en_u128;

template <bool B, class T = void>
using en_enable_if = std::enable_if<B, T>;
template <class A, class B>
using en_same = std::is_same<A, B>;
template <class T, bool = std::is_integral_v<T> && !std::is_same_v<T, bool>>
struct en_traits {
  static constexpr bool is_int = false;
};
template <class T>
struct en_traits<T, true> {
  typedef std::make_unsigned_t<T> uint;
  static constexpr bool is_int = true;
  static constexpr bool is_signed = std::is_signed_v<T>;
  static constexpr int width = static_cast<int>(sizeof(T) * 8);
  static constexpr T min() { return std::numeric_limits<T>::min(); }
  static constexpr T max() { return std::numeric_limits<T>::max(); }
};

// exp without branches or calls, so that loops calling it vectorise (libm's
// expf is a call the vectoriser cannot see into). x = k ln2 + r with
// |r| <= ln2 / 2 (k rounded by the 1.5 * 2^23 shifter, ln2 split in two so
// that k * ln2_hi is exact), e^r = 1 + r + r^2 q(r) with q a degree-4 fit
// (relative error below 7e-9), and 2^k applied as two exact powers of two so
// that subnormal results round once. Within 1.02 ulp of exp over every float
// (checked against double exp); the promise (docs/ops.md) is 3 ulp. Constant
// folding compiles this file too, so folded and run-time values agree.
EN_FN float en_expf_cpu(float x) {
  const float xc = x != x ? 0.0f : x < -104.0f ? -104.0f : x > 89.0f ? 89.0f : x;  // beyond: 0 and inf
  const float shifter = 12582912.0f;
  const float t = xc * 1.44269502f + shifter;
  const float kf = t - shifter;
  std::uint32_t tb, sb;
  std::memcpy(&tb, &t, 4);
  std::memcpy(&sb, &shifter, 4);
  const std::uint32_t k = tb - sb;  // k modulo 2^32
  const float r = (xc - kf * 0.693359375f) - kf * -2.12194440e-4f;
  const float q = 0.49999982f + r * (0.16666475f + r * (0.0416703f + r * (0.00837386f + r * 0.00137366f)));
  const float p = 1.0f + (r + (r * r) * q);
  const std::uint32_t k1 = static_cast<std::uint32_t>(static_cast<std::int32_t>(k) >> 1), k2 = k - k1;
  const std::uint32_t b1 = (k1 + 127u) << 23, b2 = (k2 + 127u) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  const float res = (p * s1) * s2;
  return x != x ? x : res;
}
#define EN_EXPF en_expf_cpu

EN_FN bool en_isinf(float x) { return std::isinf(x); }
EN_FN bool en_isfinite(float x) { return std::isfinite(x); }
EN_FN bool en_signbit(float x) { return std::signbit(x); }
EN_FN bool en_isnormal(float x) { return std::isnormal(x); }

// ---- integer helpers on the compiler's overflow builtins and 128-bit type -----
template <class T>
EN_FN T en_addsat(T a, T b) {
  T r;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  if constexpr (std::is_signed_v<T>)
    return b > 0 ? std::numeric_limits<T>::max() : std::numeric_limits<T>::min();
  else
    return std::numeric_limits<T>::max();
}
template <class T>
EN_FN T en_subsat(T a, T b) {
  T r;
  if (!__builtin_sub_overflow(a, b, &r)) return r;
  if constexpr (std::is_signed_v<T>)
    return b < 0 ? std::numeric_limits<T>::max() : std::numeric_limits<T>::min();
  else
    return std::numeric_limits<T>::min();
}
// The high half of the full product.
template <class T>
EN_FN T en_mulhi(T a, T b) {
  if constexpr (sizeof(T) == 8) {
    using W = std::conditional_t<std::is_signed_v<T>, en_i128, en_u128>;
    return static_cast<T>((static_cast<W>(a) * static_cast<W>(b)) >> 64);
  } else {
    using W = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    return static_cast<T>((static_cast<W>(a) * static_cast<W>(b)) >> en_traits<T>::width);
  }
}
// a * b + c, exactly, saturated to T.
template <class T>
EN_FN T en_madsat(T a, T b, T c) {
  using W = std::conditional_t<std::is_signed_v<T>, en_i128, en_u128>;
  W r = static_cast<W>(a) * static_cast<W>(b) + static_cast<W>(c);
  if (r > static_cast<W>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  if constexpr (std::is_signed_v<T>)
    if (r < static_cast<W>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
  return static_cast<T>(r);
}
template <class T>
EN_FN T en_popcount(T x) {
  return static_cast<T>(__builtin_popcountll(static_cast<uint64_t>(static_cast<std::make_unsigned_t<T>>(x))));
}
// clz(0) and ctz(0) are the width.
template <class T>
EN_FN T en_clz(T x) {
  uint64_t u = static_cast<std::make_unsigned_t<T>>(x);
  return static_cast<T>(u == 0 ? en_traits<T>::width : __builtin_clzll(u) - (64 - en_traits<T>::width));
}
template <class T>
EN_FN T en_ctz(T x) {
  uint64_t u = static_cast<std::make_unsigned_t<T>>(x);
  return static_cast<T>(u == 0 ? en_traits<T>::width : __builtin_ctzll(u));
}
template <class T>
EN_FN T en_reverse_bits(T x) {
  uint64_t u = static_cast<std::make_unsigned_t<T>>(x);
  u = ((u >> 1) & 0x5555555555555555ull) | ((u & 0x5555555555555555ull) << 1);
  u = ((u >> 2) & 0x3333333333333333ull) | ((u & 0x3333333333333333ull) << 2);
  u = ((u >> 4) & 0x0F0F0F0F0F0F0F0Full) | ((u & 0x0F0F0F0F0F0F0F0Full) << 4);
  u = ((u >> 8) & 0x00FF00FF00FF00FFull) | ((u & 0x00FF00FF00FF00FFull) << 8);
  u = ((u >> 16) & 0x0000FFFF0000FFFFull) | ((u & 0x0000FFFF0000FFFFull) << 16);
  u = (u >> 32) | (u << 32);
  return static_cast<T>(static_cast<std::make_unsigned_t<T>>(u >> (64 - en_traits<T>::width)));
}
