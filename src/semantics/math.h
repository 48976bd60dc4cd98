// The per-thread language of the C-family backends (CPU and CUDA), written
// once: vectors, matrices and en_<name> for every Metal library function of
// ops.def's second section. The core compiles it (constant folding uses it,
// so folded and run-time results agree bit for bit) and the backends paste
// it into generated kernels that use these ops.
//
// Definitions (docs/semantics.md): results follow Metal's; where Metal
// leaves a case undefined the formula below is the defined result. Values of
// half/bfloat are held in float; callers round the result once.
//
// It includes nothing (NVRTC has no standard headers). A backend layer comes
// first (math_cpu.h, math_cuda.h) and provides: EN_FN (qualifies every
// function), EN_MEMBER (member functions), EN_LIBM(name) (the float libm
// function `name`), EN_LIBM_D(name) (the double one), EN_RINT (round to
// nearest even), the types en_i8 .. en_u64, the traits en_traits<T> (is_int,
// is_signed, width, uint, min(), max()), en_enable_if and en_same, the float
// predicates, en_cvt, and the integer helpers that use the hardware's
// instructions (saturating add/sub/mad, mulhi, popcount, clz, ctz,
// reverse_bits). Before it come the scalar helpers of numbers.h a kernel uses.

// ---- vectors and matrices ------------------------------------------------------
// Sized and aligned as Metal's: a 3-vector takes the room of a 4-vector.
template <class T, int N>
struct alignas(sizeof(T) * (N == 3 ? 4 : N)) en_vec {
  T v[N];
  en_vec() = default;
  EN_MEMBER explicit en_vec(T s) {
    for (int i = 0; i < N; ++i) v[i] = s;
  }
  template <class... C, class = typename en_enable_if<(sizeof...(C) == N && N >= 2)>::type>
  EN_MEMBER en_vec(C... c) : v{static_cast<T>(c)...} {}
  template <class U>
  EN_MEMBER explicit en_vec(const en_vec<U, N>& o) {
    for (int i = 0; i < N; ++i) v[i] = static_cast<T>(o.v[i]);
  }
  EN_MEMBER T& operator[](int i) { return v[i]; }
  EN_MEMBER const T& operator[](int i) const { return v[i]; }
};

// Column-major: C columns of R lanes.
template <class T, int C, int R>
struct en_mat {
  en_vec<T, R> c[C];
  en_mat() = default;
  template <class... V, class = typename en_enable_if<(sizeof...(V) == C)>::type>
  EN_MEMBER en_mat(V... cols) : c{cols...} {}
  EN_MEMBER en_vec<T, R>& operator[](int i) { return c[i]; }
  EN_MEMBER const en_vec<T, R>& operator[](int i) const { return c[i]; }
};

// Integer lanes wrap (computed unsigned: signed overflow is undefined in
// C++); narrow ones keep their width.
template <class T>
EN_FN T en_wrap_add(T a, T b) {
  if constexpr (en_traits<T>::is_int) {
    typedef typename en_traits<T>::uint U;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return a + b;
  }
}
template <class T>
EN_FN T en_wrap_sub(T a, T b) {
  if constexpr (en_traits<T>::is_int) {
    typedef typename en_traits<T>::uint U;
    return static_cast<T>(static_cast<U>(static_cast<U>(a) - static_cast<U>(b)));
  } else {
    return a - b;
  }
}
template <class T>
EN_FN T en_wrap_mul(T a, T b) {
  if constexpr (en_traits<T>::is_int) {
    typedef typename en_traits<T>::uint U;
    // u16 * u16 would promote to int and could overflow it.
    typedef typename en_enable_if<true, decltype(U() * 1u)>::type W;
    return static_cast<T>(static_cast<U>(static_cast<W>(static_cast<U>(a)) * static_cast<W>(static_cast<U>(b))));
  } else {
    return a * b;
  }
}
#define EN_VEC_BINOP(op, fn)                                                     \
  template <class T, int N>                                                      \
  EN_FN en_vec<T, N> operator op(const en_vec<T, N>& a, const en_vec<T, N>& b) { \
    en_vec<T, N> r;                                                              \
    for (int i = 0; i < N; ++i) r.v[i] = fn;                                     \
    return r;                                                                    \
  }
