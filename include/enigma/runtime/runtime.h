// The device-independent runtime: devices, compiled programs, prepared
// launches with the validation of SEMANTICS section 5. Backends plug in
// through the registry (enigma/backend.h); callers never name a backend's
// classes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

struct Dim3 {
  uint64_t x = 1, y = 1, z = 1;
  std::string str() const;
};

struct DeviceCapabilities {
  std::string gpu_family;
  int64_t gpu_family_raw = 0;
  bool is_m3_or_newer = false;
  bool supports_async_copy = false;
  bool supports_simdgroup_matrix = false;
  int simdgroup_size = 32;
  uint64_t max_threadgroup_memory = 0;
  uint64_t max_threads_per_threadgroup = 0;
  std::string device_name;
  std::string backend;
  uint64_t max_buffer_bytes = 0;  // largest single buffer the device accepts
};

struct CompileOptions {
  // Checked memory (SEMANTICS section 4): out-of-bounds loads read 0, stores
  // and atomics are dropped and the dispatch then fails. false: unchecked.
  bool bounds_check = true;
  bool debug = false;  // reports out-of-bounds loads too (implies checks)
};

// A kernel compiled for one device.
class Program {
 public:
  virtual ~Program() = default;
};

// Memory owned by a device.
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  virtual uint64_t size() const = 0;
};

// A launch argument as the device sees it: a buffer, or a scalar's bytes.
struct LaunchArg {
  DeviceBuffer* buffer = nullptr;
  uint64_t scalar_bits = 0;  // little-endian value of a Scalar parameter
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const std::string& name() const = 0;  // "cpu", "cuda:0", "metal"
  virtual const DeviceCapabilities& capabilities() const = 0;
  virtual std::shared_ptr<Program> compile(const Kernel& k, const CompileOptions& o) = 0;
  // Zero-filled.
  virtual std::unique_ptr<DeviceBuffer> allocate(uint64_t bytes) = 0;
  virtual void upload(DeviceBuffer& dst, const void* src, uint64_t bytes) = 0;
  virtual void download(const DeviceBuffer& src, void* dst, uint64_t bytes) = 0;
  // Runs and waits. Returns the elapsed milliseconds (device time where the
  // device has timestamps, else wall time). Throws RuntimeError on failure.
  virtual double launch(const Kernel& k, Program& p, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads) = 0;
  // Starts a launch without waiting where the device queues work (CUDA): a
  // later download or launch() waits for it and reports its failure.
  virtual void enqueue(const Kernel& k, Program& p, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads) {
    launch(k, p, args, grid, threads);
  }
  // Interop: a non-owning buffer over `bytes` of memory this device already
  // holds at `device_ptr` (a torch/CuPy CUDA array); the caller keeps it
  // alive. Throws RuntimeError when the device cannot use such memory.
  virtual std::unique_ptr<DeviceBuffer> wrap(uint64_t device_ptr, uint64_t bytes);
  // dst[0:bytes] = src[0:bytes] (default: through host memory).
  virtual void copy(DeviceBuffer& dst, const DeviceBuffer& src, uint64_t bytes);
  // Bytes of buffers that can be allocated now without exhausting the device
  // (the CPU: available memory and free swap); UINT64_MAX when unknown.
  // PreparedLaunch refuses launches whose buffers need more.
  virtual uint64_t available_memory() const { return UINT64_MAX; }
};

// Opens "cpu", "cuda", "cuda:N", "metal", or "" / "auto" (ENIGMA_DEVICE, then
// the registered backends by preference: Metal, then CUDA, then the CPU).
// Devices are shared per process.
std::shared_ptr<Device> open_device(const std::string& spec);
std::vector<std::string> available_backends();

// Values of a kernel's function constants, by Metal index (converted to the
// declared dtypes); empty for kernels without any.
using ConstantValues = std::vector<std::pair<int, Const>>;

// A kernel's IR plus its per-device programs (compiled lazily, cached). A
// kernel with function constants is specialised per set of values: each set
// is its own program (cached like the rest).
class CompiledKernel {
 public:
  CompiledKernel(Kernel k, CompileOptions o);
  const Kernel& kernel() const { return kernel_; }
  const CompileOptions& options() const { return options_; }
  std::shared_ptr<Program> program(Device& d, const ConstantValues& constants = {});
  // The kernel with its function constants replaced by `constants`, optimised.
  Kernel specialized(const ConstantValues& constants) const;
  // Programs built so far (one per device and set of function-constant values).
  size_t num_programs();

 private:
  Kernel kernel_;
  CompileOptions options_;
  std::mutex mu_;
  struct Entry {
    const Device* device;
    std::string constants;  // key of the specialisation ("" without function constants)
    std::shared_ptr<Program> program;
  };
  std::vector<Entry> programs_;
};

