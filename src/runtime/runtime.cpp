#include "enigma/runtime/runtime.h"

#include "enigma/backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "enigma/ir/const_eval.h"
#include "enigma/ir/passes.h"
#include "enigma/support/error.h"

namespace enigma {

std::string Dim3::str() const {
  // Appends instead of "(" + ...: GCC 12 warns falsely (-Wrestrict) on the latter.
  std::string s(1, '(');
  s.append(std::to_string(x)).append(", ").append(std::to_string(y)).append(", ").append(std::to_string(z));
  return s.append(1, ')');
}

// "enigma GPU error: " as the seed page words it; "enigma CPU error: " on the CPU device.
static std::string device_error_prefix(const std::string& device) {
  return std::string("enigma ") + (device.rfind("cpu", 0) == 0 ? "CPU" : "GPU") + " error: ";
}

std::string dispatch_error(const std::string& device, const std::string& kernel, Dim3 grid, Dim3 threads,
                           const std::string& code, const std::string& description) {
  return device_error_prefix(device) + "dispatch failed: " + description + "\n  kernel: " + kernel +
         "\n  grid: " + grid.str() + "\n  threads: " + threads.str() + "\n  device: " + device + "\n  error: " + code;
}

std::string out_of_bounds_error(const std::string& device, const Kernel& k, Dim3 grid, Dim3 threads,
                                const std::vector<uint64_t>& buffer_bytes, const uint64_t info[6]) {
  // The memory id: a parameter, or (negative) a threadgroup array.
  const int64_t mem = static_cast<int64_t>(info[0]);
  std::string what;
  uint64_t elems = 0;
  std::string dtype;
  if (is_threadgroup_memory(mem) && threadgroup_array_index(mem) < k.tg_arrays.size()) {
    const ThreadgroupArray& a = k.tg_arrays[threadgroup_array_index(mem)];
    what = "threadgroup array '" + a.name + "'";
    elems = a.size;
    dtype = a.type.str();
  } else if (mem >= 0 && static_cast<size_t>(mem) < k.params.size()) {
    const Param& p = k.params[static_cast<size_t>(mem)];
    what = "buffer '" + p.name + "'";
    const uint64_t bytes = static_cast<size_t>(mem) < buffer_bytes.size() ? buffer_bytes[static_cast<size_t>(mem)] : 0;
    elems = bytes / static_cast<uint64_t>(p.type.size_bytes());
    dtype = p.type.str();
  } else {
    what = "memory " + std::to_string(mem);
  }
  static const char* const kinds[] = {"load from", "store to", "atomic on"};
  std::string desc = std::string("out-of-bounds ") + kinds[info[2] < 3 ? info[2] : 0] + " " + what + " at index " +
                     std::to_string(info[1]) + " (it holds " + std::to_string(elems) + " " + dtype +
                     " elements) by thread " + Dim3{info[3], info[4], info[5]}.str() +
                     "; out-of-bounds loads read 0 and stores and atomics are dropped, the other results are kept";
  return dispatch_error(device, k.name, grid, threads, "OUT_OF_BOUNDS", desc);
}

// ---- devices ----------------------------------------------------------------

namespace {
// Devices are shared per process: opened once per backend and ordinal.
struct OpenDevices {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<Device>> open;
};
OpenDevices& open_devices() {
  static OpenDevices* d = new OpenDevices();  // never destroyed: devices may outlive static teardown
  return *d;
}

bool has_device(const Backend& b) { return b.open != nullptr; }
bool can_open(const Backend& b) { return has_device(b) && b.available(); }

// The backends this installation has devices for, by name.
std::string built_backends() {
  std::string known;
  for (const Backend* b : backends())
    if (has_device(*b)) known += (known.empty() ? "" : ", ") + std::string(b->name);
  return known;
}
}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> out;
  for (const Backend* b : backends())
    if (can_open(*b)) out.push_back(b->name);
  return out;
}

