// The CUDA device: kernels are emitted as CUDA C++, compiled by NVRTC for the
// card's own architecture (cubins cached on disk by content) and launched with
// the driver API on the legacy default stream, which orders them with the
// default streams of torch and CuPy, so their arrays can be bound directly.
// libcuda and libnvrtc are loaded at run time (cuda_api.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "enigma/backend.h"
#include "enigma/codegen/codegen.h"
#include "enigma/runtime/program_cache.h"
#include "enigma/runtime/runtime.h"
#include "enigma/support/error.h"
#include "runtime/cuda/cuda_api.h"

namespace enigma {

namespace {

using namespace cuda;

class CudaDevice;

class CudaBuffer : public DeviceBuffer {
 public:
  CudaBuffer(CudaDevice* dev, CUdeviceptr ptr, uint64_t size, bool owned)
      : dev_(dev), ptr_(ptr), size_(size), owned_(owned) {}
  ~CudaBuffer() override;
  uint64_t size() const override { return size_; }
  CUdeviceptr ptr() const { return ptr_; }

 private:
  CudaDevice* dev_;
  CUdeviceptr ptr_;
  uint64_t size_;
  bool owned_;
};

// One entry point: the function and its thread limit (register use can make
// it lower than the device's).
struct Entry {
  CUmodule module = nullptr;
  CUfunction fn = nullptr;
  int max_threads = 0;
  uint64_t shared_bytes = 0;  // dynamic shared memory per launch
};

class CudaProgram : public Program {
 public:
  CudaProgram(CudaDevice* dev, Entry plain, bool debug, bool checked, int groups, bool matrices)
      : dev_(dev), plain_(plain), debug_(debug), checked_(checked), groups_(groups), matrices_(matrices) {}
  ~CudaProgram() override;
  // The plain entry: built at compile time, except for kernels with
  // simdgroup matrices, whose launches mostly take the fragments entry (the
  // plain one, a whole tile in every lane, is slow to compile).
  const Entry& plain(const Kernel& k);
  bool debug() const { return debug_; }
  // Checked memory: the entry takes buffer lengths and an error record.
  bool checked() const { return checked_; }
  // Whether the kernel uses simdgroup matrices (cuda_uses_matrices).
  bool matrices() const { return matrices_; }
  // Threadgroups per block for large grids (1: the plain entry only).
  int groups() const { return groups_; }
  // The grouped entry, built on first use (large grids only pay for it).
  const Entry& grouped(const Kernel& k);
  // The entry with simdgroup matrices as fragments (tensor cores), built on
  // first use; only for launches whose every simdgroup is full.
  const Entry& fragments(const Kernel& k);

