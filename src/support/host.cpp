#include "enigma/support/host.h"

#include <atomic>
#include <cstdio>

namespace enigma {

namespace {
std::atomic<WarningHook> g_warning{nullptr};
std::atomic<InterruptHook> g_interrupt{nullptr};
}  // namespace

void set_warning_hook(WarningHook hook) { g_warning.store(hook); }
void set_interrupt_hook(InterruptHook hook) { g_interrupt.store(hook); }

void host_warning(const std::string& message) {
  if (WarningHook hook = g_warning.load()) {
    hook(message);
    return;
  }
  std::fprintf(stderr, "enigma: warning: %s\n", message.c_str());
}

bool host_interrupt_requested() {
  InterruptHook hook = g_interrupt.load();
  return hook != nullptr && hook();
}

}  // namespace enigma