EN_VEC_BINOP(+, en_wrap_add(a.v[i], b.v[i]))
EN_VEC_BINOP(-, en_wrap_sub(a.v[i], b.v[i]))
EN_VEC_BINOP(*, en_wrap_mul(a.v[i], b.v[i]))
EN_VEC_BINOP(/, static_cast<T>(a.v[i] / b.v[i]))  // float lanes (integers use en_div)
EN_VEC_BINOP(&, static_cast<T>(a.v[i] & b.v[i]))
EN_VEC_BINOP(|, static_cast<T>(a.v[i] | b.v[i]))
EN_VEC_BINOP(^, static_cast<T>(a.v[i] ^ b.v[i]))
#undef EN_VEC_BINOP

#define EN_VEC_CMP(op)                                                              \
  template <class T, int N>                                                         \
  EN_FN en_vec<bool, N> operator op(const en_vec<T, N>& a, const en_vec<T, N>& b) { \
    en_vec<bool, N> r;                                                              \
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] op b.v[i];                          \
    return r;                                                                       \
  }
EN_VEC_CMP(==)
EN_VEC_CMP(!=)
EN_VEC_CMP(<)
EN_VEC_CMP(<=)
EN_VEC_CMP(>)
EN_VEC_CMP(>=)
#undef EN_VEC_CMP

template <class T, int N>
EN_FN en_vec<T, N> operator-(const en_vec<T, N>& a) {
  en_vec<T, N> r;
  for (int i = 0; i < N; ++i) {
    if constexpr (en_traits<T>::is_int)
      r.v[i] = static_cast<T>(0 - static_cast<typename en_traits<T>::uint>(a.v[i]));
    else
      r.v[i] = -a.v[i];
  }
  return r;
}
// ~ on bools is logical not (as the scalar emitters spell it).
template <class T, int N>
EN_FN en_vec<T, N> operator~(const en_vec<T, N>& a) {
  en_vec<T, N> r;
  for (int i = 0; i < N; ++i) {
    if constexpr (en_same<T, bool>::value)
      r.v[i] = !a.v[i];
    else
      r.v[i] = static_cast<T>(~a.v[i]);
  }
  return r;
}
template <int N>
EN_FN en_vec<bool, N> operator!(const en_vec<bool, N>& a) {
  return ~a;
}

template <class T, int N>
EN_FN en_vec<T, N> en_select(const en_vec<bool, N>& c, const en_vec<T, N>& a, const en_vec<T, N>& b) {
  en_vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = c.v[i] ? a.v[i] : b.v[i];
  return r;
}

// Lane-wise forms of the scalar helpers (numbers.h and below).
#define EN_LANEWISE1(fn)                             \
  template <class T, int N>                          \
  EN_FN auto fn(const en_vec<T, N>& a) {             \
    en_vec<decltype(fn(a.v[0])), N> r;               \
    for (int i = 0; i < N; ++i) r.v[i] = fn(a.v[i]); \
    return r;                                        \
  }
#define EN_LANEWISE2(fn)                                        \
  template <class T, int N>                                     \
  EN_FN auto fn(const en_vec<T, N>& a, const en_vec<T, N>& b) { \
    en_vec<decltype(fn(a.v[0], b.v[0])), N> r;                  \
    for (int i = 0; i < N; ++i) r.v[i] = fn(a.v[i], b.v[i]);    \
    return r;                                                   \
  }