 private:
  // Builds `entry` on first use, under mu_, with the program's checking.
  const Entry& build_once(Entry& entry, const Kernel& k, CudaEmitOptions eo, const std::string& suffix);
  CudaDevice* dev_;
  Entry plain_;
  bool debug_;
  bool checked_;
  int groups_;
  bool matrices_;
  std::mutex mu_;
  Entry grouped_, fragments_;
};

class CudaDevice : public Device {
 public:
  explicit CudaDevice(int ordinal) : ordinal_(ordinal), name_("cuda:" + std::to_string(ordinal)) {
    std::string why;
    d_ = driver(&why);
    if (!d_) throw RuntimeError("cuda: " + why);
    check(d_->cuDeviceGet(&dev_, ordinal), "cuDeviceGet");
    check(d_->cuDevicePrimaryCtxRetain(&ctx_, dev_), "cuDevicePrimaryCtxRetain");
    current();
    auto attr = [&](int a) {
      int v = 0;
      check(d_->cuDeviceGetAttribute(&v, a, dev_), "cuDeviceGetAttribute");
      return v;
    };
    cc_major_ = attr(kAttrComputeCapabilityMajor);
    cc_minor_ = attr(kAttrComputeCapabilityMinor);
    max_block_[0] = attr(kAttrMaxBlockDimX);
    max_block_[1] = attr(kAttrMaxBlockDimY);
    max_block_[2] = attr(kAttrMaxBlockDimZ);
    max_grid_[0] = static_cast<unsigned>(attr(kAttrMaxGridDimX));
    max_grid_[1] = static_cast<unsigned>(attr(kAttrMaxGridDimY));
    max_grid_[2] = static_cast<unsigned>(attr(kAttrMaxGridDimZ));
    char name[256] = {};
    check(d_->cuDeviceGetName(name, sizeof name - 1, dev_), "cuDeviceGetName");
    size_t total = 0;
    check(d_->cuDeviceTotalMem(&total, dev_), "cuDeviceTotalMem");
    int cc = cc_major_ * 10 + cc_minor_;
    caps_.gpu_family = "cuda-sm" + std::to_string(cc);
    caps_.gpu_family_raw = 10000 + cc;  // documented in docs/runtime.md
    // Async copies (done when issued) and simdgroup matrices (exact float
    // tiles per warp) are implemented by the emitter.
    caps_.supports_async_copy = true;
    caps_.supports_simdgroup_matrix = true;
    caps_.is_m3_or_newer = caps_.supports_async_copy && caps_.supports_simdgroup_matrix;
    caps_.simdgroup_size = attr(kAttrWarpSize);
    caps_.max_threads_per_threadgroup = static_cast<uint64_t>(attr(kAttrMaxThreadsPerBlock));
    // Above 48 KiB a kernel must opt in (cuFuncSetAttribute) before launch.
    caps_.max_threadgroup_memory = static_cast<uint64_t>(attr(kAttrMaxSharedMemoryPerBlockOptin));
    caps_.device_name = name;
    caps_.backend = "cuda";
    caps_.max_buffer_bytes = total;
    // Grids of at least this many threads run several groups per block
    // (ENIGMA_CUDA_GROUPED_MIN_THREADS overrides it, e.g. for tests).
    if (const char* env = std::getenv("ENIGMA_CUDA_GROUPED_MIN_THREADS"); env && *env)
      grouped_min_threads_ = std::strtoull(env, nullptr, 10);
    // Threadgroups per block for large grids, instead of the per-kernel choice (1: off).
    if (const char* env = std::getenv("ENIGMA_CUDA_GROUPS_PER_BLOCK"); env && *env)
      groups_override_ = std::clamp(std::atoi(env), 1, 64);
    // 0: simdgroup matrices always take the plain entry (no tensor cores).
    if (const char* env = std::getenv("ENIGMA_CUDA_TENSOR_CORES"); env && std::string(env) == "0")
      tensor_cores_ = false;
    check(d_->cuEventCreate(&start_, 0), "cuEventCreate");
    check(d_->cuEventCreate(&end_, 0), "cuEventCreate");
  }
  // Never destroyed in practice (the registry keeps devices for the process).
  ~CudaDevice() override = default;

  const std::string& name() const override { return name_; }
  const DeviceCapabilities& capabilities() const override { return caps_; }

  void current() const { d_->cuCtxSetCurrent(ctx_); }
  const Driver& api() const { return *d_; }

  std::shared_ptr<Program> compile(const Kernel& k, const CompileOptions& o) override {
    const std::string source = emit_cuda(k, with_checks<CudaEmitOptions>(o));
    return programs_.get(cache_key(source), [&] { return load(k, o, source); });
  }

  // The program of a source not loaded yet: the plain entry (or, for
  // simdgroup matrices, the fragments entry) now, the others on first use.
  std::shared_ptr<Program> load(const Kernel& k, const CompileOptions& o, const std::string& source) {
    const bool matrices = cuda_uses_matrices(k), fragments_first = tensor_cores_ && !o.debug && matrices;
    Entry plain = fragments_first ? Entry{} : build(k, source, cuda_entry_name(k));
    int groups = o.debug ? 1 : groups_override_ > 0 ? groups_override_ : cuda_preferred_groups_per_block(k);
    if (cuda_preferred_groups_per_block(k) == 1) groups = 1;
    auto prog = std::make_shared<CudaProgram>(this, plain, o.debug, o.debug || o.bounds_check, groups, matrices);
    if (fragments_first) prog->fragments(k);
    return prog;
  }

