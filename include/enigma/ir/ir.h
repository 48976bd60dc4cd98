// The Enigma IR: typed SSA values in structured regions.
//
// A Kernel owns a body Region. A Region is a list of Ops plus block
// arguments (loop induction variable, loop-carried values). Ops that own
// regions (For, If, While) end each region with a terminator (Yield or
// Condition). A value may be used only inside the region that defines it or
// regions nested in it; the builder and verifier enforce this.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "enigma/ir/dtype.h"

namespace enigma {

enum class OpCode : uint8_t {
#define OP(e, ...) e,
#include "enigma/ir/ops.def"
#undef OP
};

enum class OpCategory : uint8_t {
  Constant,
  Param,
  ThreadQuery,
  Arith,
  Bitwise,
  Shift,
  Negate,
  BitNot,
  Compare,
  Select,
  Convert,
  Bitcast,
  Load,
  Store,
  For,
  If,
  While,
  Terminator,
  // the per-thread language (ops.def, second section)
  Math,
  MatMul,
  VecMake,
  VecExtract,
  MatMake,
  MatColumn,
  FuncConst,
  LoadIf,
  LocalAlloc,
  LocalLoad,
  LocalStore,
  // cooperative execution
  Barrier,
  GroupReduce,
  GroupScan,
  GroupShuffle,
  Atomic,
  MatrixLoad,
  MatrixStore,
  MatrixFill,
  MatrixMma,
  AsyncCopy,
  AsyncWait
};

enum class OpEffect : uint8_t { Pure, Reads, Writes };

struct OpInfo {
  OpCode code;
  const char* name;
  OpCategory category;
  int num_operands;  // -1: variadic
  int num_regions;
  OpEffect effect;
  bool pure;  // effect == Pure
  const char* c_expr;
  // OPX rows only (ops.def): operand classes, result rule, tolerance; "" otherwise.
  const char* operand_classes;
  const char* result_rule;
  const char* tolerance;
};
const OpInfo& info(OpCode code);
int num_opcodes();

// Comparison predicates. Signed predicates compare integers as signed of the
// operands' width (even unsigned ones), the u-variants as unsigned; floats use
// ordered predicates except Ne (true when either side is NaN). SEMANTICS 3.
#define ENIGMA_CMP_PREDICATES(X) \
  X(Eq, "eq")                    \
  X(Ne, "ne") X(Lt, "lt") X(Le, "le") X(Gt, "gt") X(Ge, "ge") X(Ult, "ult") X(Ule, "ule") X(Ugt, "ugt") X(Uge, "uge")
enum class CmpPred : uint8_t {
#define ENIGMA_X(e, s) e,
  ENIGMA_CMP_PREDICATES(ENIGMA_X)
#undef ENIGMA_X
};
const char* name(CmpPred p);
bool parse_cmp_pred(std::string_view s, CmpPred* out);

// Thread/grid queries (reference section 7). `vector` queries take a dim.
#define ENIGMA_THREAD_QUERIES(X)                                          \
  X(ThreadPositionInGrid, "thread_position_in_grid", true)                \
  X(ThreadPositionInThreadgroup, "thread_position_in_threadgroup", true)  \
  X(ThreadgroupPositionInGrid, "threadgroup_position_in_grid", true)      \
  X(ThreadsPerThreadgroup, "threads_per_threadgroup", true)               \
  X(ThreadsPerGrid, "threads_per_grid", true)                             \
  X(ThreadgroupsPerGrid, "threadgroups_per_grid", true)                   \
  X(GridSize, "grid_size", true)                                          \
  X(ThreadIndexInThreadgroup, "thread_index_in_threadgroup", false)       \
  X(ThreadIndexInSimdgroup, "thread_index_in_simdgroup", false)           \
  X(SimdgroupIndexInThreadgroup, "simdgroup_index_in_threadgroup", false) \
  X(ThreadsPerSimdgroup, "threads_per_simdgroup", false)                  \
  X(SimdgroupsPerThreadgroup, "simdgroups_per_threadgroup", false)
enum class ThreadQuery : uint8_t {
#define ENIGMA_X(e, s, v) e,
  ENIGMA_THREAD_QUERIES(ENIGMA_X)
#undef ENIGMA_X
};
inline constexpr int kNumThreadQueries = 12;
const char* name(ThreadQuery q);
bool has_dim(ThreadQuery q);
bool parse_thread_query(std::string_view s, ThreadQuery* out);

// A compile-time constant. Integers (and bools) live in `i` (sign- or
// zero-extended to 64 bits as their dtype dictates); floats in `f`, already
// rounded to their dtype's precision.
struct Const {
  int64_t i = 0;
  double f = 0.0;
};

using ValueId = uint32_t;
inline constexpr ValueId kNoValue = ~0u;

struct Location {
  std::string file;
  int line = 0;
  std::string str() const { return file.empty() ? std::string() : file + ":" + std::to_string(line); }
};

struct Op;

struct Region {
  uint32_t id = 0;
  std::vector<ValueId> args;
  std::vector<Op> ops;
};

// barrier(mem_flags=...): the reference's names and values.
enum MemFlags : int64_t { kMemNone = 0, kMemDevice = 1, kMemThreadgroup = 2, kMemTexture = 4 };
bool parse_mem_flags(std::string_view s, int64_t* out);
std::string mem_flags_name(int64_t flags);
bool valid_mem_flags(int64_t flags);  // one of the values above

// Atomic memory orders (reference: relaxed 0 .. acq_rel 3; seq_cst added).
enum class MemoryOrder : uint8_t { Relaxed, Acquire, Release, AcqRel, SeqCst };
bool parse_memory_order(std::string_view s, MemoryOrder* out);
const char* name(MemoryOrder o);

// ExtractBits / InsertBits: `bits` bits from bit `offset`, both compile-time.
struct BitRange {
  int offset = 0;
  int bits = 0;
};

// The kind of compile-time attribute an op carries; its category decides
// (attr_kind in ir.cpp), ops.def names each op's attribute.
enum class AttrKind : uint8_t {
  None,
  ParamIndex,       // Param: param_index()
  Query,            // ThreadQuery: query(), query_dim()
  Predicate,        // Cmp: predicate()
  Memory,           // Load, Store, LoadIf: memory()
  Atomic,           // Atomic*: memory(), atomic_order(), atomic_failure_order()
  Matrix,           // SimdMatrixLoad/Store: memory(), transposed()
  Copy,             // AsyncCopy*: copy_destination() (= memory()), copy_source()
  MemFlags,         // Barrier, SimdBarrier: mem_flags()
  BitRange,         // ExtractBits, InsertBits: bit_range()
  Component,        // VecExtract (lane), MatColumn (column): component()
  LocalArray,       // LocalAlloc/Load/Store: local_array()
  FunctionConstant  // FuncConst: function_constant_index()
};
AttrKind attr_kind(OpCode code);

// An op's compile-time attributes, typed: one factory per kind builds them,
// named accessors read them (Op inherits these: op.atomic_order()). Their
// encoding lives here only; the verifier checks each op's attributes
// against its kind (check below, plus the kernel-dependent checks).
class OpAttrs {
 public:
  OpAttrs() = default;
  static OpAttrs of_param(int index) { return OpAttrs(index); }
  static OpAttrs of_query(ThreadQuery q, int dim) { return OpAttrs(static_cast<int64_t>(q), 0, dim); }
  static OpAttrs of_predicate(CmpPred p) { return OpAttrs(static_cast<int64_t>(p)); }
  static OpAttrs of_memory(int64_t mem) { return OpAttrs(mem); }
  static OpAttrs of_atomic(int64_t mem, MemoryOrder order, MemoryOrder failure) {
    return OpAttrs(mem, static_cast<int64_t>(order) | (static_cast<int64_t>(failure) << 4));
  }
  static OpAttrs of_matrix(int64_t mem, bool transpose) { return OpAttrs(mem, transpose ? 1 : 0); }
  static OpAttrs of_copy(int64_t dst, int64_t src) { return OpAttrs(dst, src); }
  static OpAttrs of_mem_flags(int64_t flags) { return OpAttrs(0, flags); }
  static OpAttrs of_bit_range(BitRange r) { return OpAttrs(int64_t(r.offset) | (int64_t(r.bits) << 32)); }
  static OpAttrs of_component(int index) { return OpAttrs(index); }
  static OpAttrs of_local_array(int array) { return OpAttrs(array); }
  static OpAttrs of_function_constant(int index) { return OpAttrs(index); }

