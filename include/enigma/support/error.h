// Error types of the Enigma core. Every error carries a complete, user-facing
// message; the Python bindings map KernelError to enigma.EnigmaError and
// RuntimeError to Python's RuntimeError.
#pragma once

#include <stdexcept>
#include <string>

namespace enigma {

// A kernel is wrong (bad types, bad arguments to an op, invalid IR). Raised
// while tracing, verifying or emitting; the message names the op and, when
// known, the user's source location.
class KernelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Something failed while compiling or running a valid kernel, or a runtime
// call was given bad arguments (counts, sizes, geometry, devices, cache, ...).
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace enigma
