// The CUDA layer under math.h: NVRTC's spellings (no standard headers, so
// its own traits; CUDA's precise float functions; the integer intrinsics).
// Pasted into generated CUDA kernels that use the language, before math.h.
// Includers provide en_i8 .. en_u64, __float_as_uint, the CUDA integer
// intrinsics, and (before it) the scalar en_div/en_rem/en_floordiv/en_shl/
// en_shr/en_rh/en_rb/en_h2f/en_f2h/en_b2f/en_f2b a kernel uses.
// tests/cpp/test_cuda_math_host.cpp compiles it, with math.h, as host C++
// against the CPU layer.
#define EN_FN __device__ __forceinline__
#define EN_MEMBER __device__ __forceinline__
#define EN_LIBM(name) name##f
#define EN_LIBM_D(name) name
#define EN_RINT rintf

// ---- traits (no <type_traits> under NVRTC) ----------------------------------
template <class T>
struct en_traits {
  static const bool is_int = false;
};
#define EN_INT_TRAITS(T, U, W, S, MN, MX)   \
  template <>                               \
  struct en_traits<T> {                     \
    typedef U uint;                         \
    static const bool is_int = true;        \
    static const bool is_signed = S;        \
    static const int width = W;             \
    static constexpr T min() { return MN; } \
    static constexpr T max() { return MX; } \
  };
EN_INT_TRAITS(en_i8, en_u8, 8, true, -128, 127)
EN_INT_TRAITS(en_u8, en_u8, 8, false, 0, 255)
EN_INT_TRAITS(en_i16, en_u16, 16, true, -32768, 32767)
EN_INT_TRAITS(en_u16, en_u16, 16, false, 0, 65535)
EN_INT_TRAITS(en_i32, en_u32, 32, true, (-2147483647 - 1), 2147483647)
EN_INT_TRAITS(en_u32, en_u32, 32, false, 0u, 4294967295u)
EN_INT_TRAITS(en_i64, en_u64, 64, true, (-9223372036854775807ll - 1), 9223372036854775807ll)
EN_INT_TRAITS(en_u64, en_u64, 64, false, 0ull, 18446744073709551615ull)
#undef EN_INT_TRAITS
template <bool B, class T = void>
struct en_enable_if {};
template <class T>
struct en_enable_if<true, T> {
  typedef T type;
};
template <class A, class B>
struct en_same {
  static const bool value = false;
};
template <class A>
struct en_same<A, A> {
  static const bool value = true;
};

// Conversions (numbers.h's en_cvt): float -> integer saturates, NaN is 0.
template <class To, class From>
EN_FN To en_cvt(From x) {
  if constexpr (en_same<To, bool>::value) {
    return x != 0;
  } else if constexpr (en_same<From, float>::value && en_traits<To>::is_int) {
    // The bounds are powers of two, exact in float.
    const float lo = static_cast<float>(en_traits<To>::min());
    const float hi = en_traits<To>::is_signed ? -lo : 2.0f * static_cast<float>(en_traits<To>::max() / 2 + 1);
    if (x != x) return To(0);
    if (x <= lo) return en_traits<To>::min();
    if (x >= hi) return en_traits<To>::max();
    return static_cast<To>(x);
  } else {
    return static_cast<To>(x);
  }
}
// The bits of one value as another type of the same size (memory forms).
template <class To, class From>
EN_FN To en_bitcast(const From& x) {
  static_assert(sizeof(To) == sizeof(From), "as_type needs equal sizes");
  To r;
  const unsigned char* s = reinterpret_cast<const unsigned char*>(&x);
  unsigned char* d = reinterpret_cast<unsigned char*>(&r);
  for (unsigned i = 0; i < sizeof(To); ++i) d[i] = s[i];
  return r;
}

