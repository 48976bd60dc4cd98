#include "enigma/codegen/spelling.h"

#include "enigma/backend.h"

namespace enigma {

const std::vector<BackendSpelling>& float_register_spellings() {
  static const std::vector<BackendSpelling> rows = {
      {"fract", Scalar::F16, "en_fract_h", "rounded to half, then kept below 1"},
      {"fract", Scalar::BF16, "en_fract_b", "rounded to bfloat, then kept below 1"},
      {"isnormal", Scalar::F16, "en_isnormal_h", "half's normal range starts at 2^-14"},
  };
  return rows;
}

const std::vector<SpellingException>& spelling_exceptions() {
  static const std::vector<SpellingException> table = [] {
    std::vector<SpellingException> rows;
    for (const Backend* b : backends())
      for (const BackendSpelling& s : b->spellings) rows.push_back({b->name, s.function, s.elem, s.spelling, s.why});
    return rows;
  }();
  return table;
}

const char* spelling_exception(const std::string& backend, const std::string& function, Scalar elem) {
  for (const SpellingException& e : spelling_exceptions())
    if (backend == e.backend && function == e.function && elem == e.elem) return e.spelling;
  return nullptr;
}

}  // namespace enigma
