// The CPU device: kernels are compiled to shared libraries by the system C++
// compiler (cached on disk by content) and run threadgroup-parallel on the
// process-wide thread pool.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

#include "enigma/backend.h"
#include "enigma/codegen/codegen.h"
#include "enigma/runtime/cxx_compiler.h"
#include "enigma/runtime/program_cache.h"
#include "enigma/runtime/runtime.h"
#include "enigma/runtime/shared_library.h"
#include "enigma/runtime/thread_pool.h"
#include "enigma/support/error.h"

namespace enigma {

namespace {

// Flags for generated kernels: C++20 semantics plus wrapping signed overflow
// (GPU integer arithmetic wraps) and no FMA contraction (results match the
// float64 references bit-for-bit where IEEE allows). -fopenmp-simd enables
// only `#pragma omp simd` (no OpenMP runtime): it lets GCC vectorise a thread
// loop across threads even when the body holds loops (outer-loop
// vectorisation), which plain auto-vectorisation does not attempt.
const std::vector<std::string>& kernel_flags() {
  static const std::vector<std::string> flags = {"-std=c++20",
                                                 "-O3",
                                                 "-march=native",
                                                 "-shared",
                                                 "-fPIC",
                                                 "-fwrapv",
                                                 "-ffp-contract=off",
                                                 "-fno-math-errno",
                                                 "-fvisibility=hidden",
                                                 "-fopenmp-simd",
                                                 "-w"};
  return flags;
}

std::string cpu_isa_level(int* level) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    *level = 3;
    return "x86_64-avx512";
  }
  if (__builtin_cpu_supports("avx2")) {
    *level = 2;
    return "x86_64-avx2";
  }
  *level = 1;
  return "x86_64-sse2";
#elif defined(__aarch64__)
  *level = 1;
  return "aarch64-neon";
#else
  *level = 0;
  return "generic";
#endif
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "CPU";
}

uint64_t physical_memory_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return uint64_t{1} << 34;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

// Scratch of cooperative kernels, one per worker thread, kept for the next
// launch (no allocation per threadgroup or per launch once warm). It lives in
// the runtime, not in the kernels' libraries, which may be unloaded first.
void* worker_scratch(uint64_t bytes) {
  struct Scratch {
    void* p = nullptr;
    uint64_t n = 0;
    ~Scratch() { std::free(p); }
  };
  static thread_local Scratch s;
  if (s.n < bytes) {
    std::free(s.p);
    size_t alloc = static_cast<size_t>((bytes + 63) / 64 * 64);
    s.p = std::aligned_alloc(64, alloc);
    s.n = s.p ? bytes : 0;
    if (s.p) std::memset(s.p, 0, alloc);
  }
  return s.p;
}

// Memory that can be allocated now without pushing the system into the OOM
// killer: MemAvailable plus free swap (Linux), else the physical memory.
uint64_t available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t kb = 0, total = 0;
  bool found = false;
  std::string unit;
  while (f >> key >> kb) {
    std::getline(f, unit);
    if (key == "MemAvailable:" || key == "SwapFree:") {
      total += kb * 1024;
      found = true;
    }
  }
  return found ? total : physical_memory_bytes();
}

// Buffers from this size up are mapped pages, zero-filled by the kernel on
// first touch: allocating one near the size of memory costs nothing up front.
constexpr uint64_t kMappedBufferBytes = uint64_t{1} << 20;

class CpuBuffer : public DeviceBuffer {
 public:
  explicit CpuBuffer(uint64_t bytes) : size_(bytes) {
    // 64-byte aligned so vector loads never straddle cache lines needlessly.
    uint64_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes || rounded > SIZE_MAX) fail();
    alloc_ = static_cast<size_t>(rounded == 0 ? 64 : rounded);
    if (bytes >= kMappedBufferBytes) {
      void* p = ::mmap(nullptr, alloc_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) fail();
      data_ = p;
      mapped_ = true;
    } else {
      data_ = std::aligned_alloc(64, alloc_);
      if (!data_) fail();
      std::memset(data_, 0, alloc_);
    }
  }
  ~CpuBuffer() override {
    if (mapped_)
      ::munmap(data_, alloc_);
    else
      std::free(data_);
  }
  uint64_t size() const override { return size_; }
  void* data() const { return data_; }

 private:
  [[noreturn]] void fail() const {
    throw RuntimeError("cpu: cannot allocate a buffer of " + std::to_string(size_) + " bytes");
  }
  uint64_t size_;
  size_t alloc_ = 0;
  void* data_ = nullptr;
  bool mapped_ = false;
};

