#include "runtime/cuda/cuda_api.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "enigma/support/error.h"

namespace enigma::cuda {

namespace fs = std::filesystem;

namespace {

// Resolves `name` (or the first of several versioned names) into `fn`.
template <class F>
bool bind(void* lib, F*& fn, std::initializer_list<const char*> names, std::string* missing) {
  for (const char* n : names) {
    if (void* p = dlsym(lib, n)) {
      fn = reinterpret_cast<F*>(p);
      return true;
    }
  }
  if (missing && missing->empty()) *missing = *names.begin();
  return false;
}

std::string text_with(const Driver& d, CUresult r) {
  const char* n = nullptr;
  const char* desc = nullptr;
  std::string text = d.cuGetErrorName && d.cuGetErrorName(r, &n) == CUDA_SUCCESS && n
                         ? std::string(n)
                         : "CUDA error " + std::to_string(r);
  if (d.cuGetErrorString && d.cuGetErrorString(r, &desc) == CUDA_SUCCESS && desc)
    text += std::string(" (") + desc + ")";
  return text;
}

struct DriverState {
  Driver api{};
  bool ok = false;
  std::string why;
  int count = 0;
  int version = 0;
};

const DriverState& driver_state() {
  static const DriverState* state = [] {
    auto* s = new DriverState();  // never freed: devices may be used during static teardown
    void* lib = nullptr;
    std::string errors;
    for (const char* name : {"libcuda.so.1", "libcuda.so"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
      const char* e = dlerror();
      errors += std::string(errors.empty() ? "" : "; ") + (e ? e : name);
    }
    if (!lib) {
      s->why = "the CUDA driver library (libcuda.so.1) cannot be loaded: " + errors;
      return s;
    }
    Driver& d = s->api;
    std::string missing;
    bool all =
        bind(lib, d.cuInit, {"cuInit"}, &missing) & bind(lib, d.cuDriverGetVersion, {"cuDriverGetVersion"}, &missing) &
        bind(lib, d.cuDeviceGetCount, {"cuDeviceGetCount"}, &missing) &
        bind(lib, d.cuDeviceGet, {"cuDeviceGet"}, &missing) &
        bind(lib, d.cuDeviceGetName, {"cuDeviceGetName"}, &missing) &
        bind(lib, d.cuDeviceGetAttribute, {"cuDeviceGetAttribute"}, &missing) &
        bind(lib, d.cuDeviceTotalMem, {"cuDeviceTotalMem_v2"}, &missing) &
        bind(lib, d.cuDevicePrimaryCtxRetain, {"cuDevicePrimaryCtxRetain"}, &missing) &
        bind(lib, d.cuCtxSetCurrent, {"cuCtxSetCurrent"}, &missing) &
        bind(lib, d.cuModuleLoadData, {"cuModuleLoadData"}, &missing) &
        bind(lib, d.cuModuleGetFunction, {"cuModuleGetFunction"}, &missing) &
        bind(lib, d.cuModuleUnload, {"cuModuleUnload"}, &missing) &
        bind(lib, d.cuFuncGetAttribute, {"cuFuncGetAttribute"}, &missing) &
        bind(lib, d.cuFuncSetAttribute, {"cuFuncSetAttribute"}, &missing) &
        bind(lib, d.cuMemAlloc, {"cuMemAlloc_v2"}, &missing) & bind(lib, d.cuMemFree, {"cuMemFree_v2"}, &missing) &
        bind(lib, d.cuMemsetD8, {"cuMemsetD8_v2"}, &missing) &
        bind(lib, d.cuMemcpyHtoD, {"cuMemcpyHtoD_v2"}, &missing) &
        bind(lib, d.cuMemcpyDtoH, {"cuMemcpyDtoH_v2"}, &missing) &
        bind(lib, d.cuMemcpyDtoD, {"cuMemcpyDtoD_v2"}, &missing) &
        bind(lib, d.cuLaunchKernel, {"cuLaunchKernel"}, &missing) &
        bind(lib, d.cuEventCreate, {"cuEventCreate"}, &missing) &
        bind(lib, d.cuEventRecord, {"cuEventRecord"}, &missing) &
        bind(lib, d.cuEventSynchronize, {"cuEventSynchronize"}, &missing) &
        bind(lib, d.cuEventElapsedTime, {"cuEventElapsedTime_v2", "cuEventElapsedTime"}, &missing) &
        bind(lib, d.cuEventDestroy, {"cuEventDestroy_v2"}, &missing) &
        bind(lib, d.cuCtxSynchronize, {"cuCtxSynchronize"}, &missing) &
        bind(lib, d.cuGetErrorName, {"cuGetErrorName"}, &missing) &
        bind(lib, d.cuGetErrorString, {"cuGetErrorString"}, &missing) &
        bind(lib, d.cuPointerGetAttribute, {"cuPointerGetAttribute"}, &missing);
    if (!all) {
      s->why = "the CUDA driver library is too old: it lacks " + missing;
      return s;
    }
    CUresult r = d.cuInit(0);
    if (r != CUDA_SUCCESS) {
      s->why = "cuInit failed: " + text_with(d, r);
      return s;
    }
    d.cuDriverGetVersion(&s->version);
    r = d.cuDeviceGetCount(&s->count);
    if (r != CUDA_SUCCESS || s->count <= 0) {
      s->why = r != CUDA_SUCCESS ? "cuDeviceGetCount failed: " + text_with(d, r) : "the CUDA driver reports no devices";
      s->count = 0;
      return s;
    }
    s->ok = true;
    return s;
  }();
  return *state;
}

std::mutex g_hint_mu;
std::vector<std::string>& hints() {
  static auto* h = new std::vector<std::string>();
  return *h;
}

// site-packages of the Enigma package itself (where pip puts the nvidia-*
// wheels too): the directory above the one holding this library.
std::string own_site_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_site_dir), &info) == 0 || info.dli_fname == nullptr) return {};
  std::error_code ec;
  fs::path p = fs::absolute(info.dli_fname, ec);
  if (ec) return {};
  return p.parent_path().parent_path().string();
}

}  // namespace