  // NVRTC (or the disk cache) and module load for one emitted source.
  Entry build(const Kernel& k, const std::string& source, const std::string& entry) {
    const Nvrtc& nv = nvrtc();
    auto [options, cubin] = nvrtc_options(nv);
    const std::string file = cubin ? "kernel.cubin" : "kernel.ptx";
    std::string image = ProgramCache::artifact_bytes(
        cache_key(source), file, [&] { return nvrtc_compile(nv, k, source, options, cubin); }, "cuda");
    if (!cubin) image.push_back('\0');  // PTX is loaded as a C string
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    Entry e;
    CUresult r = d_->cuModuleLoadData(&e.module, image.data());
    if (r != CUDA_SUCCESS) fail_call("cuModuleLoadData (kernel '" + k.name + "', " + options.back() + ")", r);
    r = d_->cuModuleGetFunction(&e.fn, e.module, entry.c_str());
    if (r != CUDA_SUCCESS) {
      d_->cuModuleUnload(e.module);
      fail_call("cuModuleGetFunction '" + entry + "'", r);
    }
    d_->cuFuncGetAttribute(&e.max_threads, kFuncAttrMaxThreadsPerBlock, e.fn);
    // Threadgroup memory is dynamic shared memory; above 48 KiB it needs the opt-in.
    e.shared_bytes = k.threadgroup_memory_bytes();
    if (e.shared_bytes > 48 * 1024) {
      if (e.shared_bytes > caps_.max_threadgroup_memory)
        throw RuntimeError(name_ + ": kernel '" + k.name + "' needs " + std::to_string(e.shared_bytes) +
                           " bytes of threadgroup memory; this GPU has " +
                           std::to_string(caps_.max_threadgroup_memory));
      r = d_->cuFuncSetAttribute(e.fn, kFuncAttrMaxDynamicSharedSizeBytes, static_cast<int>(e.shared_bytes));
      if (r != CUDA_SUCCESS) fail_call("cuFuncSetAttribute (kernel '" + k.name + "')", r);
    }
    return e;
  }

  std::unique_ptr<DeviceBuffer> allocate(uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    CUdeviceptr p = 0;
    if (bytes) {
      CUresult r = d_->cuMemAlloc(&p, static_cast<size_t>(bytes));
      if (r != CUDA_SUCCESS) fail_call("cuMemAlloc of " + std::to_string(bytes) + " bytes", r);
      r = d_->cuMemsetD8(p, 0, static_cast<size_t>(bytes));
      if (r != CUDA_SUCCESS) {
        d_->cuMemFree(p);
        fail_call("cuMemsetD8", r);
      }
    }
    return std::make_unique<CudaBuffer>(this, p, bytes, true);
  }

  std::unique_ptr<DeviceBuffer> wrap(uint64_t device_ptr, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    int ordinal = -1;
    CUresult r = d_->cuPointerGetAttribute(&ordinal, kPointerAttrDeviceOrdinal, static_cast<CUdeviceptr>(device_ptr));
    if (r != CUDA_SUCCESS)
      throw RuntimeError(name_ + ": an input's device pointer 0x" + hex(device_ptr) +
                         " is not CUDA memory this process can use (" + error_text(r) + ")");
    if (ordinal != ordinal_)
      throw RuntimeError(name_ + ": an input lives on cuda:" + std::to_string(ordinal) +
                         "; move it to this device (or run the kernel on cuda:" + std::to_string(ordinal) + ")");
    return std::make_unique<CudaBuffer>(this, static_cast<CUdeviceptr>(device_ptr), bytes, false);
  }