std::shared_ptr<Device> open_device(const std::string& spec_in) {
  std::string spec = spec_in;
  if (spec.empty() || spec == "auto") {
    const char* env = std::getenv("ENIGMA_DEVICE");
    if (env && *env) {
      spec = env;
    } else {
      spec = "cpu";
      for (const Backend* b : backends_by_preference())
        if (can_open(*b)) {
          spec = b->name;
          break;
        }
    }
  }
  std::string name = spec;
  int ordinal = 0;
  size_t colon = spec.find(':');
  if (colon != std::string::npos) {
    name = spec.substr(0, colon);
    std::string num = spec.substr(colon + 1);
    char* end = nullptr;
    long v = std::strtol(num.c_str(), &end, 10);
    if (num.empty() || *end != '\0' || v < 0 || v > 1024)
      throw RuntimeError("invalid device '" + spec + "': the ordinal after ':' must be a non-negative integer");
    ordinal = static_cast<int>(v);
  }
  const Backend* b = nullptr;
  for (const Backend* candidate : backends())
    if (name == candidate->name) b = candidate;
  auto unavailable = [&] {
    return RuntimeError(b->unavailable ? b->unavailable(spec, built_backends())
                                       : "device '" + spec + "' is not available on this machine");
  };
  if (b && !has_device(*b)) throw unavailable();
  if (!b) {
    std::string expected;
    for (const Backend* c : backends_by_preference()) {
      expected += (expected.empty() ? "" : ", ") + std::string(c->name);
      if (c->numbered) expected += ", " + std::string(c->name) + ":N";
    }
    throw RuntimeError("unknown device '" + spec + "'; expected one of: " + expected +
                       " (built into this "
                       "installation: " +
                       built_backends() + ")");
  }
  OpenDevices& d = open_devices();
  std::lock_guard<std::mutex> lock(d.mu);
  std::string key = name + ":" + std::to_string(ordinal);
  auto open = d.open.find(key);
  if (open != d.open.end()) return open->second;
  if (!b->available()) throw unavailable();
  std::shared_ptr<Device> device = b->open(ordinal);
  d.open[key] = device;
  return device;
}

std::unique_ptr<DeviceBuffer> Device::wrap(uint64_t, uint64_t) {
  throw RuntimeError("device '" + name() +
                     "' cannot use GPU memory of another device directly; pass a host "
                     "array (e.g. numpy) instead");
}

void Device::copy(DeviceBuffer& dst, const DeviceBuffer& src, uint64_t bytes) {
  std::vector<unsigned char> tmp(static_cast<size_t>(bytes));
  download(src, tmp.data(), bytes);
  upload(dst, tmp.data(), bytes);
}

// ---- compiled kernels -----------------------------------------------------

CompiledKernel::CompiledKernel(Kernel k, CompileOptions o) : kernel_(std::move(k)), options_(o) {}

Kernel CompiledKernel::specialized(const ConstantValues& constants) const {
  Kernel k = kernel_;
  specialize_function_constants(k, constants);
  optimize(k);
  return k;
}

size_t CompiledKernel::num_programs() {
  std::lock_guard<std::mutex> lock(mu_);
  return programs_.size();
}

std::shared_ptr<Program> CompiledKernel::program(Device& d, const ConstantValues& constants) {
  std::string key;
  for (const auto& [index, c] : constants) {
    const FunctionConstant* decl = nullptr;
    for (const FunctionConstant& fc : kernel_.function_constants)
      if (fc.index == index) decl = &fc;
    key += std::to_string(index) + "=" + std::to_string(decl ? const_bits(decl->type.elem, c) : 0) + ";";
  }
  auto find = [&]() -> std::shared_ptr<Program> {
    for (const Entry& e : programs_)
      if (e.device == &d && e.constants == key) return e.program;
    return nullptr;
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto p = find()) return p;
  }
  // Compile outside the lock: it can take a while and other devices may ask.
  std::shared_ptr<Program> p =
      kernel_.function_constants.empty() ? d.compile(kernel_, options_) : d.compile(specialized(constants), options_);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto q = find()) return q;
  programs_.push_back(Entry{&d, key, p});
  return p;
}

