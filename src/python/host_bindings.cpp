// Bindings of the host hooks: the error types, Ctrl-C and warnings.
#include "bindings.h"

#include "enigma/support/error.h"
#include "enigma/support/host.h"

namespace enigma {

namespace {

nb::object g_type_error, g_value_error;  // enigma.EnigmaTypeError, enigma.EnigmaValueError

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

void bind_host(nb::module_& m) {
  nb::exception<KernelError>(m, "EnigmaError");
  // enigma.EnigmaTypeError / EnigmaValueError are defined in Python (they also
  // derive from TypeError / ValueError) and handed over by _set_error_types.
  m.def(
      "_set_error_types",
      [](nb::object type_error, nb::object value_error) {
        g_type_error = type_error;
        g_value_error = value_error;
      },
      "Hands over enigma.EnigmaTypeError and EnigmaValueError, raised for the core's validation errors.");
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Interrupted&) { raise_interrupt(); } catch (const ValidationError& e) {
      nb::handle t = e.kind() == ValidationError::Kind::Type ? g_type_error : g_value_error;
      PyErr_SetString(t.is_valid() ? t.ptr() : PyExc_ValueError, e.what());
    }
  });
  g_main_thread = nb::cast<unsigned long>(nb::module_::import_("threading").attr("main_thread")().attr("ident"));
  set_interrupt_hook(&python_interrupt_requested);
  set_warning_hook(&python_warning);
}

}  // namespace enigma
