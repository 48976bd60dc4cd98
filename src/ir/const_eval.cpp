#include "enigma/ir/const_eval.h"

#include "enigma/ir/lang.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace enigma {
namespace prelude {
#include "semantics/numbers.h"
#include "semantics/math_cpu.h"
#include "semantics/math.h"
}  // namespace prelude

namespace {

// Runs `f` with a value of the C++ type that holds scalar `t` in registers
// (float for f16/bf16, rounded after each op by `finish`).
template <class F>
auto with_type(Scalar t, F&& f) {
  switch (t) {
    case Scalar::B1: return f(bool{});
    case Scalar::I8: return f(int8_t{});
    case Scalar::U8: return f(uint8_t{});
    case Scalar::I16: return f(int16_t{});
    case Scalar::U16: return f(uint16_t{});
    case Scalar::I32: return f(int32_t{});
    case Scalar::U32: return f(uint32_t{});
    case Scalar::I64: return f(int64_t{});
    case Scalar::U64: return f(uint64_t{});
    case Scalar::F16:
    case Scalar::BF16:
    case Scalar::F32: return f(float{});
  }
  return f(float{});
}

template <class T>
T get(Const c) {
  if constexpr (std::is_floating_point_v<T>)
    return static_cast<T>(c.f);
  else if constexpr (std::is_same_v<T, bool>)
    return c.i != 0;
  else
    return static_cast<T>(c.i);
}

float round_to(Scalar t, float v) {
  if (t == Scalar::F16) return prelude::en_rh(v);
  if (t == Scalar::BF16) return prelude::en_rb(v);
  return v;
}

template <class T>
Const make(Scalar t, T v) {
  Const c;
  if constexpr (std::is_floating_point_v<T>)
    c.f = round_to(t, static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>)
    c.i = v ? 1 : 0;
  else
    c.i = static_cast<int64_t>(v);
  return c;
}

}  // namespace

Const normalize_const(Scalar t, Const c) {
  if (is_float(t)) {
    Const out;
    out.f = round_to(t, static_cast<float>(c.f));
    return out;
  }
  return with_type(t, [&](auto z) { return make(t, get<decltype(z)>(c)); });
}

Const convert_const(Const c, Scalar from, Scalar to) {
  return with_type(from, [&](auto zf) {
    using From = decltype(zf);
    From x = get<From>(c);
    return with_type(to, [&](auto zt) {
      using To = decltype(zt);
      return make(to, prelude::en_cvt<To, From>(x));
    });
  });
}

uint64_t const_bits(Scalar t, Const c) {
  switch (t) {
    case Scalar::F32: {
      float f = static_cast<float>(c.f);
      uint32_t b;
      std::memcpy(&b, &f, 4);
      return b;
    }
    case Scalar::F16: return prelude::en_f2h(static_cast<float>(c.f));
    case Scalar::BF16: return prelude::en_f2b(static_cast<float>(c.f));
    default: {
      int bits = info(t).bits;
      uint64_t raw = static_cast<uint64_t>(c.i);
      return bits >= 64 ? raw : raw & ((uint64_t{1} << bits) - 1);
    }
  }
}

Const const_from_bits(Scalar t, uint64_t bits) {
  Const c;
  switch (t) {
    case Scalar::F32: {
      uint32_t b = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &b, 4);
      c.f = f;
      return c;
    }
    case Scalar::F16: c.f = prelude::en_h2f(static_cast<uint16_t>(bits)); return c;
    case Scalar::BF16: c.f = prelude::en_b2f(static_cast<uint16_t>(bits)); return c;
    default: c.i = static_cast<int64_t>(bits); return normalize_const(t, c);
  }
}

Const bitcast_const(Const c, Scalar from, Scalar to) { return const_from_bits(to, const_bits(from, c)); }