// ---- prepared launches ------------------------------------------------------

namespace {

std::string param_list(const Kernel& k) {
  std::string s = "[";
  for (size_t i = 0; i < k.params.size(); ++i) s += (i ? ", " : "") + k.params[i].name;
  return s + "]";
}

std::string numpy_of(const DType& t) {
  std::string n = info(t.elem).numpy_name;
  if (t.elem == Scalar::BF16) return "bfloat16 (ml_dtypes) or uint16 holding bfloat16 bits";
  return "numpy " + n;
}

bool input_dtype_ok(const DType& param, const std::string& given) {
  if (given.empty()) return true;  // untyped bytes: only the size is checked
  if (given == info(param.elem).numpy_name) return true;
  return param.elem == Scalar::BF16 && given == "uint16";
}

uint64_t scalar_bits(const Kernel& k, const Param& p, const ScalarArg& a, const char* api,
                     const std::string& what = "") {
  Scalar t = p.type.elem;
  auto bad = [&](const std::string& why, ValidationError::Kind kind = ValidationError::Kind::Type) {
    return ValidationError(kind, std::string(api) + ": kernel '" + k.name + "' " +
                                     (what.empty() ? "Scalar parameter '" + p.name + "'" : what) + " (" + p.type.str() +
                                     ") " + why);
  };
  Const c;
  Scalar from = Scalar::I64;
  switch (a.kind) {
    case ScalarArg::Kind::Float:
      if (!is_float(t)) throw bad("needs an integer value, got the float " + a.repr);
      c.f = a.f;
      return const_bits(t, normalize_const(t, c));
    case ScalarArg::Kind::Bool:
      c.i = a.i;
      from = Scalar::B1;
      break;
    case ScalarArg::Kind::UInt:
      c.i = static_cast<int64_t>(a.u);
      from = Scalar::U64;
      break;
    case ScalarArg::Kind::Int:
      c.i = a.i;
      from = Scalar::I64;
      break;
  }
  if (is_float(t)) {
    c.f = a.kind == ScalarArg::Kind::UInt ? static_cast<double>(a.u) : static_cast<double>(a.i);
    return const_bits(t, normalize_const(t, c));
  }
  if (t == Scalar::B1) {
    if (a.kind != ScalarArg::Kind::Bool && !(a.kind == ScalarArg::Kind::Int && (a.i == 0 || a.i == 1)))
      throw bad("needs True/False, got " + a.repr);
    c.i = c.i != 0;
    return const_bits(t, c);
  }
  // Integers must fit the parameter's range exactly.
  int bits = info(t).bits;
  bool ok;
  if (a.kind == ScalarArg::Kind::UInt) {
    ok = !is_signed_int(t) && bits == 64;
  } else {
    int64_t v = c.i;
    if (is_signed_int(t))
      ok = bits == 64 || (v >= -(int64_t{1} << (bits - 1)) && v < (int64_t{1} << (bits - 1)));
    else
      ok = v >= 0 && (bits == 64 || v < (int64_t{1} << bits));
  }
  if (!ok) throw bad("cannot hold " + a.repr + " (out of range)", ValidationError::Kind::Value);
  return const_bits(t, convert_const(c, from, t));
}

}  // namespace

