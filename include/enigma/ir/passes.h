#pragma once

#include <utility>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

// Replaces pure ops whose operands are all constants by constants (with the
// backends' exact semantics), and selects with a constant condition by the
// chosen value. Returns the number of ops folded.
int fold_constants(Kernel& k);
// Merges identical pure ops; an op in a nested region reuses an equal op of
// an enclosing region. Returns the number of ops removed.
int eliminate_common_subexpressions(Kernel& k);
// Deletes unused ops without side effects (pure ops and loads), and empty
// result-less ifs.
int eliminate_dead_code(Kernel& k);
// fold, CSE, DCE to a fixed point, verifying after each round.
void optimize(Kernel& k);
// Replaces every function_constant op by a constant of its value (by Metal
// function-constant index; values already converted to the declared dtype).
// Throws KernelError naming the first constant without a value.
void specialize_function_constants(Kernel& k, const std::vector<std::pair<int, Const>>& values);

}  // namespace enigma