// Predicates on the bits: exact, and no header needed.
EN_FN bool en_isinf(float x) { return (__float_as_uint(x) & 0x7FFFFFFFu) == 0x7F800000u; }
EN_FN bool en_isfinite(float x) { return (__float_as_uint(x) & 0x7F800000u) != 0x7F800000u; }
EN_FN bool en_signbit(float x) { return (__float_as_uint(x) >> 31) != 0u; }
EN_FN bool en_isnormal(float x) {
  en_u32 e = __float_as_uint(x) & 0x7F800000u;
  return e != 0u && e != 0x7F800000u;
}
// ---- integer helpers on CUDA's intrinsics ------------------------------------
template <class T>
EN_FN T en_addsat(T a, T b) {
  if constexpr (en_traits<T>::width < 64) {
    en_i64 r = static_cast<en_i64>(a) + static_cast<en_i64>(b);
    return r > en_traits<T>::max()   ? en_traits<T>::max()
           : r < en_traits<T>::min() ? en_traits<T>::min()
                                     : static_cast<T>(r);
  } else {
    T r = static_cast<T>(static_cast<en_u64>(a) + static_cast<en_u64>(b));
    if constexpr (en_traits<T>::is_signed) {
      if (((a ^ r) & (b ^ r)) < 0) return b > 0 ? en_traits<T>::max() : en_traits<T>::min();
      return r;
    } else {
      return r < a ? en_traits<T>::max() : r;
    }
  }
}
template <class T>
EN_FN T en_subsat(T a, T b) {
  if constexpr (en_traits<T>::width < 64) {
    en_i64 r = static_cast<en_i64>(a) - static_cast<en_i64>(b);
    return r > en_traits<T>::max()   ? en_traits<T>::max()
           : r < en_traits<T>::min() ? en_traits<T>::min()
                                     : static_cast<T>(r);
  } else {
    T r = static_cast<T>(static_cast<en_u64>(a) - static_cast<en_u64>(b));
    if constexpr (en_traits<T>::is_signed) {
      if (((a ^ b) & (a ^ r)) < 0) return b < 0 ? en_traits<T>::max() : en_traits<T>::min();
      return r;
    } else {
      return b > a ? T(0) : r;
    }
  }
}
// The high half of the full product.
EN_FN en_i32 en_mulhi(en_i32 a, en_i32 b) { return __mulhi(a, b); }
EN_FN en_u32 en_mulhi(en_u32 a, en_u32 b) { return __umulhi(a, b); }
EN_FN en_i64 en_mulhi(en_i64 a, en_i64 b) { return __mul64hi(a, b); }
EN_FN en_u64 en_mulhi(en_u64 a, en_u64 b) { return __umul64hi(a, b); }
template <class T>
EN_FN T en_mulhi(T a, T b) {  // 8 and 16 bits: the product fits 32
  if constexpr (en_traits<T>::is_signed)
    return static_cast<T>((static_cast<en_i32>(a) * static_cast<en_i32>(b)) >> en_traits<T>::width);
  else
    return static_cast<T>((static_cast<en_u32>(a) * static_cast<en_u32>(b)) >> en_traits<T>::width);
}
// a * b + c, exactly, saturated to T.
template <class T>
EN_FN T en_madsat(T a, T b, T c) {
  if constexpr (en_traits<T>::width < 64) {
    // |a * b| < 2^62 (signed) or <= (2^32 - 1)^2 (unsigned), plus c: exact.
    if constexpr (en_traits<T>::is_signed) {
      en_i64 r = static_cast<en_i64>(a) * static_cast<en_i64>(b) + static_cast<en_i64>(c);
      return r > en_traits<T>::max()   ? en_traits<T>::max()
             : r < en_traits<T>::min() ? en_traits<T>::min()
                                       : static_cast<T>(r);
    } else {
      en_u64 r = static_cast<en_u64>(a) * static_cast<en_u64>(b) + static_cast<en_u64>(c);
      return r > en_traits<T>::max() ? en_traits<T>::max() : static_cast<T>(r);
    }
  } else if constexpr (en_traits<T>::is_signed) {
    // The 128-bit product (hi:lo) plus sign-extended c.
    en_u64 lo = static_cast<en_u64>(a) * static_cast<en_u64>(b);
    en_i64 hi = __mul64hi(a, b);
    en_u64 lo2 = lo + static_cast<en_u64>(c);
    hi = static_cast<en_i64>(static_cast<en_u64>(hi) + (lo2 < lo ? 1u : 0u) + (c < 0 ? ~0ull : 0ull));
    if (hi != (static_cast<en_i64>(lo2) >> 63)) return hi < 0 ? en_traits<T>::min() : en_traits<T>::max();
    return static_cast<T>(lo2);
  } else {
    en_u64 lo = a * b, hi = __umul64hi(a, b);
    en_u64 lo2 = lo + c;
    if (hi != 0 || lo2 < lo) return en_traits<T>::max();
    return lo2;
  }
}
template <class T>
EN_FN T en_popcount(T x) {
  typedef typename en_traits<T>::uint U;
  if constexpr (en_traits<T>::width == 64)
    return static_cast<T>(__popcll(static_cast<en_u64>(x)));
  else
    return static_cast<T>(__popc(static_cast<en_u32>(static_cast<U>(x))));
}
// clz(0) and ctz(0) are the width.
template <class T>
EN_FN T en_clz(T x) {
  typedef typename en_traits<T>::uint U;
  if constexpr (en_traits<T>::width == 64)
    return static_cast<T>(__clzll(static_cast<en_i64>(x)));
  else
    return static_cast<T>(__clz(static_cast<en_i32>(static_cast<en_u32>(static_cast<U>(x)))) -
                          (32 - en_traits<T>::width));
}
template <class T>
EN_FN T en_ctz(T x) {
  typedef typename en_traits<T>::uint U;
  if constexpr (en_traits<T>::width == 64)
    return static_cast<T>(x == 0 ? 64 : __ffsll(static_cast<en_i64>(x)) - 1);
  else {
    en_u32 u = static_cast<en_u32>(static_cast<U>(x));
    return static_cast<T>(u == 0u ? en_traits<T>::width : __ffs(static_cast<en_i32>(u)) - 1);
  }
}
template <class T>
EN_FN T en_reverse_bits(T x) {
  typedef typename en_traits<T>::uint U;
  if constexpr (en_traits<T>::width == 64)
    return static_cast<T>(__brevll(static_cast<en_u64>(x)));
  else
    return static_cast<T>(static_cast<U>(__brev(static_cast<en_u32>(static_cast<U>(x))) >> (32 - en_traits<T>::width)));
}