std::optional<Const> fold_scalar_op(OpCode op, Scalar t, Const ca, Const cb) {
  return with_type(t, [&](auto z) -> std::optional<Const> {
    using T = decltype(z);
    T a = get<T>(ca), b = get<T>(cb);
    if constexpr (std::is_same_v<T, bool>) {
      switch (op) {
        case OpCode::And: return make(t, a && b);
        case OpCode::Or: return make(t, a || b);
        case OpCode::Xor: return make(t, a != b);
        case OpCode::Not: return make(t, !a);
        default: return std::nullopt;
      }
    } else {
      switch (op) {
        case OpCode::Add:
        case OpCode::Sub:
        case OpCode::Mul:
          if constexpr (std::is_integral_v<T>) {
            // Wrapping arithmetic without signed overflow: compute in an
            // unsigned type at least as wide as int.
            using U = std::make_unsigned_t<T>;
            using W = std::conditional_t<(sizeof(T) < 4), uint32_t, U>;
            W x = static_cast<W>(static_cast<U>(a)), y = static_cast<W>(static_cast<U>(b));
            W r = op == OpCode::Add ? W(x + y) : op == OpCode::Sub ? W(x - y) : W(x * y);
            return make(t, static_cast<T>(r));
          } else {
            return make(t, op == OpCode::Add ? a + b : op == OpCode::Sub ? a - b : a * b);
          }
        case OpCode::Div: return make(t, prelude::en_div(a, b));
        case OpCode::FloorDiv: return make(t, prelude::en_floordiv(a, b));
        case OpCode::Rem: return make(t, prelude::en_rem(a, b));
        case OpCode::Neg:
          if constexpr (std::is_integral_v<T>)
            return make(t, static_cast<T>(0 - static_cast<std::make_unsigned_t<T>>(a)));
          else
            return make(t, -a);
        default: break;
      }
      if constexpr (std::is_integral_v<T>) {
        switch (op) {
          case OpCode::And: return make(t, static_cast<T>(a & b));
          case OpCode::Or: return make(t, static_cast<T>(a | b));
          case OpCode::Xor: return make(t, static_cast<T>(a ^ b));
          case OpCode::Not: return make(t, static_cast<T>(~a));
          case OpCode::Shl: return make(t, prelude::en_shl(a, b));
          case OpCode::Shr: return make(t, prelude::en_shr(a, b));
          default: break;
        }
      }
      return std::nullopt;
    }
  });
}

bool fold_compare(CmpPred pred, Scalar t, Const ca, Const cb) {
  if (is_float(t)) {
    double a = ca.f, b = cb.f;
    switch (pred) {
      case CmpPred::Eq: return a == b;
      case CmpPred::Ne: return a != b;  // true when either is NaN
      case CmpPred::Lt:
      case CmpPred::Ult: return a < b;
      case CmpPred::Le:
      case CmpPred::Ule: return a <= b;
      case CmpPred::Gt:
      case CmpPred::Ugt: return a > b;
      case CmpPred::Ge:
      case CmpPred::Uge: return a >= b;
    }
    return false;
  }
  // Integers: signed predicates compare as signed of the width, u* as unsigned.
  int bits = t == Scalar::B1 ? 1 : info(t).bits;
  uint64_t mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  uint64_t ua = static_cast<uint64_t>(ca.i) & mask, ub = static_cast<uint64_t>(cb.i) & mask;
  auto sext = [&](uint64_t v) -> int64_t {
    if (bits >= 64 || bits == 1) return static_cast<int64_t>(v);
    uint64_t sign = uint64_t{1} << (bits - 1);
    return static_cast<int64_t>((v ^ sign) - sign);
  };
  int64_t sa = sext(ua), sb = sext(ub);
  switch (pred) {
    case CmpPred::Eq: return ua == ub;
    case CmpPred::Ne: return ua != ub;
    case CmpPred::Lt: return sa < sb;
    case CmpPred::Le: return sa <= sb;
    case CmpPred::Gt: return sa > sb;
    case CmpPred::Ge: return sa >= sb;
    case CmpPred::Ult: return ua < ub;
    case CmpPred::Ule: return ua <= ub;
    case CmpPred::Ugt: return ua > ub;
    case CmpPred::Uge: return ua >= ub;
  }
  return false;
}

