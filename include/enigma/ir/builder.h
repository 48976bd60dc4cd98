// The IR builder: what the Python tracer (or a C++ program) calls to build a
// kernel. It owns the typing rules of SEMANTICS section 3: literal typing,
// promotion with explicit conversions, and checks that raise KernelError
// naming the op, the dtypes and the user's source location.
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

// A Python literal before it is given a dtype (weakly typed, SEMANTICS 3).
struct Literal {
  enum class Kind : uint8_t { Int, UInt, Float, Bool };
  Kind kind = Kind::Int;
  int64_t i = 0;   // Int, Bool
  uint64_t u = 0;  // UInt (values >= 2^63)
  double f = 0.0;  // Float

  static Literal of_int(int64_t v) { return {.kind = Kind::Int, .i = v}; }
  static Literal of_uint(uint64_t v) { return {.kind = Kind::UInt, .u = v}; }
  static Literal of_float(double v) { return {.kind = Kind::Float, .f = v}; }
  static Literal of_bool(bool v) { return {.kind = Kind::Bool, .i = v}; }
  std::string str() const;
};

// An op argument: an SSA value or a literal.
struct Operand {
  ValueId value = kNoValue;
  Literal literal;
  Operand() = default;
  Operand(ValueId v) : value(v) {}    // NOLINT: implicit by design
  Operand(Literal l) : literal(l) {}  // NOLINT
  bool is_value() const { return value != kNoValue; }
};

class Builder {
 public:
  explicit Builder(std::string kernel_name);

  // Source location given to the ops built from now on.
  void set_location(const std::string& file, int line);
  const Kernel& kernel() const { return k_; }
  const DType& type_of(ValueId v) const { return k_.type_of(v); }
  void set_hint(ValueId v, const std::string& hint);

  // Parameters, declared before the body.
  int add_buffer_param(const std::string& name, DType elem);
  ValueId add_scalar_param(const std::string& name, DType type);

  // Values.
  ValueId constant(DType type, Const c);
  // A literal with its default dtype (int -> uint, float -> float, bool -> bool),
  // or converted to `as` when given.
  ValueId literal(const Literal& l, std::optional<DType> as = std::nullopt);
  ValueId thread_query(ThreadQuery q, int dim);

  // Arithmetic, bitwise, shifts (Add..Shr), unary (Neg, Not).
  ValueId binary(OpCode op, const Operand& a, const Operand& b);
  ValueId unary(OpCode op, const Operand& a);
  ValueId compare(CmpPred pred, const Operand& a, const Operand& b);
  ValueId select(const Operand& cond, const Operand& if_true, const Operand& if_false);
  ValueId convert(const Operand& a, DType to);
  ValueId bitcast(const Operand& a, DType to);

  // Indexed memory access by memory id: a buffer parameter's index, or a
  // threadgroup array's id (threadgroup_alloc).
  ValueId load(int64_t mem, const Operand& index);
  void store(int64_t mem, const Operand& index, const Operand& value);
  // Vector access to memory of scalars (buffer or threadgroup array): `width`
  // (2 or 4) consecutive elements from element `index`. The caller guarantees
  // index % width == 0 (the layout path proves it); the emitters rely on it.
  ValueId load_vec(int64_t mem, const Operand& index, int width);
  void store_vec(int64_t mem, const Operand& index, const Operand& value);