const Driver* driver(std::string* why) {
  const DriverState& s = driver_state();
  if (!s.ok) {
    if (why) *why = s.why;
    return nullptr;
  }
  return &s.api;
}

int device_count() { return driver_state().ok ? driver_state().count : 0; }
int driver_version() { return driver_state().version; }

std::string error_name(CUresult r) {
  const char* n = nullptr;
  const Driver& d = driver_state().api;
  if (d.cuGetErrorName && d.cuGetErrorName(r, &n) == CUDA_SUCCESS && n) return n;
  return "CUDA error " + std::to_string(r);
}

std::string error_text(CUresult r) { return text_with(driver_state().api, r); }

bool is_sticky(CUresult r) {
  switch (r) {
    case 214:  // ECC_UNCORRECTABLE
    case 700:  // ILLEGAL_ADDRESS
    case 702:  // LAUNCH_TIMEOUT
    case 709:  // CONTEXT_IS_DESTROYED
    case 710:  // ASSERT
    case 714:  // HARDWARE_STACK_ERROR
    case 715:  // ILLEGAL_INSTRUCTION
    case 716:  // MISALIGNED_ADDRESS
    case 717:  // INVALID_ADDRESS_SPACE
    case 718:  // INVALID_PC
    case 719:  // LAUNCH_FAILED
      return true;
    default: return false;
  }
}

void set_library_hints(std::vector<std::string> dirs) {
  std::lock_guard<std::mutex> lock(g_hint_mu);
  hints() = std::move(dirs);
}

