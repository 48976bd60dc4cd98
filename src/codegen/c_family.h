// The shared printer of the C-family backends (MSL, CUDA, C++): names,
// expressions from the op table's c_expr, structured control flow. Each
// backend subclasses it to spell types, memory, queries and the kernel frame.
#pragma once

#include <array>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

class CFamilyEmitter {
 public:
  explicit CFamilyEmitter(const Kernel& k);
  virtual ~CFamilyEmitter() = default;

 protected:
  // ---- backend hooks ----
  virtual std::string type(const DType& t) const = 0;  // type of a value in registers
  virtual std::string constant(const Op& op) const = 0;
  virtual std::string query(ThreadQuery q, int dim) = 0;
  virtual std::string load(const Op& op) = 0;
  virtual void store(const Op& op) = 0;
  virtual std::string convert(const DType& from, const DType& to, const std::string& x) = 0;
  virtual std::string bitcast(const DType& from, const DType& to, const std::string& x) = 0;
  // Names a helper (en_div, ...) for operands of dtype t, making sure the
  // backend defines it; default: the name itself (templates in the prelude).
  virtual std::string helper(const std::string& name, const DType& t) { return name; }
  // Post-processes an arithmetic result (rounding of f16 held in float,
  // truncation of narrow integers that C promoted to int).
  virtual std::string finish(const DType& t, const std::string& expr) const;
  // Float remainder / floor division spellings.
  virtual std::string float_floordiv(const DType& t, const std::string& a, const std::string& b) = 0;
  virtual std::string float_rem(const DType& t, const std::string& a, const std::string& b) = 0;
  // Ops a backend prints itself (atomics, collectives, ...): returns true
  // when it emitted `op`.
  virtual bool special(const Op& op) { return false; }

  // ---- the per-thread language (ops.def's second section) ----
  // Whether the backend defines the language's library (CPU: en_* from
  // semantics/math.h; MSL: metal::); until it does, its ops are an error.
  virtual bool supports_language() const { return false; }
  // An op of the table spelled from its c_expr: each call is qualified by
  // library_function, {T} is the result type, {A}/{B} the attributes.
  virtual std::string lang_expr(const Op& op, const std::vector<std::string>& args);
  // This backend's name for Metal library function `fn` used by `op`.
  virtual std::string library_function(const std::string& fn, const Op& op) { return "en_" + fn; }
  // select() with a vector condition.
  virtual std::string vector_select(const std::string& c, const std::string& t, const std::string& f) {
    return "en_select(" + c + ", " + t + ", " + f + ")";
  }
  // Backends that support them override these.
  virtual std::string function_constant(const Op& op);
  virtual std::string load_if(const Op& op);
  virtual void local_alloc(const Op& op);
  virtual std::string local_load(const Op& op);
  virtual void local_store(const Op& op);
  // The C name of per-thread array `i`, and its element index: a constant
  // stays as is, anything else is clamped into the array.
  std::string local_name(int64_t i) const;
  // LocalAlloc: declares the array (when `declare`; elements of `elem_type`)
  // and sets each element to operand 0 in a loop over `index_type en_k`
  // (bound: the size followed by `size_suffix`); `element` spells element
  // en_k when the array is not a plain C array.
  void fill_local_array(const Op& op, const std::string& elem_type, const std::string& index_type,
                        const std::string& size_suffix, bool declare = true, std::string element = "");
  std::string local_index(const Op& op, const std::string& clamp_fn);
  // The constant op defining `v`, if any.
  const Op* constant_def(ValueId v) const;

  // ---- checked memory (docs/semantics.md, "Checked memory") ----
  // Every access to a buffer or threadgroup array goes through
  // bounds_check(): out of bounds, a load gives 0 and a store or atomic is
  // dropped; stores (and, in debug mode, loads too) are reported. Backends
  // set the two flags from their options and spell the length and report.
  bool check_memory_ = false;  // bounds-check accesses (the default)
  bool report_loads_ = false;  // debug mode: report out-of-bounds loads as well
  // Elements in memory id `mem`: a buffer parameter (>= 0) or a threadgroup array.
  virtual std::string mem_length(int64_t mem) const;
  // What an access does, as reported (the runtime's messages use the same codes).
  enum Access : int { kLoad = 0, kStore = 1, kAtomic = 2 };
  // A statement recording the first out-of-bounds access (u64 `index`).
  virtual std::string report_oob(int64_t mem, const std::string& index, Access access);
  // Checks an access to `lanes` consecutive elements of `mem` from `index`
  // (any integer value). Returns a bool expression, true when in bounds, or
  // "" when the access needs no check (checks off, or proved in bounds at
  // compile time). `mask`: the access happens only where it holds (load_if).
  std::string bounds_check(int64_t mem, ValueId index, int lanes, Access access, const std::string& mask = "");
  // The same for an index expression already widened to u64.
  std::string bounds_check_expr(int64_t mem, const std::string& index64, int lanes, Access access,
                                const std::string& mask = "");

