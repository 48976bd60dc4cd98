// Exact evaluation of scalar ops on constants, with the same semantics as the
// generated code (the CPU prelude is the single definition of Metal's
// undefined cases). Used by the builder for literals and by constant folding.
#pragma once

#include <optional>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

// Canonical form of a constant of scalar type `t` (ints wrapped to width,
// floats rounded to the type's precision).
Const normalize_const(Scalar t, Const c);
// metal_cast semantics (saturating float -> int, NaN -> 0).
Const convert_const(Const c, Scalar from, Scalar to);
// as_type semantics; the widths must match.
Const bitcast_const(Const c, Scalar from, Scalar to);
// Arith/Bitwise/Shift/Negate/BitNot ops on operands of scalar type `t`.
std::optional<Const> fold_scalar_op(OpCode op, Scalar t, Const a, Const b = {});
bool fold_compare(CmpPred pred, Scalar t, Const a, Const b);
// A Math op (ops.def's second section) on scalar constants of type `t`, with
// the generated code's semantics; nullopt for ops it does not fold.
std::optional<Const> fold_math(OpCode op, Scalar t, const std::vector<Const>& in, BitRange range = {});
// Bit pattern of a constant as stored in memory (little-endian, low bytes).
uint64_t const_bits(Scalar t, Const c);
Const const_from_bits(Scalar t, uint64_t bits);

}  // namespace enigma
