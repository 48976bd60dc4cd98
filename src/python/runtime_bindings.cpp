// Bindings of the runtime: compiled kernels, devices and their memory,
// prepared launches and dispatch.

#include <nanobind/ndarray.h>

#include <functional>

#include "bindings.h"
#include "enigma/backend.h"
#include "enigma/codegen/codegen.h"
#include "enigma/ir/printer.h"
#include "enigma/runtime/cuda.h"
#include "enigma/runtime/runtime.h"
#include "enigma/support/error.h"

using namespace nb::literals;

namespace enigma {

namespace {

// grid / threads: 3 ints (checked by the Python layer). A value beyond 64
// bits is reported like any other too-large dimension.
Dim3 dim3_arg(const PreparedLaunch& p, nb::handle seq, const char* what) {
  uint64_t v[3] = {0, 0, 0};
  nb::sequence items = nb::borrow<nb::sequence>(seq);
  if (nb::len(items) != 3) throw RuntimeError(std::string(what) + " must be 3 positive integers (x, y, z)");
  for (size_t i = 0; i < 3; ++i) {
    nb::object item = items[i];
    std::optional<uint64_t> u = PyLong_Check(item.ptr()) ? u64_arg(item) : std::nullopt;
    if (!u) {
      std::string text = nb::cast<std::string>(nb::repr(seq));
      bool negative = PyLong_Check(item.ptr()) && PyObject_RichCompareBool(item.ptr(), nb::int_(0).ptr(), Py_LT) == 1;
      throw RuntimeError(p.api() + ": kernel '" + p.kernel_name() + "': " + what + " " + text +
                         (negative || !PyLong_Check(item.ptr())
                              ? " must be 3 positive integers"
                              : std::string(" is too large: at most ") +
                                    (std::string(what) == "grid" ? "4294967295 threads per dimension"
                                                                 : "the device's threads per threadgroup")));
    }
    v[i] = *u;
  }
  return Dim3{v[0], v[1], v[2]};
}

struct PyBufferView {
  Py_buffer view{};
  bool ok = false;
  explicit PyBufferView(nb::handle h) {
    if (PyObject_GetBuffer(h.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) throw nb::python_error();
    ok = true;
  }
  ~PyBufferView() {
    if (ok) PyBuffer_Release(&view);
  }
};

nb::dict caps_dict(const DeviceCapabilities& c) {
  return dict_of("gpu_family", c.gpu_family, "gpu_family_raw", c.gpu_family_raw, "is_m3_or_newer", c.is_m3_or_newer,
                 "supports_async_copy", c.supports_async_copy, "supports_simdgroup_matrix", c.supports_simdgroup_matrix,
                 "simdgroup_size", c.simdgroup_size, "max_threadgroup_memory", c.max_threadgroup_memory,
                 "max_threads_per_threadgroup", c.max_threads_per_threadgroup, "device_name", c.device_name, "backend",
                 c.backend, "max_buffer_bytes", c.max_buffer_bytes);
}

// A DLPack tensor of any framework on any device (a capsule, or an object
// with __dlpack__ or the buffer protocol), held alive while the view lives.
struct DLPackView {
  nb::ndarray<nb::ro> array;
};

nb::tuple int_tuple(size_t n, const std::function<int64_t(size_t)>& at) {
  nb::list out;
  for (size_t i = 0; i < n; ++i) out.append(at(i));
  return nb::tuple(out);
}

}  // namespace

void bind_runtime(nb::module_& m) {
  nb::class_<DLPackView>(m, "DLPackView",
                         "A DLPack tensor (any framework, CPU or CUDA memory) as the runtime binds it: address, "
                         "shape, strides, dtype and device. Holds the tensor alive while it lives.")
      .def(nb::init<nb::ndarray<nb::ro>>(), "tensor"_a,
           "Imports a DLPack capsule (or an object with __dlpack__ or the buffer protocol).")
      .def_prop_ro(
          "data", [](const DLPackView& v) { return reinterpret_cast<uintptr_t>(v.array.data()); },
          "Address of the first element (the tensor's data plus its byte offset).")
      .def_prop_ro(
          "shape",
          [](const DLPackView& v) {
            return int_tuple(v.array.ndim(), [&](size_t i) { return static_cast<int64_t>(v.array.shape(i)); });
          },
          "The shape.")
      .def_prop_ro(
          "strides",
          [](const DLPackView& v) { return int_tuple(v.array.ndim(), [&](size_t i) { return v.array.stride(i); }); },
          "Strides in elements (compact ones when the producer gives none).")
      .def_prop_ro(
          "dtype",
          [](const DLPackView& v) {
            return nb::make_tuple(v.array.dtype().code, v.array.dtype().bits, v.array.dtype().lanes);
          },
          "DLPack's (type code, bits, lanes).")
      .def_prop_ro(
          "device", [](const DLPackView& v) { return nb::make_tuple(v.array.device_type(), v.array.device_id()); },
          "DLPack's (device type, device id): (1, 0) is the CPU, (2, N) CUDA device N.")
      .def(
          "host_bytes",
          [](const DLPackView& v) {
            if (v.array.device_type() != nb::device::cpu::value)
              throw RuntimeError("host_bytes: the DLPack tensor is not in host memory");
            return nb::bytes(static_cast<const char*>(v.array.data()), v.array.nbytes());
          },
          "A copy of the bytes of a contiguous tensor in host memory.");

  nb::class_<CompiledKernel>(m, "CompiledKernelCore", "A kernel's IR plus its per-device programs.")
      .def(
          "__init__",
          [](CompiledKernel* self, const Kernel& k, bool debug, bool bounds_check) {
            CompileOptions o;
            o.debug = debug;
            o.bounds_check = bounds_check;
            new (self) CompiledKernel(k, o);
          },
          "kernel"_a, "debug"_a = false, "bounds_check"_a = true,
          "A kernel's IR with its compile options; programs are built per device on first use.")
      .def_prop_ro(
          "bounds_check", [](const CompiledKernel& c) { return c.options().bounds_check || c.options().debug; },
          "Whether memory accesses are checked (bounds_check or debug).")
      .def_prop_ro(
          "ir", [](const CompiledKernel& c) { return print(c.kernel()); }, "The IR as text.")
      .def(
          "source",
          [](const CompiledKernel& c, const std::string& backend, int groups_per_block, const nb::list& constants,
             bool matrix_fragments) -> std::string {
            // Function constants: MSL declares them; other backends are specialised.
            ConstantValues values;
            if (constants.size()) values = constant_values(c.kernel(), constant_args(constants), "source");
            Kernel spec;
            const Kernel& chosen = values.empty() ? c.kernel() : (spec = c.specialized(values));
            const Backend* b = find_backend(backend);
            if (!b) {
              std::string expected;
              for (const Backend* known : backends_by_preference())
                expected += (expected.empty() ? "'" : ", '") + std::string(known->name) + "'";
              throw RuntimeError("source(): unknown backend '" + backend + "'; expected " + expected);
            }
            SourceOptions o;
            o.debug = c.options().debug;
            o.bounds_check = c.options().bounds_check;
            o.groups_per_block = groups_per_block;
            o.matrix_fragments = matrix_fragments;
            return b->emit(chosen, o);
          },
          "backend"_a, "groups_per_block"_a = 1, "constants"_a = nb::list(), "matrix_fragments"_a = false,
          "The generated source for a backend (function constants: specialised to `constants`).")
      .def_prop_ro(
          "cuda_uses_matrices", [](const CompiledKernel& c) { return cuda_uses_matrices(c.kernel()); },
          "Whether the kernel uses simdgroup matrices (CUDA then has a tensor-core variant).")
      .def_prop_ro("num_programs", &CompiledKernel::num_programs,
                   "Programs built so far (one per device and set of function-constant values).")
      .def_prop_ro(
          "function_constants",
          [](const CompiledKernel& c) {
            nb::list out;
            for (const FunctionConstant& fc : c.kernel().function_constants)
              out.append(nb::make_tuple(fc.index, fc.type.str()));
            return out;
          },
          "[(index, dtype)] of the kernel's function constants.")
      // The CUDA variant large grids run (several threadgroups per block), 1 if none.
      .def_prop_ro(
          "cuda_groups_per_block",
          [](const CompiledKernel& c) { return c.options().debug ? 1 : cuda_preferred_groups_per_block(c.kernel()); },
          "The CUDA variant large grids run (several threadgroups per block), 1 if none.")
      .def(
          "precompile",
          [](CompiledKernel& c, std::shared_ptr<Device> d) {
            if (!c.kernel().function_constants.empty()) return;  // compiled per set of constants, at dispatch
            nb::gil_scoped_release release;
            c.program(*d);
          },
          "Builds the program for a device now (kernels with function constants build at dispatch).");

  nb::class_<DeviceBuffer>(m, "DeviceBuffer",
                           "Device memory a Python DeviceArray owns; PreparedLaunches bind it without copies.")
      .def_prop_ro("size", &DeviceBuffer::size, "Bytes of the buffer.");
  nb::class_<Device>(m, "Device", "A device: 'cpu', 'cuda:N' or 'metal'.")
      .def_prop_ro("name", &Device::name, "The device's name: 'cpu', 'cuda:N' or 'metal'.")
      .def(
          "allocate",
          [](Device& d, uint64_t bytes) {
            if (bytes == 0)
              throw ValidationError(ValidationError::Kind::Value, "a device array needs at least one byte");
            nb::gil_scoped_release release;
            return std::shared_ptr<DeviceBuffer>(d.allocate(bytes));
          },
          "A zero-filled device buffer of `bytes` bytes.")
      .def(
          "upload",
          [](Device& d, std::shared_ptr<DeviceBuffer> b, nb::handle src) {
            PyBufferView v(src);
            if (static_cast<uint64_t>(v.view.len) != b->size())
              throw ValidationError(ValidationError::Kind::Value,
                                    "write: the device array holds " + std::to_string(b->size()) +
                                        " bytes, the data has " + std::to_string(v.view.len));
            nb::gil_scoped_release release;
            d.upload(*b, v.view.buf, b->size());
          },
          "Copies a buffer-protocol object of the buffer's size into the buffer.")
      .def(
          "download",
          [](Device& d, std::shared_ptr<DeviceBuffer> b) {
            nb::bytes out(nullptr, static_cast<size_t>(b->size()));
            {
              nb::gil_scoped_release release;
              d.download(*b, const_cast<char*>(static_cast<const char*>(out.data())), b->size());
            }
            return out;
          },
          "The buffer's bytes.")
      .def(
          "capabilities", [](const Device& d) { return caps_dict(d.capabilities()); },
          "The device's capabilities as a dict (gpu_family, simdgroup_size, ...).");
  m.def(
      "open_device",
      [](const std::string& spec) {
        nb::gil_scoped_release release;
        return open_device(spec);
      },
      "Opens 'cpu', 'cuda', 'cuda:N', 'metal' or ''/'auto' (shared per process).");
  m.def(
      "backend_table",
      [] {
        nb::list out;
        for (const Backend* b : backends())
          out.append(dict_of("name", b->name, "language", b->language, "source_extension", b->source_extension));
        return out;
      },
      "The registered backends, by name: their name, source language alias and source file extension.");
  m.def("available_backends", &available_backends, "The backends that can open a device on this machine.");
  m.def(
      "set_cuda_library_hints", [](std::vector<std::string> dirs) { cuda::set_library_hints(std::move(dirs)); },
      "Folders searched for libcuda and libnvrtc besides the system's.");
  m.def(
      "cuda_info",
      [] {
        // What the CUDA backend found on this machine (for tests, benchmarks, bug reports).
        cuda::Probe p;
        {
          nb::gil_scoped_release release;
          p = cuda::probe();
        }
        return dict_of("driver_loaded", p.driver_loaded, "driver_version", p.driver_version, "device_count",
                       p.device_count, "unavailable_reason", p.unavailable_reason, "nvrtc_path", p.nvrtc_path,
                       "nvrtc_version", p.nvrtc_version, "nvrtc_error", p.nvrtc_error, "nvrtc_options",
                       cuda_nvrtc_options());
      },
      "What the CUDA backend found on this machine (driver, devices, NVRTC).");

  nb::class_<PreparedLaunch>(m, "PreparedLaunch",
                             "A validated launch with its buffers bound, dispatched any number of times.")
      .def(
          "__init__",
          [](PreparedLaunch* self, std::shared_ptr<Device> dev, std::shared_ptr<CompiledKernel> ck,
             const nb::list& inputs, const nb::list& scalars, const nb::list& output_size_list, const std::string& api,
             const nb::list& constants) {
            const Kernel& kernel = ck->kernel();
            // Sizes beyond 64 bits: the core's "more than the device allows" error, with the value as given.
            std::vector<uint64_t> output_sizes;
            for (nb::handle h : output_size_list) {
              std::optional<uint64_t> u = PyLong_Check(h.ptr()) ? u64_arg(h) : std::nullopt;
              if (!u) {
                std::string what = nb::len(output_size_list) == 1
                                       ? std::string("output_size")
                                       : "output_sizes[" + std::to_string(output_sizes.size()) + "]";
                throw RuntimeError(api + ": kernel '" + kernel.name + "' " + what + " is " +
                                   nb::cast<std::string>(nb::repr(h)) +
                                   " bytes, more than the device allows in one buffer (" +
                                   std::to_string(dev->capabilities().max_buffer_bytes) + " bytes)");
              }
              output_sizes.push_back(*u);
            }
            // inputs: (buffer-protocol object, numpy dtype name, shape string), or
            // (None, dtype, shape, device pointer, bytes) for an array already in
            // CUDA memory (bound without a copy; see HostArray::device_ptr).
            std::vector<std::unique_ptr<PyBufferView>> views;
            std::vector<HostArray> arrays;
            for (nb::handle item : inputs) {
              nb::tuple t = nb::cast<nb::tuple>(item);
              HostArray a;
              if (t.size() >= 5 && t[0].is_none()) {
                a.device_ptr = nb::cast<uint64_t>(t[3]);
                a.bytes = nb::cast<uint64_t>(t[4]);
              } else {
                views.push_back(std::make_unique<PyBufferView>(t[0]));
                a.data = views.back()->view.buf;
                a.bytes = static_cast<uint64_t>(views.back()->view.len);
              }
              a.dtype = nb::cast<std::string>(t[1]);
              a.shape = nb::cast<std::string>(t[2]);
              arrays.push_back(a);
            }
            std::vector<ScalarArg> sargs;
            for (nb::handle h : scalars) {
              try {
                sargs.push_back(scalar_arg(h));
              } catch (const KernelError&) {  // an int beyond 64 bits: out of range for any Scalar parameter
                std::string param = "scalars[" + std::to_string(sargs.size()) + "]";
                size_t seen = 0;
                for (const Param& kp : kernel.params)
                  if (kp.kind == Param::Kind::Scalar && seen++ == sargs.size())
                    param = "Scalar parameter '" + kp.name + "' (" + kp.type.str() + ")";
                throw RuntimeError(api + ": kernel '" + kernel.name + "' " + param + " cannot hold " +
                                   nb::cast<std::string>(nb::repr(h)) + " (out of range)");
              }
            }
            std::vector<ConstantArg> cargs;
            try {
              cargs = constant_args(constants);
            } catch (const KernelError&) {  // a value beyond 64 bits
              for (nb::handle item : constants) {
                nb::handle index = PyTuple_GetItem(item.ptr(), 0), value = PyTuple_GetItem(item.ptr(), 2);
                if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr()) || u64_arg(value)) continue;
                int overflow = 0;
                PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
                if (overflow == 0) continue;
                throw RuntimeError(api + ": constants[" + nb::cast<std::string>(nb::str(index)) + "]: kernel '" +
                                   kernel.name + "' cannot hold " + nb::cast<std::string>(nb::repr(value)) +
                                   " (out of range)");
              }
              throw;
            }
            nb::gil_scoped_release release;
            new (self) PreparedLaunch(std::move(dev), std::move(ck), arrays, sargs, output_sizes, api.c_str(), cargs);
          },
          "device"_a, "kernel"_a, "inputs"_a, "scalars"_a, "output_sizes"_a, "api"_a, "constants"_a = nb::list(),
          "Validates a launch (inputs, scalars, output sizes, constants) and binds its buffers on the device.")
      .def(
          "dispatch",
          [](PreparedLaunch& p, nb::handle grid, nb::handle threads) {
            Dim3 g = dim3_arg(p, grid, "grid"), t = dim3_arg(p, threads, "threads");
            nb::gil_scoped_release release;
            p.dispatch(g, t);  // may return before the kernel ends (CUDA)
          },
          "Runs the kernel on grid threads in threadgroups of `threads`; may return before it ends (CUDA).")
      .def(
          "dispatch_timed",
          [](PreparedLaunch& p, nb::handle grid, nb::handle threads) {
            Dim3 g = dim3_arg(p, grid, "grid"), t = dim3_arg(p, threads, "threads");
            nb::gil_scoped_release release;
            return p.dispatch_timed(g, t);
          },
          "Runs the kernel and waits; returns the elapsed milliseconds.")
      .def(
          "read_output",
          [](const PreparedLaunch& p, size_t i) {
            if (p.released())
              throw RuntimeError("read_output: kernel '" + p.kernel_name() +
                                 "': this PreparedKernel was released; prepare() it again");
            if (i >= p.num_outputs()) throw RuntimeError("read_output: no output " + std::to_string(i));
            uint64_t n = p.output_size(i);
            nb::bytes out(nullptr, static_cast<size_t>(n));
            {
              nb::gil_scoped_release release;
              p.read_output(i, const_cast<char*>(static_cast<const char*>(out.data())));
            }
            return out;
          },
          "The bytes of output i (waits for the dispatches before it).")
      .def(
          "set_scalars",
          [](PreparedLaunch& p, const nb::list& scalars) {
            std::vector<ScalarArg> sargs;
            for (nb::handle h : scalars) sargs.push_back(scalar_arg(h));
            p.set_scalars(sargs);
          },
          "New values of the Scalar parameters, used from the next dispatch.")
      .def("buffer", &PreparedLaunch::buffer, "The device buffer bound to buffer parameter `param` (shared).")
      .def("bind", &PreparedLaunch::bind,
           "Binds buffer parameter `param` to another buffer of the same size from the next dispatch.")
      .def(
          "read_buffer",
          [](const PreparedLaunch& p, size_t param) {
            uint64_t n = p.buffer(param)->size();
            nb::bytes out(nullptr, static_cast<size_t>(n));
            {
              nb::gil_scoped_release release;
              p.read_buffer(param, const_cast<char*>(static_cast<const char*>(out.data())));
            }
            return out;
          },
          "The bytes of any buffer parameter.")
      .def_prop_ro("num_outputs", &PreparedLaunch::num_outputs, "Number of output buffers.")
      .def_prop_ro("released", &PreparedLaunch::released, "Whether release() was called.")
      .def_prop_ro("kernel_name", &PreparedLaunch::kernel_name, "The kernel's name.")
      .def(
          "release",
          [](PreparedLaunch& p) {
            nb::gil_scoped_release release;
            p.release();
          },
          "Frees the launch's buffers and program.");
}

}  // namespace enigma