ConstantValues constant_values(const Kernel& k, const std::vector<ConstantArg>& given, const std::string& api) {
  auto declared = [&] {
    std::string s;
    for (const FunctionConstant& fc : k.function_constants)
      s += (s.empty() ? "" : ", ") + std::to_string(fc.index) + " (" + fc.type.str() + ")";
    return s.empty() ? std::string("none") : s;
  };
  ConstantValues out;
  for (const ConstantArg& a : given) {
    std::string where = api + ": constants[" + std::to_string(a.index) + "]: kernel '" + k.name + "'";
    const FunctionConstant* decl = nullptr;
    for (const FunctionConstant& fc : k.function_constants)
      if (fc.index == a.index) decl = &fc;
    if (!decl)
      throw ValidationError(
          ValidationError::Kind::Value,
          where + " declares no function constant " + std::to_string(a.index) + " (it declares: " + declared() + ")");
    std::optional<Scalar> t = parse_scalar(a.type_name);
    if (!t || *t != decl->type.elem)
      throw ValidationError(ValidationError::Kind::Type, where + " declares function constant " +
                                                             std::to_string(a.index) + " as " + decl->type.str() +
                                                             ", but the value is given as '" + a.type_name + "'");
    Param p{"function constant " + std::to_string(a.index), Param::Kind::Scalar, decl->type, false};
    uint64_t bits;
    if (*t == Scalar::B1) {  // any number: true when not zero
      const ScalarArg& v = a.value;
      bits = v.kind == ScalarArg::Kind::Float ? v.f != 0.0 : v.kind == ScalarArg::Kind::UInt ? v.u != 0 : v.i != 0;
    } else {
      bits = scalar_bits(k, p, a.value, api.c_str(), "function constant " + std::to_string(a.index));
    }
    out.emplace_back(a.index, const_from_bits(*t, bits));
  }
  for (const FunctionConstant& fc : k.function_constants) {
    bool found = false;
    for (const auto& [index, c] : out) found = found || index == fc.index;
    if (!found)
      throw ValidationError(ValidationError::Kind::Value,
                            api + ": kernel '" + k.name + "' uses function constant " + std::to_string(fc.index) +
                                " (" + fc.type.str() + "), but constants= gives it no value; pass constants={" +
                                std::to_string(fc.index) + ": ('" + fc.type.str() + "', value)}");
  }
  return out;
}