#define EN_LANEWISE3(fn)                                                               \
  template <class T, int N>                                                            \
  EN_FN auto fn(const en_vec<T, N>& a, const en_vec<T, N>& b, const en_vec<T, N>& c) { \
    en_vec<decltype(fn(a.v[0], b.v[0], c.v[0])), N> r;                                 \
    for (int i = 0; i < N; ++i) r.v[i] = fn(a.v[i], b.v[i], c.v[i]);                   \
    return r;                                                                          \
  }

EN_LANEWISE2(en_div)
EN_LANEWISE2(en_rem)
EN_LANEWISE2(en_floordiv)
EN_LANEWISE2(en_shl)
EN_LANEWISE2(en_shr)
EN_LANEWISE1(en_rh)
EN_LANEWISE1(en_rb)
EN_LANEWISE1(en_f2h)
EN_LANEWISE1(en_h2f)
EN_LANEWISE1(en_f2b)
EN_LANEWISE1(en_b2f)

// Conversions of vectors lane by lane (en_cvt's rules); rounding of half matrices.
template <class To, class From, int N>
EN_FN en_vec<To, N> en_vcvt(const en_vec<From, N>& a) {
  en_vec<To, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = en_cvt<To, From>(a.v[i]);
  return r;
}
template <class T, int C, int R>
EN_FN en_mat<T, C, R> en_rh(const en_mat<T, C, R>& m) {
  en_mat<T, C, R> r;
  for (int j = 0; j < C; ++j) r.c[j] = en_rh(m.c[j]);
  return r;
}

// Index of a per-thread array of n elements: out-of-range (or negative)
// indices use the last element, so no access leaves the array.
template <class I>
EN_FN en_u64 en_clamp_index(I i, en_u64 n) {
  en_u64 u = static_cast<en_u64>(i);
  return u < n ? u : n - 1;
}

