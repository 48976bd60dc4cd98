// How the C-family backends spell the per-thread language, for the generated
// op reference (docs/ops.md): an op's c_expr with each library call given a
// backend's prefix and the placeholders shown as a, b, c, T, A, B.
#pragma once

#include <string>

namespace enigma {

std::string spell_template(const char* c_expr, const std::string& library_prefix);

}  // namespace enigma