  // ---- shared ----
  std::string name(ValueId v) const;
  const std::string& param_name(int index) const { return param_names_[index]; }
  // Threadgroup array `i`'s name: unique among the parameters and arrays.
  const std::string& tg_array_name(size_t i) const { return tg_names_.at(i); }
  void line(const std::string& s);
  void open(const std::string& s);  // "s {" and indent
  void close(const std::string& s = "}");
  void region(const Region& r);
  void op(const Op& op);
  virtual std::string expr(const Op& op);  // CUDA and MSL respell some ops (signed wrap, ...)
  std::string int_literal(Scalar t, int64_t v) const;
  // Which thread queries the kernel uses (backends declare only those).
  std::set<std::pair<ThreadQuery, int>> used_queries() const;

  const Kernel& k_;
  std::ostringstream out_;
  int indent_ = 0;

 private:
  void for_op(const Op& op);
  void if_op(const Op& op);
  void while_op(const Op& op);
  void bind_args(const Region& r, const std::vector<std::string>& vars);
  void assign_yield(const Region& r, const std::vector<std::string>& vars);
  std::vector<std::string> declare_carried(const Op& op, const std::vector<ValueId>& inits);

  std::vector<std::string> param_names_;
  std::vector<std::string> tg_names_;
  int temp_counter_ = 0;
  int check_counter_ = 0;
  mutable std::vector<const Op*> const_defs_;  // by value id, built on first use
};

// Backends whose registers hold f16/bf16 values as float (rounded after each
// op) and whose preludes spell vectors and matrices as en_vec / en_mat
// templates: the CPU's C++ and CUDA. They differ only in scalar type names.
class FloatRegisterEmitter : public CFamilyEmitter {
 public:
  // Accesses are checked unless both are off; debug also reports loads.
  FloatRegisterEmitter(const Kernel& k, bool debug, bool bounds_check) : CFamilyEmitter(k) {
    check_memory_ = debug || bounds_check;
    report_loads_ = debug;
  }

 protected:
  virtual const char* scalar_type(Scalar s) const = 0;
  // The backend's name among the spelling exceptions (spelling.h): "cpu", "cuda".
  virtual const char* spelling_backend() const = 0;
  // Its scalar float math function `fn` (floor, fmod).
  virtual std::string scalar_math(const std::string& fn) const = 0;
  static std::string vector_of(const std::string& elem, int lanes) {
    return "en_vec<" + elem + ", " + std::to_string(lanes) + ">";
  }
  std::string type(const DType& t) const override;
  std::string constant(const Op& op) const override;
  std::string finish(const DType& t, const std::string& e) const override;
  std::string float_floordiv(const DType& t, const std::string& a, const std::string& b) override;
  std::string float_rem(const DType& t, const std::string& a, const std::string& b) override;
  // ---- the per-thread language: en_<Metal name> from semantics/math.h,
  // except where the backend's spelling exceptions (spelling.h) say otherwise.
  bool supports_language() const override { return true; }
  std::string library_function(const std::string& fn, const Op& op) override;
  // a `k` b for a simd/quad reduction or scan of scalars of dtype t.
  std::string combine_scalars(CollectiveInfo::Kind k, const DType& t, const std::string& a, const std::string& b) const;

  // The queries read from the thread's flat index `flat` in its group
  // (thread_index_in_threadgroup and the simdgroup ones).
  static std::string flat_index_query(ThreadQuery q, const std::string& flat);
  // Memory holds f16/bf16 as their 16-bit patterns; registers hold them in float.
  std::string memory_type(Scalar s) const;
  std::string memory_type(const DType& t) const;
  static std::string from_memory(Scalar s, const std::string& x);
  static std::string to_memory(Scalar s, const std::string& x);
  static std::string from_memory(const DType& t, const std::string& x) { return from_memory(t.elem, x); }
  static std::string to_memory(const DType& t, const std::string& x) { return to_memory(t.elem, x); }
};

// A scalar's type in FloatRegisterEmitter registers: bool; ints[i] for the
// integer types I8, U8, ..., U64 (Scalar order); float for f16/bf16 (held in
// float, rounded per op) and f32.
const char* register_scalar_type(Scalar s, const std::array<const char*, 8>& ints);

// A C identifier for a user-supplied name that cannot clash with any
// keyword of C++, CUDA or MSL, nor with the emitters' own names. Bytes of
// non-ASCII characters become xHH, other characters '_' (runs collapsed);
// distinct names may still meet ("a b", "a_b"): see unique_identifiers.
std::string sanitize_identifier(const std::string& name);
// sanitize_identifier of each name, made distinct: a repeat gets _nK.
std::vector<std::string> unique_identifiers(const std::vector<std::string>& names);
// A user-supplied name as it may appear in a generated comment: printable
// ASCII only (no line break, no backslash that would continue a // comment,
// no '?' that could form a trigraph), anything else as '_', at most 80
// characters.
std::string comment_text(const std::string& name);
// A keyword or library name of C++, CUDA or MSL, or a name the emitters own
// (en_*, double underscores): sanitize_identifier renames these.
bool is_reserved_identifier(const std::string& name);

}  // namespace enigma