std::vector<std::string> nvrtc_candidates() {
  std::vector<std::string> out;
  auto add = [&](const std::string& s) {
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  };
  if (const char* env = std::getenv("ENIGMA_NVRTC_LIBRARY"); env && *env) add(env);
  // The NVRTC of the driver's own major version first: its cubins load.
  std::vector<std::string> names;
  int major = driver_version() / 1000;
  if (major >= 11) names.push_back("libnvrtc.so." + std::to_string(major));
  for (const char* n : {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"})
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  for (const std::string& n : names) add(n);  // the loader's search path
  std::vector<std::string> roots;
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* v = std::getenv(var); v && *v) roots.push_back(v);
  roots.push_back("/usr/local/cuda");
  for (const std::string& root : roots)
    for (const char* sub : {"lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"})
      for (const std::string& n : names) add((fs::path(root) / sub / n).string());
  // The nvidia-cuda-nvrtc wheels: nvidia/cu13/lib (CUDA 13), nvidia/cuda_nvrtc/lib (12).
  std::vector<std::string> sites{own_site_dir()};
  {
    std::lock_guard<std::mutex> lock(g_hint_mu);
    sites.insert(sites.end(), hints().begin(), hints().end());
  }
  for (const std::string& site : sites) {
    if (site.empty()) continue;
    for (const char* sub : {"nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"})
      for (const std::string& n : names) add((fs::path(site) / sub / n).string());
  }
  return out;
}

const Nvrtc& nvrtc() {
  static std::mutex mu;
  static Nvrtc* loaded = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (loaded) return *loaded;
  std::string tried;
  for (const std::string& c : nvrtc_candidates()) {
    bool is_path = c.find('/') != std::string::npos;
    std::error_code ec;
    if (is_path && !fs::exists(c, ec)) continue;
    void* lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      if (is_path) tried += "\n  " + c + ": " + (e ? e : "cannot be loaded");
      continue;
    }
    auto* n = new Nvrtc();  // kept for the process's lifetime
    std::string missing;
    bool all = bind(lib, n->nvrtcGetErrorString, {"nvrtcGetErrorString"}, &missing) &
               bind(lib, n->nvrtcVersion, {"nvrtcVersion"}, &missing) &
               bind(lib, n->nvrtcCreateProgram, {"nvrtcCreateProgram"}, &missing) &
               bind(lib, n->nvrtcDestroyProgram, {"nvrtcDestroyProgram"}, &missing) &
               bind(lib, n->nvrtcCompileProgram, {"nvrtcCompileProgram"}, &missing) &
               bind(lib, n->nvrtcGetProgramLogSize, {"nvrtcGetProgramLogSize"}, &missing) &
               bind(lib, n->nvrtcGetProgramLog, {"nvrtcGetProgramLog"}, &missing) &
               bind(lib, n->nvrtcGetCUBINSize, {"nvrtcGetCUBINSize"}, &missing) &
               bind(lib, n->nvrtcGetCUBIN, {"nvrtcGetCUBIN"}, &missing) &
               bind(lib, n->nvrtcGetPTXSize, {"nvrtcGetPTXSize"}, &missing) &
               bind(lib, n->nvrtcGetPTX, {"nvrtcGetPTX"}, &missing);
    if (!all) {
      tried += "\n  " + c + ": lacks " + missing + " (NVRTC older than 11.1?)";
      delete n;
      dlclose(lib);
      continue;
    }
    // Optional: the list of real architectures this NVRTC can target.
    bind(lib, n->nvrtcGetNumSupportedArchs, {"nvrtcGetNumSupportedArchs"}, nullptr);
    bind(lib, n->nvrtcGetSupportedArchs, {"nvrtcGetSupportedArchs"}, nullptr);
    n->nvrtcVersion(&n->major, &n->minor);
    int count = 0;
    if (n->nvrtcGetNumSupportedArchs && n->nvrtcGetSupportedArchs && n->nvrtcGetNumSupportedArchs(&count) == 0 &&
        count > 0) {
      n->archs.resize(static_cast<size_t>(count));
      if (n->nvrtcGetSupportedArchs(n->archs.data()) != 0) n->archs.clear();
    }
    char path[4096] = {};
    if (!is_path && dlinfo(lib, RTLD_DI_ORIGIN, path) == 0)
      n->path = std::string(path) + "/" + c;
    else
      n->path = c;
    loaded = n;
    return *loaded;
  }
  throw RuntimeError(
      "cuda: NVRTC (libnvrtc) was not found, so CUDA kernels cannot be compiled. Install the CUDA toolkit or "
      "`pip install nvidia-cuda-nvrtc` (matching the driver's CUDA version), or set ENIGMA_NVRTC_LIBRARY to the "
      "library's path. Looked for libnvrtc.so.13/.12/.so on the loader's path, in $CUDA_HOME, $CUDA_PATH, "
      "/usr/local/cuda and the nvidia-cuda-nvrtc wheel directories" +
      (tried.empty() ? std::string(".") : std::string("; these failed to load:") + tried));
}

Probe probe() {
  Probe p;
  p.driver_loaded = driver(&p.unavailable_reason) != nullptr;
  p.driver_version = driver_version();
  p.device_count = device_count();
  if (p.driver_loaded && p.device_count == 0) p.unavailable_reason = "no CUDA devices";
  try {
    const Nvrtc& n = nvrtc();
    p.nvrtc_path = n.path;
    p.nvrtc_version = std::to_string(n.major) + "." + std::to_string(n.minor);
  } catch (const std::exception& e) { p.nvrtc_error = e.what(); }
  return p;
}

}  // namespace enigma::cuda
