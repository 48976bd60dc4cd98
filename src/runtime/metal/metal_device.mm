// The Metal device. Kernels are emitted as MSL and compiled in-process with
// newLibraryWithSource (no Xcode command-line tools), one compute pipeline
// per distinct source. Buffers use shared storage, so upload/download are
// plain copies; launches wait for the command buffer and are timed with its
// GPU timestamps.
//
// Built on Apple platforms, and on Linux with ENIGMA_METAL_FAKE against the
// declarations and fake Metal in tests/metal_host (docs/metal.md). Both
// builds use manual reference counting (no ARC: Linux's Objective-C runtime
// has none), so the ownership tested on Linux is the ownership that ships:
// every +1 object (new..., alloc) lives in an Owned<> that releases it once.
#if defined(__APPLE__) || defined(ENIGMA_METAL_FAKE)

#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#if __has_feature(objc_arc)
#error "metal_device.mm releases its objects itself: build it without -fobjc-arc"
#endif

#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "enigma/codegen/codegen.h"
#include "enigma/runtime/program_cache.h"
#include "enigma/runtime/runtime.h"
#include "enigma/support/error.h"
#ifdef ENIGMA_METAL_FAKE
#include "fake_metal.h"
#endif

namespace enigma {

namespace {

// Metal 3 (MSL 3.0) is the oldest the emitter targets. Marking the device
// code lets it use those APIs freely whatever the deployment target, while
// the registration below checks the OS at run time.
#define ENIGMA_METAL_API API_AVAILABLE(macos(13.0), ios(16.0))

// Owns one +1 reference (from new..., alloc or a Create function) and
// releases it exactly once.
template <class T>
class Owned {
 public:
  Owned() = default;
  explicit Owned(T object) : object_(object) {}
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  Owned(Owned&& other) noexcept : object_(other.object_) { other.object_ = nil; }
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      reset();
      object_ = other.object_;
      other.object_ = nil;
    }
    return *this;
  }
  ~Owned() { reset(); }
  void reset() {
    if (object_ != nil) [object_ release];
    object_ = nil;
  }
  T get() const { return object_; }

 private:
  T object_ = nil;
};

// UTF8String is NULL when the string cannot be converted.
std::string str(NSString* s) {
  const char* utf8 = s ? [s UTF8String] : nullptr;
  return utf8 ? std::string(utf8) : std::string();
}

std::string describe(NSError* e) {
  if (e == nil) return "no error description";
  return str(e.localizedDescription);
}

// The highest MTLGPUFamilyAppleN the device supports (0: none). Names newer
// than macOS 13 exist only from the OS release that introduced them.
ENIGMA_METAL_API int apple_family(id<MTLDevice> device) {
  if (@available(macOS 26.0, iOS 26.0, *)) {
    // MTLGPUFamilyApple10 by value: older SDKs do not name it.
    if ([device supportsFamily:static_cast<MTLGPUFamily>(1010)]) return 10;
  }
  if (@available(macOS 14.0, iOS 17.0, *)) {
    if ([device supportsFamily:MTLGPUFamilyApple9]) return 9;
  }
  const MTLGPUFamily older[] = {MTLGPUFamilyApple8, MTLGPUFamilyApple7, MTLGPUFamilyApple6, MTLGPUFamilyApple5,
                                MTLGPUFamilyApple4, MTLGPUFamilyApple3, MTLGPUFamilyApple2, MTLGPUFamilyApple1};
  for (int i = 0; i < 8; ++i)
    if ([device supportsFamily:older[i]]) return 8 - i;
  return 0;
}

// Every backend computes IEEE results (NaN compares, no reassociation), so
// Metal's default fast math is turned off.
ENIGMA_METAL_API void use_ieee_math(MTLCompileOptions* options) {
#if defined(__MAC_OS_X_VERSION_MAX_ALLOWED) && __MAC_OS_X_VERSION_MAX_ALLOWED >= 150000
  if (@available(macOS 15.0, iOS 18.0, *)) {
    // Both: mathMode alone leaves the precise math functions off.
    options.mathMode = MTLMathModeSafe;
    options.mathFloatingPointFunctions = MTLMathFloatingPointFunctionsPrecise;
    return;
  }
#endif
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  options.fastMathEnabled = NO;
#pragma clang diagnostic pop
}