class CpuProgram : public Program {
 public:
  CpuProgram(SharedLibrary lib, EnigmaCpuEntry fn) : lib_(std::move(lib)), entry_(fn) {}
  EnigmaCpuEntry entry() const { return entry_; }

 private:
  SharedLibrary lib_;
  EnigmaCpuEntry entry_;
};

class CpuDevice : public Device {
 public:
  CpuDevice() : name_("cpu") {
    int level = 0;
    std::string isa = cpu_isa_level(&level);
    unsigned threads = ThreadPool::instance().size();
    caps_.gpu_family = "cpu-" + isa;
    caps_.gpu_family_raw = 20000 + level;  // documented in docs/runtime.md
    // Both run at group level between thread loops (async copies complete
    // synchronously, with the same observable result).
    caps_.supports_async_copy = true;
    caps_.supports_simdgroup_matrix = true;
    caps_.is_m3_or_newer = caps_.supports_async_copy && caps_.supports_simdgroup_matrix;
    caps_.simdgroup_size = 32;
    caps_.max_threadgroup_memory = 32768;
    caps_.max_threads_per_threadgroup = 1024;
    caps_.device_name = cpu_model_name() + " (" + std::to_string(threads) + " threads)";
    caps_.backend = "cpu";
    caps_.max_buffer_bytes = physical_memory_bytes();
    machine_ = caps_.gpu_family + "|" + cpu_model_name();
  }

  const std::string& name() const override { return name_; }
  const DeviceCapabilities& capabilities() const override { return caps_; }

  std::shared_ptr<Program> compile(const Kernel& k, const CompileOptions& o) override {
    const CpuEmitOptions eo = with_checks<CpuEmitOptions>(o);
    const std::string source = emit_cpu(k, eo);
    const CxxCompiler& cc = find_cxx_compiler();
    const std::string key = program_key("enigma-cpu-kernel", {std::to_string(ENIGMA_CPU_ABI_VERSION), cc.identity()},
                                        kernel_flags(), {machine_}, source);
    return programs_.get(key, [&] {
      const std::string file = "kernel.so";
      std::filesystem::path path = ProgramCache::artifact(key, file, [&](const std::filesystem::path& dir) {
        compile_shared_library(cc, source, kernel_flags(), dir / file);
      });
      SharedLibrary lib = SharedLibrary::open(path);
      auto entry = reinterpret_cast<EnigmaCpuEntry>(lib.symbol(eo.entry.c_str()));
      return std::make_shared<CpuProgram>(std::move(lib), entry);
    });
  }

  std::unique_ptr<DeviceBuffer> allocate(uint64_t bytes) override { return std::make_unique<CpuBuffer>(bytes); }
  uint64_t available_memory() const override { return available_memory_bytes(); }

  void upload(DeviceBuffer& dst, const void* src, uint64_t bytes) override {
    std::memcpy(static_cast<CpuBuffer&>(dst).data(), src, static_cast<size_t>(bytes));
  }
  void download(const DeviceBuffer& src, void* dst, uint64_t bytes) override {
    std::memcpy(dst, static_cast<const CpuBuffer&>(src).data(), static_cast<size_t>(bytes));
  }

