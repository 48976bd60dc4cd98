// How the C-family backends spell the per-thread language. The op table's
// c_expr is Metal's spelling; each backend qualifies its library calls
// (metal::sqrt, en_sqrt) and lists in its descriptor (enigma/backend.h) the
// few functions it spells another way for an element type. The emitters and
// docs/ops.md read the table gathered from them.
#pragma once

#include <string>
#include <vector>

#include "enigma/ir/dtype.h"

namespace enigma {

// One row of a backend's descriptor.
struct BackendSpelling {
  const char* function;  // Metal's name, as in the op's c_expr
  Scalar elem;           // element type of the op's first operand
  const char* spelling;  // the backend's function
  const char* why;
};
// The rows of backends that hold half/bfloat in float registers (CPU, CUDA).
const std::vector<BackendSpelling>& float_register_spellings();

struct SpellingException {
  const char* backend;   // "cpu", "metal"
  const char* function;  // Metal's name, as in the op's c_expr
  Scalar elem;           // element type of the op's first operand
  const char* spelling;  // the backend's function
  const char* why;
};
// Every backend's rows, by backend name.
const std::vector<SpellingException>& spelling_exceptions();
// The backend's spelling of `function` for operands of `elem`, or nullptr.
const char* spelling_exception(const std::string& backend, const std::string& function, Scalar elem);

// An op's c_expr with each library call given `library_prefix` and the
// placeholders shown as a, b, c, T, A, B (for docs/ops.md).
std::string spell_template(const char* c_expr, const std::string& library_prefix);

}  // namespace enigma
