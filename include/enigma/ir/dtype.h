// The dtype table: the one place that knows every element type, its
// spellings, width, class and promotion rank.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace enigma {

// X(enum, metal name, short name, bits, is_float, is_signed, numpy name, rank)
// `rank` orders the promotion lattice (SEMANTICS 3): float beats integer,
// wider beats narrower, and at equal width unsigned beats signed.
#define ENIGMA_SCALAR_TYPES(X)                             \
  X(B1, "bool", "b1", 1, false, false, "bool", 0)          \
  X(I8, "char", "i8", 8, false, true, "int8", 1)           \
  X(U8, "uchar", "u8", 8, false, false, "uint8", 2)        \
  X(I16, "short", "i16", 16, false, true, "int16", 3)      \
  X(U16, "ushort", "u16", 16, false, false, "uint16", 4)   \
  X(I32, "int", "i32", 32, false, true, "int32", 5)        \
  X(U32, "uint", "u32", 32, false, false, "uint32", 6)     \
  X(I64, "long", "i64", 64, false, true, "int64", 7)       \
  X(U64, "ulong", "u64", 64, false, false, "uint64", 8)    \
  X(F16, "half", "f16", 16, true, true, "float16", 9)      \
  X(BF16, "bfloat", "bf16", 16, true, true, "bfloat16", 9) \
  X(F32, "float", "f32", 32, true, true, "float32", 10)

enum class Scalar : uint8_t {
#define ENIGMA_X(e, ...) e,
  ENIGMA_SCALAR_TYPES(ENIGMA_X)
#undef ENIGMA_X
};
inline constexpr int kNumScalars = 12;

struct ScalarInfo {
  Scalar scalar;
  const char* metal_name;  // also the trace dtype string
  const char* short_name;
  int bits;
  bool is_float;
  bool is_signed;
  const char* numpy_name;  // numpy dtype name (bf16: ml_dtypes.bfloat16)
  int rank;
};

const ScalarInfo& info(Scalar s);
inline int bytes_of(Scalar s) { return s == Scalar::B1 ? 1 : info(s).bits / 8; }
inline bool is_float(Scalar s) { return info(s).is_float; }
inline bool is_integer(Scalar s) { return !info(s).is_float && s != Scalar::B1; }
inline bool is_signed_int(Scalar s) { return is_integer(s) && info(s).is_signed; }
inline bool is_unsigned_int(Scalar s) { return is_integer(s) && !info(s).is_signed; }
// The integer of the same width with the other signedness (U32 <-> I32).
Scalar flip_signedness(Scalar s);
Scalar signed_of(Scalar s);
Scalar unsigned_of(Scalar s);
// Result of mixing two typed scalars in arithmetic (SEMANTICS 3).
Scalar promote(Scalar a, Scalar b);

// A value type: a scalar, a vector of 2-4 scalars, an 8x8 simdgroup matrix,
// or a small column-major matrix value (cols x rows).
struct DType {
  enum class Kind : uint8_t { Void, Scalar, Vector, SimdMatrix, Matrix };
  Kind kind = Kind::Void;
  Scalar elem = Scalar::F32;
  uint8_t lanes = 1;  // vectors: 2..4
  uint8_t rows = 0, cols = 0;

  static DType void_() { return {}; }
  static DType scalar(Scalar s) { return {Kind::Scalar, s, 1, 0, 0}; }
  static DType vector(Scalar s, int n) { return {Kind::Vector, s, static_cast<uint8_t>(n), 0, 0}; }
  static DType simd_matrix(Scalar s, int r, int c) {
    return {Kind::SimdMatrix, s, 1, static_cast<uint8_t>(r), static_cast<uint8_t>(c)};
  }
  // Metal's floatCxR / halfCxR: `cols` columns, each a vector of `rows`.
  static DType matrix(Scalar s, int cols, int rows) {
    return {Kind::Matrix, s, 1, static_cast<uint8_t>(rows), static_cast<uint8_t>(cols)};
  }

  bool is_void() const { return kind == Kind::Void; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_vector() const { return kind == Kind::Vector; }
  bool is_scalar_or_vector() const { return is_scalar() || is_vector(); }
  bool is_matrix() const { return kind == Kind::Matrix; }
  // The type of one column of a matrix.
  DType column() const { return vector(elem, rows); }
  bool is_float() const { return is_scalar_or_vector() && enigma::is_float(elem); }
  bool is_integer() const { return is_scalar_or_vector() && enigma::is_integer(elem); }
  bool is_bool() const { return is_scalar_or_vector() && elem == Scalar::B1; }
  int width() const { return is_vector() ? lanes : 1; }
  DType with_elem(Scalar s) const {
    DType d = *this;
    d.elem = s;
    return d;
  }
  int size_bytes() const;

  // Canonical trace spelling: "float", "vec<4,float>", "simdgroup_matrix<8,8,half>".
  std::string str() const;
  bool operator==(const DType& o) const {
    return kind == o.kind && elem == o.elem && lanes == o.lanes && rows == o.rows && cols == o.cols;
  }
  bool operator!=(const DType& o) const { return !(*this == o); }
};

// Parses every spelling users write: metal names, short names, aliases
// ("int32", "uint8", "bool", "i1"), "vec<N,elem>" and
// "simdgroup_matrix<R,C,elem>" and Metal's matrix names ("float4x4",
// "half2x3": columns x rows, float or half). Returns nullopt for anything else; callers
// turn that into an error naming the op (nothing silently becomes f32/i32).
std::optional<DType> parse_dtype(std::string_view text);
std::optional<Scalar> parse_scalar(std::string_view text);

}  // namespace enigma