PreparedLaunch::PreparedLaunch(std::shared_ptr<Device> device, std::shared_ptr<CompiledKernel> kernel,
                               const std::vector<HostArray>& inputs, const std::vector<ScalarArg>& scalars,
                               const std::vector<uint64_t>& output_sizes, const char* api,
                               const std::vector<ConstantArg>& constants)
    : device_(std::move(device)), kernel_(std::move(kernel)), api_(api) {
  const Kernel& k = kernel_->kernel();
  const size_t P = k.params.size();
  const size_t S = static_cast<size_t>(k.num_scalar_params());
  const size_t total = inputs.size() + scalars.size() + output_sizes.size();
  auto err = [&](const std::string& msg, ValidationError::Kind kind = ValidationError::Kind::Value) {
    return ValidationError(kind, api_ + ": kernel '" + k.name + "' " + msg);
  };

  if (output_sizes.empty()) throw err("needs at least one output buffer (output_size or output_sizes)");
  if (!scalars.empty() && S == 0)
    throw err("has no Scalar parameters, but got " + std::to_string(scalars.size()) + " scalar(s)");
  if (scalars.size() != S) {
    std::string names;
    for (const Param& p : k.params)
      if (p.kind == Param::Kind::Scalar) names += (names.empty() ? "" : ", ") + p.name;
    throw err("expects " + std::to_string(S) + " scalar(s) (one per Scalar parameter: [" + names + "]), got " +
              std::to_string(scalars.size()));
  }
  if (total != P) {
    throw ValidationError(
        ValidationError::Kind::Value,
        device_error_prefix(device_->name()) + api_ + ": kernel '" + k.name + "' has " + std::to_string(P) +
            " parameter(s), but got " + std::to_string(inputs.size()) + " input(s) + " +
            std::to_string(scalars.size()) + " scalar(s) + " + std::to_string(output_sizes.size()) +
            " output buffer(s) = " + std::to_string(total) + ".\n  kernel '" + k.name + "' params: " + param_list(k) +
            "\nOutputs are appended AFTER inputs in the bind list. Pass every kernel parameter exactly "
            "once across inputs= / scalars= / output_size(s).");
  }
  num_outputs_ = output_sizes.size();
  first_output_ = P - num_outputs_;
  for (size_t i = first_output_; i < P; ++i) {
    if (k.params[i].kind == Param::Kind::Scalar)
      throw err("Scalar parameter '" + k.params[i].name + "' (index " + std::to_string(i) +
                ") falls in the output region (the last " + std::to_string(num_outputs_) +
                " parameter(s)); declare Scalar parameters before the output buffers");
  }
  const DeviceCapabilities& caps = device_->capabilities();
  // Validate every argument before allocating anything.
  size_t next_input = 0, next_scalar = 0;
  std::vector<uint64_t> bits(P, 0);
  for (size_t i = 0; i < first_output_; ++i) {
    const Param& p = k.params[i];
    if (p.kind == Param::Kind::Scalar) {
      bits[i] = scalar_bits(k, p, scalars[next_scalar++], api);
      continue;
    }
    const HostArray& a = inputs[next_input];
    if (!input_dtype_ok(p.type, a.dtype))
      throw err("input " + std::to_string(next_input) + " (parameter '" + p.name + "') must hold " + p.type.str() +
                    " elements (" + numpy_of(p.type) + "), got an array of " + a.dtype +
                    (a.shape.empty() ? "" : " with shape " + a.shape),
                ValidationError::Kind::Type);
    uint64_t elem = static_cast<uint64_t>(p.type.size_bytes());
    if (a.bytes % elem != 0)
      throw err("input " + std::to_string(next_input) + " (parameter '" + p.name + "') has " + std::to_string(a.bytes) +
                " bytes, not a whole number of " + p.type.str() + " elements (" + std::to_string(elem) +
                " bytes each)");
    if (a.bytes > caps.max_buffer_bytes)
      throw err("input " + std::to_string(next_input) + " (parameter '" + p.name + "') has " + std::to_string(a.bytes) +
                " bytes, more than the device allows in one buffer (" + std::to_string(caps.max_buffer_bytes) + ")");
    ++next_input;
  }
  for (size_t o = 0; o < num_outputs_; ++o) {
    const Param& p = k.params[first_output_ + o];
    uint64_t sz = output_sizes[o];
    std::string what = num_outputs_ == 1 ? std::string("output_size") : "output_sizes[" + std::to_string(o) + "]";
    if (sz == 0) throw err(what + " must be a positive number of bytes, got 0 (parameter '" + p.name + "')");
    if (sz > caps.max_buffer_bytes)
      throw err(what + " is " + std::to_string(sz) + " bytes, more than the device allows in one buffer (" +
                std::to_string(caps.max_buffer_bytes) + " bytes)");
    uint64_t elem = static_cast<uint64_t>(p.type.size_bytes());
    if (sz % elem != 0)
      throw err(what + " is " + std::to_string(sz) + " bytes, not a whole number of " + p.type.str() + " elements (" +
                std::to_string(elem) + " bytes each) for parameter '" + p.name + "'");
  }
  // All buffers together must fit the memory available now (checked before
  // allocating: buffers are zero-filled lazily, so nothing is touched up
  // front). An output counts twice: its buffer and the copy read_output makes.
  uint64_t needed = 0;
  bool overflow = false;
  for (const HostArray& a : inputs)
    if (a.device_ptr == 0) overflow |= __builtin_add_overflow(needed, a.bytes, &needed);
  for (uint64_t sz : output_sizes)
    overflow |= __builtin_add_overflow(needed, sz, &needed) || __builtin_add_overflow(needed, sz, &needed);
  // Small launches skip the query (reading /proc/meminfo costs more than they do).
  constexpr uint64_t kUncheckedBytes = uint64_t{64} << 20;
  const uint64_t available = overflow || needed > kUncheckedBytes ? device_->available_memory() : UINT64_MAX;
  if (overflow || needed > available)
    throw err("needs " + (overflow ? std::string("more than 2^64") : std::to_string(needed)) +
              " bytes of memory for its buffers (inputs, plus outputs counted twice: the buffer and the copy "
              "read back), more than " +
              device_->name() + " has available now (" + std::to_string(available) + " bytes)");
  const uint64_t tg_bytes = k.threadgroup_memory_bytes();
  if (tg_bytes > caps.max_threadgroup_memory) {
    std::string arrays;
    for (const ThreadgroupArray& a : k.tg_arrays)
      arrays += (arrays.empty() ? "" : ", ") + a.name + ": " + a.type.str() + "[" + std::to_string(a.size) + "]";
    throw err("uses " + std::to_string(tg_bytes) + " bytes of threadgroup memory (" + arrays +
              "), more than the device allows (" + std::to_string(caps.max_threadgroup_memory) + " bytes on " +
              device_->name() + ")");
  }
  program_ = kernel_->program(*device_, constant_values(k, constants, api_));
  buffers_.resize(P);
  args_.resize(P);
  next_input = 0;
  for (size_t i = 0; i < P; ++i) {
    const Param& p = k.params[i];
    if (p.kind == Param::Kind::Scalar) {
      args_[i].scalar_bits = bits[i];
      continue;
    }
    if (i < first_output_) {
      const HostArray& a = inputs[next_input++];
      if (a.device_ptr != 0 && a.bytes != 0) {
        std::unique_ptr<DeviceBuffer> external = device_->wrap(a.device_ptr, a.bytes);
        if (p.written) {  // execute() semantics: the caller's array is never modified
          buffers_[i] = device_->allocate(a.bytes);
          device_->copy(*buffers_[i], *external, a.bytes);
        } else {
          buffers_[i] = std::move(external);
        }
      } else {
        buffers_[i] = device_->allocate(a.bytes);
        if (a.bytes) device_->upload(*buffers_[i], a.data, a.bytes);
      }
    } else {
      buffers_[i] = device_->allocate(output_sizes[i - first_output_]);
    }
    args_[i].buffer = buffers_[i].get();
  }
}