// ---- float math --------------------------------------------------------------
EN_FN float en_sqrt(float x) { return EN_LIBM(sqrt)(x); }
EN_FN float en_rsqrt(float x) { return 1.0f / EN_LIBM(sqrt)(x); }
EN_FN float en_ceil(float x) { return EN_LIBM(ceil)(x); }
EN_FN float en_floor(float x) { return EN_LIBM(floor)(x); }
EN_FN float en_round(float x) { return EN_LIBM(round)(x); }  // halfway cases away from zero
EN_FN float en_trunc(float x) { return EN_LIBM(trunc)(x); }
// A layer may spell exp itself (math_cpu.h: a branch-free one, so that loops
// calling it vectorise).
#ifndef EN_EXPF
#define EN_EXPF EN_LIBM(exp)
#endif
EN_FN float en_exp(float x) { return EN_EXPF(x); }
#undef EN_EXPF  // one layer's choice: another layer may include this file after it
EN_FN float en_exp2(float x) { return EN_LIBM(exp2)(x); }
EN_FN float en_log(float x) { return EN_LIBM(log)(x); }
EN_FN float en_log2(float x) { return EN_LIBM(log2)(x); }
EN_FN float en_log10(float x) { return EN_LIBM(log10)(x); }
EN_FN float en_sin(float x) { return EN_LIBM(sin)(x); }
EN_FN float en_cos(float x) { return EN_LIBM(cos)(x); }
EN_FN float en_tan(float x) { return EN_LIBM(tan)(x); }
EN_FN float en_asin(float x) { return EN_LIBM(asin)(x); }
EN_FN float en_acos(float x) { return EN_LIBM(acos)(x); }
EN_FN float en_atan(float x) { return EN_LIBM(atan)(x); }
EN_FN float en_sinh(float x) { return EN_LIBM(sinh)(x); }
EN_FN float en_cosh(float x) { return EN_LIBM(cosh)(x); }
EN_FN float en_tanh(float x) { return EN_LIBM(tanh)(x); }
EN_FN float en_asinh(float x) { return EN_LIBM(asinh)(x); }
EN_FN float en_acosh(float x) { return EN_LIBM(acosh)(x); }
EN_FN float en_atanh(float x) { return EN_LIBM(atanh)(x); }
EN_FN float en_expm1(float x) { return EN_LIBM(expm1)(x); }
EN_FN float en_log1p(float x) { return EN_LIBM(log1p)(x); }
EN_FN float en_pow(float x, float y) { return EN_LIBM(pow)(x, y); }
EN_FN float en_fmod(float x, float y) { return EN_LIBM(fmod)(x, y); }
EN_FN float en_atan2(float y, float x) { return EN_LIBM(atan2)(y, x); }
EN_FN float en_copysign(float x, float y) { return EN_LIBM(copysign)(x, y); }
EN_FN float en_fma(float a, float b, float c) { return EN_LIBM(fma)(a, b, c); }
EN_FN float en_abs(float x) { return EN_LIBM(fabs)(x); }
// fmin/fmax return the other operand when one is NaN (a zero's sign is not ordered).
EN_FN float en_fmin(float x, float y) { return (y < x || x != x) ? y : x; }
EN_FN float en_fmax(float x, float y) { return (y > x || x != x) ? y : x; }
EN_FN float en_clamp(float x, float lo, float hi) { return en_fmin(en_fmax(x, lo), hi); }
EN_FN float en_saturate(float x) { return en_clamp(x, 0.0f, 1.0f); }
// 1, -1, or x itself for +-0; NaN gives 0.
EN_FN float en_sign(float x) { return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x == 0.0f ? x : 0.0f; }
// x - floor(x), kept below 1; +-0 and +-inf give +-0, NaN stays NaN.
EN_FN float en_fract(float x) {
  float f = x - EN_LIBM(floor)(x);
  f = f < 0x1.fffffep-1f ? f : 0x1.fffffep-1f;
  return (x == 0.0f || en_isinf(x)) ? EN_LIBM(copysign)(0.0f, x) : x != x ? x : f;
}
// The same, when the result is rounded to half / bfloat (which could reach 1).
template <class F = float>  // a template: en_rh may be declared later
EN_FN F en_fract_h(F x) {
  F f = en_rh(en_fract(x));
  return f == 1.0f ? 0x1.ffcp-1f : f;
}
template <class F = float>
EN_FN F en_fract_b(F x) {
  F f = en_rb(en_fract(x));
  return f == 1.0f ? 0x1.fep-1f : f;
}
EN_FN float en_step(float edge, float x) { return x < edge ? 0.0f : 1.0f; }
EN_FN float en_mix(float x, float y, float a) { return x + (y - x) * a; }
EN_FN float en_smoothstep(float e0, float e1, float x) {
  float t = en_clamp((x - e0) / (e1 - e0), 0.0f, 1.0f);
  return t * t * (3.0f - 2.0f * t);
}
EN_FN bool en_isnan(float x) { return x != x; }
// half's normal range starts at 2^-14 (bfloat's is float's).
EN_FN bool en_isnormal_h(float x) { return en_isfinite(x) && EN_LIBM(fabs)(x) >= 0x1p-14f; }

