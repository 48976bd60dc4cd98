// The bindings of enigma._core, one file per area (like module.cpp's
// registration order): host hooks, IR, runtime, layout algebra. module.cpp
// only calls the bind_* functions; the conversions of Python values that
// several areas share are declared here (convert.cpp).
#pragma once

#include <nanobind/nanobind.h>
// Every file sees the same type casters (a cast without its caster fails at run time).
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enigma/ir/builder.h"
#include "enigma/runtime/runtime.h"

namespace nb = nanobind;

namespace enigma {

void bind_host(nb::module_& m);     // host_bindings.cpp: error types, Ctrl-C, warnings
void bind_ir(nb::module_& m);       // ir_bindings.cpp: dtype/op tables, Builder, KernelIR
void bind_runtime(nb::module_& m);  // runtime_bindings.cpp: compiled kernels, devices, launches
void bind_layout(nb::module_& m);   // layout_bindings.cpp: the layout algebra
#ifdef ENIGMA_METAL_FAKE
void bind_fake_metal(nb::module_& m);  // tests/metal_host/fake_metal_bindings.cpp
#endif

// A dict of alternating keys and values: dict_of("name", k.name, "size", n).
inline void put_items(nb::dict&) {}
template <class V, class... Rest>
void put_items(nb::dict& d, const char* key, const V& value, const Rest&... rest) {
  d[key] = value;
  put_items(d, rest...);
}
template <class... Items>
nb::dict dict_of(const Items&... items) {
  nb::dict d;
  put_items(d, items...);
  return d;
}

// The Python class of traced values (enigma._tracing.IRValue), set at import.
void set_value_type(nb::object type);
// A traced value or a Python literal (bool, int, float) as an operand.
Operand to_operand(nb::handle h);
std::vector<Operand> to_operands(const nb::list& l);
// A dtype spelling; KernelError naming `what` when unknown.
DType dtype_arg(const std::string& s, const char* what);
// A Python number as a Scalar argument or function-constant value.
ScalarArg scalar_arg(nb::handle h);
// constants: [(index, type_name, value)] (checked and converted by the runtime).
std::vector<ConstantArg> constant_args(const nb::list& constants);
// A Python int as uint64_t; nullopt when it is negative or needs more than 64
// bits (callers report those with the value as the user wrote it).
std::optional<uint64_t> u64_arg(nb::handle h);

}  // namespace enigma
