// Bindings of the IR: the dtype and op tables, the builder the Python tracer
// drives, and the kernels it builds (printing, passes, emitters).

#include <cstring>

#include "bindings.h"
#include "enigma/backend.h"
#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/ir/builder.h"
#include "enigma/ir/passes.h"
#include "enigma/ir/printer.h"
#include "enigma/ir/verifier.h"
#include "enigma/support/error.h"

using namespace nb::literals;

namespace enigma {

namespace {

OpCode opcode_arg(const Builder& b, const std::string& name) {
  for (int i = 0; i < num_opcodes(); ++i)
    if (name == info(static_cast<OpCode>(i)).name) return static_cast<OpCode>(i);
  b.fail(name, "unknown op");
}

// A backend's emitter with the checking options Python passes.
auto emitter(const char* backend) {
  return [backend](const Kernel& k, bool debug, bool bounds_check) {
    SourceOptions o;
    o.debug = debug;
    o.bounds_check = bounds_check;
    return find_backend(backend)->emit(k, o);
  };
}

}  // namespace

void bind_ir(nb::module_& m) {
  m.def("_set_value_type", &set_value_type, "Sets the Python class of traced values (enigma._tracing.IRValue).");
  m.def(
      "cpu_abi_version", [] { return ENIGMA_CPU_ABI_VERSION; },
      "Version of the interface between the CPU runtime and generated kernels (cpu_abi.h).");

  // dtype table (the single source; Python reads it)
  m.def(
      "dtype_table",
      [] {
        nb::list out;
        for (int i = 0; i < kNumScalars; ++i) {
          const ScalarInfo& s = info(static_cast<Scalar>(i));
          out.append(nb::make_tuple(s.metal_name, s.short_name, s.bits, s.is_float, s.is_signed, s.numpy_name));
        }
        return out;
      },
      "Rows (metal_name, short_name, bits, is_float, is_signed, numpy_name) of every scalar dtype.");
  m.def(
      "canonical_dtype",
      [](const std::string& s) -> nb::object {
        auto t = parse_dtype(s);
        if (!t) return nb::none();
        return nb::str(t->str().c_str());
      },
      "The canonical spelling of a dtype name, or None when it is unknown.");
  m.def(
      "dtype_size", [](const std::string& s) { return dtype_arg(s, "dtype_size").size_bytes(); },
      "Bytes of one element of a dtype.");
  m.def(
      "op_table",
      [] {
        nb::list out;
        for (int i = 0; i < num_opcodes(); ++i) {
          const OpInfo& o = info(static_cast<OpCode>(i));
          out.append(nb::make_tuple(o.name, o.num_operands, o.num_regions, o.pure, o.c_expr));
        }
        return out;
      },
      "Rows (name, operands, regions, pure, c_expr) of every op of ops.def.");
  // The per-thread language's rows of the op table (ops.def's OPX section),
  // with each backend's spelling: what docs/ops.md and the conformance suite read.
  m.def(
      "language_table",
      [] {
        nb::list out;
        for (int i = 0; i < num_opcodes(); ++i) {
          const OpInfo& o = info(static_cast<OpCode>(i));
          if (!*o.operand_classes) continue;
          std::string msl = spell_template(o.c_expr, "metal::");
          if (const char* helper = spelling_exception("metal", o.name, Scalar::F32))  // a function Metal lacks
            if (std::string(helper).rfind("metal::", 0) != 0)
              msl.replace(msl.find(std::string("metal::") + o.name), std::strlen("metal::") + std::strlen(o.name),
                          helper);
          out.append(dict_of("name", o.name, "arity", o.num_operands, "c_expr", o.c_expr, "operands", o.operand_classes,
                             "result", o.result_rule, "tolerance", o.tolerance, "msl", msl, "cpu",
                             spell_template(o.c_expr, "en_")));
        }
        return out;
      },
      "The per-thread language's ops (ops.def's OPX rows) with each backend's spelling.");
  // Metal's vote/mask functions (ops.def's VOTE rows): name, width, takes a predicate, lowering, result.
  m.def(
      "vote_table",
      [] {
        nb::list out;
#define OP(...)
#define VOTE(e, n, width, pred, how, result) out.append(nb::make_tuple(n, width, pred, how, result));
#include "enigma/ir/ops.def"
#undef VOTE
#undef OP
        return out;
      },
      "Metal's vote/mask functions: (name, width, takes a predicate, lowering, result).");
  // Each op's category as ops.def names it: the Python wrappers of a category are made together from it.
  m.def(
      "op_categories",
      [] {
        nb::dict out;
#define OP(e, name, cat, ...) out[name] = #cat;
#include "enigma/ir/ops.def"
#undef OP
        return out;
      },
      "{name: category} for every op of ops.def (Math, GroupReduce, Atomic, ...).");
  m.def(
      "spelling_exceptions",
      [] {
        nb::list out;
        for (const SpellingException& e : spelling_exceptions())
          out.append(nb::make_tuple(e.backend, e.function, info(e.elem).metal_name, e.spelling, e.why));
        return out;
      },
      "Rows (backend, function, element type, spelling, why) where a backend spells a function its own way.");

  nb::class_<Kernel>(m, "KernelIR", "A traced kernel's IR.")
      .def_prop_ro(
          "name", [](const Kernel& k) { return k.name; }, "The kernel's name.")
      .def(
          "print", [](const Kernel& k) { return print(k); }, "The IR as text.")
      .def(
          "optimize", [](Kernel& k) { optimize(k); }, "Runs constant folding, CSE and DCE to a fixed point.")
      .def(
          "verify", [](const Kernel& k) { verify(k); }, "Checks every IR invariant; raises EnigmaError naming the op.")
      .def("emit_msl", emitter("metal"), "debug"_a = false, "bounds_check"_a = true,
           "The kernel as Metal Shading Language.")
      .def("emit_cuda", emitter("cuda"), "debug"_a = false, "bounds_check"_a = true,
           "The kernel as CUDA C++ for NVRTC.")
      .def("emit_cpu", emitter("cpu"), "debug"_a = false, "bounds_check"_a = true,
           "The kernel as C++ for the CPU backend.")
      .def_prop_ro(
          "function_constants",
          [](const Kernel& k) {
            nb::list out;
            for (const FunctionConstant& fc : k.function_constants) out.append(nb::make_tuple(fc.index, fc.type.str()));
            return out;
          },
          "[(index, dtype)] of the kernel's function constants.")
      .def_prop_ro(
          "params",
          [](const Kernel& k) {
            nb::list out;
            for (const Param& p : k.params)
              out.append(
                  nb::make_tuple(p.name, p.kind == Param::Kind::Buffer ? "buffer" : "scalar", p.type.str(), p.written));
            return out;
          },
          "[(name, 'buffer' or 'scalar', dtype, written)] in parameter order.")
      .def_prop_ro("threadgroup_memory_bytes", &Kernel::threadgroup_memory_bytes,
                   "Bytes of threadgroup memory the kernel declares.")
      .def_prop_ro(
          "num_ops",
          [](const Kernel& k) {
            size_t n = 0;
            walk(k.body, [&](const Op&) { ++n; });
            return n;
          },
          "Number of ops in the kernel, nested regions included.");

  nb::class_<Builder>(m, "Builder", "Builds a kernel's IR op by op (enigma/ir/builder.h); the Python tracer drives it.")
      .def(nb::init<std::string>())
      .def("set_location", &Builder::set_location, "Sets the user's source line recorded on the ops built next.")
      .def(
          "dtype_of", [](const Builder& b, ValueId v) { return b.type_of(v).str(); }, "The dtype of a value.")
      .def("set_hint", &Builder::set_hint, "Names a value (a hint for readable generated code).")
      .def(
          "add_buffer_param",
          [](Builder& b, const std::string& n, const std::string& t) {
            return b.add_buffer_param(n, dtype_arg(t, ("parameter '" + n + "'").c_str()));
          },
          "Adds a buffer parameter; returns its memory id.")
      .def(
          "add_scalar_param",
          [](Builder& b, const std::string& n, const std::string& t) {
            return b.add_scalar_param(n, dtype_arg(t, ("parameter '" + n + "'").c_str()));
          },
          "Adds a Scalar parameter; returns its value.")
      .def(
          "literal",
          [](Builder& b, nb::handle v, nb::object dtype) {
            Operand o = to_operand(v);
            if (o.is_value()) return o.value;
            if (dtype.is_none()) return b.literal(o.literal);
            return b.literal(o.literal, dtype_arg(nb::cast<std::string>(dtype), "literal"));
          },
          "value"_a, "dtype"_a = nb::none(),
          "A constant (a traced value is returned as is), typed by dtype or by the literal rules.")
      .def(
          "query",
          [](Builder& b, const std::string& q, int dim) {
            ThreadQuery tq;
            if (!parse_thread_query(q, &tq)) b.fail(q, "unknown thread query");
            return b.thread_query(tq, dim);
          },
          "A thread query (thread_position_in_grid, ...) of dimension dim (-1: the vector).")
      .def(
          "binary",
          [](Builder& b, const std::string& op, nb::handle x, nb::handle y) {
            for (int i = 0; i < num_opcodes(); ++i) {
              const OpInfo& oi = info(static_cast<OpCode>(i));
              if (op == oi.name) return b.binary(oi.code, to_operand(x), to_operand(y));
            }
            b.fail(op, "unknown binary op");
          },
          "A binary op of the op table, with the promotion rules.")
      .def(
          "unary",
          [](Builder& b, const std::string& op, nb::handle x) {
            if (op == "neg") return b.unary(OpCode::Neg, to_operand(x));
            if (op == "not") return b.unary(OpCode::Not, to_operand(x));
            b.fail(op, "unknown unary op");
          },
          "Negation ('neg') or logical/bitwise not ('not').")
      .def(
          "compare",
          [](Builder& b, const std::string& pred, nb::handle x, nb::handle y) {
            CmpPred p;
            if (!parse_cmp_pred(pred, &p)) b.fail("cmp_" + pred, "unknown predicate");
            return b.compare(p, to_operand(x), to_operand(y));
          },
          "A comparison (eq, ne, lt, le, gt, ge) as bool.")
      .def(
          "select",
          [](Builder& b, nb::handle c, nb::handle t, nb::handle f) {
            return b.select(to_operand(c), to_operand(t), to_operand(f));
          },
          "c ? t : f.")
      .def(
          "convert",
          [](Builder& b, nb::handle x, const std::string& t) {
            auto d = parse_dtype(t);
            if (!d) b.fail("metal_cast", "unknown dtype '" + t + "'");
            return b.convert(to_operand(x), *d);
          },
          "A value conversion (metal_cast) to dtype.")
      .def(
          "bitcast",
          [](Builder& b, nb::handle x, const std::string& t) {
            auto d = parse_dtype(t);
            if (!d) b.fail("as_type", "unknown dtype '" + t + "'");
            return b.bitcast(to_operand(x), *d);
          },
          "A bit reinterpretation (as_type) to a dtype of the same size.")
      .def(
          "math",
          [](Builder& b, const std::string& op, const nb::list& args, int offset, int bits) {
            return b.math(opcode_arg(b, op), to_operands(args), offset, bits);
          },
          "op"_a, "args"_a, "offset"_a = 0, "bits"_a = 0,
          "A math function of the op table (offset and bits for the bit-range ops).")
      .def(
          "make_vec",
          [](Builder& b, const nb::list& comps, nb::object elem) {
            if (elem.is_none()) return b.make_vec(to_operands(comps));
            auto s = parse_scalar(nb::cast<std::string>(elem));
            if (!s) b.fail("make_vec", "unknown element dtype '" + nb::cast<std::string>(elem) + "'");
            return b.make_vec(to_operands(comps), *s);
          },
          "components"_a, "elem"_a = nb::none(), "A vector of the components (converted to elem when given).")
      .def(
          "vec_extract", [](Builder& b, nb::handle v, int lane) { return b.vec_extract(to_operand(v), lane); },
          "One lane of a vector.")
      .def(
          "make_matrix", [](Builder& b, const nb::list& cols) { return b.make_matrix(to_operands(cols)); },
          "A matrix from its column vectors.")
      .def(
          "matrix_column", [](Builder& b, nb::handle m, int c) { return b.matrix_column(to_operand(m), c); },
          "One column of a matrix.")
      .def(
          "matmul", [](Builder& b, nb::handle x, nb::handle y) { return b.matmul(to_operand(x), to_operand(y)); },
          "Matrix (or matrix-vector) product.")
      .def(
          "function_constant",
          [](Builder& b, const std::string& t, int index) {
            auto d = parse_dtype(t);
            if (!d) b.fail("function_constant", "unknown dtype '" + t + "'");
            return b.function_constant(*d, index);
          },
          "The value of Metal function constant `index` (specialised at dispatch).")
      .def(
          "load_if",
          [](Builder& b, int64_t mem, nb::handle idx, nb::handle mask, nb::handle dflt) {
            return b.load_if(mem, to_operand(idx), to_operand(mask), to_operand(dflt));
          },
          "mem[idx] where mask holds, else dflt; nothing is read where it does not.")
      .def(
          "local_array",
          [](Builder& b, const std::string& t, int64_t size, nb::handle fill, const std::string& n) {
            auto d = parse_dtype(t);
            if (!d) b.fail("register_tensor", "unknown dtype '" + t + "'");
            return b.local_array(*d, size, to_operand(fill), n);
          },
          "A per-thread array of size elements filled with fill; returns its id.")
      .def(
          "local_load", [](Builder& b, int a, nb::handle idx) { return b.local_load(a, to_operand(idx)); },
          "Element idx of a per-thread array.")
      .def(
          "local_store",
          [](Builder& b, int a, nb::handle idx, nb::handle v) { b.local_store(a, to_operand(idx), to_operand(v)); },
          "Stores v at element idx of a per-thread array.")
      .def(
          "load", [](Builder& b, int64_t mem, nb::handle idx) { return b.load(mem, to_operand(idx)); }, "mem[idx].")
      .def(
          "load_vec",
          [](Builder& b, int64_t mem, nb::handle idx, int width) { return b.load_vec(mem, to_operand(idx), width); },
          "width consecutive elements of mem from idx, as a vector.")
      .def(
          "store_vec",
          [](Builder& b, int64_t mem, nb::handle idx, nb::handle v) {
            b.store_vec(mem, to_operand(idx), to_operand(v));
          },
          "Stores a vector's lanes at consecutive elements of mem from idx.")
      .def(
          "store",
          [](Builder& b, int64_t mem, nb::handle idx, nb::handle v) { b.store(mem, to_operand(idx), to_operand(v)); },
          "mem[idx] = v.")
      // ---- cooperative execution ----
      .def(
          "threadgroup_alloc",
          [](Builder& b, const std::string& t, uint64_t size, const std::string& name) {
            return b.threadgroup_alloc(dtype_arg(t, "threadgroup_alloc"), size, name);
          },
          "A threadgroup array of size elements; returns its memory id.")
      .def(
          "barrier",
          [](Builder& b, const std::string& flags, bool simd) {
            int64_t f = 0;
            if (!parse_mem_flags(flags, &f))
              b.fail(simd ? "simd_barrier" : "barrier",
                     "unknown mem_flags '" + flags +
                         "'; expected one of mem_none, "
                         "mem_device, mem_threadgroup, mem_device_and_threadgroup, mem_texture");
            b.barrier(f, simd);
          },
          "threadgroup_barrier (or simdgroup_barrier when simd) with the given mem_flags.")
      .def(
          "vote", [](Builder& b, const std::string& name, nb::handle pred) { return b.vote(name, to_operand(pred)); },
          "A simdgroup vote or mask function of the vote table.")
      .def(
          "collective",
          [](Builder& b, const std::string& op, nb::handle v, nb::handle lane) {
            for (int i = 0; i < num_opcodes(); ++i) {
              const OpInfo& oi = info(static_cast<OpCode>(i));
              if (op == oi.name && (oi.category == OpCategory::GroupReduce || oi.category == OpCategory::GroupScan ||
                                    oi.category == OpCategory::GroupShuffle))
                return b.collective(oi.code, to_operand(v), lane.is_none() ? Operand() : to_operand(lane));
            }
            b.fail(op, "unknown simd/quad op");
          },
          "op"_a, "value"_a, "lane"_a = nb::none(),
          "A simd/quad reduction, scan or shuffle (lane: the shuffle's lane or delta).")
      .def(
          "atomic",
          [](Builder& b, const std::string& op, int64_t mem, nb::handle idx, const nb::list& values,
             const std::string& order, const std::string& failure) {
            MemoryOrder o, f;
            if (!parse_memory_order(order, &o))
              b.fail(op,
                     "unknown memory order '" + order + "'; expected relaxed, acquire, release, acq_rel or seq_cst");
            if (!parse_memory_order(failure, &f))
              b.fail(op,
                     "unknown failure order '" + failure + "'; expected relaxed, acquire, release, acq_rel or seq_cst");
            for (int i = 0; i < num_opcodes(); ++i) {
              const OpInfo& oi = info(static_cast<OpCode>(i));
              if (op == oi.name && oi.category == OpCategory::Atomic) {
                ValueId r = b.atomic(oi.code, mem, to_operand(idx), to_operands(values), o, f);
                return r == kNoValue ? nb::object(nb::none()) : nb::object(nb::int_(r));
              }
            }
            b.fail(op, "unknown atomic op");
          },
          "An atomic op on mem[idx] with the memory orders; returns its result or None.")
      .def(
          "simd_matrix_load",
          [](Builder& b, int64_t mem, nb::handle origin, nb::handle epr, const std::string& t, bool transpose) {
            return b.simd_matrix_load(mem, to_operand(origin), to_operand(epr), dtype_arg(t, "simdgroup_matrix_load"),
                                      transpose);
          },
          "Loads an 8x8 simdgroup matrix from mem at origin (elements per row: epr).")
      .def(
          "simd_matrix_store",
          [](Builder& b, ValueId m, int64_t mem, nb::handle origin, nb::handle epr, bool transpose) {
            b.simd_matrix_store(m, mem, to_operand(origin), to_operand(epr), transpose);
          },
          "Stores an 8x8 simdgroup matrix to mem at origin (elements per row: epr).")
      .def(
          "simd_matrix_fill",
          [](Builder& b, nb::handle v, const std::string& t) {
            return b.simd_matrix_fill(to_operand(v), dtype_arg(t, "make_filled_simdgroup_matrix"));
          },
          "An 8x8 simdgroup matrix with every element v.")
      .def("simd_matrix_mma", &Builder::simd_matrix_mma, "a * b + c of simdgroup matrices.")
      .def(
          "async_copy_1d",
          [](Builder& b, int64_t dst, nb::handle doff, int64_t src, nb::handle soff, nb::handle n) {
            return b.async_copy_1d(dst, to_operand(doff), src, to_operand(soff), to_operand(n));
          },
          "An asynchronous copy of n elements between device and threadgroup memory; returns its event.")
      .def(
          "async_copy_2d",
          [](Builder& b, int64_t dst, nb::handle doff, nb::handle depr, int64_t src, nb::handle soff, nb::handle sepr,
             nb::handle cols, nb::handle rows) {
            return b.async_copy_2d(dst, to_operand(doff), to_operand(depr), src, to_operand(soff), to_operand(sepr),
                                   to_operand(cols), to_operand(rows));
          },
          "An asynchronous copy of a rows x cols tile; returns its event.")
      .def("async_wait", &Builder::async_wait, "Waits for asynchronous copies (by their events).")
      .def(
          "begin_for",
          [](Builder& b, nb::handle lo, nb::handle hi, nb::handle step, const std::string& iv, const nb::list& inits) {
            auto t = parse_dtype(iv);
            if (!t) b.fail("for_range", "unknown loop variable dtype '" + iv + "'");
            return b.begin_for(to_operand(lo), to_operand(hi), to_operand(step), *t, to_operands(inits));
          },
          "Opens a for loop over [lo, hi) by step with loop-carried inits; returns (induction value, carried values).")
      .def(
          "end_for", [](Builder& b, const nb::list& y) { return b.end_for(to_operands(y)); },
          "Closes the innermost for loop with the carried values' next values; returns the loop's results.")
      .def(
          "begin_if", [](Builder& b, nb::handle c) { b.begin_if(to_operand(c)); }, "Opens an if on condition c.")
      .def(
          "begin_else", [](Builder& b) { b.begin_else(); }, "Starts the else region of the innermost if.")
      .def(
          "end_if", [](Builder& b) { b.end_if(); }, "Closes the innermost if.")
      .def(
          "end_if_merge",
          [](Builder& b, const nb::list& t, const nb::list& e, const std::vector<std::string>& names) {
            return b.end_if_merge(to_operands(t), to_operands(e), names);
          },
          "Closes the innermost if, merging each name's then and else values; returns the merged values.")
      .def(
          "begin_while", [](Builder& b, const nb::list& inits) { return b.begin_while(to_operands(inits)); },
          "Opens a while loop with loop-carried inits; returns the carried values in the condition region.")
      .def(
          "while_body", [](Builder& b, nb::handle c) { return b.while_body(to_operand(c)); },
          "Ends the condition region with c; returns the carried values in the body.")
      .def(
          "end_while", [](Builder& b, const nb::list& y) { return b.end_while(to_operands(y)); },
          "Closes the innermost while loop with the carried values' next values; returns its results.")
      .def("region_size", &Builder::current_region_size, "Number of ops in the region being built.")
      .def("depth", &Builder::depth, "How many regions are open.")
      .def(
          "fail", [](const Builder& b, const std::string& op, const std::string& msg) { b.fail(op, msg); },
          "Raises EnigmaError for op at the current source line.")
      .def("finish", &Builder::finish, "The finished, verified kernel (KernelIR).");
}

}  // namespace enigma
