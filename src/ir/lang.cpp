// The per-thread language: typing of the op table's OPX section and the
// builder methods that trace it (SEMANTICS 3: nothing is silently mapped; a
// float op on an integer, a vector size mismatch or a missing constant is a
// KernelError naming the op, the dtypes and the user's line).
#include "enigma/ir/lang.h"

#include <string>
#include <utility>

#include "enigma/ir/builder.h"

namespace enigma {

std::vector<std::string> operand_classes(OpCode op) {
  std::vector<std::string> out;
  std::string cur;
  for (const char* p = info(op).operand_classes; *p; ++p) {
    if (*p == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += *p;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

namespace {

bool is_main_class(const std::string& c) { return c == "F" || c == "I" || c == "N" || c == "V" || c == "V3"; }

bool float_matrix_elem(Scalar s) { return s == Scalar::F32 || s == Scalar::F16; }

// Whether `t` belongs to class `c` (main classes only).
bool in_class(const std::string& c, const DType& t) {
  if (c == "F") return t.is_float();
  if (c == "I") return t.is_integer();
  if (c == "N") return t.is_float() || t.is_integer();
  if (c == "V") return t.is_vector() && t.is_float();
  if (c == "V3") return t.is_vector() && t.is_float() && t.lanes == 3;
  return false;
}

std::string class_words(const std::string& c) {
  if (c == "F") return "a float (float, half or bfloat) scalar or vector";
  if (c == "I") return "an integer scalar or vector";
  if (c == "N") return "a float or integer scalar or vector";
  if (c == "V") return "a float vector";
  if (c == "V3") return "a float 3-vector";
  if (c == "F4") return "a float 4-vector";
  if (c == "F2") return "a float 2-vector";
  if (c == "U") return "an integer scalar";
  if (c == "M") return "a float or half matrix";
  if (c == "MS") return "a square float or half matrix";
  return c;
}

}  // namespace

std::optional<DType> lang_result_type(OpCode op, const std::vector<DType>& in, BitRange range, std::string* why) {
  const OpInfo& oi = info(op);
  auto no = [&](const std::string& w) -> std::optional<DType> {
    if (why) *why = w;
    return std::nullopt;
  };
  if (oi.category == OpCategory::MatMul) {
    if (in.size() != 2) return no("expects 2 operands");
    const DType &a = in[0], &b = in[1];
    if (a.elem != b.elem || !float_matrix_elem(a.elem))
      return no("operands must share a float or half element type, got " + a.str() + " and " + b.str());
    if (a.is_matrix() && b.is_matrix()) {
      if (a.cols != b.rows)
        return no("cannot multiply " + a.str() + " by " + b.str() + ": the left matrix has " + std::to_string(a.cols) +
                  " columns, the right one " + std::to_string(b.rows) + " rows");
      return DType::matrix(a.elem, b.cols, a.rows);
    }
    if (a.is_matrix() && b.is_vector()) {
      if (b.lanes != a.cols)
        return no("cannot multiply " + a.str() + " by " + b.str() + ": the vector needs " + std::to_string(a.cols) +
                  " lanes");
      return DType::vector(a.elem, a.rows);
    }
    if (a.is_vector() && b.is_matrix()) {
      if (a.lanes != b.rows)
        return no("cannot multiply " + a.str() + " by " + b.str() + ": the vector needs " + std::to_string(b.rows) +
                  " lanes");
      return DType::vector(a.elem, b.cols);
    }
    return no("needs a matrix and a matrix or vector, got " + a.str() + " and " + b.str());
  }
  if (oi.category != OpCategory::Math) return no("not a math op");
  const std::vector<std::string> classes = operand_classes(op);
  if (in.size() != classes.size())
    return no("expects " + std::to_string(classes.size()) + " operand(s), got " + std::to_string(in.size()));
  std::optional<DType> main;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string& c = classes[i];
    const DType& t = in[i];
    if (is_main_class(c)) {
      if (!in_class(c, t))
        return no("operand " + std::to_string(i + 1) + " must be " + class_words(c) + ", got " + t.str());
      if (main && *main != t) return no("operands differ: " + main->str() + " and " + t.str());
      main = t;
    } else if (c == "S") {
      // checked against the main type below
    } else if (c == "F4" || c == "F2") {
      DType want = DType::vector(Scalar::F32, c == "F4" ? 4 : 2);
      if (t != want) return no("operand must be " + want.str() + ", got " + t.str());
      main = t;
    } else if (c == "U") {
      if (t != DType::scalar(Scalar::U32)) return no("operand must be a uint, got " + t.str());
      main = t;
    } else if (c == "M" || c == "MS") {
      if (!t.is_matrix() || !float_matrix_elem(t.elem))
        return no("operand must be " + class_words(c) + ", got " + t.str());
      if (c == "MS" && t.rows != t.cols) return no("operand must be " + class_words(c) + ", got " + t.str());
      main = t;
    } else {
      return no("internal: unknown operand class '" + c + "'");
    }
  }
  for (size_t i = 0; i < in.size(); ++i)
    if (classes[i] == "S" && in[i] != DType::scalar(main->elem))
      return no("operand " + std::to_string(i + 1) + " must be a " + std::string(info(main->elem).metal_name) +
                " scalar, got " + in[i].str());
  if (op == OpCode::ExtractBits || op == OpCode::InsertBits) {
    int off = range.offset, bits = range.bits, width = info(main->elem).bits;
    if (off < 0 || bits < 0 || off + bits > width)
      return no("bit range offset=" + std::to_string(off) + ", bits=" + std::to_string(bits) + " does not fit in " +
                std::to_string(width) + " bits");
  }
  const std::string rule = oi.result_rule;
  if (rule == "same") return *main;
  if (rule == "bool") return main->with_elem(Scalar::B1);
  if (rule == "elem") return DType::scalar(main->elem);
  if (rule == "uint") return DType::scalar(Scalar::U32);
  if (rule == "float2") return DType::vector(Scalar::F32, 2);
  if (rule == "float4") return DType::vector(Scalar::F32, 4);
  if (rule == "transposed") return DType::matrix(main->elem, main->rows, main->cols);
  return no("internal: unknown result rule '" + rule + "'");
}

// ---- builder -------------------------------------------------------------------

ValueId Builder::math(OpCode code, const std::vector<Operand>& args, int offset, int bits) {
  const OpInfo& oi = info(code);
  const std::string opname = oi.name;
  if (oi.category != OpCategory::Math) fail(opname, "not a math op");
  const std::vector<std::string> classes = operand_classes(code);
  if (args.size() != classes.size())
    fail(opname, "expects " + std::to_string(classes.size()) + " operand(s), got " + std::to_string(args.size()));
  for (const Operand& a : args)
    if (a.is_value()) check_visible(a.value, opname.c_str());

  // The one type the main operands share: typed operands must be in their
  // class and promote (f16 with f32 is f32); literals take it weakly.
  std::optional<DType> main;
  bool want_float = false, want_int = false;
  size_t first_main = args.size();
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& c = classes[i];
    if (!is_main_class(c)) continue;
    if (first_main == args.size()) first_main = i;
    want_float = want_float || c == "F" || c == "V" || c == "V3";
    want_int = want_int || c == "I";
    if (!args[i].is_value()) continue;
    DType t = type_of(args[i].value);
    if (!in_class(c, t)) {
      std::string hint;
      if ((c == "F" || c == "V" || c == "V3") && t.is_integer())
        hint = "; convert it first, e.g. metal_cast(x, \"float\")";
      else if (c == "I" && t.is_float())
        hint = "; this is an integer op (use the float ops, or metal_cast to an integer)";
      fail(opname, "operand " + std::to_string(i + 1) + " must be " + class_words(c) + ", got " + t.str() + hint);
    }
    if (!main) {
      main = t;
      continue;
    }
    if (main->is_vector() && t.is_vector() && main->lanes != t.lanes)
      fail(opname, "vector sizes differ: " + main->str() + " and " + t.str());
    DType r = main->is_vector() ? *main : t;
    r.elem = promote(main->elem, t.elem);
    main = r;
  }
  if (first_main < args.size() && !main) {
    // Only literals: ints are uint (float for float ops), floats are float.
    bool any_float = false;
    for (size_t i = 0; i < args.size(); ++i)
      if (is_main_class(classes[i]) && args[i].literal.kind == Literal::Kind::Float) any_float = true;
    if (want_int && any_float) fail(opname, "is an integer op; got a float literal");
    if (want_float || any_float)
      main = DType::scalar(Scalar::F32);
    else
      main = DType::scalar(Scalar::U32);
    for (size_t i = 0; i < args.size(); ++i)
      if (is_main_class(classes[i]) && args[i].literal.kind == Literal::Kind::Bool)
        fail(opname, "operand " + std::to_string(i + 1) + " must be " + class_words(classes[i]) + ", got " +
                         args[i].literal.str());
    if (classes[first_main] == "V" || classes[first_main] == "V3")
      fail(opname, "needs a float vector operand (make one with make_float2/3/4), got literals only");
  }
  std::vector<ValueId> vals(args.size(), kNoValue);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& c = classes[i];
    const Operand& a = args[i];
    std::string what = "operand " + std::to_string(i + 1);
    if (is_main_class(c)) {
      if (!a.is_value()) {
        if (want_int && a.literal.kind == Literal::Kind::Float)
          fail(opname, what + " must be an integer, got the float literal " + a.literal.str());
        if (a.literal.kind == Literal::Kind::Bool)
          fail(opname, what + " must be " + class_words(c) + ", got " + a.literal.str());
      }
      vals[i] = coerce(a, *main, opname.c_str(), what.c_str());
    } else if (c == "S") {
      DType s = DType::scalar(main->elem);
      if (a.is_value() && !type_of(a.value).is_scalar())
        fail(opname, what + " must be a scalar, got " + type_of(a.value).str());
      if (a.is_value() && !type_of(a.value).is_float())
        fail(opname, what + " must be a float scalar, got " + type_of(a.value).str());
      vals[i] = coerce(a, s, opname.c_str(), what.c_str());
    } else if (c == "F4" || c == "F2") {
      int lanes = c == "F4" ? 4 : 2;
      if (!a.is_value() || !type_of(a.value).is_vector() || !type_of(a.value).is_float() ||
          type_of(a.value).lanes != lanes)
        fail(opname, what + " must be " + class_words(c) + " (e.g. make_float" + std::to_string(lanes) +
                         "(...)), got " + (a.is_value() ? type_of(a.value).str() : "the literal " + a.literal.str()));
      vals[i] = coerce(a, DType::vector(Scalar::F32, lanes), opname.c_str(), what.c_str());
    } else if (c == "U") {
      if (a.is_value()) {
        DType t = type_of(a.value);
        if (!t.is_scalar() || !t.is_integer()) fail(opname, what + " must be " + class_words(c) + ", got " + t.str());
        vals[i] = convert_value(a.value, DType::scalar(Scalar::U32));
      } else {
        if (a.literal.kind == Literal::Kind::Float || a.literal.kind == Literal::Kind::Bool)
          fail(opname, what + " must be an integer, got " + a.literal.str());
        vals[i] = coerce(a, DType::scalar(Scalar::U32), opname.c_str(), what.c_str());
      }
    } else if (c == "M" || c == "MS") {
      if (!a.is_value()) fail(opname, what + " must be " + class_words(c) + ", got the literal " + a.literal.str());
      vals[i] = a.value;
    }
  }
  const BitRange range{offset, bits};
  std::vector<DType> types;
  for (ValueId v : vals) types.push_back(type_of(v));
  std::string why;
  std::optional<DType> rt = lang_result_type(code, types, range, &why);
  if (!rt) fail(opname, why);
  return emit(code, *rt, vals, attr_kind(code) == AttrKind::BitRange ? OpAttrs::of_bit_range(range) : OpAttrs());
}

ValueId Builder::make_vec(const std::vector<Operand>& comps, std::optional<Scalar> elem) {
  const std::string opname =
      elem ? "make_" + std::string(info(*elem).metal_name) + std::to_string(comps.size()) : std::string("make_vec");
  if (comps.size() < 2 || comps.size() > 4)
    fail(opname, "expects 2, 3 or 4 scalars, got " + std::to_string(comps.size()));
  std::optional<DType> common;
  for (size_t i = 0; i < comps.size(); ++i) {
    const Operand& c = comps[i];
    if (!c.is_value()) continue;
    check_visible(c.value, opname.c_str());
    DType t = type_of(c.value);
    if (!t.is_scalar())
      fail(opname, "component " + std::to_string(i) + " must be a scalar, got " + t.str() +
                       " (take lanes with .x/.y/.z/.w or vec_extract)");
    common = common ? DType::scalar(promote(common->elem, t.elem)) : t;
  }
  DType t;
  if (elem) {
    t = DType::scalar(*elem);
  } else if (common) {
    t = *common;
    // A float literal among integer components makes the vector float (as arithmetic does).
    for (const Operand& c : comps)
      if (!c.is_value() && c.literal.kind == Literal::Kind::Float && !is_float(t.elem)) t = DType::scalar(Scalar::F32);
  } else {
    bool any_float = false, all_bool = true;
    for (const Operand& c : comps) {
      any_float = any_float || c.literal.kind == Literal::Kind::Float;
      all_bool = all_bool && c.literal.kind == Literal::Kind::Bool;
    }
    t = DType::scalar(any_float ? Scalar::F32 : all_bool ? Scalar::B1 : Scalar::U32);
  }
  std::vector<ValueId> vals;
  for (size_t i = 0; i < comps.size(); ++i) {
    const Operand& c = comps[i];
    std::string what = "component " + std::to_string(i);
    if (!c.is_value() && c.literal.kind == Literal::Kind::Float && !is_float(t.elem))
      fail(opname, what + " is the float literal " + c.literal.str() + " but the vector holds " + t.str());
    if (c.is_value() && elem)
      vals.push_back(convert_value(c.value, t));  // make_float4(n, ...) converts
    else
      vals.push_back(coerce(c, t, opname.c_str(), what.c_str()));
  }
  return emit(OpCode::MakeVec, DType::vector(t.elem, static_cast<int>(comps.size())), vals);
}

// A lane of a vector (VecExtract) or a column of a matrix (MatColumn).
ValueId Builder::component(OpCode code, const Operand& v, int index) {
  const bool lane = code == OpCode::VecExtract;
  const std::string opname = lane ? "vec_extract" : "matrix_column", whole = lane ? "vector" : "matrix";
  if (!v.is_value()) fail(opname, "expects a " + whole + ", got the literal " + v.literal.str());
  check_visible(v.value, opname.c_str());
  DType t = type_of(v.value);
  if (lane ? !t.is_vector() : !t.is_matrix()) fail(opname, "expects a " + whole + ", got " + t.str());
  const int count = lane ? t.lanes : t.cols;
  if (index < 0 || index >= count)
    fail(opname, (lane ? "lane " : "column ") + std::to_string(index) + " is out of range for " + t.str() + " (0.." +
                     std::to_string(count - 1) + ")");
  return emit(code, lane ? DType::scalar(t.elem) : t.column(), {v.value}, OpAttrs::of_component(index));
}

ValueId Builder::vec_extract(const Operand& v, int lane) { return component(OpCode::VecExtract, v, lane); }

ValueId Builder::make_matrix(const std::vector<Operand>& cols) {
  if (cols.size() < 2 || cols.size() > 4)
    fail("make_matrix", "expects 2, 3 or 4 column vectors, got " + std::to_string(cols.size()));
  std::optional<DType> col;
  for (size_t i = 0; i < cols.size(); ++i) {
    const Operand& c = cols[i];
    if (!c.is_value()) fail("make_matrix", "column " + std::to_string(i) + " must be a vector, got " + c.literal.str());
    check_visible(c.value, "make_matrix");
    DType t = type_of(c.value);
    if (!t.is_vector() || !float_matrix_elem(t.elem))
      fail("make_matrix", "column " + std::to_string(i) + " must be a float or half vector, got " + t.str());
    if (col && col->lanes != t.lanes)
      fail("make_matrix", "columns have different sizes: " + col->str() + " and " + t.str());
    col = col ? DType::vector(promote(col->elem, t.elem), t.lanes) : t;
  }
  std::vector<ValueId> vals;
  for (size_t i = 0; i < cols.size(); ++i) vals.push_back(convert_value(cols[i].value, *col));
  return emit(OpCode::MakeMatrix, DType::matrix(col->elem, static_cast<int>(cols.size()), col->lanes), vals);
}

ValueId Builder::matrix_column(const Operand& m, int c) { return component(OpCode::MatColumn, m, c); }

ValueId Builder::matmul(const Operand& a, const Operand& b) {
  for (const Operand* o : {&a, &b}) {
    if (!o->is_value()) fail("matmul", "operands must be matrices or vectors, got the literal " + o->literal.str());
    check_visible(o->value, "matmul");
  }
  std::string why;
  std::optional<DType> rt = lang_result_type(OpCode::MatMul, {type_of(a.value), type_of(b.value)}, {}, &why);
  if (!rt) fail("matmul", why);
  return emit(OpCode::MatMul, *rt, {a.value, b.value});
}

ValueId Builder::function_constant(DType type, int index) {
  if (!type.is_scalar() || type.elem == Scalar::BF16)
    fail("function_constant", "dtype must be a scalar other than bfloat, got " + type.str());
  if (index < 0 || index > 65535) fail("function_constant", "index must be in 0..65535, got " + std::to_string(index));
  bool known = false;
  for (const FunctionConstant& fc : k_.function_constants) {
    if (fc.index != index) continue;
    if (fc.type != type)
      fail("function_constant",
           "index " + std::to_string(index) + " is already declared as " + fc.type.str() + ", not " + type.str());
    known = true;
  }
  if (!known) k_.function_constants.push_back(FunctionConstant{index, type});
  return emit(OpCode::FuncConst, type, {}, OpAttrs::of_function_constant(index));
}

ValueId Builder::load_if(int64_t mem, const Operand& index, const Operand& mask, const Operand& otherwise) {
  // Any memory id: a buffer parameter or a threadgroup array.
  if (!k_.valid_memory(mem)) fail("load_if", "not a buffer parameter or threadgroup array of this kernel");
  const DType t = k_.memory_type(mem);
  const std::string opname = "load_if from '" + k_.memory_name(mem) + "'";
  ValueId vi = index_operand(index, opname);
  ValueId vm;
  if (mask.is_value()) {
    check_visible(mask.value, opname.c_str());
    if (type_of(mask.value) != DType::scalar(Scalar::B1))
      fail(opname,
           "mask must be a bool scalar, got " + type_of(mask.value).str() + "; compare first, e.g. cmp_lt(i, n)");
    vm = mask.value;
  } else {
    if (mask.literal.kind != Literal::Kind::Bool) fail(opname, "mask must be a bool, got " + mask.literal.str());
    vm = literal(mask.literal);
  }
  if (otherwise.is_value()) check_visible(otherwise.value, opname.c_str());
  ValueId vd = coerce(otherwise, t, opname.c_str(), "the default value");
  return emit(OpCode::LoadIf, t, {vi, vm, vd}, OpAttrs::of_memory(mem));
}

int Builder::local_array(DType elem, int64_t size, const Operand& fill, const std::string& name) {
  if (!elem.is_scalar_or_vector()) fail("register_tensor", "dtype must be a scalar or vector, got " + elem.str());
  if (size < 1) fail("register_tensor", "needs at least one element, got " + std::to_string(size));
  if (size * elem.size_bytes() > kMaxLocalArrayBytes)
    fail("register_tensor", std::to_string(size) + " elements of " + elem.str() + " are " +
                                std::to_string(size * elem.size_bytes()) + " bytes per thread; at most " +
                                std::to_string(kMaxLocalArrayBytes) +
                                " are allowed (use threadgroup or device memory)");
  if (fill.is_value()) check_visible(fill.value, "register_tensor");
  ValueId vf = coerce(fill, elem, "register_tensor", "the fill value");
  int id = static_cast<int>(k_.locals.size());
  k_.locals.push_back(LocalArray{elem, size, name, current().id});
  emit(OpCode::LocalAlloc, DType::void_(), {vf}, OpAttrs::of_local_array(id));
  return id;
}

void Builder::check_local(int array, const std::string& opname) const {
  if (array < 0 || array >= static_cast<int>(k_.locals.size())) fail(opname, "not a register tensor of this kernel");
  uint32_t region = k_.locals[array].region;
  if (region == k_.body.id) return;
  for (const Open& o : stack_)
    if (o.op->regions[o.region].id == region) return;
  fail(opname,
       "this register_tensor was created inside a for_range/if_/while_ body and is used outside it; "
       "create it before the loop or branch");
}

// The index of an access to per-thread array `array`: a literal must be in range.
ValueId Builder::local_index_operand(int array, const Operand& index, const std::string& opname) {
  check_local(array, opname);
  const LocalArray& a = k_.locals[array];
  if (!index.is_value() && (index.literal.kind == Literal::Kind::Int || index.literal.kind == Literal::Kind::UInt) &&
      (index.literal.kind == Literal::Kind::UInt || index.literal.i < 0 || index.literal.i >= a.size))
    fail(opname, "index " + index.literal.str() + " out of range for " + std::to_string(a.size) + " elements");
  return index_operand(index, opname);
}

ValueId Builder::local_load(int array, const Operand& index) {
  const std::string opname = "register_tensor read";
  ValueId vi = local_index_operand(array, index, opname);
  return emit(OpCode::LocalLoad, k_.locals[array].elem, {vi}, OpAttrs::of_local_array(array));
}

void Builder::local_store(int array, const Operand& index, const Operand& value) {
  const std::string opname = "register_tensor write";
  ValueId vi = local_index_operand(array, index, opname);
  const LocalArray& a = k_.locals[array];
  if (value.is_value()) {
    check_visible(value.value, opname.c_str());
    DType tv = type_of(value.value);
    if (tv.is_vector() && a.elem.is_scalar())
      fail(opname, "cannot store a " + tv.str() + " into a register_tensor of " + a.elem.str());
  }
  ValueId vv = coerce(value, a.elem, opname.c_str(), "the stored value");
  emit(OpCode::LocalStore, DType::void_(), {vi, vv}, OpAttrs::of_local_array(array));
}

}  // namespace enigma