// ---- integer math and bits ---------------------------------------------------
// Two's complement throughout: abs(MIN) and absdiff's results that do not
// fit T keep their low bits (read them as unsigned).
template <class T, typename en_enable_if<en_traits<T>::is_int, int>::type = 0>
EN_FN T en_abs(T x) {
  typedef typename en_traits<T>::uint U;
  if constexpr (en_traits<T>::is_signed)
    return x < 0 ? static_cast<T>(static_cast<U>(U(0) - static_cast<U>(x))) : x;
  else
    return x;
}
template <class T, typename en_enable_if<en_traits<T>::is_int, int>::type = 0>
EN_FN T en_min(T a, T b) {
  return b < a ? b : a;
}
template <class T, typename en_enable_if<en_traits<T>::is_int, int>::type = 0>
EN_FN T en_max(T a, T b) {
  return b > a ? b : a;
}
template <class T, typename en_enable_if<en_traits<T>::is_int, int>::type = 0>
EN_FN T en_clamp(T x, T lo, T hi) {
  return en_min(en_max(x, lo), hi);
}
template <class T>
EN_FN T en_absdiff(T a, T b) {
  typedef typename en_traits<T>::uint U;
  return static_cast<T>(a > b ? static_cast<U>(static_cast<U>(a) - static_cast<U>(b))
                              : static_cast<U>(static_cast<U>(b) - static_cast<U>(a)));
}
// Rotates left by the count modulo the width (a negative count rotates right).
template <class T>
EN_FN T en_rotate(T v, T i) {
  typedef typename en_traits<T>::uint U;
  const unsigned w = en_traits<T>::width;
  unsigned s = static_cast<unsigned>(i) & (w - 1u);
  U x = static_cast<U>(v);
  return static_cast<T>(static_cast<U>((x << s) | (x >> ((w - s) & (w - 1u)))));
}
// Bits [offset, offset + bits) of x, zero-extended (unsigned T) or
// sign-extended (signed T); 0 when bits is 0. The builder checks the range.
template <class T>
EN_FN T en_extract_bits(T x, unsigned offset, unsigned bits) {
  typedef typename en_traits<T>::uint U;
  const unsigned w = en_traits<T>::width;
  if (bits == 0) return 0;
  U up = static_cast<U>(static_cast<U>(x) << (w - offset - bits));  // field at the top
  if constexpr (en_traits<T>::is_signed)
    return static_cast<T>(static_cast<T>(up) >> (w - bits));
  else
    return static_cast<T>(up >> (w - bits));
}
template <class T>
EN_FN T en_insert_bits(T base, T insert, unsigned offset, unsigned bits) {
  typedef typename en_traits<T>::uint U;
  const unsigned w = en_traits<T>::width;
  if (bits == 0) return base;
  U field = bits >= w ? static_cast<U>(~U(0)) : static_cast<U>((U(1) << bits) - 1u);
  U mask = static_cast<U>(field << offset);
  return static_cast<T>(static_cast<U>((static_cast<U>(base) & static_cast<U>(~mask)) |
                                       (static_cast<U>(static_cast<U>(insert) << offset) & mask)));
}

// clang-format off: the lists are laid out by hand
#define EN_MATH_LANEWISE1(X) X(en_sqrt) X(en_rsqrt) X(en_ceil) X(en_floor) X(en_round) X(en_trunc) X(en_exp) \
  X(en_exp2) X(en_log) X(en_log2) X(en_log10) X(en_sin) X(en_cos) X(en_tan) X(en_asin) X(en_acos) X(en_atan)  \
  X(en_sinh) X(en_cosh) X(en_tanh) X(en_asinh) X(en_acosh) X(en_atanh) X(en_expm1) X(en_log1p) X(en_abs) X(en_saturate) X(en_sign) X(en_fract) X(en_fract_h)             \
  X(en_fract_b) X(en_isnan) X(en_isinf) X(en_isfinite) X(en_signbit) X(en_isnormal) X(en_isnormal_h)         \
  X(en_popcount) X(en_clz) X(en_ctz) X(en_reverse_bits)
#define EN_MATH_LANEWISE2(X) X(en_pow) X(en_fmod) X(en_atan2) X(en_copysign) X(en_fmin) X(en_fmax) X(en_step) \
  X(en_min) X(en_max) X(en_absdiff) X(en_addsat) X(en_subsat) X(en_mulhi) X(en_rotate)
#define EN_MATH_LANEWISE3(X) X(en_fma) X(en_clamp) X(en_mix) X(en_smoothstep) X(en_madsat)
// clang-format on
EN_MATH_LANEWISE1(EN_LANEWISE1)
EN_MATH_LANEWISE2(EN_LANEWISE2)
EN_MATH_LANEWISE3(EN_LANEWISE3)
#undef EN_MATH_LANEWISE1
#undef EN_MATH_LANEWISE2
#undef EN_MATH_LANEWISE3

