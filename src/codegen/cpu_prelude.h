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
// precision after every operation; memory holds the 16-bit patterns.
static inline float en_h2f(std::uint16_t h) {
  std::uint32_t sign = (std::uint32_t)(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t man = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1Fu) {
    bits = sign | 0x7F800000u | (man << 13);  // inf / nan (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal half: value = man * 2^-24, exact in float
    float f = (float)man * 5.9604644775390625e-8f;
    std::uint32_t fb;
    std::memcpy(&fb, &f, 4);
    bits = sign | fb;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

static inline std::uint16_t en_f2h(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  std::uint32_t sign = (x >> 16) & 0x8000u;
  std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf or nan (nan stays quiet nan)
    return (std::uint16_t)(sign | 0x7C00u | (ax > 0x7F800000u ? (0x200u | ((ax >> 13) & 0x3FFu)) : 0u));
  }
  if (ax >= 0x477FF000u) return (std::uint16_t)(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // Adding 0.5 (2^-1) aligns the value so that float rounding (RNE) yields
    // the half subnormal mantissa in the low bits.
    float a;
    std::memcpy(&a, &ax, 4);
    float r = a + 0.5f;
    std::uint32_t rb;
    std::memcpy(&rb, &r, 4);
    return (std::uint16_t)(sign | (rb - 0x3F000000u));
  }
  std::uint32_t mant_odd = (ax >> 13) & 1u;
  ax += 0xC8000FFFu + mant_odd;  // rebias exponent (-112 << 23) and round to nearest even
  return (std::uint16_t)(sign | (ax >> 13));
}

static inline float en_rh(float f) { return en_h2f(en_f2h(f)); }

static inline float en_b2f(std::uint16_t b) {
  std::uint32_t bits = (std::uint32_t)b << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

static inline std::uint16_t en_f2b(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (std::uint16_t)((x >> 16) | 0x40u);  // quiet nan
  x += 0x7FFFu + ((x >> 16) & 1u);  // round to nearest even
  return (std::uint16_t)(x >> 16);
}

static inline float en_rb(float f) { return en_b2f(en_f2b(f)); }

// ---- integer division, remainder, shifts ----------------------------------
template <class T>
static inline T en_div(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return a / b;
  } else {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return (T)(0 - (std::make_unsigned_t<T>)a);  // wraps INT_MIN
    }
    return (T)(a / b);
  }
}

template <class T>
static inline T en_rem(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::fmod(a, b);
  } else {
    if (b == 0) return a;
    if constexpr (std::is_signed_v<T>) {
      if (b == -1) return 0;
    }
    return (T)(a % b);
  }
}

template <class T>
static inline T en_floordiv(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::floor(a / b);
  } else {
    T q = en_div(a, b);
    if constexpr (std::is_signed_v<T>) {
      if (b != 0 && b != -1 && (T)(a % b) != 0 && ((a < 0) != (b < 0))) q = (T)(q - 1);
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
template <class To, class From>
static inline To en_cvt(From x) {
  if constexpr (std::is_same_v<To, bool>) {
    return x != 0;
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (x != x) return 0;
    constexpr double lo = (double)std::numeric_limits<To>::min();
    // 2^(bits) for unsigned, 2^(bits-1) for signed: the first value that no longer fits.
    constexpr double hi_excl = std::is_signed_v<To> ? -(double)std::numeric_limits<To>::min()
                                                    : 2.0 * (double)(std::numeric_limits<To>::max() / 2 + 1);
    if ((double)x <= lo) return std::numeric_limits<To>::min();
    if ((double)x >= hi_excl) return std::numeric_limits<To>::max();
    return (To)x;
  } else {
    return (To)x;
  }
}
