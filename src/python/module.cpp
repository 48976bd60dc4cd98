// Python bindings of the core. The Python package only captures what the
// user wrote and calls these; typing, verification, passes, code generation
// and the runtime all live in C++.
#include <nanobind/nanobind.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/ir/builder.h"
#include "enigma/ir/passes.h"
#include "enigma/ir/printer.h"
#include "enigma/ir/verifier.h"
#include "enigma/runtime/runtime.h"
#include "enigma/support/error.h"
#include "enigma/support/host.h"
#include "layout_bindings.h"
#include "enigma/runtime/cuda.h"
#ifdef ENIGMA_METAL_FAKE
namespace enigma {
void bind_fake_metal(nanobind::module_& m);  // tests/metal_host/fake_metal_bindings.cpp
}  // namespace enigma
#endif

namespace nb = nanobind;
using namespace nb::literals;

namespace enigma {
namespace {

// The Python class of traced values (enigma._tracing.IRValue), set at import.
nb::object g_value_type;

nb::object g_type_error, g_value_error;  // enigma.EnigmaTypeError, enigma.EnigmaValueError

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
  std::string tname = nb::cast<std::string>(nb::str(nb::handle(reinterpret_cast<PyObject*>(Py_TYPE(o))).attr("__name__")));
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

OpCode opcode_arg(const Builder& b, const std::string& name) {
  for (int i = 0; i < num_opcodes(); ++i)
    if (name == info(static_cast<OpCode>(i)).name) return static_cast<OpCode>(i);
  b.fail(name, "unknown op");
}

ScalarArg scalar_arg(nb::handle h) {
  ScalarArg s;
  s.repr = nb::cast<std::string>(nb::repr(h));
  Operand o = to_operand(h);
  if (o.is_value()) throw RuntimeError("expected a Python number, got the traced value " + s.repr);
  switch (o.literal.kind) {
    case Literal::Kind::Int: s.kind = ScalarArg::Kind::Int; s.i = o.literal.i; break;
    case Literal::Kind::UInt: s.kind = ScalarArg::Kind::UInt; s.u = o.literal.u; break;
    case Literal::Kind::Float: s.kind = ScalarArg::Kind::Float; s.f = o.literal.f; break;
    case Literal::Kind::Bool: s.kind = ScalarArg::Kind::Bool; s.i = o.literal.i; break;
  }
  return s;
}

// constants: [(index, type_name, value)] (checked and converted by the runtime).
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

// A Python int as uint64_t; nullopt when it is negative or needs more than 64
// bits (callers report those with the value as the user wrote it).
std::optional<uint64_t> u64_arg(nb::handle h) {
  unsigned long long v = PyLong_AsUnsignedLongLong(h.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    return std::nullopt;
  }
  return static_cast<uint64_t>(v);
}

// grid / threads: 3 ints (checked by the Python layer). A value beyond 64
// bits is reported like any other too-large dimension.
Dim3 dim3_arg(const PreparedLaunch& p, nb::handle seq, const char* what) {
  uint64_t v[3] = {0, 0, 0};
  nb::sequence items = nb::borrow<nb::sequence>(seq);
  if (nb::len(items) != 3) throw RuntimeError(std::string(what) + " must be 3 positive integers (x, y, z)");
  for (size_t i = 0; i < 3; ++i) {
    nb::object item = items[i];
    std::optional<uint64_t> u = PyLong_Check(item.ptr()) ? u64_arg(item) : std::nullopt;
    if (!u) {
      std::string text = nb::cast<std::string>(nb::repr(seq));
      bool negative = PyLong_Check(item.ptr()) && PyObject_RichCompareBool(item.ptr(), nb::int_(0).ptr(), Py_LT) == 1;
      throw RuntimeError(p.api() + ": kernel '" + p.kernel_name() + "': " + what + " " + text +
                         (negative || !PyLong_Check(item.ptr())
                              ? " must be 3 positive integers"
                              : std::string(" is too large: at most ") +
                                    (std::string(what) == "grid" ? "4294967295 threads per dimension"
                                                                 : "the device's threads per threadgroup")));
    }
    v[i] = *u;
  }
  return Dim3{v[0], v[1], v[2]};
}

struct PyBufferView {
  Py_buffer view{};
  bool ok = false;
  explicit PyBufferView(nb::handle h) {
    if (PyObject_GetBuffer(h.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) throw nb::python_error();
    ok = true;
  }
  ~PyBufferView() {
    if (ok) PyBuffer_Release(&view);
  }
};

nb::dict caps_dict(const DeviceCapabilities& c) {
  nb::dict d;
  d["gpu_family"] = c.gpu_family;
  d["gpu_family_raw"] = c.gpu_family_raw;
  d["is_m3_or_newer"] = c.is_m3_or_newer;
  d["supports_async_copy"] = c.supports_async_copy;
  d["supports_simdgroup_matrix"] = c.supports_simdgroup_matrix;
  d["simdgroup_size"] = c.simdgroup_size;
  d["max_threadgroup_memory"] = c.max_threadgroup_memory;
  d["max_threads_per_threadgroup"] = c.max_threads_per_threadgroup;
  d["device_name"] = c.device_name;
  d["backend"] = c.backend;
  d["max_buffer_bytes"] = c.max_buffer_bytes;
  return d;
}

// ---- host hooks: warnings and Ctrl-C ------------------------------------------

// Python's SIGINT handler only sets a flag, checked where the interpreter
// runs. Long core operations (CPU dispatch, compiles) release the GIL and poll
// this hook from the calling thread; it runs pending signal handlers there.
// The exception a handler raised (KeyboardInterrupt) is kept per thread until
// the core's Interrupted reaches the binding, which raises it.
unsigned long g_main_thread = 0;
#if PY_VERSION_HEX >= 0x030C0000
thread_local PyObject* t_interrupt = nullptr;
#else
thread_local PyObject* t_interrupt[3] = {nullptr, nullptr, nullptr};
#endif

bool python_interrupt_requested() {
  // Signal handlers run only in the main thread.
  if (PyThread_get_thread_ident() != g_main_thread) return false;
  PyGILState_STATE gil = PyGILState_Ensure();
  bool stop = PyErr_CheckSignals() != 0;
  if (stop) {
#if PY_VERSION_HEX >= 0x030C0000
    Py_XDECREF(t_interrupt);
    t_interrupt = PyErr_GetRaisedException();
#else
    for (PyObject* o : t_interrupt) Py_XDECREF(o);
    PyErr_Fetch(&t_interrupt[0], &t_interrupt[1], &t_interrupt[2]);
#endif
  }
  PyGILState_Release(gil);
  return stop;
}

void raise_interrupt() {
#if PY_VERSION_HEX >= 0x030C0000
  if (t_interrupt) {
    PyErr_SetRaisedException(t_interrupt);
    t_interrupt = nullptr;
    return;
  }
#else
  if (t_interrupt[0]) {
    PyErr_Restore(t_interrupt[0], t_interrupt[1], t_interrupt[2]);
    t_interrupt[0] = t_interrupt[1] = t_interrupt[2] = nullptr;
    return;
  }
#endif
  PyErr_SetNone(PyExc_KeyboardInterrupt);
}

void python_warning(const std::string& message) {
  PyGILState_STATE gil = PyGILState_Ensure();
  if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) != 0) {
    // Warnings turned into errors cannot propagate from here: print instead.
    PyErr_Clear();
    std::fprintf(stderr, "enigma: warning: %s\n", message.c_str());
  }
  PyGILState_Release(gil);
}

}  // namespace
}  // namespace enigma