template <class T, int N>
EN_FN en_vec<T, N> en_extract_bits(const en_vec<T, N>& x, unsigned offset, unsigned bits) {
  en_vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = en_extract_bits(x.v[i], offset, bits);
  return r;
}
template <class T, int N>
EN_FN en_vec<T, N> en_insert_bits(const en_vec<T, N>& b, const en_vec<T, N>& x, unsigned offset, unsigned bits) {
  en_vec<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = en_insert_bits(b.v[i], x.v[i], offset, bits);
  return r;
}

// ---- geometry (float vectors; sums in lane order) -----------------------------
template <int N>
EN_FN float en_dot(const en_vec<float, N>& a, const en_vec<float, N>& b) {
  float s = a.v[0] * b.v[0];
  for (int i = 1; i < N; ++i) s = s + a.v[i] * b.v[i];
  return s;
}
template <int N>
EN_FN float en_length(const en_vec<float, N>& v) {
  return EN_LIBM(sqrt)(en_dot(v, v));
}
template <int N>
EN_FN float en_distance(const en_vec<float, N>& a, const en_vec<float, N>& b) {
  return en_length(a - b);
}
// v / |v|: a zero vector gives NaN lanes (0 * inf).
template <int N>
EN_FN en_vec<float, N> en_normalize(const en_vec<float, N>& v) {
  return v * en_vec<float, N>(en_rsqrt(en_dot(v, v)));
}
EN_FN en_vec<float, 3> en_cross(const en_vec<float, 3>& a, const en_vec<float, 3>& b) {
  return en_vec<float, 3>(a.v[1] * b.v[2] - a.v[2] * b.v[1], a.v[2] * b.v[0] - a.v[0] * b.v[2],
                          a.v[0] * b.v[1] - a.v[1] * b.v[0]);
}
// i - 2 dot(n, i) n
template <int N>
EN_FN en_vec<float, N> en_reflect(const en_vec<float, N>& i, const en_vec<float, N>& n) {
  return i - en_vec<float, N>(2.0f * en_dot(n, i)) * n;
}
// Total internal reflection (k < 0) gives the zero vector.
template <int N>
EN_FN en_vec<float, N> en_refract(const en_vec<float, N>& i, const en_vec<float, N>& n, float eta) {
  float d = en_dot(n, i);
  float k = 1.0f - eta * eta * (1.0f - d * d);
  if (k < 0.0f) return en_vec<float, N>(0.0f);
  return en_vec<float, N>(eta) * i - en_vec<float, N>(eta * d + EN_LIBM(sqrt)(k)) * n;
}
template <int N>
EN_FN en_vec<float, N> en_faceforward(const en_vec<float, N>& n, const en_vec<float, N>& i,
                                      const en_vec<float, N>& nref) {
  return en_dot(nref, i) < 0.0f ? n : -n;
}

