#include "enigma/ir/builder.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "enigma/ir/const_eval.h"
#include "enigma/ir/uniformity.h"
#include "enigma/ir/verifier.h"
#include "enigma/support/error.h"

namespace enigma {

std::string Literal::str() const {
  switch (kind) {
    case Kind::Int: return std::to_string(i);
    case Kind::UInt: return std::to_string(u);
    case Kind::Float: {
      std::string s = std::to_string(f);
      return s;
    }
    case Kind::Bool: return i ? "True" : "False";
  }
  return "?";
}

Builder::Builder(std::string kernel_name) { k_.name = std::move(kernel_name); }

void Builder::set_location(const std::string& file, int line) {
  const Location& cur = k_.locations[loc_];
  if (cur.file == file && cur.line == line) return;
  // Locations repeat a lot (one line traces many ops); reuse the last few.
  for (size_t i = k_.locations.size(); i-- > 1 && i + 8 > k_.locations.size();) {
    if (k_.locations[i].line == line && k_.locations[i].file == file) {
      loc_ = static_cast<uint32_t>(i);
      return;
    }
  }
  k_.locations.push_back(Location{file, line});
  loc_ = static_cast<uint32_t>(k_.locations.size() - 1);
}

void Builder::fail(const std::string& op, const std::string& message) const {
  std::string where = k_.locations[loc_].str();
  std::string text = where.empty() ? "" : where + ": ";
  text += "kernel '" + k_.name + "': " + op + ": " + message;
  throw KernelError(text);
}

void Builder::set_hint(ValueId v, const std::string& hint) { k_.values.at(v).hint = hint; }

Region& Builder::current() {
  if (stack_.empty()) return k_.body;
  return stack_.back().op->regions[stack_.back().region];
}

size_t Builder::current_region_size() const {
  if (stack_.empty()) return k_.body.ops.size();
  return stack_.back().op->regions[stack_.back().region].ops.size();
}

ValueId Builder::new_value(DType t, uint32_t region) {
  k_.values.push_back(ValueInfo{t, {}, region});
  return static_cast<ValueId>(k_.values.size() - 1);
}

Op& Builder::emit_op(OpCode code, DType type, std::vector<ValueId> operands, OpAttrs attrs, Region* in) {
  Region& r = in ? *in : current();
  Op op;
  op.code = code;
  op.type = type;
  op.operands = std::move(operands);
  op.set_attrs(attrs);
  if (!type.is_void()) op.results = {new_value(type, r.id)};
  op.regions.resize(static_cast<size_t>(op.info().num_regions));
  for (Region& sub : op.regions) sub.id = k_.next_region_id++;
  op.loc = loc_;
  r.ops.push_back(std::move(op));
  return r.ops.back();
}

ValueId Builder::emit(OpCode code, DType type, std::vector<ValueId> operands, OpAttrs attrs) {
  return emit_op(code, type, std::move(operands), attrs).result();
}

void Builder::check_visible(ValueId v, const char* op) const {
  if (v >= k_.values.size()) fail(op, "operand is not a value of this kernel");
  uint32_t region = k_.values[v].region;
  if (region == k_.body.id) return;
  for (const Open& o : stack_) {
    if (o.op->regions[o.region].id == region) return;
  }
  fail(op,
       "a value defined inside a for_range/if_/while_ body is used outside it; values cannot escape "
       "their region: carry it out with init=/Carry (for_range), write it to memory, or use enigma.where");
}

// --- literals and typing -----------------------------------------------------

void Builder::check_int_fits(const Literal& l, DType t, const char* op) const {
  if (l.kind == Literal::Kind::Float || l.kind == Literal::Kind::Bool || !is_integer(t.elem)) return;
  int bits = info(t.elem).bits;
  if (bits >= 64) {
    if (l.kind == Literal::Kind::UInt && is_signed_int(t.elem))
      fail(op, "literal " + l.str() + " does not fit in " + t.str());
    return;
  }
  // Both the signed and unsigned readings of the width are accepted (x & -1, u8 + 255).
  int64_t lo = -(int64_t{1} << (bits - 1));
  int64_t hi = (int64_t{1} << bits) - 1;
  if (l.kind == Literal::Kind::UInt || l.i < lo || l.i > hi)
    fail(op, "literal " + l.str() + " does not fit in " + t.str());
}

DType Builder::literal_type_against(const Literal& l, DType partner) const {
  if (!partner.is_scalar_or_vector()) return partner;
  Scalar e = partner.elem;
  switch (l.kind) {
    case Literal::Kind::Float: return is_float(e) ? partner : partner.with_elem(Scalar::F32);
    case Literal::Kind::Int:
    case Literal::Kind::UInt: return e == Scalar::B1 ? partner.with_elem(Scalar::U32) : partner;
    case Literal::Kind::Bool: return partner;
  }
  return partner;
}

static DType default_literal_type(const Literal& l) {
  switch (l.kind) {
    case Literal::Kind::Float: return DType::scalar(Scalar::F32);
    case Literal::Kind::Bool: return DType::scalar(Scalar::B1);
    case Literal::Kind::UInt: return DType::scalar(Scalar::U64);
    case Literal::Kind::Int:
      if (l.i >= 0 && l.i <= int64_t{std::numeric_limits<uint32_t>::max()}) return DType::scalar(Scalar::U32);
      if (l.i >= std::numeric_limits<int32_t>::min() && l.i < 0) return DType::scalar(Scalar::I32);
      return DType::scalar(Scalar::I64);
  }
  return DType::scalar(Scalar::U32);
}

ValueId Builder::constant(DType type, Const c) {
  if (!type.is_scalar()) fail("constant", "constants must be scalars, got " + type.str());
  Op& op = emit_op(OpCode::Constant, type, {});
  op.value = normalize_const(type.elem, c);
  return op.result();
}

ValueId Builder::literal(const Literal& l, std::optional<DType> as) {
  DType t = as ? *as : default_literal_type(l);
  if (t.is_vector()) {
    ValueId s = literal(l, DType::scalar(t.elem));
    return convert_value(s, t);
  }
  if (!t.is_scalar()) fail("literal", "a literal cannot become a " + t.str());
  Const c;
  Scalar from = Scalar::I64;
  switch (l.kind) {
    case Literal::Kind::Float:
      c.f = l.f;
      from = Scalar::F32;
      break;
    case Literal::Kind::Bool:
      c.i = l.i;
      from = Scalar::B1;
      break;
    case Literal::Kind::UInt:
      c.i = static_cast<int64_t>(l.u);
      from = Scalar::U64;
      break;
    case Literal::Kind::Int:
      c.i = l.i;
      from = Scalar::I64;
      break;
  }
  if (l.kind == Literal::Kind::Float) {
    // Round the double once, straight to the target type.
    Const out;
    if (is_float(t.elem)) {
      out.f = l.f;
      return constant(t, out);
    }
    // double -> integer with saturating semantics
    if (std::isnan(l.f)) return constant(t, out);
    Const d;
    d.f = l.f;
    return constant(t, convert_const(d, Scalar::F32, t.elem));
  }
  if (is_float(t.elem)) {
    Const out;
    out.f = l.kind == Literal::Kind::UInt ? static_cast<double>(l.u) : static_cast<double>(l.i);
    return constant(t, out);
  }
  return constant(t, convert_const(c, from, t.elem));
}

ValueId Builder::use(const Operand& o, const char* op) {
  if (o.is_value()) {
    check_visible(o.value, op);
    return o.value;
  }
  return literal(o.literal);
}

ValueId Builder::convert_value(ValueId v, DType to) {
  const DType from = k_.type_of(v);
  if (from == to) return v;
  // Fold conversions of constants right away (keeps IR small for literals).
  if (from.is_scalar() && to.is_scalar()) {
    const Region& r = current();
    for (auto it = r.ops.rbegin(); it != r.ops.rend() && it - r.ops.rbegin() < 4; ++it) {
      if (it->code == OpCode::Constant && it->result() == v)
        return constant(to, convert_const(it->value, from.elem, to.elem));
    }
  }
  return emit(OpCode::Convert, to, {v});
}

ValueId Builder::coerce(const Operand& o, DType to, const char* op, const char* what) {
  if (o.is_value()) {
    check_visible(o.value, op);
    DType from = k_.type_of(o.value);
    if (from == to) return o.value;
    if (!from.is_scalar_or_vector() || !to.is_scalar_or_vector())
      fail(op, std::string(what) + " has dtype " + from.str() + ", expected " + to.str());
    if (from.is_vector() && (!to.is_vector() || from.lanes != to.lanes))
      fail(op, std::string(what) + " is a " + from.str() + " but " + to.str() + " is needed");
    return convert_value(o.value, to);
  }
  check_int_fits(o.literal, to, op);
  return literal(o.literal, to);
}

DType Builder::common_type(const Operand& a, const Operand& b, const char* op) {
  DType ta, tb;
  if (a.is_value()) ta = k_.type_of(a.value);
  if (b.is_value()) tb = k_.type_of(b.value);
  if (!a.is_value() && !b.is_value()) {
    ta = default_literal_type(a.literal);
    tb = default_literal_type(b.literal);
  } else if (!a.is_value()) {
    ta = literal_type_against(a.literal, tb);
  } else if (!b.is_value()) {
    tb = literal_type_against(b.literal, ta);
  }
  if (!ta.is_scalar_or_vector() || !tb.is_scalar_or_vector())
    fail(op, "operands must be scalars or vectors, got " + ta.str() + " and " + tb.str());
  if (ta.is_vector() && tb.is_vector() && ta.lanes != tb.lanes)
    fail(op, "vector sizes differ: " + ta.str() + " and " + tb.str());
  DType r = ta.is_vector() ? ta : tb;
  r.elem = promote(ta.elem, tb.elem);
  return r;
}

// --- ops -----------------------------------------------------------------

// Appends a parameter with a new name; `dtype_error` (followed by the dtype)
// fails the declaration when not empty.
int Builder::add_param(const std::string& name, Param::Kind kind, DType type, const std::string& dtype_error) {
  if (!dtype_error.empty()) fail("parameter '" + name + "'", dtype_error + type.str());
  for (const Param& p : k_.params)
    if (p.name == name) fail("parameter '" + name + "'", "duplicate parameter name");
  k_.params.push_back(Param{name, kind, type, false});
  return static_cast<int>(k_.params.size() - 1);
}

int Builder::add_buffer_param(const std::string& name, DType elem) {
  return add_param(name, Param::Kind::Buffer, elem,
                   elem.is_scalar_or_vector() ? "" : "buffer element dtype must be a scalar or vector, got ");
}

ValueId Builder::add_scalar_param(const std::string& name, DType type) {
  const int index = add_param(name, Param::Kind::Scalar, type,
                              type.is_scalar() ? "" : "Scalar parameters must have a scalar dtype, got ");
  // Scalar parameters are read at kernel entry, before any other op.
  ValueId v = emit_op(OpCode::Param, type, {}, OpAttrs::of_param(index), &k_.body).result();
  k_.values[v].hint = name;
  return v;
}

ValueId Builder::thread_query(ThreadQuery q, int dim) {
  if (has_dim(q) && (dim < 0 || dim > 2)) fail(name(q), "dim must be 'x'/'y'/'z'");
  return emit(OpCode::ThreadQuery, DType::scalar(Scalar::U32), {}, OpAttrs::of_query(q, has_dim(q) ? dim : 0));
}

ValueId Builder::binary(OpCode code, const Operand& a, const Operand& b) {
  const OpInfo& oi = info(code);
  const char* opname = oi.name;
  DType t;
  ValueId va, vb;
  if (oi.category == OpCategory::Shift) {
    // The result has the shifted value's dtype; the count is converted to it.
    if (a.is_value())
      t = k_.type_of(a.value);
    else if (b.is_value())
      t = literal_type_against(a.literal, k_.type_of(b.value));
    else
      t = default_literal_type(a.literal);
    if (t.is_scalar_or_vector() && t.elem == Scalar::B1 && !a.is_value()) t = t.with_elem(Scalar::U32);
    if (!t.is_integer()) fail(opname, "shifts need integer operands, got " + t.str());
    if (b.is_value()) {
      DType tb = k_.type_of(b.value);
      if (!tb.is_integer()) fail(opname, "shift count must be an integer, got " + tb.str());
    } else if (b.literal.kind == Literal::Kind::Float) {
      fail(opname, "shift count must be an integer, got " + b.literal.str());
    }
    va = coerce(a, t, opname, "the shifted value");
    vb = b.is_value() ? coerce(b, t.is_vector() && !k_.type_of(b.value).is_vector() ? t : t, opname, "the shift count")
                      : literal(b.literal, t);
  } else {
    t = common_type(a, b, opname);
    if (oi.category == OpCategory::Arith && t.elem == Scalar::B1)
      fail(opname, "arithmetic on bool values; convert with metal_cast first");
    if (oi.category == OpCategory::Bitwise && is_float(t.elem))
      fail(opname,
           "bitwise ops need integer or bool operands, got " + t.str() + " (use as_type to work on a float's bits)");
    va = coerce(a, t, opname, "the left operand");
    vb = coerce(b, t, opname, "the right operand");
  }
  return emit(code, t, {va, vb});
}

ValueId Builder::unary(OpCode code, const Operand& a) {
  const OpInfo& oi = info(code);
  ValueId va = use(a, oi.name);
  DType t = k_.type_of(va);
  if (!t.is_scalar_or_vector()) fail(oi.name, "operand must be a scalar or vector, got " + t.str());
  if (code == OpCode::Neg && t.elem == Scalar::B1) fail(oi.name, "cannot negate a bool; use ~ or cmp_eq(x, False)");
  if (code == OpCode::Not && is_float(t.elem)) fail(oi.name, "~ needs an integer or bool operand, got " + t.str());
  return emit(code, t, {va});
}

ValueId Builder::compare(CmpPred pred, const Operand& a, const Operand& b) {
  std::string opname = std::string("cmp_") + name(pred);
  DType t = common_type(a, b, opname.c_str());
  if (t.elem == Scalar::B1 && pred != CmpPred::Eq && pred != CmpPred::Ne)
    fail(opname, "ordering comparisons of bool values are not defined; use cmp_eq/cmp_ne");
  ValueId va = coerce(a, t, opname.c_str(), "the left operand");
  ValueId vb = coerce(b, t, opname.c_str(), "the right operand");
  return emit(OpCode::Cmp, t.with_elem(Scalar::B1), {va, vb}, OpAttrs::of_predicate(pred));
}

ValueId Builder::select(const Operand& cond, const Operand& if_true, const Operand& if_false) {
  DType t = common_type(if_true, if_false, "where");
  ValueId vc;
  if (cond.is_value()) {
    check_visible(cond.value, "where");
    DType tc = k_.type_of(cond.value);
    if (!tc.is_bool() || (tc.is_vector() && (!t.is_vector() || tc.lanes != t.lanes)))
      fail("where",
           "condition must be a bool (b1) of matching shape, got " + tc.str() + "; compare first, e.g. cmp_ne(x, 0)");
    vc = cond.value;
  } else {
    if (cond.literal.kind != Literal::Kind::Bool)
      fail("where", "condition must be a bool, got the literal " + cond.literal.str());
    vc = literal(cond.literal);
  }
  ValueId vt = coerce(if_true, t, "where", "the true value");
  ValueId vf = coerce(if_false, t, "where", "the false value");
  return emit(OpCode::Select, t, {vc, vt, vf});
}

ValueId Builder::convert(const Operand& a, DType to) {
  if (to.is_matrix() && a.is_value()) {  // floatCxR <-> halfCxR
    check_visible(a.value, "metal_cast");
    DType from = k_.type_of(a.value);
    if (!from.is_matrix() || from.rows != to.rows || from.cols != to.cols)
      fail("metal_cast", "cannot convert " + from.str() + " to " + to.str() + " (matrix shapes must match)");
    return convert_value(a.value, to);
  }
  if (!to.is_scalar_or_vector()) fail("metal_cast", "cannot convert to " + to.str());
  if (!a.is_value()) return literal(a.literal, to);
  check_visible(a.value, "metal_cast");
  DType from = k_.type_of(a.value);
  if (!from.is_scalar_or_vector()) fail("metal_cast", "cannot convert a " + from.str());
  if (from.is_vector() && (!to.is_vector() || from.lanes != to.lanes))
    fail("metal_cast", "cannot convert " + from.str() + " to " + to.str() + " (vector sizes must match)");
  return convert_value(a.value, to);
}

ValueId Builder::bitcast(const Operand& a, DType to) {
  ValueId v = use(a, "as_type");
  DType from = k_.type_of(v);
  if (!from.is_scalar_or_vector() || !to.is_scalar_or_vector() || from.elem == Scalar::B1 || to.elem == Scalar::B1)
    fail("as_type", "cannot reinterpret " + from.str() + " as " + to.str());
  if (from.size_bytes() != to.size_bytes() || info(from.elem).bits * from.width() != info(to.elem).bits * to.width())
    fail("as_type", "as_type needs types of the same size: " + from.str() + " (" +
                        std::to_string(info(from.elem).bits * from.width()) + " bits) vs " + to.str() + " (" +
                        std::to_string(info(to.elem).bits * to.width()) + " bits)");
  if (from == to) return v;
  return emit(OpCode::Bitcast, to, {v});
}

std::string Builder::memory_op_name(const char* what, int64_t mem) const {
  if (!k_.valid_memory(mem)) fail(what, "not a buffer parameter or threadgroup array of this kernel");
  return std::string(what) +
         (std::string(what) == "load" || std::string(what) == "simdgroup_matrix_load" ? " from '" : " to '") +
         k_.memory_name(mem) + "'";
}

ValueId Builder::index_operand(const Operand& index, const std::string& opname) {
  if (index.is_value()) {
    check_visible(index.value, opname.c_str());
    DType ti = k_.type_of(index.value);
    if (!ti.is_scalar() || !is_integer(ti.elem)) fail(opname, "index must be an integer scalar, got " + ti.str());
    return index.value;
  }
  if (index.literal.kind == Literal::Kind::Float || index.literal.kind == Literal::Kind::Bool)
    fail(opname, "index must be an integer, got " + index.literal.str());
  return literal(index.literal);
}

// Lanes, offsets, counts: integers converted to uint (the reference's `index`).
ValueId Builder::uint_operand(const Operand& o, const std::string& opname, const char* what) {
  const DType u = DType::scalar(Scalar::U32);
  if (o.is_value()) {
    check_visible(o.value, opname.c_str());
    DType t = k_.type_of(o.value);
    if (!t.is_scalar() || !is_integer(t.elem))
      fail(opname, std::string(what) + " must be an integer scalar, got " + t.str());
    return convert_value(o.value, u);
  }
  if (o.literal.kind == Literal::Kind::Float || o.literal.kind == Literal::Kind::Bool)
    fail(opname, std::string(what) + " must be an integer, got " + o.literal.str());
  Const c;
  c.i = o.literal.kind == Literal::Kind::UInt ? static_cast<int64_t>(o.literal.u) : o.literal.i;
  return constant(u, convert_const(c, Scalar::I64, Scalar::U32));
}

void Builder::mark_written(int64_t mem) {
  if (!is_threadgroup_memory(mem)) k_.params[mem].written = true;
}

ValueId Builder::load(int64_t mem, const Operand& index) {
  std::string opname = memory_op_name("load", mem);
  ValueId vi = index_operand(index, opname);
  return emit(OpCode::Load, k_.memory_type(mem), {vi}, OpAttrs::of_memory(mem));
}

// Vector access (load_vec/store_vec): a Load/Store whose value is a 2- or
// 4-vector of a scalar memory's element type.
void Builder::check_vector_access(int64_t mem, int width, const std::string& opname) const {
  const DType& t = k_.memory_type(mem);
  if (!t.is_scalar() || t.elem == Scalar::B1 || (width != 2 && width != 4))
    fail(opname, "a vector access needs memory of non-bool scalars and a width of 2 or 4, got " + t.str() +
                     " and width " + std::to_string(width));
  // The emitters' alignment proof covers whole vectors only.
  if (is_threadgroup_memory(mem) && k_.tg_arrays[threadgroup_array_index(mem)].size % static_cast<uint64_t>(width) != 0)
    fail(opname, "a threadgroup array read as vectors needs a size that is a multiple of " + std::to_string(width));
}

ValueId Builder::load_vec(int64_t mem, const Operand& index, int width) {
  std::string opname = memory_op_name("load", mem);
  check_vector_access(mem, width, opname);
  ValueId vi = index_operand(index, opname);
  return emit(OpCode::Load, DType::vector(k_.memory_type(mem).elem, width), {vi}, OpAttrs::of_memory(mem));
}

void Builder::store_vec(int64_t mem, const Operand& index, const Operand& value) {
  std::string opname = memory_op_name("store", mem);
  if (!value.is_value()) fail(opname, "a vector store needs a traced vector value");
  check_visible(value.value, opname.c_str());
  const DType tv = k_.type_of(value.value);
  if (!tv.is_vector() || tv.elem != k_.memory_type(mem).elem)
    fail(opname, "a vector store needs a 2- or 4-vector of the memory's dtype, got " + tv.str());
  check_vector_access(mem, tv.width(), opname);
  ValueId vi = index_operand(index, opname);
  mark_written(mem);
  emit(OpCode::Store, DType::void_(), {vi, value.value}, OpAttrs::of_memory(mem));
}

void Builder::store(int64_t mem, const Operand& index, const Operand& value) {
  std::string opname = memory_op_name("store", mem);
  ValueId vi = index_operand(index, opname);
  const DType t = k_.memory_type(mem);
  if (value.is_value()) {
    check_visible(value.value, opname.c_str());
    DType tv = k_.type_of(value.value);
    if (tv.is_vector() && t.is_scalar()) fail(opname, "cannot store a " + tv.str() + " into memory of " + t.str());
    if (!tv.is_scalar_or_vector()) fail(opname, "cannot store a " + tv.str() + " with an indexed store");
  }
  ValueId vv = coerce(value, t, opname.c_str(), "the stored value");
  mark_written(mem);
  emit(OpCode::Store, DType::void_(), {vi, vv}, OpAttrs::of_memory(mem));
}

// --- cooperative execution -------------------------------------------------

int64_t Builder::threadgroup_alloc(DType elem, uint64_t size, const std::string& name) {
  if (!elem.is_scalar_or_vector())
    fail("threadgroup_alloc", "element dtype must be a scalar or vector, got " + elem.str());
  if (size == 0) fail("threadgroup_alloc", "size must be a positive number of elements, got 0");
  if (size > (uint64_t{1} << 32)) fail("threadgroup_alloc", "size " + std::to_string(size) + " is absurdly large");
  for (const Param& p : k_.params)
    if (p.name == name) fail("threadgroup_alloc", "name '" + name + "' is already a parameter");
  for (const ThreadgroupArray& a : k_.tg_arrays)
    if (a.name == name) fail("threadgroup_alloc", "name '" + name + "' is already used");
  k_.tg_arrays.push_back(ThreadgroupArray{name, elem, size});
  return threadgroup_memory_id(k_.tg_arrays.size() - 1);
}

void Builder::barrier(int64_t mem_flags, bool simdgroup) {
  const char* opname = simdgroup ? "simd_barrier" : "barrier";
  if (!valid_mem_flags(mem_flags)) fail(opname, "unknown mem_flags value " + std::to_string(mem_flags));
  emit(simdgroup ? OpCode::SimdBarrier : OpCode::Barrier, DType::void_(), {}, OpAttrs::of_mem_flags(mem_flags));
}

ValueId Builder::collective(OpCode code, const Operand& value, const Operand& lane) {
  const OpInfo& oi = info(code);
  const std::string opname = oi.name;
  if (oi.category != OpCategory::GroupReduce && oi.category != OpCategory::GroupScan &&
      oi.category != OpCategory::GroupShuffle)
    fail(opname, "not a simd/quad op");
  ValueId v = use(value, oi.name);
  DType t = k_.type_of(v);
  CollectiveInfo ci = collective_info(code);
  using K = CollectiveInfo::Kind;
  bool bitwise = ci.kind == K::And || ci.kind == K::Or || ci.kind == K::Xor;
  bool shuffle = oi.category == OpCategory::GroupShuffle;
  Scalar e = t.elem;
  bool ok = t.is_scalar_or_vector();
  // What Metal's simd/quad functions accept: shuffles move any numeric value;
  // arithmetic needs 8-32 bit integers, half or float; bitwise ops integers.
  if (ok && shuffle)
    ok = e != Scalar::B1;
  else if (ok && bitwise)
    ok = is_integer(e) && info(e).bits <= 32;
  else if (ok)
    ok = e == Scalar::F32 || e == Scalar::F16 || (is_integer(e) && info(e).bits <= 32);
  if (!ok)
    fail(opname, "no " + opname + " for " + t.str() +
                     (bitwise   ? " (needs an integer of at most 32 bits)"
                      : shuffle ? " (needs a numeric value)"
                                : " (needs float, half or an integer of at "
                                  "most 32 bits)"));
  std::vector<ValueId> operands = {v};
  if (shuffle) operands.push_back(uint_operand(lane, opname, "the lane/delta/mask"));
  return emit(code, t, std::move(operands));
}

ValueId Builder::vote(const std::string& name, const Operand& pred) {
  struct Row {
    const char* name;
    int width;
    bool takes_predicate;
  };
  static const Row kVotes[] = {
#define OP(...)
#define VOTE(e, n, width, pred, how, result) {n, width, pred},
#include "enigma/ir/ops.def"
#undef VOTE
#undef OP
  };
  const Row* row = nullptr;
  for (const Row& r : kVotes)
    if (name == r.name) row = &r;
  if (!row) fail(name, "unknown vote function");
  const bool simd = row->width == 32;
  const std::string op = name;
  const DType u32 = DType::scalar(Scalar::U32);
  ValueId lane = thread_query(ThreadQuery::ThreadIndexInSimdgroup, 0);
  if (!simd) lane = binary(OpCode::And, lane, Literal::of_int(3));
  if (op.ends_with("_is_first"))
    return compare(CmpPred::Eq, collective(simd ? OpCode::SimdMin : OpCode::QuadMin, lane), lane);
  ValueId p;
  if (!row->takes_predicate) {
    p = literal(Literal::of_bool(true));
  } else {
    if (pred.is_value()) check_visible(pred.value, op.c_str());
    DType t = pred.is_value() ? type_of(pred.value) : DType::scalar(Scalar::B1);
    if (!pred.is_value() && pred.literal.kind != Literal::Kind::Bool)
      fail(op, "needs a bool, got the literal " + pred.literal.str());
    if (!(t.is_scalar() && t.elem == Scalar::B1))
      fail(op, "needs a bool scalar, got " + t.str() + "; compare first, e.g. " + op + "(x > 0)");
    p = use(pred, op.c_str());
  }
  if (op.ends_with("_all") || op.ends_with("_any")) {
    ValueId r = collective(
        op.ends_with("_all") ? (simd ? OpCode::SimdAnd : OpCode::QuadAnd) : (simd ? OpCode::SimdOr : OpCode::QuadOr),
        convert(p, u32));
    return compare(CmpPred::Ne, r, Literal::of_int(0));
  }
  // ballot / active_threads_mask: one bit per active lane where p holds.
  ValueId bit =
      select(p, binary(OpCode::Shl, literal(Literal::of_int(1), u32), lane), literal(Literal::of_int(0), u32));
  ValueId mask = collective(simd ? OpCode::SimdOr : OpCode::QuadOr, bit);
  return convert(mask, DType::scalar(simd ? Scalar::U64 : Scalar::U16));
}

ValueId Builder::atomic(OpCode code, int64_t mem, const Operand& index, const std::vector<Operand>& values,
                        MemoryOrder order, MemoryOrder failure) {
  const OpInfo& oi = info(code);
  if (oi.category != OpCategory::Atomic) fail(oi.name, "not an atomic op");
  std::string opname = std::string(oi.name) + " on '" + (k_.valid_memory(mem) ? k_.memory_name(mem) : "?") + "'";
  if (!k_.valid_memory(mem)) fail(opname, "not a buffer parameter or threadgroup array of this kernel");
  const DType t = k_.memory_type(mem);
  Scalar e = t.elem;
  bool is_int = t.is_scalar() && is_integer(e) && (info(e).bits == 32 || info(e).bits == 64);
  bool is_f32 = t.is_scalar() && e == Scalar::F32;
  bool float_ok = code == OpCode::AtomicLoad || code == OpCode::AtomicStore || code == OpCode::AtomicExchange ||
                  code == OpCode::AtomicFetchAdd || code == OpCode::AtomicFetchSub ||
                  code == OpCode::AtomicCompareExchange;
  if (!(is_int || (is_f32 && float_ok)))
    fail(opname,
         "atomics need a 32- or 64-bit integer element (float: load, store, exchange, add, sub and "
         "compare-exchange), got " +
             t.str());
  size_t want = code == OpCode::AtomicLoad ? 0 : code == OpCode::AtomicCompareExchange ? 2 : 1;
  if (values.size() != want) fail(opname, "expected " + std::to_string(want) + " value operand(s)");
  if (code == OpCode::AtomicLoad && (order == MemoryOrder::Release || order == MemoryOrder::AcqRel))
    order = MemoryOrder::Acquire;  // a load cannot release
  if (code == OpCode::AtomicStore && (order == MemoryOrder::Acquire || order == MemoryOrder::AcqRel))
    order = MemoryOrder::Release;  // a store cannot acquire
  std::vector<ValueId> operands = {index_operand(index, opname)};
  for (size_t i = 0; i < values.size(); ++i)
    operands.push_back(coerce(values[i], t, opname.c_str(), i == 0 && want == 2 ? "the expected value" : "the value"));
  mark_written(mem);
  const DType result = code == OpCode::AtomicStore             ? DType::void_()
                       : code == OpCode::AtomicCompareExchange ? DType::scalar(Scalar::B1)
                                                               : t;
  return emit(code, result, std::move(operands), OpAttrs::of_atomic(mem, order, failure));
}

static bool matrix_elem_ok(const DType& m) {
  return m.kind == DType::Kind::SimdMatrix && m.rows == 8 && m.cols == 8 &&
         (m.elem == Scalar::F32 || m.elem == Scalar::F16 || m.elem == Scalar::BF16);
}

ValueId Builder::simd_matrix_load(int64_t mem, const Operand& origin, const Operand& elements_per_row, DType matrix,
                                  bool transpose) {
  std::string opname = memory_op_name("simdgroup_matrix_load", mem);
  if (!matrix_elem_ok(matrix)) fail(opname, "needs an 8x8 matrix of float, half or bfloat, got " + matrix.str());
  const DType t = k_.memory_type(mem);
  if (!t.is_scalar() || t.elem != matrix.elem)
    fail(opname, "the memory holds " + t.str() + " but the matrix is " + matrix.str() + " (element types must match)");
  ValueId vo = uint_operand(origin, opname, "the origin");
  ValueId vp = uint_operand(elements_per_row, opname, "elements_per_row");
  return emit(OpCode::SimdMatrixLoad, matrix, {vo, vp}, OpAttrs::of_matrix(mem, transpose));
}

void Builder::simd_matrix_store(ValueId matrix, int64_t mem, const Operand& origin, const Operand& elements_per_row,
                                bool transpose) {
  std::string opname = memory_op_name("simdgroup_matrix_store", mem);
  check_visible(matrix, opname.c_str());
  const DType m = k_.type_of(matrix);
  if (m.kind != DType::Kind::SimdMatrix) fail(opname, "expected a simdgroup matrix, got " + m.str());
  const DType t = k_.memory_type(mem);
  if (!t.is_scalar() || t.elem != m.elem)
    fail(opname, "the memory holds " + t.str() + " but the matrix is " + m.str() + " (element types must match)");
  ValueId vo = uint_operand(origin, opname, "the origin");
  ValueId vp = uint_operand(elements_per_row, opname, "elements_per_row");
  mark_written(mem);
  emit(OpCode::SimdMatrixStore, DType::void_(), {matrix, vo, vp}, OpAttrs::of_matrix(mem, transpose));
}

ValueId Builder::simd_matrix_fill(const Operand& value, DType matrix) {
  const char* opname = "make_filled_simdgroup_matrix";
  if (!matrix_elem_ok(matrix)) fail(opname, "needs an 8x8 matrix of float, half or bfloat, got " + matrix.str());
  if (value.is_value() && !k_.type_of(value.value).is_scalar())
    fail(opname, "the fill value must be a scalar, got " + k_.type_of(value.value).str());
  ValueId v = coerce(value, DType::scalar(matrix.elem), opname, "the fill value");
  return emit(OpCode::SimdMatrixFill, matrix, {v});
}

ValueId Builder::simd_matrix_mma(ValueId a, ValueId b, ValueId c) {
  const char* opname = "simdgroup_multiply_accumulate";
  for (ValueId v : {a, b, c}) {
    check_visible(v, opname);
    if (!matrix_elem_ok(k_.type_of(v)))
      fail(opname, "operands must be 8x8 simdgroup matrices, got " + k_.type_of(v).str());
  }
  return emit(OpCode::SimdMatrixMultiplyAccumulate, k_.type_of(c), {a, b, c});
}

// Checks an async copy's memories and names the op after them.
std::string Builder::async_copy_name(const char* base, int64_t dst, int64_t src) const {
  std::string opname = base;
  if (!k_.valid_memory(dst) || !k_.valid_memory(src))
    fail(opname, "source and destination must be buffer parameters or threadgroup arrays of this kernel");
  opname += " from '" + k_.memory_name(src) + "' to '" + k_.memory_name(dst) + "'";
  if (is_threadgroup_memory(dst) == is_threadgroup_memory(src))
    fail(opname, "copies go between device memory and threadgroup memory (one of each)");
  if (k_.memory_type(dst) != k_.memory_type(src))
    fail(opname, "element types differ: " + k_.memory_type(src).str() + " vs " + k_.memory_type(dst).str());
  return opname;
}

// Appends an async copy op; its result is the event async_copy_wait takes.
ValueId Builder::append_async_copy(OpCode code, int64_t dst, int64_t src, std::vector<ValueId> operands) {
  mark_written(dst);
  ValueId r = emit(code, DType::scalar(Scalar::I64), std::move(operands), OpAttrs::of_copy(dst, src));
  async_events_.insert(r);
  return r;
}

ValueId Builder::async_copy_1d(int64_t dst, const Operand& dst_offset, int64_t src, const Operand& src_offset,
                               const Operand& count) {
  const std::string opname = async_copy_name("async_copy_1d", dst, src);
  return append_async_copy(OpCode::AsyncCopy1D, dst, src,
                           {uint_operand(dst_offset, opname, "dst_offset"),
                            uint_operand(src_offset, opname, "src_offset"), uint_operand(count, opname, "count")});
}

ValueId Builder::async_copy_2d(int64_t dst, const Operand& dst_offset, const Operand& dst_elements_per_row, int64_t src,
                               const Operand& src_offset, const Operand& src_elements_per_row, const Operand& tile_cols,
                               const Operand& tile_rows) {
  const std::string opname = async_copy_name("async_copy_2d", dst, src);
  return append_async_copy(
      OpCode::AsyncCopy2D, dst, src,
      {uint_operand(dst_offset, opname, "dst_offset"),
       uint_operand(dst_elements_per_row, opname, "dst_elements_per_row"),
       uint_operand(src_offset, opname, "src_offset"),
       uint_operand(src_elements_per_row, opname, "src_elements_per_row"), uint_operand(tile_cols, opname, "tile_cols"),
       uint_operand(tile_rows, opname, "tile_rows")});
}

void Builder::async_wait(const std::vector<ValueId>& events) {
  for (ValueId e : events) {
    check_visible(e, "async_copy_wait");
    if (k_.type_of(e) != DType::scalar(Scalar::I64) || !async_events_.count(e))
      fail("async_copy_wait", "expects events returned by async_copy_* calls");
  }
  emit(OpCode::AsyncWait, DType::void_(), events);
}

// --- control flow --------------------------------------------------------

void Builder::check_nesting(const char* opname) const {
  if (depth() >= kMaxNestingDepth)
    fail(opname, "control flow is nested more than " + std::to_string(kMaxNestingDepth) +
                     " levels deep (the limit keeps every compiler pass's recursion bounded)");
}

std::vector<ValueId> Builder::begin_for(const Operand& lo, const Operand& hi, const Operand& step, DType iv_type,
                                        const std::vector<Operand>& inits) {
  check_nesting("for_range");
  if (!iv_type.is_scalar() || !is_integer(iv_type.elem))
    fail("for_range", "the loop variable dtype must be an integer type, got " + iv_type.str());
  if (!step.is_value() && step.literal.kind != Literal::Kind::Float && step.literal.i == 0 &&
      step.literal.kind != Literal::Kind::UInt)
    fail("for_range", "step must not be 0");
  for (const Operand* o : {&lo, &hi, &step}) {
    // A negative literal would wrap to a huge unsigned value (a loop that never runs).
    if (!o->is_value() && o->literal.kind == Literal::Kind::Int && o->literal.i < 0 && is_unsigned_int(iv_type.elem))
      fail("for_range", "bound or step " + o->literal.str() + " is negative but the loop variable is " + iv_type.str() +
                            " (unsigned); use a signed dtype, e.g. dtype=\"int\"");
    if (o->is_value()) {
      check_visible(o->value, "for_range");
      if (!k_.type_of(o->value).is_integer() || !k_.type_of(o->value).is_scalar())
        fail("for_range", "bounds and step must be integer scalars, got " + k_.type_of(o->value).str());
    } else if (o->literal.kind == Literal::Kind::Float) {
      fail("for_range", "bounds and step must be integers, got " + o->literal.str());
    }
  }
  ValueId vlo = coerce(lo, iv_type, "for_range", "the lower bound");
  ValueId vhi = coerce(hi, iv_type, "for_range", "the upper bound");
  ValueId vstep = coerce(step, iv_type, "for_range", "the step");
  std::vector<ValueId> vinits;
  for (const Operand& o : inits) vinits.push_back(use(o, "for_range init"));
  std::vector<ValueId> operands = {vlo, vhi, vstep};
  operands.insert(operands.end(), vinits.begin(), vinits.end());
  Op& placed = emit_op(OpCode::For, DType::void_(), std::move(operands));
  Region& body = placed.regions[0];
  body.args.push_back(new_value(iv_type, body.id));
  for (ValueId v : vinits) body.args.push_back(new_value(k_.type_of(v), body.id));
  stack_.push_back(Open{&placed, 0, "for"});
  return placed.regions[0].args;
}

std::vector<ValueId> Builder::close_region_with_yield(const std::vector<Operand>& yields,
                                                      const std::vector<DType>& types, const char* opname) {
  if (yields.size() != types.size())
    fail(opname,
         "expected " + std::to_string(types.size()) + " carried value(s), got " + std::to_string(yields.size()));
  std::vector<ValueId> vals;
  for (size_t i = 0; i < yields.size(); ++i) {
    std::string what = "carried value " + std::to_string(i);
    if (yields[i].is_value()) {
      DType from = k_.type_of(yields[i].value);
      if (from.is_scalar_or_vector() && types[i].is_scalar_or_vector() && is_float(from.elem) &&
          !is_float(types[i].elem))
        fail(opname, what + " starts as " + types[i].str() + " but the body assigns a " + from.str() +
                         "; give the init the dtype you need (e.g. init=[0.0] or metal_cast(0, \"float\"))");
    }
    vals.push_back(coerce(yields[i], types[i], opname, what.c_str()));
  }
  emit(OpCode::Yield, DType::void_(), vals);
  return vals;
}

std::vector<ValueId> Builder::end_for(const std::vector<Operand>& yields) {
  if (stack_.empty() || std::string(stack_.back().what) != "for") fail("for_range", "no open for_range to close");
  Op* op = stack_.back().op;
  std::vector<DType> types;
  for (size_t i = 1; i < op->regions[0].args.size(); ++i) types.push_back(k_.type_of(op->regions[0].args[i]));
  close_region_with_yield(yields, types, "for_range");
  stack_.pop_back();
  for (DType t : types) op->results.push_back(new_value(t, current().id));
  return op->results;
}

void Builder::begin_if(const Operand& cond) {
  check_nesting("if_");
  ValueId vc;
  if (cond.is_value()) {
    check_visible(cond.value, "if_");
    DType tc = k_.type_of(cond.value);
    if (!(tc.is_scalar() && tc.elem == Scalar::B1))
      fail("if_", "condition must be a bool (b1) scalar, got " + tc.str() + "; compare first, e.g. cmp_ne(x, 0)");
    vc = cond.value;
  } else {
    if (cond.literal.kind != Literal::Kind::Bool)
      fail("if_", "condition must be a bool, got the literal " + cond.literal.str());
    vc = literal(cond.literal);
  }
  Op& placed = emit_op(OpCode::If, DType::void_(), {vc});
  stack_.push_back(Open{&placed, 0, "if"});
}

void Builder::begin_else() {
  if (stack_.empty() || std::string(stack_.back().what) != "if") fail("if_", "else without an open if_");
  Op* op = stack_.back().op;
  emit(OpCode::Yield, DType::void_(), {});
  stack_.back() = Open{op, 1, "else"};
}

std::vector<ValueId> Builder::end_if(const std::vector<Operand>& yields) {
  if (stack_.empty() || (std::string(stack_.back().what) != "if" && std::string(stack_.back().what) != "else"))
    fail("if_", "no open if_ to close");
  if (!yields.empty()) fail("if_", "if_ produces no values; write results to memory or use enigma.where");
  Op* op = stack_.back().op;
  emit(OpCode::Yield, DType::void_(), {});
  if (stack_.back().region == 0)  // no else: give it an empty terminated region
    emit_op(OpCode::Yield, DType::void_(), {}, {}, &op->regions[1]);
  stack_.pop_back();
  return {};
}

std::vector<ValueId> Builder::end_if_merge(const std::vector<Operand>& then_values,
                                           const std::vector<Operand>& else_values,
                                           const std::vector<std::string>& names) {
  if (stack_.empty() || std::string(stack_.back().what) != "else") fail("if", "no open else-block to close");
  if (then_values.size() != else_values.size() || names.size() != then_values.size())
    fail("if", "internal: merged value lists differ in length");
  Op* op = stack_.back().op;
  const uint32_t parent =
      stack_.size() >= 2 ? stack_[stack_.size() - 2].op->regions[stack_[stack_.size() - 2].region].id : k_.body.id;
  std::vector<DType> types;
  std::vector<int> arrays;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string what = "'" + names[i] + "' (assigned in a branch)";
    for (const Operand* o : {&then_values[i], &else_values[i]}) {
      if (!o->is_value()) continue;
      if (o->value >= k_.values.size()) fail("if", "operand is not a value of this kernel");
      if (!k_.type_of(o->value).is_scalar_or_vector())
        fail("if", what + " is a " + k_.type_of(o->value).str() +
                       "; only scalars and vectors can be merged after an if on a traced value");
    }
    types.push_back(common_type(then_values[i], else_values[i], ("if: " + what).c_str()));
    arrays.push_back(static_cast<int>(k_.locals.size()));
    k_.locals.push_back(LocalArray{types.back(), 1, names[i], parent});
  }
  auto store_all = [&](const std::vector<Operand>& values) {
    for (size_t i = 0; i < values.size(); ++i) {
      ValueId v = coerce(values[i], types[i], "if", ("'" + names[i] + "'").c_str());
      emit(OpCode::LocalStore, DType::void_(), {use(Literal::of_int(0), "if"), v}, OpAttrs::of_local_array(arrays[i]));
    }
  };
  store_all(else_values);
  emit(OpCode::Yield, DType::void_(), {});
  // The then-block was terminated by begin_else: reopen it before its yield.
  Region& then_region = op->regions[0];
  if (then_region.ops.empty() || then_region.ops.back().code != OpCode::Yield)
    fail("if", "internal: then-block is not terminated");
  Op then_yield = std::move(then_region.ops.back());
  then_region.ops.pop_back();
  stack_.back() = Open{op, 0, "if"};
  store_all(then_values);
  then_region.ops.push_back(std::move(then_yield));
  stack_.pop_back();
  // Declare the arrays just before the if (no open region points at it now).
  Region& r = current();
  const size_t if_at = r.ops.size() - 1;
  for (size_t i = 0; i < arrays.size(); ++i) {
    ValueId zero = literal(Literal::of_int(0), DType::scalar(types[i].elem));
    if (types[i].is_vector()) zero = convert_value(zero, types[i]);
    emit(OpCode::LocalAlloc, DType::void_(), {zero}, OpAttrs::of_local_array(arrays[i]));
  }
  std::rotate(r.ops.begin() + static_cast<long>(if_at), r.ops.begin() + static_cast<long>(if_at) + 1, r.ops.end());
  std::vector<ValueId> results;
  for (size_t i = 0; i < arrays.size(); ++i)
    results.push_back(
        emit(OpCode::LocalLoad, types[i], {use(Literal::of_int(0), "if")}, OpAttrs::of_local_array(arrays[i])));
  return results;
}

