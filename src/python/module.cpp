// enigma._core: the Python bindings of the core. The Python package only
// captures what the user wrote and calls these; typing, verification,
// passes, code generation and the runtime all live in C++. Each area binds
// itself in its own file (bindings.h); this file only registers them.
#include "bindings.h"

NB_MODULE(_core, m) {
  m.doc() = "Enigma core: IR, passes, code generation and runtime";
  enigma::bind_host(m);
  enigma::bind_layout(m);
#ifdef ENIGMA_METAL_FAKE
  enigma::bind_fake_metal(m);
#endif
  enigma::bind_ir(m);
  enigma::bind_runtime(m);
}