  // ---- cooperative execution (SEMANTICS 4) ----
  // Declares `threadgroup T name[size]` at kernel scope; returns its memory id.
  int64_t threadgroup_alloc(DType elem, uint64_t size, const std::string& name);
  void barrier(int64_t mem_flags, bool simdgroup = false);
  // Simd/quad reductions and scans (value), shuffles (value, lane).
  ValueId collective(OpCode op, const Operand& value, const Operand& lane = Operand());
  // Metal's vote/mask functions by name (ops.def's VOTE rows: simd_all,
  // simd_ballot, quad_is_first, ...); `pred` is a bool (ignored by the ones
  // that take none).
  ValueId vote(const std::string& name, const Operand& pred);
  // Atomic*: `values` is {} (load), {value}, or {expected, desired} (compare-exchange).
  ValueId atomic(OpCode op, int64_t mem, const Operand& index, const std::vector<Operand>& values,
                 MemoryOrder order = MemoryOrder::Relaxed, MemoryOrder failure = MemoryOrder::Relaxed);
  ValueId simd_matrix_load(int64_t mem, const Operand& origin, const Operand& elements_per_row, DType matrix,
                           bool transpose = false);
  void simd_matrix_store(ValueId matrix, int64_t mem, const Operand& origin, const Operand& elements_per_row,
                         bool transpose = false);
  ValueId simd_matrix_fill(const Operand& value, DType matrix);
  ValueId simd_matrix_mma(ValueId a, ValueId b, ValueId c);
  ValueId async_copy_1d(int64_t dst, const Operand& dst_offset, int64_t src, const Operand& src_offset,
                        const Operand& count);
  ValueId async_copy_2d(int64_t dst, const Operand& dst_offset, const Operand& dst_elements_per_row, int64_t src,
                        const Operand& src_offset, const Operand& src_elements_per_row, const Operand& tile_cols,
                        const Operand& tile_rows);
  void async_wait(const std::vector<ValueId>& events);

  // ---- the per-thread language (src/ir/lang.cpp) ----
  // A Math op of ops.def (sqrt, imin, dot, pack_..., transpose, ...): operands
  // typed by the op's operand classes. ExtractBits/InsertBits take `offset`
  // and `bits`, compile-time ints.
  ValueId math(OpCode op, const std::vector<Operand>& args, int offset = 0, int bits = 0);
  // A vector of 2-4 scalars; with `elem`, each is converted to it
  // (make_float4), else they promote to one dtype (make_vec).
  ValueId make_vec(const std::vector<Operand>& components, std::optional<Scalar> elem = std::nullopt);
  ValueId vec_extract(const Operand& v, int lane);
  // A floatCxR / halfCxR matrix from C column vectors of R lanes.
  ValueId make_matrix(const std::vector<Operand>& columns);
  ValueId matrix_column(const Operand& m, int col);
  // matrix * matrix, matrix * vector (column), vector (row) * matrix.
  ValueId matmul(const Operand& a, const Operand& b);
  // Metal function constant `index`, bound at dispatch.
  ValueId function_constant(DType type, int index);
  // buffer[index] where mask is true (no access otherwise), else `otherwise`.
  ValueId load_if(int64_t mem, const Operand& index, const Operand& mask, const Operand& otherwise);
  // A per-thread array of `size` elements, each set to `fill` here.
  int local_array(DType elem, int64_t size, const Operand& fill, const std::string& name);
  ValueId local_load(int array, const Operand& index);
  void local_store(int array, const Operand& index, const Operand& value);

  // for (iv = lo; step > 0 ? iv < hi : iv > hi; iv += step), carrying values.
  // Returns the body's block arguments: {iv, carried...}.
  std::vector<ValueId> begin_for(const Operand& lo, const Operand& hi, const Operand& step, DType iv_type,
                                 const std::vector<Operand>& inits);
  // Closes the innermost for; `yields` are the next iteration's carried
  // values (converted to the carried dtypes). Returns the loop's results.
  std::vector<ValueId> end_for(const std::vector<Operand>& yields);

  void begin_if(const Operand& cond);
  void begin_else();
  std::vector<ValueId> end_if(const std::vector<Operand>& yields = {});
  // Closes an if_ whose else-block is open and merges values assigned in its
  // branches (Python `if`/`else` and `a if c else b`): value i is then_values[i]
  // where the condition held, else_values[i] elsewhere, in their common dtype.
  // Each lives in a one-element per-thread array declared before the if, so
  // the IR's if keeps no results and every backend emits it unchanged.
  // `names` label the arrays and the errors.
  std::vector<ValueId> end_if_merge(const std::vector<Operand>& then_values, const std::vector<Operand>& else_values,
                                    const std::vector<std::string>& names);