  void copy(DeviceBuffer& dst, const DeviceBuffer& src, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    if (!bytes) return;
    CUresult r = d_->cuMemcpyDtoD(static_cast<CudaBuffer&>(dst).ptr(), static_cast<const CudaBuffer&>(src).ptr(),
                                  static_cast<size_t>(bytes));
    if (r != CUDA_SUCCESS) fail_call("cuMemcpyDtoD", r);
  }

  void upload(DeviceBuffer& dst, const void* src, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    if (!bytes) return;
    CUresult r = d_->cuMemcpyHtoD(static_cast<CudaBuffer&>(dst).ptr(), src, static_cast<size_t>(bytes));
    if (r != CUDA_SUCCESS) fail_call("cuMemcpyHtoD", r);
  }

  void download(const DeviceBuffer& src, void* dst, uint64_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    if (!bytes) return;
    // Waits for the launches before it (same stream): their failure shows here.
    CUresult r = d_->cuMemcpyDtoH(dst, static_cast<const CudaBuffer&>(src).ptr(), static_cast<size_t>(bytes));
    if (r != CUDA_SUCCESS) fail_async("cuMemcpyDtoH", r);
    collect_checks();  // the launches before it have finished
  }

  double launch(const Kernel& k, Program& p, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads) override {
    return run(k, static_cast<CudaProgram&>(p), args, grid, threads, true);
  }
  void enqueue(const Kernel& k, Program& p, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads) override {
    auto& prog = static_cast<CudaProgram&>(p);
    run(k, prog, args, grid, threads, prog.debug());  // debug launches report at once
  }

  void free_buffer(CUdeviceptr p) {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    d_->cuMemFree(p);  // a failure here (a sticky error) has already been reported
  }
  void unload(CUmodule m) {
    std::lock_guard<std::mutex> lock(mu_);
    current();
    d_->cuModuleUnload(m);
  }

 private:
  static std::string hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
  }

  void check(CUresult r, const char* what) {
    if (r != CUDA_SUCCESS) throw RuntimeError(name_ + ": " + what + " failed: " + error_text(r));
  }

  // After a sticky error every call fails the same way; say so plainly.
  void usable() const {
    if (broken_ != CUDA_SUCCESS)
      throw RuntimeError(name_ + ": the CUDA context is unusable after " + error_text(broken_) +
                         "; restart the process");
  }
  std::string unusable_note(CUresult r) {
    if (!is_sticky(r)) return "";
    broken_ = r;
    return "; the CUDA context is unusable after " + error_name(r) + "; restart the process";
  }

  [[noreturn]] void fail_call(const std::string& what, CUresult r) {
    std::string note = unusable_note(r);
    if (!last_kernel_.empty() && is_sticky(r)) fail_async(what, r);
    throw RuntimeError(name_ + ": " + what + " failed: " + error_text(r) + note);
  }

  // A failure that belongs to an earlier, asynchronous launch.
  [[noreturn]] void fail_async(const std::string& what, CUresult r) {
    std::string note = unusable_note(r);
    if (last_kernel_.empty()) throw RuntimeError(name_ + ": " + what + " failed: " + error_text(r) + note);
    throw RuntimeError(dispatch_error(name_, last_kernel_, last_grid_, last_threads_,
                                      error_name(r) + " (" + std::to_string(r) + ")",
                                      error_text(r) + " (reported by " + what + " after the dispatch)" + note));
  }

