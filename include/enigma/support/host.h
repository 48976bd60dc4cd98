// Hooks the embedding program (the Python bindings) installs so the core can
// report warnings and notice a pending interrupt (Ctrl-C) without depending
// on it. Without hooks, warnings go to stderr and nothing is ever interrupted.
#pragma once

#include <stdexcept>
#include <string>

namespace enigma {

// Thrown when the host asked to stop (Ctrl-C) during a long operation: a CPU
// dispatch stops between chunks of threadgroups, a compile kills the compiler.
// Not a RuntimeError: nothing failed, and callers must not retry or fall back.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

using WarningHook = void (*)(const std::string& message);
using InterruptHook = bool (*)();

// Installs the hooks (nullptr restores the defaults). Not thread-safe against
// concurrent use: install them once at start-up.
void set_warning_hook(WarningHook hook);
void set_interrupt_hook(InterruptHook hook);

// Reports a warning to the host (stderr by default).
void host_warning(const std::string& message);

// True when the host wants the current operation stopped. May be slow (the
// Python hook takes the GIL): callers poll it every few milliseconds at most.
bool host_interrupt_requested();

}  // namespace enigma
