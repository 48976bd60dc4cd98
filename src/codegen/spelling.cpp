#include "enigma/codegen/spelling.h"

namespace enigma {

const std::vector<SpellingException>& spelling_exceptions() {
  static const std::vector<SpellingException> table = {
      // The CPU holds half/bfloat in float registers.
      {"cpu", "fract", Scalar::F16, "en_fract_h", "rounded to half, then kept below 1"},
      {"cpu", "fract", Scalar::BF16, "en_fract_b", "rounded to bfloat, then kept below 1"},
      {"cpu", "isnormal", Scalar::F16, "en_isnormal_h", "half's normal range starts at 2^-14"},
      // CUDA holds half/bfloat in float registers, as the CPU does.
      {"cuda", "fract", Scalar::F16, "en_fract_h", "rounded to half, then kept below 1"},
      {"cuda", "fract", Scalar::BF16, "en_fract_b", "rounded to bfloat, then kept below 1"},
      {"cuda", "isnormal", Scalar::F16, "en_isnormal_h", "half's normal range starts at 2^-14"},
      // MSL computes half/bfloat math in float and rounds once, except:
      {"metal", "fract", Scalar::F16, "en_fract_h", "a helper: fract in float, kept below 1 after rounding"},
      {"metal", "fract", Scalar::BF16, "en_fract_b", "a helper: fract in float, kept below 1 after rounding"},
      {"metal", "isnormal", Scalar::F16, "metal::isnormal", "on the half itself: float's normal range differs"},
      // Metal's library has no expm1/log1p: helpers correct exp/log (Kahan).
      {"metal", "expm1", Scalar::F32, "en_expm1", "a helper: (exp(x) - 1) * x / log(exp(x)), x where exp(x) == 1"},
      {"metal", "log1p", Scalar::F32, "en_log1p", "a helper: log(1 + x) * x / ((1 + x) - 1), x where 1 + x == 1"},
  };
  return table;
}

const char* spelling_exception(const std::string& backend, const std::string& function, Scalar elem) {
  for (const SpellingException& e : spelling_exceptions())
    if (backend == e.backend && function == e.function && elem == e.elem) return e.spelling;
  return nullptr;
}

}  // namespace enigma