  double run(const Kernel& k, CudaProgram& prog, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads,
             bool wait) {
    const uint64_t g[3] = {grid.x, grid.y, grid.z}, t[3] = {threads.x, threads.y, threads.z};
    const uint64_t per_block = t[0] * t[1] * t[2];
    // Simdgroup matrices as fragments (the _tc entry) need every simdgroup
    // full: whole warps per threadgroup and no partial edge threadgroup.
    const bool full_simdgroups = per_block % 32 == 0 && g[0] % t[0] == 0 && g[1] % t[1] == 0 && g[2] % t[2] == 0;
    // Debug kernels report out-of-bounds loads lane by lane: the plain entry.
    const bool tc = tensor_cores_ && !prog.debug() && prog.matrices() && full_simdgroups;
    const Entry* entry = tc ? &prog.fragments(k) : &prog.plain(k);
    // Large grids run several threadgroups per block (CudaEmitOptions::groups_per_block).
    uint64_t groups = 1;
    if (prog.groups() > 1 && g[0] * g[1] * g[2] >= grouped_min_threads_) {
      const Entry& e = prog.grouped(k);
      if (per_block <= static_cast<uint64_t>(e.max_threads)) {
        entry = &e;
        groups = static_cast<uint64_t>(prog.groups());
      }
    }
    const Entry& fn = *entry;
    const bool coop = cuda_is_cooperative(k);
    unsigned blocks[3], block[3];
    uint32_t grid32[3];
    auto refuse = [&](const std::string& why) {
      throw RuntimeError(dispatch_error(name_, k.name, grid, threads, "LAUNCH_REFUSED", why));
    };
    const char* axis = "xyz";
    for (int i = 0; i < 3; ++i) {
      if (t[i] > static_cast<uint64_t>(max_block_[i]))
        refuse(std::string("threads.") + axis[i] + " = " + std::to_string(t[i]) + " exceeds this GPU's limit of " +
               std::to_string(max_block_[i]) + " threads in that dimension of a threadgroup");
      uint64_t b = (g[i] + t[i] - 1) / t[i];
      if (i == 0) b = (b + groups - 1) / groups;
      if (b > max_grid_[i])
        refuse(std::string("grid.") + axis[i] + " / threads." + axis[i] + " needs " + std::to_string(b) +
               " threadgroups, more than this GPU launches in that dimension (" + std::to_string(max_grid_[i]) +
               "); use larger threadgroups or move work to the x dimension");
      blocks[i] = static_cast<unsigned>(b);
      // Cooperative kernels: one 1-D block per threadgroup (cuda_is_cooperative).
      block[i] = coop ? (i == 0 ? static_cast<unsigned>(per_block) : 1u) : static_cast<unsigned>(t[i]);
      grid32[i] = static_cast<uint32_t>(g[i]);
    }
    if (fn.max_threads > 0 && per_block > static_cast<uint64_t>(fn.max_threads))
      refuse("threads " + threads.str() + " = " + std::to_string(per_block) +
             " per threadgroup; this kernel can run "
             "at most " +
             std::to_string(fn.max_threads) + " (its register use limits it)");

    // cuLaunchKernel takes a pointer to each parameter's value.
    const size_t n = args.size();
    std::vector<CUdeviceptr> ptrs(n, 0);
    std::vector<uint64_t> lens;
    std::vector<void*> params;
    params.reserve(n + 8 + (prog.checked() ? n + 1 : 0));
    for (size_t i = 0; i < n; ++i) {
      if (args[i].buffer) {
        ptrs[i] = static_cast<CudaBuffer*>(args[i].buffer)->ptr();
        params.push_back(&ptrs[i]);
      } else {
        params.push_back(const_cast<uint64_t*>(&args[i].scalar_bits));  // low bytes: little-endian value
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    current();
    usable();
    CUdeviceptr err = 0;
    if (prog.checked()) {
      lens.reserve(n);
      std::vector<uint64_t> bytes(n, 0);
      for (size_t i = 0; i < n; ++i)
        if (args[i].buffer) {
          bytes[i] = args[i].buffer->size();
          lens.push_back(bytes[i] / static_cast<uint64_t>(k.params[i].type.size_bytes()));
        }
      for (uint64_t& l : lens) params.push_back(&l);
      err = error_record(k, std::move(bytes), grid, threads);
      params.push_back(&err);
    }
    for (uint32_t& v : grid32) params.push_back(&v);
    uint32_t dims[3] = {static_cast<uint32_t>(t[0]), static_cast<uint32_t>(t[1]), static_cast<uint32_t>(t[2])};
    if (coop)
      for (uint32_t& v : dims) params.push_back(&v);

    last_kernel_ = k.name;
    last_grid_ = grid;
    last_threads_ = threads;
    if (wait) {
      CUresult r = d_->cuEventRecord(start_, nullptr);
      if (r != CUDA_SUCCESS) fail_async("cuEventRecord", r);
    }
    CUresult r = d_->cuLaunchKernel(fn.fn, blocks[0], blocks[1], blocks[2], block[0], block[1], block[2],
                                    static_cast<unsigned>(fn.shared_bytes), nullptr, params.data(), nullptr);
    if (r != CUDA_SUCCESS) {
      std::string note = unusable_note(r);
      throw RuntimeError(dispatch_error(name_, k.name, grid, threads, error_name(r) + " (" + std::to_string(r) + ")",
                                        error_text(r) + note));
    }
    if (!wait) return 0.0;
    float ms = 0.f;
    if ((r = d_->cuEventRecord(end_, nullptr)) != CUDA_SUCCESS || (r = d_->cuEventSynchronize(end_)) != CUDA_SUCCESS)
      fail_async("cuEventSynchronize", r);
    if ((r = d_->cuEventElapsedTime(&ms, start_, end_)) != CUDA_SUCCESS) fail_async("cuEventElapsedTime", r);
    collect_checks();
    return static_cast<double>(ms);
  }

  // Checked memory: each launch since the last wait gets its own record
  // {flag, memory id, index, access, x, y, z} (zeroed) in one device array;
  // waits (timed launches, downloads) read the records and raise for the
  // first launch that went out of bounds. Launches stay asynchronous.
  static constexpr size_t kRecordWords = 7, kRecords = 256;
  struct PendingCheck {
    Kernel kernel;  // name, parameters and threadgroup arrays only (for the message)
    std::vector<uint64_t> bytes;
    Dim3 grid, threads;
  };

  CUdeviceptr error_record(const Kernel& k, std::vector<uint64_t> bytes, Dim3 grid, Dim3 threads) {
    if (!err_) {
      CUresult r = d_->cuMemAlloc(&err_, kRecords * kRecordWords * sizeof(uint64_t));
      if (r != CUDA_SUCCESS) fail_call("cuMemAlloc", r);
      r = d_->cuMemsetD8(err_, 0, kRecords * kRecordWords * sizeof(uint64_t));
      if (r != CUDA_SUCCESS) fail_call("cuMemsetD8", r);
    }
    if (pending_.size() == kRecords) {  // all records in use: wait for them
      CUresult r = d_->cuCtxSynchronize();
      if (r != CUDA_SUCCESS) fail_async("cuCtxSynchronize", r);
      collect_checks();
    }
    PendingCheck pc;
    pc.kernel.name = k.name;
    pc.kernel.params = k.params;
    pc.kernel.tg_arrays = k.tg_arrays;
    pc.bytes = std::move(bytes);
    pc.grid = grid;
    pc.threads = threads;
    pending_.push_back(std::move(pc));
    return err_ + (pending_.size() - 1) * kRecordWords * sizeof(uint64_t);
  }

  // Called with the device idle up to the last launch (mu_ held).
  void collect_checks() {
    if (pending_.empty()) return;
    std::vector<uint64_t> e(pending_.size() * kRecordWords);
    CUresult r = d_->cuMemcpyDtoH(e.data(), err_, e.size() * sizeof(uint64_t));
    if (r != CUDA_SUCCESS) fail_async("cuMemcpyDtoH", r);
    std::vector<PendingCheck> done;
    done.swap(pending_);
    size_t first = done.size();
    for (size_t i = 0; i < done.size() && first == done.size(); ++i)
      if (e[i * kRecordWords]) first = i;
    if (first == done.size()) return;
    r = d_->cuMemsetD8(err_, 0, e.size() * sizeof(uint64_t));
    if (r != CUDA_SUCCESS) fail_call("cuMemsetD8", r);
    const PendingCheck& pc = done[first];
    throw RuntimeError(
        out_of_bounds_error(name_, pc.kernel, pc.grid, pc.threads, pc.bytes, &e[first * kRecordWords + 1]));
  }

  // The options for this card: its own architecture as a cubin when NVRTC
  // knows it, else PTX for the newest NVRTC knows (the driver compiles that
  // for the card). Returns (options, cubin?).
  std::pair<std::vector<std::string>, bool> nvrtc_options(const Nvrtc& nv) const {
    int cc = cc_major_ * 10 + cc_minor_;
    bool cubin = nv.archs.empty() || std::find(nv.archs.begin(), nv.archs.end(), cc) != nv.archs.end();
    int target = cubin ? cc : *std::max_element(nv.archs.begin(), nv.archs.end());
    std::vector<std::string> options;
    for (const std::string& o : cuda_nvrtc_options())
      if (o != "--minimal" || nv.major > 12 || (nv.major == 12 && nv.minor >= 4)) options.push_back(o);
    options.push_back(std::string(cubin ? "--gpu-architecture=sm_" : "--gpu-architecture=compute_") +
                      std::to_string(target));
    return {options, cubin};
  }

  // Content key of a compiled kernel: source, NVRTC version, options, target.
  std::string cache_key(const std::string& source) const {
    const Nvrtc& nv = nvrtc();
    return program_key("enigma-cuda-kernel", {"nvrtc " + std::to_string(nv.major) + "." + std::to_string(nv.minor)},
                       nvrtc_options(nv).first, {}, source);
  }

  std::string nvrtc_compile(const Nvrtc& nv, const Kernel& k, const std::string& source,
                            const std::vector<std::string>& options, bool cubin) {
    nvrtcProgram prog = nullptr;
    std::string file = cuda_entry_name(k) + ".cu";
    int rc = nv.nvrtcCreateProgram(&prog, source.c_str(), file.c_str(), 0, nullptr, nullptr);
    if (rc != 0) throw RuntimeError(std::string("cuda: nvrtcCreateProgram failed: ") + nv.nvrtcGetErrorString(rc));
    struct Destroy {
      const Nvrtc& nv;
      nvrtcProgram* p;
      ~Destroy() { nv.nvrtcDestroyProgram(p); }
    } destroy{nv, &prog};
    std::vector<const char*> opts;
    for (const std::string& o : options) opts.push_back(o.c_str());
    rc = nv.nvrtcCompileProgram(prog, static_cast<int>(opts.size()), opts.data());
    if (rc != 0) {
      size_t size = 0;
      nv.nvrtcGetProgramLogSize(prog, &size);
      std::string log(size, '\0');
      if (size) nv.nvrtcGetProgramLog(prog, log.data());
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
      std::string opt_text;
      for (const std::string& o : options) opt_text += " " + o;
      throw RuntimeError("cuda: NVRTC " + std::to_string(nv.major) + "." + std::to_string(nv.minor) +
                         " could not compile kernel '" + k.name + "' (" + nv.nvrtcGetErrorString(rc) +
                         "; a bug in Enigma's CUDA code generator: please report it with this message). "
                         "Options:" +
                         opt_text + "\n" + log + "\n--- source ---\n" + source);
    }
    size_t size = 0;
    std::string image;
    if (cubin) {
      nv.nvrtcGetCUBINSize(prog, &size);
      image.resize(size);
      rc = size ? nv.nvrtcGetCUBIN(prog, image.data()) : 1;
    } else {
      nv.nvrtcGetPTXSize(prog, &size);
      image.resize(size);
      rc = size ? nv.nvrtcGetPTX(prog, image.data()) : 1;
      while (!image.empty() && image.back() == '\0') image.pop_back();
    }
    if (rc != 0) throw RuntimeError("cuda: NVRTC produced no code for kernel '" + k.name + "'");
    return image;
  }

  int ordinal_;
  std::string name_;
  const Driver* d_ = nullptr;
  CUdevice dev_ = 0;
  CUcontext ctx_ = nullptr;
  int cc_major_ = 0, cc_minor_ = 0;
  int max_block_[3] = {};
  unsigned max_grid_[3] = {};
  DeviceCapabilities caps_;
  CUevent start_ = nullptr, end_ = nullptr;
  CUdeviceptr err_ = 0;
  std::vector<PendingCheck> pending_;                 // launches whose error records are not read yet
  uint64_t grouped_min_threads_ = uint64_t{1} << 22;  // ~4 waves of a large GPU after grouping
  int groups_override_ = 0;
  bool tensor_cores_ = true;  // the _tc entry for launches whose simdgroups are all full
  CUresult broken_ = CUDA_SUCCESS;
  std::string last_kernel_;
  Dim3 last_grid_, last_threads_;
  std::mutex mu_;
  ProgramCache programs_;
};

CudaBuffer::~CudaBuffer() {
  if (owned_ && ptr_) dev_->free_buffer(ptr_);
}

const Entry& CudaProgram::build_once(Entry& entry, const Kernel& k, CudaEmitOptions eo, const std::string& suffix) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!entry.fn) {
    eo.bounds_check = checked_;  // every entry takes the same parameters
    entry = dev_->build(k, emit_cuda(k, eo), cuda_entry_name(k) + suffix);
  }
  return entry;
}

const Entry& CudaProgram::grouped(const Kernel& k) {
  CudaEmitOptions eo;
  eo.groups_per_block = groups_;
  return build_once(grouped_, k, eo, "_g" + std::to_string(groups_));
}

const Entry& CudaProgram::plain(const Kernel& k) {
  CudaEmitOptions eo;
  eo.debug = debug_;
  return build_once(plain_, k, eo, "");
}

const Entry& CudaProgram::fragments(const Kernel& k) {
  CudaEmitOptions eo;
  eo.matrix_fragments = true;
  return build_once(fragments_, k, eo, "_tc");
}

CudaProgram::~CudaProgram() {
  if (plain_.module) dev_->unload(plain_.module);
  if (grouped_.module) dev_->unload(grouped_.module);
  if (fragments_.module) dev_->unload(fragments_.module);
}

}  // namespace