class ENIGMA_METAL_API MetalBuffer : public DeviceBuffer {
 public:
  MetalBuffer(Owned<id<MTLBuffer>> buffer, uint64_t size) : buffer_(std::move(buffer)), size_(size) {}
  uint64_t size() const override { return size_; }
  id<MTLBuffer> buffer() const { return buffer_.get(); }
  void* contents() const { return [buffer_.get() contents]; }

 private:
  Owned<id<MTLBuffer>> buffer_;
  uint64_t size_;  // as requested; the allocation is never empty
};

class ENIGMA_METAL_API MetalProgram : public Program {
 public:
  MetalProgram(Owned<id<MTLComputePipelineState>> pipeline, bool checked)
      : pipeline_(std::move(pipeline)), checked_(checked) {}
  id<MTLComputePipelineState> pipeline() const { return pipeline_.get(); }
  // Checked memory: binds en_lens and en_err after the parameters (emit_msl).
  bool checked() const { return checked_; }

 private:
  Owned<id<MTLComputePipelineState>> pipeline_;
  bool checked_;
};

class ENIGMA_METAL_API MetalDevice : public Device {
 public:
  // Every entry point drains its own autorelease pool: the caller's thread
  // (Python's) has none, and objects autoreleased there would never be freed.
  // Nothing throws inside a pool (an exception would skip draining it).
  explicit MetalDevice(id<MTLDevice> device) : device_(device), name_("metal") {
    @autoreleasepool {
      queue_ = Owned<id<MTLCommandQueue>>([device_ newCommandQueue]);
      read_capabilities();
    }
    if (queue_.get() == nil) throw RuntimeError("enigma GPU error: failed to create Metal command queue");
  }

  const std::string& name() const override { return name_; }
  const DeviceCapabilities& capabilities() const override { return caps_; }

  std::shared_ptr<Program> compile(const Kernel& k, const CompileOptions& o) override {
    const std::string source = emit_msl(k, with_checks<MslEmitOptions>(o));
#ifdef ENIGMA_METAL_FAKE
    fake_metal::remember_kernel(source, k);  // the fake runs this kernel's IR on the CPU backend
#endif
    return programs_.get(source, [&] { return build_pipeline(k, o, source); });
  }

  // The compute pipeline of a source not compiled yet.
  std::shared_ptr<Program> build_pipeline(const Kernel& k, const CompileOptions& o, const std::string& source) {
    std::string error;
    Owned<id<MTLComputePipelineState>> pipeline;
    @autoreleasepool {
      Owned<MTLCompileOptions*> owned_options([MTLCompileOptions new]);
      MTLCompileOptions* options = owned_options.get();
      use_ieee_math(options);
      // The version the emitter wrote in the file's header, so nothing newer slips in.
      if (msl_language_version(k).minor >= 1) {
        if (@available(macOS 14.0, iOS 17.0, *)) {
          options.languageVersion = MTLLanguageVersion3_1;
        } else {
          error = "it uses bfloat, which needs Metal Shading Language 3.1 (macOS 14 or newer)";
        }
      } else {
        options.languageVersion = MTLLanguageVersion3_0;
      }
      NSError* err = nil;
      Owned<id<MTLLibrary>> library;
      if (error.empty()) {
        library = Owned<id<MTLLibrary>>([device_ newLibraryWithSource:[NSString stringWithUTF8String:source.c_str()]
                                                              options:options
                                                                error:&err]);
        if (library.get() == nil) error = "the Metal compiler rejected the generated MSL:\n" + describe(err);
      }
      Owned<id<MTLFunction>> function;
      if (library.get() != nil) {
        function = Owned<id<MTLFunction>>(
            [library.get() newFunctionWithName:[NSString stringWithUTF8String:msl_entry_name(k).c_str()]]);
        if (function.get() == nil) error = "the compiled library has no function '" + msl_entry_name(k) + "'";
      }
      if (function.get() != nil) {
        pipeline = Owned<id<MTLComputePipelineState>>([device_ newComputePipelineStateWithFunction:function.get()
                                                                                             error:&err]);
        if (pipeline.get() == nil) error = "failed to create compute pipeline: " + describe(err);
      }
    }
    if (pipeline.get() == nil) throw RuntimeError("enigma GPU error: metal: kernel '" + k.name + "': " + error);
    return std::make_shared<MetalProgram>(std::move(pipeline), o.bounds_check || o.debug);
  }