  int param_index() const { return static_cast<int>(a_); }
  ThreadQuery query() const { return static_cast<ThreadQuery>(a_); }
  int query_dim() const { return dim_; }  // 0..2; 0 for a query without one
  CmpPred predicate() const { return static_cast<CmpPred>(a_); }
  // The memory accessed: >= 0 a buffer parameter, < 0 a threadgroup array.
  int64_t memory() const { return a_; }
  MemoryOrder atomic_order() const { return static_cast<MemoryOrder>(b_ & 15); }
  MemoryOrder atomic_failure_order() const { return static_cast<MemoryOrder>((b_ >> 4) & 15); }
  bool transposed() const { return b_ != 0; }
  int64_t copy_destination() const { return a_; }
  int64_t copy_source() const { return b_; }
  int64_t mem_flags() const { return b_; }
  BitRange bit_range() const { return {static_cast<int>(a_ & 0xffffffff), static_cast<int>(a_ >> 32)}; }
  int component() const { return static_cast<int>(a_); }
  int local_array() const { return static_cast<int>(a_); }
  int function_constant_index() const { return static_cast<int>(a_); }

  // Empty when these attributes are well formed for an op `code`, else why not.
  std::string check(OpCode code) const;
  const OpAttrs& attrs() const { return *this; }
  void set_attrs(const OpAttrs& a) { *this = a; }
  // Ops that agree on everything else and on these may be merged (CSE).
  auto operator<=>(const OpAttrs&) const = default;