std::string cuda_unavailable_reason() {
  std::string why;
  if (!driver(&why)) return why;
  if (device_count() == 0) return "no CUDA devices";
  return "";
}

const Backend& cuda_backend() {
  static const Backend backend{
      .name = "cuda",
      .language = "",
      .source_extension = "cu",
      .auto_rank = 1,
      .numbered = true,
      .emit =
          [](const Kernel& k, const SourceOptions& o) {
            auto eo = with_checks<CudaEmitOptions>(o);
            eo.groups_per_block = o.debug ? 1 : o.groups_per_block;
            eo.matrix_fragments = !o.debug && o.matrix_fragments;
            return emit_cuda(k, eo);
          },
      .spellings = float_register_spellings(),
      .open = [](int ordinal) -> std::shared_ptr<Device> {
        int count = device_count();
        if (ordinal >= count)
          throw RuntimeError("device 'cuda:" + std::to_string(ordinal) + "' does not exist; this machine has " +
                             std::to_string(count) + " CUDA device(s) (cuda:0" +
                             (count > 1 ? " to cuda:" + std::to_string(count - 1) : std::string()) + ")");
        return std::make_shared<CudaDevice>(ordinal);
      },
      .available = [] { return driver() != nullptr && device_count() > 0; },
      .unavailable =
          [](const std::string& spec, const std::string&) {
            return "device '" + spec + "' is not available on this machine: " + cuda_unavailable_reason();
          },
  };
  return backend;
}

}  // namespace enigma