// A host array handed in by the caller.
struct HostArray {
  const void* data = nullptr;
  uint64_t bytes = 0;
  std::string dtype;  // numpy dtype name ("float32", "bfloat16", ...); "" = untyped bytes
  std::string shape;  // for messages, e.g. "(1024,)"
  // Nonzero: the array is already in device memory at this address (CUDA
  // interop); `data` is unused and the device binds it without a copy,
  // unless the kernel writes that input (then it gets a private copy).
  uint64_t device_ptr = 0;
};

// A scalar argument as given by the caller.
struct ScalarArg {
  enum class Kind : uint8_t { Int, UInt, Float, Bool } kind = Kind::Int;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  std::string repr;
};

// A function constant's value as given at dispatch: constants={index: (type_name, value)}.
struct ConstantArg {
  int index = 0;
  std::string type_name;  // a dtype spelling ("float", "i32", "bool", ...)
  ScalarArg value;
};

// Checks constants= against the kernel's function constants (each declared
// one needs a value of its dtype; no others) and converts the values.
ConstantValues constant_values(const Kernel& k, const std::vector<ConstantArg>& given, const std::string& api);

// Buffers bound in the seed's order: inputs with scalars at their declared
// indices, then outputs. Validates everything before anything runs.
class PreparedLaunch {
 public:
  PreparedLaunch(std::shared_ptr<Device> device, std::shared_ptr<CompiledKernel> kernel,
                 const std::vector<HostArray>& inputs, const std::vector<ScalarArg>& scalars,
                 const std::vector<uint64_t>& output_sizes, const char* api,
                 const std::vector<ConstantArg>& constants = {});
  // dispatch() may return before the kernel finishes (CUDA); read_output()
  // and dispatch_timed() wait, and report a failure of an earlier dispatch.
  void dispatch(Dim3 grid, Dim3 threads) { run(grid, threads, false); }
  double dispatch_timed(Dim3 grid, Dim3 threads) { return run(grid, threads, true); }
  size_t num_outputs() const { return num_outputs_; }
  uint64_t output_size(size_t i) const;
  // Time-stepping without preparing again: new values of the Scalar
  // parameters (validated as prepare validates them), used from the next dispatch.
  void set_scalars(const std::vector<ScalarArg>& scalars);
  // The device buffer bound to buffer parameter `param`, shared: another
  // PreparedLaunch on the same device can bind it without a copy.
  std::shared_ptr<DeviceBuffer> buffer(size_t param) const;
  // Binds buffer parameter `param` to `buffer` (same device, same byte size)
  // from the next dispatch on, without copying: ping-pong loops swap two.
  void bind(size_t param, std::shared_ptr<DeviceBuffer> buffer);
  // Copies any buffer parameter's bytes (an output, or an input the kernel writes).
  void read_buffer(size_t param, void* dst) const;
  void read_output(size_t i, void* dst) const;
  void release();
  bool released() const { return released_; }
  const std::string& kernel_name() const { return kernel_->kernel().name; }
  const std::string& api() const { return api_; }  // "execute" or "prepare", for messages
  // Most threadgroups one dispatch may have (the product over x, y, z).
  static constexpr uint64_t kMaxThreadgroups = (uint64_t{1} << 63) - 1;

 private:
  double run(Dim3 grid, Dim3 threads, bool wait);
  [[noreturn]] void fail(const std::string& msg) const;
  void validate_geometry(Dim3 grid, Dim3 threads) const;

  std::shared_ptr<Device> device_;
  std::shared_ptr<CompiledKernel> kernel_;
  std::shared_ptr<Program> program_;
  std::vector<std::shared_ptr<DeviceBuffer>> buffers_;  // per parameter; null for scalars
  std::vector<LaunchArg> args_;
  size_t num_outputs_ = 0;
  size_t first_output_ = 0;
  bool released_ = false;
  std::string api_;
  mutable std::mutex mu_;
};

// Formats the seed's dispatch error: kernel name, grid, threads, code, description.
std::string dispatch_error(const std::string& device, const std::string& kernel, Dim3 grid, Dim3 threads,
                           const std::string& code, const std::string& description);
// The dispatch error of checked memory: `info` is the generated code's record
// {memory id, index, access (0 load, 1 store, 2 atomic), x, y, z}; buffer
// sizes in bytes, per parameter.
std::string out_of_bounds_error(const std::string& device, const Kernel& k, Dim3 grid, Dim3 threads,
                                const std::vector<uint64_t>& buffer_bytes, const uint64_t info[6]);

}  // namespace enigma
