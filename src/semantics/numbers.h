// Numeric helpers of the CPU backend. This file is both compiled into the
// core (constant folding uses it, so folded and run-time results agree
// bit for bit) and pasted verbatim at the top of every generated CPU kernel.
// It therefore includes nothing itself and names standard things with std::.
// Includers provide <cstdint>, <cstring>, <cmath>, <type_traits>, <limits>.
//
// Metal leaves some integer cases undefined; every Enigma backend gives them
// the same defined result (docs/semantics.md):
//   x / 0 == 0, x % 0 == x, x // 0 == 0, INT_MIN / -1 == INT_MIN, INT_MIN % -1 == 0,
//   shifts use the count modulo the bit width,
//   float -> int conversion saturates and NaN converts to 0.

// ---- half (IEEE binary16) and bfloat16 ------------------------------------
// Values of these types are held in float registers, rounded to their
// precision after every operation; memory holds the 16-bit patterns. The
// conversions are branch-free (selects only) so loops using them vectorise.
static inline float en_bits_to_f32(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
static inline std::uint32_t en_f32_to_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

static inline float en_h2f(std::uint16_t h) {
  std::uint32_t sign = (std::uint32_t)(h & 0x8000u) << 16;
  std::uint32_t shifted = (std::uint32_t)(h & 0x7FFFu) << 13;
  // Rebiasing by a multiply by 2^112 is exact for normals and subnormals.
  std::uint32_t finite = en_f32_to_bits(en_bits_to_f32(shifted) * 5.192296858534828e+33f);
  std::uint32_t special = shifted | 0x7F800000u;  // inf / nan, payload kept
  return en_bits_to_f32(sign | ((h & 0x7C00u) == 0x7C00u ? special : finite));
}

static inline std::uint16_t en_f2h(float f) {
  std::uint32_t x = en_f32_to_bits(f);
  std::uint32_t sign = (x >> 16) & 0x8000u;
  std::uint32_t ax = x & 0x7FFFFFFFu;
  // Normal halves: rebias the exponent (-112 << 23) and round to nearest even.
  std::uint32_t normal = (ax + 0xC8000FFFu + ((ax >> 13) & 1u)) >> 13;
  // Below 2^-14: adding 0.5 lines the value up so that float rounding (RNE)
  // leaves the half subnormal mantissa in the low bits.
  std::uint32_t subnormal = en_f32_to_bits(en_bits_to_f32(ax) + 0.5f) - 0x3F000000u;
  // NaNs keep their payload's top bits (a copy of a half NaN is bit-exact, as
  // on a GPU); a payload that would truncate to zero becomes a quiet NaN.
  std::uint32_t payload = (ax >> 13) & 0x3FFu;
  std::uint32_t nan = 0x7C00u | (payload != 0 ? payload : 0x200u);
  std::uint32_t r = ax > 0x7F800000u    ? nan
                    : ax >= 0x477FF000u ? 0x7C00u  // rounds to >= 65520: inf
                    : ax < 0x38800000u  ? subnormal
                                        : normal;
  return (std::uint16_t)(sign | r);
}

static inline float en_rh(float f) { return en_h2f(en_f2h(f)); }

static inline float en_b2f(std::uint16_t b) { return en_bits_to_f32((std::uint32_t)b << 16); }

static inline std::uint16_t en_f2b(float f) {
  std::uint32_t x = en_f32_to_bits(f);
  std::uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;  // round to nearest even
  std::uint32_t upper = x >> 16;  // NaN: truncated, payload kept; quiet if it would vanish
  std::uint32_t nan = (upper & 0x7Fu) != 0 ? upper : upper | 0x40u;
  return (std::uint16_t)((x & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

static inline float en_rb(float f) { return en_b2f(en_f2b(f)); }

// ---- integer division, remainder, shifts ----------------------------------
// The divisor is replaced by 1 where the hardware would trap (0, and -1 for
// signed types, where INT_MIN / -1 overflows); selects then pick the result.
template <class T>
static inline T en_safe_divisor(T b) {
  if constexpr (std::is_signed_v<T>)
    return (b == 0 || b == -1) ? (T)1 : b;
  else
    return b == 0 ? (T)1 : b;
}

template <class T>
static inline T en_div(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return a / b;
  } else {
    T q = (T)(a / en_safe_divisor(b));
    if constexpr (std::is_signed_v<T>) q = b == -1 ? (T)(0 - (std::make_unsigned_t<T>)a) : q;  // wraps INT_MIN
    return b == 0 ? (T)0 : q;
  }
}

template <class T>
static inline T en_rem(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::fmod(a, b);
  } else {
    T r = (T)(a % en_safe_divisor(b));
    if constexpr (std::is_signed_v<T>) r = b == -1 ? (T)0 : r;
    return b == 0 ? a : r;
  }
}

template <class T>
static inline T en_floordiv(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::floor(a / b);
  } else {
    T q = en_div(a, b);
    if constexpr (std::is_signed_v<T>) {
      T r = en_rem(a, b);
      q = (b != 0 && r != 0 && ((r < 0) != (b < 0))) ? (T)(q - 1) : q;  // x // 0 == 0
    }
    return q;
  }
}

template <class T, class S>
static inline T en_shl(T a, S b) {
  constexpr unsigned bits = (unsigned)sizeof(T) * 8u;
  unsigned s = (unsigned)b & (bits - 1u);
  return (T)((std::make_unsigned_t<T>)a << s);
}

template <class T, class S>
static inline T en_shr(T a, S b) {
  constexpr unsigned bits = (unsigned)sizeof(T) * 8u;
  unsigned s = (unsigned)b & (bits - 1u);
  return (T)(a >> s);  // arithmetic for signed T (C++20), logical for unsigned
}

// ---- conversions -----------------------------------------------------------
// float -> integer saturates, NaN -> 0; everything else is a C conversion.
// Branch-free: clamp into range first (no undefined conversion), then select.
template <class To, class From>
static inline To en_cvt(From x) {
  if constexpr (std::is_same_v<To, bool>) {
    return x != 0;
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    constexpr From lo = (From)std::numeric_limits<To>::min();
    // 2^(bits) for unsigned, 2^(bits-1) for signed: the first value that no longer fits.
    constexpr From hi = std::is_signed_v<To> ? -(From)std::numeric_limits<To>::min()
                                             : (From)2 * (From)(std::numeric_limits<To>::max() / 2 + 1);
    constexpr From below_hi = hi - hi * std::numeric_limits<From>::epsilon() / 2;  // largest From < hi
    From clamped = x < lo ? lo : x;                     // ternaries, not fmin/fmax: GCC vectorises these
    clamped = clamped > below_hi ? below_hi : clamped;  // NaN stays NaN here, replaced below
    To r = (To)(x != x ? (From)0 : clamped);
    r = x >= hi ? std::numeric_limits<To>::max() : r;
    return x != x ? (To)0 : r;
  } else {
    return (To)x;
  }
}