std::optional<Const> fold_math(OpCode op, Scalar t, const std::vector<Const>& in, BitRange range) {
  using namespace prelude;
  if (in.empty() || in.size() > 3) return std::nullopt;
  if (is_float(t)) {
    float a = static_cast<float>(in[0].f);
    float b = in.size() > 1 ? static_cast<float>(in[1].f) : 0.0f;
    float c = in.size() > 2 ? static_cast<float>(in[2].f) : 0.0f;
    auto f = [&](float v) { return make(t, v); };
    auto p = [&](bool v) { return make(Scalar::B1, v); };
    switch (op) {
      case OpCode::Sqrt: return f(en_sqrt(a));
      case OpCode::Abs: return f(en_abs(a));
      case OpCode::Ceil: return f(en_ceil(a));
      case OpCode::Floor: return f(en_floor(a));
      case OpCode::Round: return f(en_round(a));
      case OpCode::Trunc: return f(en_trunc(a));
      case OpCode::Sign: return f(en_sign(a));
      case OpCode::Saturate: return f(en_saturate(a));
      case OpCode::Fract: return f(t == Scalar::F16 ? en_fract_h(a) : t == Scalar::BF16 ? en_fract_b(a) : en_fract(a));
      case OpCode::Rsqrt: return f(en_rsqrt(a));
      case OpCode::Exp: return f(en_exp(a));
      case OpCode::Exp2: return f(en_exp2(a));
      case OpCode::Log: return f(en_log(a));
      case OpCode::Log2: return f(en_log2(a));
      case OpCode::Log10: return f(en_log10(a));
      case OpCode::Sin: return f(en_sin(a));
      case OpCode::Cos: return f(en_cos(a));
      case OpCode::Tan: return f(en_tan(a));
      case OpCode::Asin: return f(en_asin(a));
      case OpCode::Acos: return f(en_acos(a));
      case OpCode::Atan: return f(en_atan(a));
      case OpCode::Sinh: return f(en_sinh(a));
      case OpCode::Cosh: return f(en_cosh(a));
      case OpCode::Tanh: return f(en_tanh(a));
      case OpCode::Asinh: return f(en_asinh(a));
      case OpCode::Acosh: return f(en_acosh(a));
      case OpCode::Atanh: return f(en_atanh(a));
      case OpCode::Expm1: return f(en_expm1(a));
      case OpCode::Log1p: return f(en_log1p(a));
      case OpCode::Fmin: return f(en_fmin(a, b));
      case OpCode::Fmax: return f(en_fmax(a, b));
      case OpCode::Pow: return f(en_pow(a, b));
      case OpCode::Fmod: return f(en_fmod(a, b));
      case OpCode::Atan2: return f(en_atan2(a, b));
      case OpCode::Step: return f(en_step(a, b));
      case OpCode::Copysign: return f(en_copysign(a, b));
      case OpCode::Clamp: return f(en_clamp(a, b, c));
      case OpCode::Fma: return f(en_fma(a, b, c));
      case OpCode::Mix: return f(en_mix(a, b, c));
      case OpCode::Smoothstep: return f(en_smoothstep(a, b, c));
      case OpCode::IsNan: return p(en_isnan(a));
      case OpCode::IsInf: return p(en_isinf(a));
      case OpCode::IsFinite: return p(en_isfinite(a));
      case OpCode::SignBit: return p(en_signbit(a));
      case OpCode::IsNormal: return p(t == Scalar::F16 ? en_isnormal_h(a) : en_isnormal(a));
      default: return std::nullopt;
    }
  }
  if (!is_integer(t)) return std::nullopt;
  return with_type(t, [&](auto z) -> std::optional<Const> {
    using T = decltype(z);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      T a = get<T>(in[0]);
      T b = in.size() > 1 ? get<T>(in[1]) : T(0);
      T c = in.size() > 2 ? get<T>(in[2]) : T(0);
      auto r = [&](T v) { return make(t, v); };
      unsigned off = static_cast<unsigned>(range.offset), bits = static_cast<unsigned>(range.bits);
      switch (op) {
        case OpCode::Abs: return r(en_abs(a));
        case OpCode::IMin: return r(en_min(a, b));
        case OpCode::IMax: return r(en_max(a, b));
        case OpCode::IClamp: return r(en_clamp(a, b, c));
        case OpCode::AbsDiff: return r(en_absdiff(a, b));
        case OpCode::AbsDiffUnary: return r(en_absdiff(a, T(0)));
        case OpCode::AddSat: return r(en_addsat(a, b));
        case OpCode::SubSat: return r(en_subsat(a, b));
        case OpCode::MulHi: return r(en_mulhi(a, b));
        case OpCode::Rotate: return r(en_rotate(a, b));
        case OpCode::MadSat: return r(en_madsat(a, b, c));
        case OpCode::Popcount: return r(en_popcount(a));
        case OpCode::Clz: return r(en_clz(a));
        case OpCode::Ctz: return r(en_ctz(a));
        case OpCode::ReverseBits: return r(en_reverse_bits(a));
        case OpCode::ExtractBits: return r(en_extract_bits(a, off, bits));
        case OpCode::InsertBits: return r(en_insert_bits(a, b, off, bits));
        default: return std::nullopt;
      }
    } else {
      return std::nullopt;
    }
  });
}

}  // namespace enigma