  double launch(const Kernel& k, Program& p, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads) override {
    auto& prog = static_cast<CpuProgram&>(p);
    std::vector<void*> ptrs(args.size());
    std::vector<uint64_t> sizes(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      if (args[i].buffer) {
        ptrs[i] = static_cast<CpuBuffer*>(args[i].buffer)->data();
        sizes[i] = args[i].buffer->size();
      } else {
        ptrs[i] = const_cast<uint64_t*>(&args[i].scalar_bits);
        sizes[i] = sizeof(uint64_t);
      }
    }
    int32_t error_flag = 0;
    uint64_t error_info[6] = {};
    EnigmaCpuLaunch L{};
    L.buffers = ptrs.data();
    L.buffer_sizes = sizes.data();
    const uint64_t g[3] = {grid.x, grid.y, grid.z}, t[3] = {threads.x, threads.y, threads.z};
    uint64_t groups = 1;
    for (int i = 0; i < 3; ++i) {
      L.grid[i] = static_cast<uint32_t>(g[i]);
      L.threads[i] = static_cast<uint32_t>(t[i]);
      L.groups[i] = static_cast<uint32_t>((g[i] + t[i] - 1) / t[i]);
      groups *= L.groups[i];
    }
    L.error_flag = &error_flag;
    L.error_info = error_info;
    L.scratch = &worker_scratch;
    const uint64_t per_group = t[0] * t[1] * t[2];
    // Enough threads per chunk to amortise scheduling (~16k thread bodies).
    const uint64_t min_chunk = std::max<uint64_t>(1, 16384 / per_group);
    EnigmaCpuEntry entry = prog.entry();
    auto start = std::chrono::steady_clock::now();
    ThreadPool::instance().parallel_for(groups, min_chunk, [&](uint64_t b, uint64_t e) {
      // A chunk runs in pieces that start at one threadgroup and grow toward
      // about a millisecond each (at most 64-fold per step), so Ctrl-C stops
      // a launch about one threadgroup's time after it arrives, while a
      // chunk of fast groups costs only a few calls.
      constexpr auto kPieceTime = std::chrono::milliseconds(1);
      uint64_t piece = 1;
      while (b < e) {
        const uint64_t end = e - b > piece ? b + piece : e;
        const auto piece_start = std::chrono::steady_clock::now();
        entry(&L, b, end);
        b = end;
        if (b == e || ThreadPool::stop_requested()) return;
        const auto took = std::chrono::steady_clock::now() - piece_start;
        if (took < kPieceTime) piece *= took * 64 <= kPieceTime ? 64 : static_cast<uint64_t>(kPieceTime / took);
      }
    });
    auto end = std::chrono::steady_clock::now();
    if (error_flag == 1) { throw RuntimeError(out_of_bounds_error(name_, k, grid, threads, sizes, error_info)); }
    if (error_flag != 0) {
      // Raised by cooperative kernels: {source location, threadgroup, thread}.
      std::string where = error_info[0] < k.locations.size() ? k.locations[error_info[0]].str() : "";
      const uint64_t tg = error_info[1];
      const uint64_t ng0 = L.groups[0], ng1 = L.groups[1];
      // Built with append: GCC 12 warns falsely (-Wrestrict) on "(" + std::string.
      std::string group(1, '(');
      group.append(std::to_string(tg % ng0)).append(", ").append(std::to_string((tg / ng0) % ng1)).append(", ");
      group.append(std::to_string(tg / (ng0 * ng1))).append(1, ')');
      std::string at = where;
      if (!at.empty()) at.append(": ");
      if (error_flag == 3)
        throw RuntimeError(
            dispatch_error(name_, k.name, grid, threads, "OUT_OF_MEMORY",
                           "cannot allocate " + std::to_string(error_info[2]) +
                               " bytes of per-worker scratch (threadgroup memory and per-thread state)"));
      if (error_flag == 4)
        throw RuntimeError(dispatch_error(
            name_, k.name, grid, threads, "DIVERGENT_BARRIER",
            at + "a barrier was reached by only some threads of threadgroup " + group +
                " (it sits under an if_ whose condition differs between the threads); every thread of a threadgroup "
                "must reach the same barriers"));
      throw RuntimeError(dispatch_error(
          name_, k.name, grid, threads, "DIVERGENT_CONTROL_FLOW",
          at +
              "the bounds or condition of a loop that contains barriers or simdgroup operations differ between the "
              "threads of threadgroup " +
              group + " (thread " + std::to_string(error_info[2]) +
              " disagrees with the first); such loops must be uniform across the threadgroup"));
    }
    return std::chrono::duration<double, std::milli>(end - start).count();
  }

 private:
  std::string name_;
  DeviceCapabilities caps_;
  std::string machine_;
  ProgramCache programs_;
};

}  // namespace

const Backend& cpu_backend() {
  static const Backend backend{
      .name = "cpu",
      .language = "",
      .source_extension = "cpp",
      .auto_rank = 2,
      .numbered = false,
      .emit = [](const Kernel& k, const SourceOptions& o) { return emit_cpu(k, with_checks<CpuEmitOptions>(o)); },
      .spellings = float_register_spellings(),
      .open = [](int ordinal) -> std::shared_ptr<Device> {
        if (ordinal != 0) throw RuntimeError("device 'cpu:" + std::to_string(ordinal) + "' does not exist; use 'cpu'");
        return std::make_shared<CpuDevice>();
      },
      .available = [] { return true; },
      .unavailable = nullptr,
  };
  return backend;
}

}  // namespace enigma