  std::unique_ptr<DeviceBuffer> allocate(uint64_t bytes) override {
    // Metal cannot make an empty buffer; a zero-size input still gets one.
    const NSUInteger length = bytes ? static_cast<NSUInteger>(bytes) : 16;
    Owned<id<MTLBuffer>> b;
    @autoreleasepool {
      b = Owned<id<MTLBuffer>>([device_ newBufferWithLength:length options:MTLResourceStorageModeShared]);
    }
    if (b.get() == nil)
      throw RuntimeError("enigma GPU error: metal: failed to allocate a buffer of " + std::to_string(bytes) + " bytes");
    std::memset([b.get() contents], 0, length);  // new Metal buffers are not promised to be zeroed
    return std::make_unique<MetalBuffer>(std::move(b), bytes);
  }

  void upload(DeviceBuffer& dst, const void* src, uint64_t bytes) override {
    if (bytes) std::memcpy(static_cast<MetalBuffer&>(dst).contents(), src, static_cast<size_t>(bytes));
  }

  void download(const DeviceBuffer& src, void* dst, uint64_t bytes) override {
    if (bytes) std::memcpy(dst, static_cast<const MetalBuffer&>(src).contents(), static_cast<size_t>(bytes));
  }

  double launch(const Kernel& k, Program& p, const std::vector<LaunchArg>& args, Dim3 grid, Dim3 threads) override {
    id<MTLComputePipelineState> pipeline = static_cast<MetalProgram&>(p).pipeline();
    // Metal drops a dispatch whose threadgroup exceeds the pipeline's limit,
    // which is often below the device's for kernels with many registers.
    const uint64_t per_group = threads.x * threads.y * threads.z;
    const uint64_t limit = pipeline.maxTotalThreadsPerThreadgroup;
    if (per_group > limit)
      throw RuntimeError(dispatch_error(name_, k.name, grid, threads, "LAUNCH_REFUSED",
                                        "threads " + threads.str() + " = " + std::to_string(per_group) +
                                            " per threadgroup; this kernel's compute pipeline runs at most " +
                                            std::to_string(limit) + " on " + caps_.device_name));
    std::string code, description;
    double ms = 0.0;
    const bool checked = static_cast<MetalProgram&>(p).checked();
    std::vector<uint64_t> lens(args.size() + 1, 0), sizes(args.size(), 0);
    uint32_t record[8] = {};
    @autoreleasepool {
      id<MTLCommandBuffer> cb = [queue_.get() commandBuffer];  // +0: the pool releases it
      id<MTLComputeCommandEncoder> encoder = cb ? [cb computeCommandEncoder] : nil;
      if (encoder == nil) {
        code = "-1";
        description = "failed to create command buffer or compute encoder";
      } else {
        [encoder setComputePipelineState:pipeline];
        for (size_t i = 0; i < args.size(); ++i) {
          if (args[i].buffer) {
            [encoder setBuffer:static_cast<MetalBuffer*>(args[i].buffer)->buffer() offset:0 atIndex:i];
          } else {
            // The low bytes of the little-endian value: the parameter's own size.
            [encoder setBytes:&args[i].scalar_bits
                       length:static_cast<NSUInteger>(k.params[i].type.size_bytes())
                      atIndex:i];
          }
        }
        Owned<id<MTLBuffer>> err_buffer;
        if (checked) {
          for (size_t i = 0; i < args.size(); ++i)
            if (args[i].buffer) {
              sizes[i] = args[i].buffer->size();
              lens[i] = sizes[i] / static_cast<uint64_t>(k.params[i].type.size_bytes());
            }
          [encoder setBytes:lens.data() length:lens.size() * sizeof(uint64_t) atIndex:args.size()];
          err_buffer = Owned<id<MTLBuffer>>([device_ newBufferWithLength:sizeof record
                                                                 options:MTLResourceStorageModeShared]);
          if (err_buffer.get() != nil) std::memset([err_buffer.get() contents], 0, sizeof record);
          [encoder setBuffer:err_buffer.get() offset:0 atIndex:args.size() + 1];
        }
        [encoder dispatchThreads:MTLSizeMake(grid.x, grid.y, grid.z)
            threadsPerThreadgroup:MTLSizeMake(threads.x, threads.y, threads.z)];
        [encoder endEncoding];
        [cb commit];
        [cb waitUntilCompleted];
        NSError* err = cb.error;
        if (cb.status == MTLCommandBufferStatusError || err != nil) {
          code = err ? str(err.domain) + " code " + std::to_string(static_cast<long>(err.code)) : "-2";
          description = err ? describe(err) : "GPU execution error (check Metal validation layer)";
        } else {
          ms = (cb.GPUEndTime - cb.GPUStartTime) * 1000.0;
          if (err_buffer.get() != nil) std::memcpy(record, [err_buffer.get() contents], sizeof record);
        }
      }
    }
    if (!code.empty()) throw RuntimeError(dispatch_error(name_, k.name, grid, threads, code, description));
    if (record[0]) {  // {1, memory id, index low, index high, access, x, y, z}
      const uint64_t info[6] = {static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(record[1]))),
                                record[2] | (static_cast<uint64_t>(record[3]) << 32),
                                record[4],
                                record[5],
                                record[6],
                                record[7]};
      throw RuntimeError(out_of_bounds_error(name_, k, grid, threads, sizes, info));
    }
    return ms;
  }

 private:
  void read_capabilities() {
    int family = apple_family(device_);
    caps_.gpu_family = family ? "apple" + std::to_string(family) : "unknown(0)";
    caps_.gpu_family_raw = family ? 1000 + family : 0;
    caps_.supports_async_copy = family >= 9;
    caps_.supports_simdgroup_matrix = family >= 7;
    caps_.is_m3_or_newer = caps_.supports_async_copy && caps_.supports_simdgroup_matrix;
    caps_.simdgroup_size = 32;
    caps_.max_threadgroup_memory = device_.maxThreadgroupMemoryLength;
    caps_.max_threads_per_threadgroup = device_.maxThreadsPerThreadgroup.width;
    caps_.device_name = str(device_.name);
    caps_.backend = "metal";
    caps_.max_buffer_bytes = device_.maxBufferLength;
  }

  id<MTLDevice> device_;
  Owned<id<MTLCommandQueue>> queue_;
  std::string name_;
  DeviceCapabilities caps_;
  ProgramCache programs_;  // one pipeline per distinct MSL source
};

// +1 from MTLCreateSystemDefaultDevice, kept for the life of the process.
id<MTLDevice> system_device() {
  static id<MTLDevice> device = [] {
    id<MTLDevice> d = nil;
    @autoreleasepool {
      d = MTLCreateSystemDefaultDevice();
    }
    return d;
  }();
  return device;
}

}  // namespace

// The device side of metal_backend() (metal_backend.cpp).
std::shared_ptr<Device> open_metal_device(int ordinal) {
  if (ordinal != 0) throw RuntimeError("device 'metal:" + std::to_string(ordinal) + "' does not exist; use 'metal'");
  if (@available(macOS 13.0, iOS 16.0, *)) {
    id<MTLDevice> device = system_device();
    if (device == nil) throw RuntimeError("enigma GPU error: no Metal device found (Apple Silicon required)");
    return std::make_shared<MetalDevice>(device);
  }
  throw RuntimeError("enigma GPU error: the Metal backend needs macOS 13 (Metal 3) or newer");
}

bool metal_device_available() {
  if (@available(macOS 13.0, iOS 16.0, *)) return system_device() != nil;
  return false;
}

}  // namespace enigma

#endif  // __APPLE__ || ENIGMA_METAL_FAKE
