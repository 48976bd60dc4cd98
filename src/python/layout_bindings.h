// Bindings of the layout algebra (enigma.layout, enigma.tuple).
#pragma once

#include <nanobind/nanobind.h>

namespace enigma {
void bind_layout(nanobind::module_& m);
}  // namespace enigma