NB_MODULE(_core, m) {
  using namespace enigma;
  m.doc() = "Enigma core: IR, passes, code generation and runtime";
  nb::exception<KernelError>(m, "EnigmaError");
  // enigma.EnigmaTypeError / EnigmaValueError are defined in Python (they also
  // derive from TypeError / ValueError) and handed over by _set_error_types.
  m.def("_set_error_types", [](nb::object type_error, nb::object value_error) {
    g_type_error = type_error;
    g_value_error = value_error;
  });
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Interrupted&) {
      raise_interrupt();
    } catch (const ValidationError& e) {
      nb::handle t = e.kind() == ValidationError::Kind::Type ? g_type_error : g_value_error;
      PyErr_SetString(t.is_valid() ? t.ptr() : PyExc_ValueError, e.what());
    }
  });
  g_main_thread = nb::cast<unsigned long>(nb::module_::import_("threading").attr("main_thread")().attr("ident"));
  set_interrupt_hook(&python_interrupt_requested);
  set_warning_hook(&python_warning);
  bind_layout(m);
#ifdef ENIGMA_METAL_FAKE
  bind_fake_metal(m);
#endif

  m.def("_set_value_type", [](nb::object t) { g_value_type = t; });
  m.def("cpu_abi_version", [] { return ENIGMA_CPU_ABI_VERSION; });

  // dtype table (the single source; Python reads it)
  m.def("dtype_table", [] {
    nb::list out;
    for (int i = 0; i < kNumScalars; ++i) {
      const ScalarInfo& s = info(static_cast<Scalar>(i));
      out.append(nb::make_tuple(s.metal_name, s.short_name, s.bits, s.is_float, s.is_signed, s.numpy_name));
    }
    return out;
  });
  m.def("canonical_dtype", [](const std::string& s) -> nb::object {
    auto t = parse_dtype(s);
    if (!t) return nb::none();
    return nb::str(t->str().c_str());
  });
  m.def("dtype_size", [](const std::string& s) { return dtype_arg(s, "dtype_size").size_bytes(); });
  m.def("op_table", [] {
    nb::list out;
    for (int i = 0; i < num_opcodes(); ++i) {
      const OpInfo& o = info(static_cast<OpCode>(i));
      out.append(nb::make_tuple(o.name, o.num_operands, o.num_regions, o.pure, o.c_expr));
    }
    return out;
  });
  // The per-thread language's rows of the op table (ops.def's OPX section),
  // with each backend's spelling: what docs/ops.md and the conformance suite read.
  m.def("language_table", [] {
    nb::list out;
    for (int i = 0; i < num_opcodes(); ++i) {
      const OpInfo& o = info(static_cast<OpCode>(i));
      if (!*o.operand_classes) continue;
      nb::dict d;
      d["name"] = o.name;
      d["arity"] = o.num_operands;
      d["c_expr"] = o.c_expr;
      d["operands"] = o.operand_classes;
      d["result"] = o.result_rule;
      d["tolerance"] = o.tolerance;
      std::string msl = spell_template(o.c_expr, "metal::");
      if (const char* helper = spelling_exception("metal", o.name, Scalar::F32))  // a function Metal lacks
        if (std::string(helper).rfind("metal::", 0) != 0) msl.replace(msl.find(std::string("metal::") + o.name),
                                                                      std::strlen("metal::") + std::strlen(o.name), helper);
      d["msl"] = msl;
      d["cpu"] = spell_template(o.c_expr, "en_");
      out.append(d);
    }
    return out;
  });
  // Metal's vote/mask functions (ops.def's VOTE rows): name, width, takes a predicate, lowering, result.
  m.def("vote_table", [] {
    nb::list out;
#define OP(...)
#define VOTE(e, n, width, pred, how, result) out.append(nb::make_tuple(n, width, pred, how, result));
#include "enigma/ir/ops.def"
#undef VOTE
#undef OP
    return out;
  });
  m.def("spelling_exceptions", [] {
    nb::list out;
    for (const SpellingException& e : spelling_exceptions())
      out.append(nb::make_tuple(e.backend, e.function, info(e.elem).metal_name, e.spelling, e.why));
    return out;
  });

  nb::class_<Kernel>(m, "KernelIR")
      .def_prop_ro("name", [](const Kernel& k) { return k.name; })
      .def("print", [](const Kernel& k) { return print(k); })
      .def("optimize", [](Kernel& k) { optimize(k); })
      .def("verify", [](const Kernel& k) { verify(k); })
      .def("emit_msl", [](const Kernel& k, bool debug, bool bounds_check) {
        MslEmitOptions o;
        o.debug = debug;
        o.bounds_check = bounds_check;
        return emit_msl(k, o);
      }, "debug"_a = false, "bounds_check"_a = true)
      .def("emit_cuda", [](const Kernel& k, bool debug, bool bounds_check) {
        CudaEmitOptions o;
        o.debug = debug;
        o.bounds_check = bounds_check;
        return emit_cuda(k, o);
      }, "debug"_a = false, "bounds_check"_a = true)
      .def("emit_cpu", [](const Kernel& k, bool debug, bool bounds_check) {
        CpuEmitOptions o;
        o.debug = debug;
        o.bounds_check = bounds_check;
        return emit_cpu(k, o);
      }, "debug"_a = false, "bounds_check"_a = true)
      .def_prop_ro("function_constants", [](const Kernel& k) {
        nb::list out;
        for (const FunctionConstant& fc : k.function_constants) out.append(nb::make_tuple(fc.index, fc.type.str()));
        return out;
      })
      .def_prop_ro("params", [](const Kernel& k) {
        nb::list out;
        for (const Param& p : k.params)
          out.append(nb::make_tuple(p.name, p.kind == Param::Kind::Buffer ? "buffer" : "scalar", p.type.str(), p.written));
        return out;
      })
      .def_prop_ro("threadgroup_memory_bytes", &Kernel::threadgroup_memory_bytes)
      .def_prop_ro("num_ops", [](const Kernel& k) {
        size_t n = 0;
        walk(k.body, [&](const Op&) { ++n; });
        return n;
      });

  nb::class_<Builder>(m, "Builder")
      .def(nb::init<std::string>())
      .def("set_location", &Builder::set_location)
      .def("dtype_of", [](const Builder& b, ValueId v) { return b.type_of(v).str(); })
      .def("set_hint", &Builder::set_hint)
      .def("add_buffer_param", [](Builder& b, const std::string& n, const std::string& t) {
        return b.add_buffer_param(n, dtype_arg(t, ("parameter '" + n + "'").c_str()));
      })
      .def("add_scalar_param", [](Builder& b, const std::string& n, const std::string& t) {
        return b.add_scalar_param(n, dtype_arg(t, ("parameter '" + n + "'").c_str()));
      })
      .def("literal", [](Builder& b, nb::handle v, nb::object dtype) {
        Operand o = to_operand(v);
        if (o.is_value()) return o.value;
        if (dtype.is_none()) return b.literal(o.literal);
        return b.literal(o.literal, dtype_arg(nb::cast<std::string>(dtype), "literal"));
      }, "value"_a, "dtype"_a = nb::none())
      .def("query", [](Builder& b, const std::string& q, int dim) {
        ThreadQuery tq;
        if (!parse_thread_query(q, &tq)) b.fail(q, "unknown thread query");
        return b.thread_query(tq, dim);
      })
      .def("binary", [](Builder& b, const std::string& op, nb::handle x, nb::handle y) {
        for (int i = 0; i < num_opcodes(); ++i) {
          const OpInfo& oi = info(static_cast<OpCode>(i));
          if (op == oi.name) return b.binary(oi.code, to_operand(x), to_operand(y));
        }
        b.fail(op, "unknown binary op");
      })
      .def("unary", [](Builder& b, const std::string& op, nb::handle x) {
        if (op == "neg") return b.unary(OpCode::Neg, to_operand(x));
        if (op == "not") return b.unary(OpCode::Not, to_operand(x));
        b.fail(op, "unknown unary op");
      })
      .def("compare", [](Builder& b, const std::string& pred, nb::handle x, nb::handle y) {
        CmpPred p;
        if (!parse_cmp_pred(pred, &p)) b.fail("cmp_" + pred, "unknown predicate");
        return b.compare(p, to_operand(x), to_operand(y));
      })
      .def("select", [](Builder& b, nb::handle c, nb::handle t, nb::handle f) {
        return b.select(to_operand(c), to_operand(t), to_operand(f));
      })
      .def("convert", [](Builder& b, nb::handle x, const std::string& t) {
        auto d = parse_dtype(t);
        if (!d) b.fail("metal_cast", "unknown dtype '" + t + "'");
        return b.convert(to_operand(x), *d);
      })
      .def("bitcast", [](Builder& b, nb::handle x, const std::string& t) {
        auto d = parse_dtype(t);
        if (!d) b.fail("as_type", "unknown dtype '" + t + "'");
        return b.bitcast(to_operand(x), *d);
      })
      .def("math", [](Builder& b, const std::string& op, const nb::list& args, int offset, int bits) {
        return b.math(opcode_arg(b, op), to_operands(args), offset, bits);
      }, "op"_a, "args"_a, "offset"_a = 0, "bits"_a = 0)
      .def("make_vec", [](Builder& b, const nb::list& comps, nb::object elem) {
        if (elem.is_none()) return b.make_vec(to_operands(comps));
        auto s = parse_scalar(nb::cast<std::string>(elem));
        if (!s) b.fail("make_vec", "unknown element dtype '" + nb::cast<std::string>(elem) + "'");
        return b.make_vec(to_operands(comps), *s);
      }, "components"_a, "elem"_a = nb::none())
      .def("vec_extract", [](Builder& b, nb::handle v, int lane) { return b.vec_extract(to_operand(v), lane); })
      .def("make_matrix", [](Builder& b, const nb::list& cols) { return b.make_matrix(to_operands(cols)); })
      .def("matrix_column", [](Builder& b, nb::handle m, int c) { return b.matrix_column(to_operand(m), c); })
      .def("matmul", [](Builder& b, nb::handle x, nb::handle y) { return b.matmul(to_operand(x), to_operand(y)); })
      .def("function_constant", [](Builder& b, const std::string& t, int index) {
        auto d = parse_dtype(t);
        if (!d) b.fail("function_constant", "unknown dtype '" + t + "'");
        return b.function_constant(*d, index);
      })
      .def("load_if", [](Builder& b, int64_t mem, nb::handle idx, nb::handle mask, nb::handle dflt) {
        return b.load_if(mem, to_operand(idx), to_operand(mask), to_operand(dflt));
      })
      .def("local_array", [](Builder& b, const std::string& t, int64_t size, nb::handle fill, const std::string& n) {
        auto d = parse_dtype(t);
        if (!d) b.fail("register_tensor", "unknown dtype '" + t + "'");
        return b.local_array(*d, size, to_operand(fill), n);
      })
      .def("local_load", [](Builder& b, int a, nb::handle idx) { return b.local_load(a, to_operand(idx)); })
      .def("local_store", [](Builder& b, int a, nb::handle idx, nb::handle v) {
        b.local_store(a, to_operand(idx), to_operand(v));
      })
      .def("load", [](Builder& b, int64_t mem, nb::handle idx) { return b.load(mem, to_operand(idx)); })
      .def("load_vec", [](Builder& b, int64_t mem, nb::handle idx, int width) {
        return b.load_vec(mem, to_operand(idx), width);
      })
      .def("store_vec", [](Builder& b, int64_t mem, nb::handle idx, nb::handle v) {
        b.store_vec(mem, to_operand(idx), to_operand(v));
      })
      .def("store", [](Builder& b, int64_t mem, nb::handle idx, nb::handle v) {
        b.store(mem, to_operand(idx), to_operand(v));
      })
      // ---- cooperative execution ----
      .def("threadgroup_alloc", [](Builder& b, const std::string& t, uint64_t size, const std::string& name) {
        return b.threadgroup_alloc(dtype_arg(t, "threadgroup_alloc"), size, name);
      })
      .def("barrier", [](Builder& b, const std::string& flags, bool simd) {
        int64_t f = 0;
        if (!parse_mem_flags(flags, &f))
          b.fail(simd ? "simd_barrier" : "barrier", "unknown mem_flags '" + flags + "'; expected one of mem_none, "
                 "mem_device, mem_threadgroup, mem_device_and_threadgroup, mem_texture");
        b.barrier(f, simd);
      })
      .def("vote", [](Builder& b, const std::string& name, nb::handle pred) {
        return b.vote(name, to_operand(pred));
      })
      .def("collective", [](Builder& b, const std::string& op, nb::handle v, nb::handle lane) {
        for (int i = 0; i < num_opcodes(); ++i) {
          const OpInfo& oi = info(static_cast<OpCode>(i));
          if (op == oi.name && (oi.category == OpCategory::GroupReduce || oi.category == OpCategory::GroupScan ||
                                oi.category == OpCategory::GroupShuffle))
            return b.collective(oi.code, to_operand(v), lane.is_none() ? Operand() : to_operand(lane));
        }
        b.fail(op, "unknown simd/quad op");
      }, "op"_a, "value"_a, "lane"_a = nb::none())
      .def("atomic", [](Builder& b, const std::string& op, int64_t mem, nb::handle idx, const nb::list& values,
                        const std::string& order, const std::string& failure) {
        MemoryOrder o, f;
        if (!parse_memory_order(order, &o))
          b.fail(op, "unknown memory order '" + order + "'; expected relaxed, acquire, release, acq_rel or seq_cst");
        if (!parse_memory_order(failure, &f))
          b.fail(op, "unknown failure order '" + failure + "'; expected relaxed, acquire, release, acq_rel or seq_cst");
        for (int i = 0; i < num_opcodes(); ++i) {
          const OpInfo& oi = info(static_cast<OpCode>(i));
          if (op == oi.name && oi.category == OpCategory::Atomic) {
            ValueId r = b.atomic(oi.code, mem, to_operand(idx), to_operands(values), o, f);
            return r == kNoValue ? nb::object(nb::none()) : nb::object(nb::int_(r));
          }
        }
        b.fail(op, "unknown atomic op");
      })
      .def("simd_matrix_load", [](Builder& b, int64_t mem, nb::handle origin, nb::handle epr, const std::string& t,
                                  bool transpose) {
        return b.simd_matrix_load(mem, to_operand(origin), to_operand(epr), dtype_arg(t, "simdgroup_matrix_load"),
                                  transpose);
      })
      .def("simd_matrix_store", [](Builder& b, ValueId m, int64_t mem, nb::handle origin, nb::handle epr, bool transpose) {
        b.simd_matrix_store(m, mem, to_operand(origin), to_operand(epr), transpose);
      })
      .def("simd_matrix_fill", [](Builder& b, nb::handle v, const std::string& t) {
        return b.simd_matrix_fill(to_operand(v), dtype_arg(t, "make_filled_simdgroup_matrix"));
      })
      .def("simd_matrix_mma", &Builder::simd_matrix_mma)
      .def("async_copy_1d", [](Builder& b, int64_t dst, nb::handle doff, int64_t src, nb::handle soff, nb::handle n) {
        return b.async_copy_1d(dst, to_operand(doff), src, to_operand(soff), to_operand(n));
      })
      .def("async_copy_2d", [](Builder& b, int64_t dst, nb::handle doff, nb::handle depr, int64_t src, nb::handle soff,
                               nb::handle sepr, nb::handle cols, nb::handle rows) {
        return b.async_copy_2d(dst, to_operand(doff), to_operand(depr), src, to_operand(soff), to_operand(sepr),
                               to_operand(cols), to_operand(rows));
      })
      .def("async_wait", &Builder::async_wait)
      .def("begin_for", [](Builder& b, nb::handle lo, nb::handle hi, nb::handle step, const std::string& iv,
                           const nb::list& inits) {
        auto t = parse_dtype(iv);
        if (!t) b.fail("for_range", "unknown loop variable dtype '" + iv + "'");
        return b.begin_for(to_operand(lo), to_operand(hi), to_operand(step), *t, to_operands(inits));
      })
      .def("end_for", [](Builder& b, const nb::list& y) { return b.end_for(to_operands(y)); })
      .def("begin_if", [](Builder& b, nb::handle c) { b.begin_if(to_operand(c)); })
      .def("begin_else", [](Builder& b) { b.begin_else(); })
      .def("end_if", [](Builder& b) { b.end_if(); })
      .def("end_if_merge", [](Builder& b, const nb::list& t, const nb::list& e, const std::vector<std::string>& names) {
        return b.end_if_merge(to_operands(t), to_operands(e), names);
      })
      .def("begin_while", [](Builder& b, const nb::list& inits) { return b.begin_while(to_operands(inits)); })
      .def("while_body", [](Builder& b, nb::handle c) { return b.while_body(to_operand(c)); })
      .def("end_while", [](Builder& b, const nb::list& y) { return b.end_while(to_operands(y)); })
      .def("region_size", &Builder::current_region_size)
      .def("depth", &Builder::depth)
      .def("fail", [](const Builder& b, const std::string& op, const std::string& msg) { b.fail(op, msg); })
      .def("finish", &Builder::finish);

  nb::class_<CompiledKernel>(m, "CompiledKernelCore")
      .def("__init__", [](CompiledKernel* self, const Kernel& k, bool debug, bool bounds_check) {
        CompileOptions o;
        o.debug = debug;
        o.bounds_check = bounds_check;
        new (self) CompiledKernel(k, o);
      }, "kernel"_a, "debug"_a = false, "bounds_check"_a = true)
      .def_prop_ro("bounds_check", [](const CompiledKernel& c) { return c.options().bounds_check || c.options().debug; })
      .def_prop_ro("ir", [](const CompiledKernel& c) { return print(c.kernel()); })
      .def("source", [](const CompiledKernel& c, const std::string& backend, int groups_per_block,
                        const nb::list& constants, bool matrix_fragments) -> std::string {
        // Function constants: MSL declares them; other backends are specialised.
        ConstantValues values;
        if (constants.size()) values = constant_values(c.kernel(), constant_args(constants), "source");
        Kernel spec;
        const Kernel& chosen = values.empty() ? c.kernel() : (spec = c.specialized(values));
        if (backend == "metal" || backend == "msl") {
          MslEmitOptions o;
          o.debug = c.options().debug;
          o.bounds_check = c.options().bounds_check;
          return emit_msl(chosen, o);
        }
        if (backend == "cpu") {
          CpuEmitOptions o;
          o.debug = c.options().debug;
          o.bounds_check = c.options().bounds_check;
          return emit_cpu(chosen, o);
        }
        if (backend == "cuda") {
          CudaEmitOptions o;
          o.debug = c.options().debug;
          o.bounds_check = c.options().bounds_check;
          o.groups_per_block = o.debug ? 1 : groups_per_block;
          o.matrix_fragments = !o.debug && matrix_fragments;
          return emit_cuda(chosen, o);
        }
        throw RuntimeError("source(): unknown backend '" + backend + "'; expected 'metal', 'cuda', 'cpu'");
      }, "backend"_a, "groups_per_block"_a = 1, "constants"_a = nb::list(), "matrix_fragments"_a = false)
      .def_prop_ro("cuda_uses_matrices", [](const CompiledKernel& c) { return cuda_uses_matrices(c.kernel()); })
      .def_prop_ro("num_programs", &CompiledKernel::num_programs)
      .def_prop_ro("function_constants", [](const CompiledKernel& c) {
        nb::list out;
        for (const FunctionConstant& fc : c.kernel().function_constants) out.append(nb::make_tuple(fc.index, fc.type.str()));
        return out;
      })
      // The CUDA variant large grids run (several threadgroups per block), 1 if none.
      .def_prop_ro("cuda_groups_per_block", [](const CompiledKernel& c) {
        return c.options().debug ? 1 : cuda_preferred_groups_per_block(c.kernel());
      })
      .def("precompile", [](CompiledKernel& c, std::shared_ptr<Device> d) {
        if (!c.kernel().function_constants.empty()) return;  // compiled per set of constants, at dispatch
        nb::gil_scoped_release release;
        c.program(*d);
      });

  // Device memory a Python DeviceArray owns; PreparedLaunches bind it without copies.
  nb::class_<DeviceBuffer>(m, "DeviceBuffer").def_prop_ro("size", &DeviceBuffer::size);
  nb::class_<Device>(m, "Device")
      .def_prop_ro("name", &Device::name)
      .def("allocate", [](Device& d, uint64_t bytes) {
        if (bytes == 0) throw ValidationError(ValidationError::Kind::Value, "a device array needs at least one byte");
        nb::gil_scoped_release release;
        return std::shared_ptr<DeviceBuffer>(d.allocate(bytes));
      })
      .def("upload", [](Device& d, std::shared_ptr<DeviceBuffer> b, nb::handle src) {
        PyBufferView v(src);
        if (static_cast<uint64_t>(v.view.len) != b->size())
          throw ValidationError(ValidationError::Kind::Value, "write: the device array holds " + std::to_string(b->size()) +
                                                                  " bytes, the data has " + std::to_string(v.view.len));
        nb::gil_scoped_release release;
        d.upload(*b, v.view.buf, b->size());
      })
      .def("download", [](Device& d, std::shared_ptr<DeviceBuffer> b) {
        nb::bytes out(nullptr, static_cast<size_t>(b->size()));
        {
          nb::gil_scoped_release release;
          d.download(*b, const_cast<char*>(static_cast<const char*>(out.data())), b->size());
        }
        return out;
      })
      .def("capabilities", [](const Device& d) { return caps_dict(d.capabilities()); });
  m.def("open_device", [](const std::string& spec) {
    nb::gil_scoped_release release;
    return open_device(spec);
  });
  m.def("available_backends", &available_backends);
  m.def("set_cuda_library_hints", [](std::vector<std::string> dirs) { cuda::set_library_hints(std::move(dirs)); });
  m.def("cuda_info", [] {
    // What the CUDA backend found on this machine (for tests, benchmarks, bug reports).
    cuda::Probe p;
    {
      nb::gil_scoped_release release;
      p = cuda::probe();
    }
    nb::dict d;
    d["driver_loaded"] = p.driver_loaded;
    d["driver_version"] = p.driver_version;
    d["device_count"] = p.device_count;
    d["unavailable_reason"] = p.unavailable_reason;
    d["nvrtc_path"] = p.nvrtc_path;
    d["nvrtc_version"] = p.nvrtc_version;
    d["nvrtc_error"] = p.nvrtc_error;
    d["nvrtc_options"] = cuda_nvrtc_options();
    return d;
  });

  nb::class_<PreparedLaunch>(m, "PreparedLaunch")
      .def("__init__", [](PreparedLaunch* self, std::shared_ptr<Device> dev, std::shared_ptr<CompiledKernel> ck,
                          const nb::list& inputs, const nb::list& scalars, const nb::list& output_size_list,
                          const std::string& api, const nb::list& constants) {
        const Kernel& kernel = ck->kernel();
        // Sizes beyond 64 bits: the core's "more than the device allows" error, with the value as given.
        std::vector<uint64_t> output_sizes;
        for (nb::handle h : output_size_list) {
          std::optional<uint64_t> u = PyLong_Check(h.ptr()) ? u64_arg(h) : std::nullopt;
          if (!u) {
            std::string what = nb::len(output_size_list) == 1 ? std::string("output_size")
                                                              : "output_sizes[" + std::to_string(output_sizes.size()) + "]";
            throw RuntimeError(api + ": kernel '" + kernel.name + "' " + what + " is " +
                               nb::cast<std::string>(nb::repr(h)) +
                               " bytes, more than the device allows in one buffer (" +
                               std::to_string(dev->capabilities().max_buffer_bytes) + " bytes)");
          }
          output_sizes.push_back(*u);
        }
        // inputs: (buffer-protocol object, numpy dtype name, shape string), or
        // (None, dtype, shape, device pointer, bytes) for an array already in
        // CUDA memory (bound without a copy; see HostArray::device_ptr).
        std::vector<std::unique_ptr<PyBufferView>> views;
        std::vector<HostArray> arrays;
        for (nb::handle item : inputs) {
          nb::tuple t = nb::cast<nb::tuple>(item);
          HostArray a;
          if (t.size() >= 5 && t[0].is_none()) {
            a.device_ptr = nb::cast<uint64_t>(t[3]);
            a.bytes = nb::cast<uint64_t>(t[4]);
          } else {
            views.push_back(std::make_unique<PyBufferView>(t[0]));
            a.data = views.back()->view.buf;
            a.bytes = static_cast<uint64_t>(views.back()->view.len);
          }
          a.dtype = nb::cast<std::string>(t[1]);
          a.shape = nb::cast<std::string>(t[2]);
          arrays.push_back(a);
        }
        std::vector<ScalarArg> sargs;
        for (nb::handle h : scalars) {
          try {
            sargs.push_back(scalar_arg(h));
          } catch (const KernelError&) {  // an int beyond 64 bits: out of range for any Scalar parameter
            std::string param = "scalars[" + std::to_string(sargs.size()) + "]";
            size_t seen = 0;
            for (const Param& kp : kernel.params)
              if (kp.kind == Param::Kind::Scalar && seen++ == sargs.size())
                param = "Scalar parameter '" + kp.name + "' (" + kp.type.str() + ")";
            throw RuntimeError(api + ": kernel '" + kernel.name + "' " + param + " cannot hold " +
                               nb::cast<std::string>(nb::repr(h)) + " (out of range)");
          }
        }
        std::vector<ConstantArg> cargs;
        try {
          cargs = constant_args(constants);
        } catch (const KernelError&) {  // a value beyond 64 bits
          for (nb::handle item : constants) {
            nb::handle index = PyTuple_GetItem(item.ptr(), 0), value = PyTuple_GetItem(item.ptr(), 2);
            if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr()) || u64_arg(value)) continue;
            int overflow = 0;
            PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
            if (overflow == 0) continue;
            throw RuntimeError(api + ": constants[" + nb::cast<std::string>(nb::str(index)) + "]: kernel '" +
                               kernel.name + "' cannot hold " + nb::cast<std::string>(nb::repr(value)) +
                               " (out of range)");
          }
          throw;
        }
        nb::gil_scoped_release release;
        new (self) PreparedLaunch(std::move(dev), std::move(ck), arrays, sargs, output_sizes, api.c_str(), cargs);
      }, "device"_a, "kernel"_a, "inputs"_a, "scalars"_a, "output_sizes"_a, "api"_a, "constants"_a = nb::list())
      .def("dispatch", [](PreparedLaunch& p, nb::handle grid, nb::handle threads) {
        Dim3 g = dim3_arg(p, grid, "grid"), t = dim3_arg(p, threads, "threads");
        nb::gil_scoped_release release;
        p.dispatch(g, t);  // may return before the kernel ends (CUDA)
      })
      .def("dispatch_timed", [](PreparedLaunch& p, nb::handle grid, nb::handle threads) {
        Dim3 g = dim3_arg(p, grid, "grid"), t = dim3_arg(p, threads, "threads");
        nb::gil_scoped_release release;
        return p.dispatch_timed(g, t);
      })
      .def("read_output", [](const PreparedLaunch& p, size_t i) {
        if (p.released()) throw RuntimeError("read_output: kernel '" + p.kernel_name() + "': this PreparedKernel was released; prepare() it again");
        if (i >= p.num_outputs()) throw RuntimeError("read_output: no output " + std::to_string(i));
        uint64_t n = p.output_size(i);
        nb::bytes out(nullptr, static_cast<size_t>(n));
        {
          nb::gil_scoped_release release;
          p.read_output(i, const_cast<char*>(static_cast<const char*>(out.data())));
        }
        return out;
      })
      .def("set_scalars", [](PreparedLaunch& p, const nb::list& scalars) {
        std::vector<ScalarArg> sargs;
        for (nb::handle h : scalars) sargs.push_back(scalar_arg(h));
        p.set_scalars(sargs);
      })
      .def("buffer", &PreparedLaunch::buffer)
      .def("bind", &PreparedLaunch::bind)
      .def("read_buffer", [](const PreparedLaunch& p, size_t param) {
        uint64_t n = p.buffer(param)->size();
        nb::bytes out(nullptr, static_cast<size_t>(n));
        {
          nb::gil_scoped_release release;
          p.read_buffer(param, const_cast<char*>(static_cast<const char*>(out.data())));
        }
        return out;
      })
      .def_prop_ro("num_outputs", &PreparedLaunch::num_outputs)
      .def_prop_ro("released", &PreparedLaunch::released)
      .def_prop_ro("kernel_name", &PreparedLaunch::kernel_name)
      .def("release", [](PreparedLaunch& p) {
        nb::gil_scoped_release release;
        p.release();
      });
}
