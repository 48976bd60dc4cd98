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

// A runtime call was given an argument of the wrong dtype or kind (Type) or a
// bad size, count, geometry or value (Value); nothing ran. Python raises
// enigma.EnigmaTypeError / enigma.EnigmaValueError (also TypeError /
// ValueError); a failed dispatch stays a RuntimeError.
class ValidationError : public RuntimeError {
 public:
  enum class Kind { Type, Value };
  ValidationError(Kind kind, const std::string& message) : RuntimeError(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

}  // namespace enigma