  // while: the condition region sees the carried values; body receives them.
  std::vector<ValueId> begin_while(const std::vector<Operand>& inits);  // -> condition args
  std::vector<ValueId> while_body(const Operand& cond);                 // -> body args
  std::vector<ValueId> end_while(const std::vector<Operand>& yields);   // -> results

  // Number of ops recorded so far in the innermost open region.
  size_t current_region_size() const;
  // Kinds of the open regions from outermost to innermost ("for", "if", "else", ...).
  int depth() const { return static_cast<int>(stack_.size()); }
  // Control flow nests at most this deep (docs/semantics.md): deeper is a
  // KernelError at the user's line, so no recursive pass can overflow the stack.
  static constexpr int kMaxNestingDepth =
      200;  // under the 256 brackets that clang (and so Metal's compiler) accepts by default

  // Verifies and returns the kernel; the builder is then empty.
  Kernel finish();

  // Throws KernelError "<file>:<line>: kernel '<k>': <op>: <message>" at the current location.
  [[noreturn]] void fail(const std::string& op, const std::string& message) const;
  // Fails when opening one more region would exceed kMaxNestingDepth.
  void check_nesting(const char* opname) const;

 private:
  struct Open {
    Op* op;
    int region;        // which region of op is open
    const char* what;  // "for", "if", "else", "while condition", "while body"
  };
  Region& current();
  int add_param(const std::string& name, Param::Kind kind, DType type, const std::string& dtype_error);
  // The one path by which ops enter the kernel: appends `code` to region `in`
  // (the open one when null) at the current location, with a new result value
  // of `type` there (none when void) and the op's regions (fresh ids, no
  // arguments yet). The reference is valid until the region grows.
  Op& emit_op(OpCode code, DType type, std::vector<ValueId> operands, OpAttrs attrs = {}, Region* in = nullptr);
  // emit_op for an op without regions; returns its result (kNoValue if void).
  ValueId emit(OpCode code, DType type, std::vector<ValueId> operands, OpAttrs attrs = {});
  ValueId new_value(DType t, uint32_t region);
  ValueId use(const Operand& o, const char* op);  // literal -> default-typed constant
  ValueId coerce(const Operand& o, DType to, const char* op, const char* what);
  ValueId convert_value(ValueId v, DType to);
  DType literal_type_against(const Literal& l, DType partner) const;
  DType common_type(const Operand& a, const Operand& b, const char* op);
  ValueId component(OpCode code, const Operand& v, int index);
  void check_local(int array, const std::string& op) const;
  ValueId local_index_operand(int array, const Operand& index, const std::string& opname);
  void check_visible(ValueId v, const char* op) const;
  void check_int_fits(const Literal& l, DType t, const char* op) const;
  std::string memory_op_name(const char* what, int64_t mem) const;
  ValueId index_operand(const Operand& index, const std::string& opname);
  void check_vector_access(int64_t mem, int width, const std::string& opname) const;
  ValueId uint_operand(const Operand& o, const std::string& opname, const char* what);
  std::string async_copy_name(const char* base, int64_t dst, int64_t src) const;
  ValueId append_async_copy(OpCode code, int64_t dst, int64_t src, std::vector<ValueId> operands);
  void mark_written(int64_t mem);
  std::vector<ValueId> close_region_with_yield(const std::vector<Operand>& yields, const std::vector<DType>& types,
                                               const char* op);

  Kernel k_;
  uint32_t loc_ = 0;
  std::vector<Open> stack_;
  std::unordered_set<ValueId> async_events_;
};

}  // namespace enigma