// ---- packing (Metal's normalized-integer conversions) -------------------------
// float -> unorm/snorm of `bits`: NaN is 0, clamp, scale, round to nearest even.
EN_FN en_u32 en_to_unorm(float x, float scale) {
  float c = x != x ? 0.0f : en_clamp(x, 0.0f, 1.0f);
  return static_cast<en_u32>(EN_RINT(c * scale));
}
EN_FN en_u32 en_to_snorm(float x, float scale, en_u32 mask) {
  float c = x != x ? 0.0f : en_clamp(x, -1.0f, 1.0f);
  return static_cast<en_u32>(static_cast<en_i32>(EN_RINT(c * scale))) & mask;
}
// The sRGB curves in double: in float the 2.4 exponent amplifies rounding to ~3 ulp.
EN_FN float en_linear_to_srgb(float c) {
  double d = c != c ? 0.0 : en_clamp(c, 0.0f, 1.0f);
  return static_cast<float>(d <= 0.0031308 ? d * 12.92 : 1.055 * EN_LIBM_D(pow)(d, 1.0 / 2.4) - 0.055);
}
EN_FN float en_srgb_to_linear(float s) {
  double d = s;
  return static_cast<float>(d <= 0.04045 ? d / 12.92 : EN_LIBM_D(pow)((d + 0.055) / 1.055, 2.4));
}
EN_FN en_u32 en_pack_float_to_unorm4x8(const en_vec<float, 4>& v) {
  return en_to_unorm(v.v[0], 255.0f) | en_to_unorm(v.v[1], 255.0f) << 8 | en_to_unorm(v.v[2], 255.0f) << 16 |
         en_to_unorm(v.v[3], 255.0f) << 24;
}
EN_FN en_u32 en_pack_float_to_snorm4x8(const en_vec<float, 4>& v) {
  return en_to_snorm(v.v[0], 127.0f, 0xFFu) | en_to_snorm(v.v[1], 127.0f, 0xFFu) << 8 |
         en_to_snorm(v.v[2], 127.0f, 0xFFu) << 16 | en_to_snorm(v.v[3], 127.0f, 0xFFu) << 24;
}
EN_FN en_u32 en_pack_float_to_unorm2x16(const en_vec<float, 2>& v) {
  return en_to_unorm(v.v[0], 65535.0f) | en_to_unorm(v.v[1], 65535.0f) << 16;
}
EN_FN en_u32 en_pack_float_to_snorm2x16(const en_vec<float, 2>& v) {
  return en_to_snorm(v.v[0], 32767.0f, 0xFFFFu) | en_to_snorm(v.v[1], 32767.0f, 0xFFFFu) << 16;
}
// sRGB-encodes x, y, z; w (alpha) stays linear.
EN_FN en_u32 en_pack_float_to_srgb_unorm4x8(const en_vec<float, 4>& v) {
  return en_to_unorm(en_linear_to_srgb(v.v[0]), 255.0f) | en_to_unorm(en_linear_to_srgb(v.v[1]), 255.0f) << 8 |
         en_to_unorm(en_linear_to_srgb(v.v[2]), 255.0f) << 16 | en_to_unorm(v.v[3], 255.0f) << 24;
}
// x, y, z in 10 bits each, w in the top 2.
EN_FN en_u32 en_pack_float_to_unorm10a2(const en_vec<float, 4>& v) {
  return en_to_unorm(v.v[0], 1023.0f) | en_to_unorm(v.v[1], 1023.0f) << 10 | en_to_unorm(v.v[2], 1023.0f) << 20 |
         en_to_unorm(v.v[3], 3.0f) << 30;
}
EN_FN en_vec<float, 4> en_unpack_unorm4x8_to_float(en_u32 p) {
  return en_vec<float, 4>(float(p & 0xFFu) / 255.0f, float((p >> 8) & 0xFFu) / 255.0f,
                          float((p >> 16) & 0xFFu) / 255.0f, float(p >> 24) / 255.0f);
}
// snorm: c / (2^(n-1) - 1), at least -1 (the code -2^(n-1) is -1 too).
EN_FN float en_from_snorm(en_i32 c, float scale) {
  float f = float(c) / scale;
  return f < -1.0f ? -1.0f : f;
}
EN_FN en_vec<float, 4> en_unpack_snorm4x8_to_float(en_u32 p) {
  return en_vec<float, 4>(en_from_snorm(en_i8(p & 0xFFu), 127.0f), en_from_snorm(en_i8((p >> 8) & 0xFFu), 127.0f),
                          en_from_snorm(en_i8((p >> 16) & 0xFFu), 127.0f), en_from_snorm(en_i8(p >> 24), 127.0f));
}
EN_FN en_vec<float, 2> en_unpack_unorm2x16_to_float(en_u32 p) {
  return en_vec<float, 2>(float(p & 0xFFFFu) / 65535.0f, float(p >> 16) / 65535.0f);
}
EN_FN en_vec<float, 2> en_unpack_snorm2x16_to_float(en_u32 p) {
  return en_vec<float, 2>(en_from_snorm(en_i16(p & 0xFFFFu), 32767.0f), en_from_snorm(en_i16(p >> 16), 32767.0f));
}
EN_FN en_vec<float, 4> en_unpack_srgb_unorm4x8_to_float(en_u32 p) {
  return en_vec<float, 4>(en_srgb_to_linear(float(p & 0xFFu) / 255.0f),
                          en_srgb_to_linear(float((p >> 8) & 0xFFu) / 255.0f),
                          en_srgb_to_linear(float((p >> 16) & 0xFFu) / 255.0f), float(p >> 24) / 255.0f);
}
EN_FN en_vec<float, 4> en_unpack_unorm10a2_to_float(en_u32 p) {
  return en_vec<float, 4>(float(p & 0x3FFu) / 1023.0f, float((p >> 10) & 0x3FFu) / 1023.0f,
                          float((p >> 20) & 0x3FFu) / 1023.0f, float(p >> 30) / 3.0f);
}

