#include "enigma/ir/dtype.h"

#include <array>
#include <cctype>
#include <string>
#include <utility>

namespace enigma {

namespace {
constexpr std::array<ScalarInfo, kNumScalars> kScalars = {{
#define ENIGMA_X(e, metal, short_, bits, flt, sgn, np, rank) {Scalar::e, metal, short_, bits, flt, sgn, np, rank},
    ENIGMA_SCALAR_TYPES(ENIGMA_X)
#undef ENIGMA_X
}};

// Spellings accepted besides the metal and short names (reference 2.3).
constexpr std::pair<const char*, Scalar> kAliases[] = {
    {"i1", Scalar::B1},      {"int8", Scalar::I8},     {"uint8", Scalar::U8},    {"int16", Scalar::I16},
    {"uint16", Scalar::U16}, {"int32", Scalar::I32},   {"uint32", Scalar::U32},  {"int64", Scalar::I64},
    {"uint64", Scalar::U64}, {"float32", Scalar::F32}, {"float16", Scalar::F16}, {"bfloat16", Scalar::BF16},
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool parse_small_int(std::string_view s, int* out) {
  s = trim(s);
  if (s.empty() || s.size() > 2) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}
}  // namespace

const ScalarInfo& info(Scalar s) { return kScalars[static_cast<int>(s)]; }

Scalar signed_of(Scalar s) {
  switch (s) {
    case Scalar::U8: return Scalar::I8;
    case Scalar::U16: return Scalar::I16;
    case Scalar::U32: return Scalar::I32;
    case Scalar::U64: return Scalar::I64;
    default: return s;
  }
}

Scalar unsigned_of(Scalar s) {
  switch (s) {
    case Scalar::I8: return Scalar::U8;
    case Scalar::I16: return Scalar::U16;
    case Scalar::I32: return Scalar::U32;
    case Scalar::I64: return Scalar::U64;
    default: return s;
  }
}

Scalar flip_signedness(Scalar s) { return is_signed_int(s) ? unsigned_of(s) : signed_of(s); }

Scalar promote(Scalar a, Scalar b) {
  if (a == b) return a;
  // f16 and bf16 share a rank but neither holds the other: meet at f32.
  if ((a == Scalar::F16 && b == Scalar::BF16) || (a == Scalar::BF16 && b == Scalar::F16)) return Scalar::F32;
  return info(a).rank >= info(b).rank ? a : b;
}

int DType::size_bytes() const {
  switch (kind) {
    case Kind::Void: return 0;
    case Kind::Scalar: return bytes_of(elem);
    case Kind::Vector: return bytes_of(elem) * (lanes == 3 ? 4 : lanes);  // vec3 is padded like Metal's
    case Kind::SimdMatrix: return bytes_of(elem) * rows * cols;
    case Kind::Matrix: return column().size_bytes() * cols;  // columns are padded vectors, as in Metal
  }
  return 0;
}

std::string DType::str() const {
  switch (kind) {
    case Kind::Void: return "void";
    case Kind::Scalar: return info(elem).metal_name;
    case Kind::Vector: return "vec<" + std::to_string(lanes) + "," + info(elem).metal_name + ">";
    case Kind::SimdMatrix:
      return "simdgroup_matrix<" + std::to_string(rows) + "," + std::to_string(cols) + "," + info(elem).metal_name +
             ">";
    case Kind::Matrix: return std::string(info(elem).metal_name) + std::to_string(cols) + "x" + std::to_string(rows);
  }
  return "?";
}

std::optional<Scalar> parse_scalar(std::string_view text) {
  text = trim(text);
  for (const ScalarInfo& s : kScalars) {
    if (text == s.metal_name || text == s.short_name) return s.scalar;
  }
  for (const auto& [alias, scalar] : kAliases) {
    if (text == alias) return scalar;
  }
  return std::nullopt;
}

std::optional<DType> parse_dtype(std::string_view text) {
  text = trim(text);
  if (auto s = parse_scalar(text)) return DType::scalar(*s);
  auto inside = [&](std::string_view prefix) -> std::optional<std::string_view> {
    if (text.size() > prefix.size() + 1 && text.substr(0, prefix.size()) == prefix && text.back() == '>')
      return text.substr(prefix.size(), text.size() - prefix.size() - 1);
    return std::nullopt;
  };
  if (auto body = inside("vec<")) {
    size_t comma = body->find(',');
    int n = 0;
    if (comma == std::string_view::npos || !parse_small_int(body->substr(0, comma), &n) || n < 2 || n > 4)
      return std::nullopt;
    auto e = parse_scalar(body->substr(comma + 1));
    if (!e) return std::nullopt;
    return DType::vector(*e, n);
  }
  // floatCxR / halfCxR
  for (Scalar e : {Scalar::F32, Scalar::F16}) {
    std::string_view n = info(e).metal_name;
    if (text.size() == n.size() + 3 && text.substr(0, n.size()) == n && text[n.size() + 1] == 'x') {
      int c = text[n.size()] - '0', r = text[n.size() + 2] - '0';
      if (c >= 2 && c <= 4 && r >= 2 && r <= 4) return DType::matrix(e, c, r);
      return std::nullopt;
    }
  }
  if (auto body = inside("simdgroup_matrix<")) {
    size_t c1 = body->find(',');
    size_t c2 = c1 == std::string_view::npos ? c1 : body->find(',', c1 + 1);
    int r = 0, c = 0;
    if (c2 == std::string_view::npos || !parse_small_int(body->substr(0, c1), &r) ||
        !parse_small_int(body->substr(c1 + 1, c2 - c1 - 1), &c) || r != 8 || c != 8)
      return std::nullopt;
    auto e = parse_scalar(body->substr(c2 + 1));
    if (!e || (*e != Scalar::F32 && *e != Scalar::F16 && *e != Scalar::BF16)) return std::nullopt;
    return DType::simd_matrix(*e, r, c);
  }
  return std::nullopt;
}

}  // namespace enigma
