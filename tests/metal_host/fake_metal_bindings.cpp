// enigma._core._fake_metal: the fake Metal's controls for the Python tests
// (tests/python/test_metal_runtime_fake.py). Built only with ENIGMA_METAL_FAKE.
#include <nanobind/stl/map.h>

#include "bindings.h"
#include "fake_metal.h"

namespace enigma {

namespace {

nb::tuple dim3(const uint64_t v[3]) { return nb::make_tuple(v[0], v[1], v[2]); }

nb::dict records_dict() {
  const fake_metal::Records r = fake_metal::records();
  nb::list libraries, functions, command_buffers;
  for (const auto& l : r.libraries)
    libraries.append(dict_of("source", l.source, "language_version", l.language_version, "math_mode", l.math_mode,
                             "math_functions", l.math_functions, "compiled", l.compiled, "error", l.error));
  for (const auto& f : r.functions) functions.append(nb::make_tuple(f.name, f.found));
  for (const auto& cb : r.command_buffers) {
    nb::list dispatches;
    for (const auto& x : cb.dispatches) {
      nb::list buffers, bytes, tg;
      for (const auto& b : x.buffers) buffers.append(nb::make_tuple(b.index, b.offset, b.length, b.buffer_id));
      for (const auto& b : x.bytes)
        bytes.append(nb::make_tuple(b.index, nb::bytes(reinterpret_cast<const char*>(b.bytes.data()), b.bytes.size())));
      for (const auto& [index, length] : x.threadgroup_memory) tg.append(nb::make_tuple(index, length));
      dispatches.append(dict_of("function", x.function, "buffers", buffers, "bytes", bytes, "threadgroup_memory", tg,
                                "grid", dim3(x.grid), "threads", dim3(x.threads)));
    }
    command_buffers.append(dict_of("dispatches", dispatches, "encoder_ended", cb.encoder_ended, "committed",
                                   cb.committed, "waited", cb.waited, "status", cb.status, "error_domain",
                                   cb.error_domain, "error_code", cb.error_code, "error_description",
                                   cb.error_description, "gpu_start", cb.gpu_start, "gpu_end", cb.gpu_end));
  }
  return dict_of("libraries", libraries, "functions", functions, "pipelines", r.pipelines, "buffer_lengths",
                 r.buffer_lengths, "command_buffers", command_buffers);
}

}  // namespace

void bind_fake_metal(nb::module_& parent) {
  nb::module_ m = parent.def_submodule("_fake_metal", "controls of the fake Metal (tests/metal_host)");
  m.def("active", [] {
    fake_metal::DeviceConfig c;
    return fake_metal::configured_from_environment(&c);
  });
  m.def(
      "fail_next_command_buffer",
      [](const std::string& domain, int64_t code, const std::string& description) {
        fake_metal::fail_next_command_buffer(fake_metal::CommandBufferFault{domain, code, description});
      },
      nb::arg("domain"), nb::arg("code"), nb::arg("description"));
  m.def("fail_next_library", &fake_metal::fail_next_library, nb::arg("compiler_log"));
  m.def("fail_next_pipeline", &fake_metal::fail_next_pipeline, nb::arg("description"));
  m.def("fail_next_command_buffer_creation", &fake_metal::fail_next_command_buffer_creation);
  m.def("fail_next_buffer_allocation", &fake_metal::fail_next_buffer_allocation);
  m.def("set_next_gpu_times", &fake_metal::set_next_gpu_times, nb::arg("start"), nb::arg("end"));
  m.def("set_pipeline_thread_limit", &fake_metal::set_pipeline_thread_limit, nb::arg("limit"));
  m.def("records", &records_dict);
  m.def("clear_records", &fake_metal::clear_records);
  m.def("live_objects", &fake_metal::live_objects);
  m.def("misuse", &fake_metal::misuse);
}

}  // namespace enigma
