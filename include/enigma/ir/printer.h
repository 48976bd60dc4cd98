#pragma once

#include <string>

#include "enigma/ir/ir.h"

namespace enigma {

// The textual IR (what dump_ir prints and CompiledKernel.ir_source holds).
std::string print(const Kernel& k);
// A value's printed name: "%<hint>_<id>" or "%<id>".
std::string value_name(const Kernel& k, ValueId v);

}  // namespace enigma