std::vector<ValueId> Builder::begin_while(const std::vector<Operand>& inits) {
  check_nesting("while_");
  std::vector<ValueId> vinits;
  for (const Operand& o : inits) vinits.push_back(use(o, "while_ init"));
  Op& placed = emit_op(OpCode::While, DType::void_(), vinits);
  for (Region& r : placed.regions)
    for (ValueId v : vinits) r.args.push_back(new_value(k_.type_of(v), r.id));
  stack_.push_back(Open{&placed, 0, "while condition"});
  return placed.regions[0].args;
}

std::vector<ValueId> Builder::while_body(const Operand& cond) {
  if (stack_.empty() || std::string(stack_.back().what) != "while condition")
    fail("while_", "no open while_ condition");
  ValueId vc;
  if (cond.is_value()) {
    check_visible(cond.value, "while_");
    DType tc = k_.type_of(cond.value);
    if (!(tc.is_scalar() && tc.elem == Scalar::B1))
      fail("while_", "the condition function must return a bool (b1) scalar, got " + tc.str());
    vc = cond.value;
  } else {
    if (cond.literal.kind != Literal::Kind::Bool)
      fail("while_", "the condition function must return a bool, got the literal " + cond.literal.str());
    vc = literal(cond.literal);
  }
  Op* op = stack_.back().op;
  emit(OpCode::Condition, DType::void_(), {vc});
  stack_.back() = Open{op, 1, "while body"};
  return op->regions[1].args;
}

std::vector<ValueId> Builder::end_while(const std::vector<Operand>& yields) {
  if (stack_.empty() || std::string(stack_.back().what) != "while body") fail("while_", "no open while_ body to close");
  Op* op = stack_.back().op;
  std::vector<DType> types;
  for (ValueId a : op->regions[1].args) types.push_back(k_.type_of(a));
  close_region_with_yield(yields, types, "while_");
  stack_.pop_back();
  for (DType t : types) op->results.push_back(new_value(t, current().id));
  return op->results;
}

Kernel Builder::finish() {
  if (!stack_.empty())
    fail(stack_.back().what, "region still open at the end of the kernel (a with-block was not closed)");
  verify(k_);
  check_sync_uniformity(k_);
  Kernel out = std::move(k_);
  k_ = Kernel{};
  stack_.clear();
  async_events_.clear();
  loc_ = 0;
  return out;
}

}  // namespace enigma