// ---- matrices (float lanes) ------------------------------------------------------
// m * v = sum over columns k of m[k] * v[k], in column order.
template <int C, int R>
EN_FN en_vec<float, R> operator*(const en_mat<float, C, R>& m, const en_vec<float, C>& v) {
  en_vec<float, R> r = m.c[0] * en_vec<float, R>(v.v[0]);
  for (int k = 1; k < C; ++k) r = r + m.c[k] * en_vec<float, R>(v.v[k]);
  return r;
}
// v * m: lane j is dot(v, m[j]).
template <int C, int R>
EN_FN en_vec<float, C> operator*(const en_vec<float, R>& v, const en_mat<float, C, R>& m) {
  en_vec<float, C> r;
  for (int j = 0; j < C; ++j) r.v[j] = en_dot(v, m.c[j]);
  return r;
}
template <int K, int C, int R>
EN_FN en_mat<float, C, R> operator*(const en_mat<float, K, R>& a, const en_mat<float, C, K>& b) {
  en_mat<float, C, R> r;
  for (int j = 0; j < C; ++j) r.c[j] = a * b.c[j];
  return r;
}
template <class T, int C, int R>
EN_FN en_mat<T, R, C> en_transpose(const en_mat<T, C, R>& m) {
  en_mat<T, R, C> r;
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) r.c[i].v[j] = m.c[j].v[i];
  return r;
}
// Cofactor expansion along the first column (element m[col][row]).
EN_FN float en_determinant(const en_mat<float, 2, 2>& m) {
  return m.c[0].v[0] * m.c[1].v[1] - m.c[1].v[0] * m.c[0].v[1];
}
EN_FN float en_det3(float a0, float a1, float a2, float b0, float b1, float b2, float c0, float c1, float c2) {
  // columns a, b, c
  return a0 * (b1 * c2 - c1 * b2) - a1 * (b0 * c2 - c0 * b2) + a2 * (b0 * c1 - c0 * b1);
}
EN_FN float en_determinant(const en_mat<float, 3, 3>& m) {
  const en_vec<float, 3>&a = m.c[0], &b = m.c[1], &c = m.c[2];
  return en_det3(a.v[0], a.v[1], a.v[2], b.v[0], b.v[1], b.v[2], c.v[0], c.v[1], c.v[2]);
}
EN_FN float en_determinant(const en_mat<float, 4, 4>& m) {
  // Expand along the first column: sum of (-1)^r m[0][r] * minor(r).
  float det = 0.0f;
  for (int r = 0; r < 4; ++r) {
    float x[3][3];  // columns 1..3 without row r
    for (int j = 1; j < 4; ++j)
      for (int i = 0, k = 0; i < 4; ++i)
        if (i != r) x[j - 1][k++] = m.c[j].v[i];
    float minor = en_det3(x[0][0], x[0][1], x[0][2], x[1][0], x[1][1], x[1][2], x[2][0], x[2][1], x[2][2]);
    float term = m.c[0].v[r] * minor;
    det = (r & 1) ? det - term : det + term;
  }
  return det;
}
