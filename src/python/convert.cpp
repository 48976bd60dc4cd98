// Python values as core arguments: traced values and literals as IR operands,
// dtype names, scalar and function-constant values of a dispatch.
#include "bindings.h"

#include "enigma/support/error.h"

namespace enigma {

namespace {

nb::object g_value_type;

}  // namespace

void set_value_type(nb::object type) { g_value_type = std::move(type); }

Operand to_operand(nb::handle h) {
  if (g_value_type.is_valid() && nb::isinstance(h, g_value_type)) return Operand(nb::cast<ValueId>(h.attr("_id")));
  PyObject* o = h.ptr();
  if (PyBool_Check(o)) return Literal::of_bool(o == Py_True);
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) return Literal::of_int(v);
    unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (PyErr_Occurred()) {
      PyErr_Clear();
      throw KernelError("the integer literal " + nb::cast<std::string>(nb::str(h)) + " does not fit in 64 bits");
    }
    return Literal::of_uint(u);
  }
  if (PyFloat_Check(o)) return Literal::of_float(PyFloat_AsDouble(o));
  std::string tname =
      nb::cast<std::string>(nb::str(nb::handle(reinterpret_cast<PyObject*>(Py_TYPE(o))).attr("__name__")));
  throw nb::type_error(("Cannot convert " + tname + " to IRValue").c_str());
}

std::vector<Operand> to_operands(const nb::list& l) {
  std::vector<Operand> out;
  for (nb::handle h : l) out.push_back(to_operand(h));
  return out;
}

DType dtype_arg(const std::string& s, const char* what) {
  auto t = parse_dtype(s);
  if (!t) throw KernelError(std::string(what) + ": unknown dtype '" + s + "'");
  return *t;
}

ScalarArg scalar_arg(nb::handle h) {
  ScalarArg s;
  s.repr = nb::cast<std::string>(nb::repr(h));
  Operand o = to_operand(h);
  if (o.is_value()) throw RuntimeError("expected a Python number, got the traced value " + s.repr);
  switch (o.literal.kind) {
    case Literal::Kind::Int: s.kind = ScalarArg::Kind::Int; break;
    case Literal::Kind::UInt: s.kind = ScalarArg::Kind::UInt; break;
    case Literal::Kind::Float: s.kind = ScalarArg::Kind::Float; break;
    case Literal::Kind::Bool: s.kind = ScalarArg::Kind::Bool; break;
  }
  // Only the field of the literal's kind is meaningful; the others are zero.
  s.i = o.literal.i;
  s.u = o.literal.u;
  s.f = o.literal.f;
  return s;
}

std::vector<ConstantArg> constant_args(const nb::list& constants) {
  std::vector<ConstantArg> out;
  for (nb::handle item : constants) {
    nb::tuple t = nb::cast<nb::tuple>(item);
    ConstantArg c;
    c.index = nb::cast<int>(t[0]);
    c.type_name = nb::cast<std::string>(t[1]);
    c.value = scalar_arg(t[2]);
    out.push_back(c);
  }
  return out;
}

std::optional<uint64_t> u64_arg(nb::handle h) {
  unsigned long long v = PyLong_AsUnsignedLongLong(h.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    return std::nullopt;
  }
  return static_cast<uint64_t>(v);
}

}  // namespace enigma
