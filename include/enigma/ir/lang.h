// Typing of the per-thread language: the ops of ops.def's OPX section
// (float and integer math, geometry, packing, vectors, matrices). The
// operand classes and result rules are read from the op table, so the
// builder, the verifier and the generated reference (docs/ops.md) agree.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

// The operand classes of an OPX row ("F,F" -> {"F", "F"}).
std::vector<std::string> operand_classes(OpCode op);

// The result type of a Math/MatMul op whose operands already have their final
// types (what the builder produced), or nullopt with `why` set.
// `range` is ExtractBits/InsertBits's bit range (ignored by the other ops).
std::optional<DType> lang_result_type(OpCode op, const std::vector<DType>& operands, BitRange range, std::string* why);

// Largest per-thread array (register_tensor), in bytes: it lives on the
// thread's stack on the CPU and in registers or thread memory on GPUs.
inline constexpr int64_t kMaxLocalArrayBytes = 64 * 1024;

}  // namespace enigma