void PreparedLaunch::fail(const std::string& msg) const {
  throw RuntimeError(api_ + ": kernel '" + kernel_->kernel().name + "': " + msg);
}

void PreparedLaunch::validate_geometry(Dim3 grid, Dim3 threads) const {
  const DeviceCapabilities& caps = device_->capabilities();
  // Every geometry error names the whole launch: kernel, grid and threads.
  auto fail = [&](const std::string& msg) {
    throw ValidationError(ValidationError::Kind::Value, api_ + ": kernel '" + kernel_->kernel().name + "': grid " +
                                                            grid.str() + ", threads " + threads.str() + ": " + msg);
  };
  const uint64_t g[3] = {grid.x, grid.y, grid.z}, t[3] = {threads.x, threads.y, threads.z};
  for (int i = 0; i < 3; ++i) {
    if (g[i] == 0) fail("grid must be 3 positive integers (threads per dimension), got " + grid.str());
    if (t[i] == 0) fail("threads must be 3 positive integers (threadgroup size), got " + threads.str());
    if (g[i] > std::numeric_limits<uint32_t>::max())
      fail("grid " + grid.str() + " is too large: at most 4294967295 threads per dimension");
  }
  uint64_t per_group = threads.x * threads.y * threads.z;
  if (threads.x > caps.max_threads_per_threadgroup || threads.y > caps.max_threads_per_threadgroup ||
      threads.z > caps.max_threads_per_threadgroup || per_group > caps.max_threads_per_threadgroup)
    fail("threads " + threads.str() + " = " + std::to_string(per_group) +
         " threads per threadgroup; the device allows at most " + std::to_string(caps.max_threads_per_threadgroup) +
         " (" + device_->name() + ")");
  // The number of threadgroups must fit in 64 bits (it is a loop bound and a
  // flat group index): a product that wrapped would run nothing.
  uint64_t groups = 1;
  for (int i = 0; i < 3; ++i) {
    if (__builtin_mul_overflow(groups, (g[i] + t[i] - 1) / t[i], &groups) || groups > kMaxThreadgroups)
      fail("grid " + grid.str() + " with threads " + threads.str() + " makes more than " +
           std::to_string(kMaxThreadgroups) + " threadgroups (the product of the groups per dimension)");
  }
}

