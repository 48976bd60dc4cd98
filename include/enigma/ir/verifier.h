#pragma once

#include "enigma/ir/ir.h"

namespace enigma {

// Checks the structural and type invariants of a kernel; throws KernelError
// "<file>:<line>: kernel '<k>': invalid IR: <op>: <problem>" on the first
// violation. Run after building and after every pass.
void verify(const Kernel& k);

}  // namespace enigma