 private:
  explicit OpAttrs(int64_t a, int64_t b = 0, int dim = 0) : a_(a), b_(b), dim_(dim) {}
  int64_t a_ = 0;
  int64_t b_ = 0;
  int dim_ = 0;
};

struct Op : OpAttrs {
  OpCode code{};
  DType type;  // type of the single result; void for none / multi
  std::vector<ValueId> operands;
  std::vector<ValueId> results;
  std::vector<Region> regions;
  Const value;       // Constant
  uint32_t loc = 0;  // index into Kernel::locations (0 = unknown)

  const OpInfo& info() const { return enigma::info(code); }
  ValueId result() const { return results.empty() ? kNoValue : results[0]; }
};

// A per-thread array (register_tensor): `size` elements of `elem`.
struct LocalArray {
  DType elem;
  int64_t size = 0;
  std::string name;
  uint32_t region = 0;  // where it is declared; accesses must be inside
};

// A Metal function constant the kernel reads (function_constant(dtype, index)).
struct FunctionConstant {
  int index = 0;
  DType type;
};

struct ValueInfo {
  DType type;
  std::string hint;     // the user's name for it, when known
  uint32_t region = 0;  // id of the defining region
};

// A kernel parameter: a device buffer (pointer to `type`) or a by-value scalar.
struct Param {
  enum class Kind : uint8_t { Buffer, Scalar };
  std::string name;
  Kind kind = Kind::Buffer;
  DType type;
  bool written = false;  // some store targets it (filled by analysis)
};

// A threadgroup array: shared by the threads of one threadgroup, alive
// while the group runs. Memory ops name it by memory id -1 - index.
struct ThreadgroupArray {
  std::string name;
  DType type;
  uint64_t size = 0;  // elements
};

inline bool is_threadgroup_memory(int64_t mem) { return mem < 0; }
inline int64_t threadgroup_memory_id(size_t index) { return -1 - static_cast<int64_t>(index); }
inline size_t threadgroup_array_index(int64_t mem) { return static_cast<size_t>(-1 - mem); }

struct Kernel {
  std::string name;
  std::vector<Param> params;
  std::vector<ThreadgroupArray> tg_arrays;
  Region body;
  std::vector<ValueInfo> values;
  std::vector<Location> locations{Location{}};
  uint32_t next_region_id = 1;
  std::vector<LocalArray> locals;
  std::vector<FunctionConstant> function_constants;  // as declared, whether used or not

  const DType& type_of(ValueId v) const { return values.at(v).type; }
  const Location& location(const Op& op) const { return locations.at(op.loc); }
  int num_buffer_params() const;
  int num_scalar_params() const;
  // Memory ids: a buffer parameter (>= 0) or a threadgroup array (< 0).
  bool valid_memory(int64_t mem) const;
  const std::string& memory_name(int64_t mem) const;
  const DType& memory_type(int64_t mem) const;
  // Bytes of threadgroup memory one group needs (each array 16-byte aligned).
  uint64_t threadgroup_memory_bytes() const;
};

// What a collective (simd/quad) op computes.
struct CollectiveInfo {
  enum class Kind : uint8_t {
    Sum,
    Product,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shuffle,
    ShuffleUp,
    ShuffleDown,
    ShuffleXor,
    Broadcast
  };
  Kind kind = Kind::Sum;
  int width = 32;  // lanes: 32 (simdgroup) or 4 (quad)
  bool scan = false;
  bool inclusive = false;  // scans
};
CollectiveInfo collective_info(OpCode code);

// Ops executed by a whole threadgroup or simdgroup together: barriers,
// simd/quad ops, simdgroup matrix ops, async copies and waits.
bool is_sync(const Op& op);
// True when op is a sync op or owns a region that (transitively) holds one.
bool contains_sync(const Op& op);

// Walks every op of a region tree in program order (pre-order).
template <class F>
void walk(const Region& r, F&& f) {
  for (const Op& op : r.ops) {
    f(op);
    for (const Region& sub : op.regions) walk(sub, f);
  }
}
template <class F>
void walk(Region& r, F&& f) {
  for (Op& op : r.ops) {
    f(op);
    for (Region& sub : op.regions) walk(sub, f);
  }
}

}  // namespace enigma