double PreparedLaunch::run(Dim3 grid, Dim3 threads, bool wait) {
  std::lock_guard<std::mutex> lock(mu_);
  if (released_) fail("this PreparedKernel was released; prepare() it again");
  validate_geometry(grid, threads);
  if (!wait) {
    device_->enqueue(kernel_->kernel(), *program_, args_, grid, threads);
    return 0.0;
  }
  return device_->launch(kernel_->kernel(), *program_, args_, grid, threads);
}

uint64_t PreparedLaunch::output_size(size_t i) const { return buffers_.at(first_output_ + i)->size(); }

void PreparedLaunch::read_output(size_t i, void* dst) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (released_) fail("this PreparedKernel was released; prepare() it again");
  if (i >= num_outputs_)
    fail("no output " + std::to_string(i) + " (the kernel has " + std::to_string(num_outputs_) + ")");
  const DeviceBuffer& b = *buffers_[first_output_ + i];
  device_->download(b, dst, b.size());
}

void PreparedLaunch::set_scalars(const std::vector<ScalarArg>& scalars) {
  std::lock_guard<std::mutex> lock(mu_);
  if (released_) fail("this PreparedKernel was released; prepare() it again");
  const Kernel& k = kernel_->kernel();
  const size_t S = static_cast<size_t>(k.num_scalar_params());
  if (scalars.size() != S)
    throw ValidationError(ValidationError::Kind::Value,
                          "dispatch: kernel '" + k.name + "' expects " + std::to_string(S) +
                              " scalar(s) (one per Scalar parameter), got " + std::to_string(scalars.size()));
  std::vector<uint64_t> bits;
  size_t next = 0;
  for (size_t i = 0; i < first_output_; ++i)
    if (k.params[i].kind == Param::Kind::Scalar)
      bits.push_back(scalar_bits(k, k.params[i], scalars[next++], "dispatch"));
  next = 0;
  for (size_t i = 0; i < first_output_; ++i)
    if (k.params[i].kind == Param::Kind::Scalar) args_[i].scalar_bits = bits[next++];
}

std::shared_ptr<DeviceBuffer> PreparedLaunch::buffer(size_t param) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (released_) fail("this PreparedKernel was released; prepare() it again");
  if (param >= buffers_.size() || !buffers_[param])
    throw ValidationError(ValidationError::Kind::Value, "kernel '" + kernel_->kernel().name + "': parameter " +
                                                            std::to_string(param) + " is not a buffer parameter");
  return buffers_[param];
}

void PreparedLaunch::bind(size_t param, std::shared_ptr<DeviceBuffer> buffer) {
  std::lock_guard<std::mutex> lock(mu_);
  if (released_) fail("this PreparedKernel was released; prepare() it again");
  const Kernel& k = kernel_->kernel();
  if (param >= buffers_.size() || !buffers_[param])
    throw ValidationError(ValidationError::Kind::Value, "bind: kernel '" + k.name + "': parameter " +
                                                            std::to_string(param) + " is not a buffer parameter");
  if (!buffer || buffer->size() != buffers_[param]->size())
    throw ValidationError(ValidationError::Kind::Value,
                          "bind: kernel '" + k.name + "': parameter '" + k.params[param].name + "' holds " +
                              std::to_string(buffers_[param]->size()) + " bytes; the new buffer has " +
                              std::to_string(buffer ? buffer->size() : 0) + " (a bound buffer keeps its size)");
  args_[param].buffer = buffer.get();
  buffers_[param] = std::move(buffer);
}

void PreparedLaunch::read_buffer(size_t param, void* dst) const {
  std::shared_ptr<DeviceBuffer> b = buffer(param);
  device_->download(*b, dst, b->size());
}

void PreparedLaunch::release() {
  std::lock_guard<std::mutex> lock(mu_);
  buffers_.clear();
  args_.clear();
  program_.reset();
  released_ = true;
}

}  // namespace enigma
