// A fake Metal framework for Linux tests (declarations: Metal/Metal.h,
// control: fake_metal.h). Built without ARC, like the device it serves:
// ownership below is written out (alloc/new = +1, the getters return +0).
//
// Every fake object counts itself. A released object is kept as a husk
// (dealloc does not free it) so that a later message to it, or a release
// past zero, is recorded as misuse instead of corrupting memory; tests check
// that nothing is alive and nothing was misused after each test.
#import <Metal/Metal.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "enigma/codegen/codegen.h"
#include "enigma/runtime/runtime.h"
#include "enigma/support/error.h"
#include "fake_metal.h"

NSErrorDomain const MTLLibraryErrorDomain = @"MTLLibraryErrorDomain";
NSErrorDomain const MTLCommandBufferErrorDomain = @"MTLCommandBufferErrorDomain";

namespace enigma::fake_metal {
namespace {

// Metal's API validation would stop at these; the fake records them.
void misused(const std::string& what);

struct State {
  std::mutex mu;
  std::map<std::string, Kernel> kernels;  // by MSL source
  Records records;
  std::vector<CommandBufferFault> command_buffer_faults;
  std::vector<std::string> library_faults, pipeline_faults;
  int command_buffer_creation_faults = 0, buffer_allocation_faults = 0;
  bool gpu_times_set = false;
  double gpu_start = 0, gpu_end = 0;
  uint64_t pipeline_thread_limit = 0;
  std::map<std::string, int64_t> alive;
  std::vector<std::string> misuse;
};

State& state() {
  static State* s = new State();  // never destroyed: objects may die during static teardown
  return *s;
}

void misused(const std::string& what) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().misuse.push_back(what);
}

template <class T>
bool take(std::vector<T>& faults, T* out) {
  if (faults.empty()) return false;
  *out = faults.front();
  faults.erase(faults.begin());
  return true;
}

bool take(int& count) {
  if (count == 0) return false;
  --count;
  return true;
}

std::string str(NSString* s) { return s ? std::string([s UTF8String]) : std::string(); }

NSString* ns(const std::string& s) { return [NSString stringWithUTF8String:s.c_str()]; }

// An autoreleased NSError with the description Metal puts in localizedDescription.
NSError* make_error(NSErrorDomain domain, NSInteger code, const std::string& description) {
  NSDictionary* info = [NSDictionary dictionaryWithObject:ns(description) forKey:NSLocalizedDescriptionKey];
  return [NSError errorWithDomain:domain code:code userInfo:info];
}

// A command buffer's record (state().mu held); a scratch one when the
// records were cleared while the command buffer was alive.
CommandBufferRecord& cb_record(size_t i) {
  static CommandBufferRecord scratch;
  auto& all = state().records.command_buffers;
  return i < all.size() ? all[i] : scratch;
}

double host_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace
}  // namespace enigma::fake_metal

using namespace enigma;
namespace fm = enigma::fake_metal;

// ---- counted base ---------------------------------------------------------------

@interface FakeMetalObject : NSObject {
 @public
  BOOL released_;
}
- (void)checkAlive:(const char*)selector;
- (void)releaseResources;
@end

@implementation FakeMetalObject
+ (id)allocWithZone:(NSZone*)zone {
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    ++fm::state().alive[class_getName(self)];
  }
  return [super allocWithZone:zone];
}

- (void)checkAlive:(const char*)selector {
  if (!released_) return;
  std::lock_guard<std::mutex> lock(fm::state().mu);
  fm::state().misuse.push_back(std::string(selector) + " sent to a released " + class_getName([self class]));
}

- (id)retain {
  [self checkAlive:"retain"];
  return released_ ? self : [super retain];
}

- (oneway void)release {
  if (released_) {
    [self checkAlive:"release"];
    return;
  }
  [super release];
}

- (void)releaseResources {
}

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wobjc-missing-super-calls"
// The object stays allocated as a husk: see the file's comment.
- (void)dealloc {
  [self releaseResources];
  released_ = YES;
  std::lock_guard<std::mutex> lock(fm::state().mu);
  --fm::state().alive[class_getName([self class])];
}
#pragma clang diagnostic pop
@end

// ---- the objects ------------------------------------------------------------------

// C++ instance variables are pointers: this runtime does not run C++
// constructors for instance variables.
@interface FakeMTLDevice : FakeMetalObject <MTLDevice> {
  fm::DeviceConfig* config_;
  NSString* name_;
}
- (instancetype)initWithConfig:(const fm::DeviceConfig&)config;
@end

@interface FakeMTLBuffer : FakeMetalObject <MTLBuffer> {
 @public
  id<MTLDevice> device_;
  void* contents_;
  NSUInteger length_;
  uint64_t id_;
  NSString* label_;
}
@end

@interface FakeMTLLibrary : FakeMetalObject <MTLLibrary> {
 @public
  id<MTLDevice> device_;
  Kernel* kernel_;
}
@end

@interface FakeMTLFunction : FakeMetalObject <MTLFunction> {
 @public
  FakeMTLLibrary* library_;
  NSString* name_;
}
@end

@interface FakeMTLComputePipelineState : FakeMetalObject <MTLComputePipelineState> {
 @public
  FakeMTLFunction* function_;
  NSUInteger max_threads_;
  std::shared_ptr<Program>* cpu_program_;
}
@end

@interface FakeMTLCommandQueue : FakeMetalObject <MTLCommandQueue> {
 @public
  id<MTLDevice> device_;
}
@end

@interface FakeMTLCommandBuffer : FakeMetalObject <MTLCommandBuffer> {
 @public
  FakeMTLCommandQueue* queue_;
  size_t record_;                                                         // index into the records
  std::vector<FakeMTLComputePipelineState*>* pipelines_;                  // per dispatch, retained
  std::vector<std::vector<std::pair<FakeMTLBuffer*, uint64_t>>>* bound_;  // per dispatch: buffer by index
  MTLCommandBufferStatus status_;                                         // what the GPU reports once waited for
  NSError* error_;
  CFTimeInterval start_, end_;
  BOOL encoding_, committed_, completed_;
}
- (void)addDispatch:(const fm::DispatchRecord&)d
           pipeline:(FakeMTLComputePipelineState*)p
            buffers:(const std::vector<std::pair<FakeMTLBuffer*, uint64_t>>&)buffers;
- (void)encoderEnded;
@end

@interface FakeMTLComputeCommandEncoder : FakeMetalObject <MTLComputeCommandEncoder> {
  FakeMTLCommandBuffer* command_buffer_;
  FakeMTLComputePipelineState* pipeline_;
  fm::DispatchRecord* pending_;  // the bindings so far
  std::vector<std::pair<FakeMTLBuffer*, uint64_t>>* buffers_;
  BOOL ended_;
}
- (instancetype)initWithCommandBuffer:(FakeMTLCommandBuffer*)cb;
@end

@implementation FakeMTLDevice
- (instancetype)initWithConfig:(const fm::DeviceConfig&)config {
  if ((self = [super init])) {
    config_ = new fm::DeviceConfig(config);
    name_ = [fm::ns(config.name) retain];
  }
  return self;
}
- (void)releaseResources {
  delete config_;
  config_ = nullptr;
  [name_ release];
}
- (NSString*)name {
  [self checkAlive:"name"];
  return name_;
}
- (MTLSize)maxThreadsPerThreadgroup {
  return MTLSizeMake(config_->max_threads_per_threadgroup, config_->max_threads_per_threadgroup,
                     config_->max_threads_per_threadgroup);
}
- (NSUInteger)maxThreadgroupMemoryLength {
  return config_->max_threadgroup_memory;
}
- (NSUInteger)maxBufferLength {
  return config_->max_buffer_length;
}
- (BOOL)supportsFamily:(MTLGPUFamily)family {
  [self checkAlive:"supportsFamily:"];
  // Apple families nest: AppleN supports every AppleM with M <= N.
  const NSInteger n = static_cast<NSInteger>(family) - 1000;
  return n >= 1 && n <= 20 && n <= config_->apple_family;
}
- (nullable id<MTLCommandQueue>)newCommandQueue {
  [self checkAlive:"newCommandQueue"];
  FakeMTLCommandQueue* q = [FakeMTLCommandQueue new];
  q->device_ = [self retain];
  return q;
}
- (nullable id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options {
  [self checkAlive:"newBufferWithLength:options:"];
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    if (fm::take(fm::state().buffer_allocation_faults)) return nil;
  }
  if (length == 0 || length > config_->max_buffer_length || options != MTLResourceStorageModeShared) return nil;
  FakeMTLBuffer* b = [FakeMTLBuffer new];
  b->device_ = [self retain];
  b->length_ = length;
  // Garbage, not zeros: Metal does not promise zero-filled buffers.
  b->contents_ = std::malloc(length);
  std::memset(b->contents_, 0xA5, length);
  std::lock_guard<std::mutex> lock(fm::state().mu);
  b->id_ = fm::state().records.buffer_lengths.size();
  fm::state().records.buffer_lengths.push_back(length);
  return b;
}
- (nullable id<MTLLibrary>)newLibraryWithSource:(NSString*)source
                                        options:(nullable MTLCompileOptions*)options
                                          error:(__autoreleasing NSError**)error {
  [self checkAlive:"newLibraryWithSource:options:error:"];
  fm::LibraryRecord rec;
  rec.source = fm::str(source);
  if (options) {
    rec.language_version = options.languageVersion;
    rec.math_mode = options.mathMode;
    rec.math_functions = options.mathFloatingPointFunctions;
  } else {
    rec.math_mode = MTLMathModeFast;
  }
  std::string log;
  Kernel kernel;
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    auto& st = fm::state();
    auto it = st.kernels.find(rec.source);
    if (fm::take(st.library_faults, &log)) {
    } else if (it == st.kernels.end()) {
      log = "fake Metal: no kernel IR was registered for this source (remember_kernel)";
    } else {
      kernel = it->second;
      const MslVersion v = msl_language_version(kernel);
      const uint64_t needed = (uint64_t(v.major) << 16) + uint64_t(v.minor);
      if (rec.language_version < needed)
        log = "program_source: error: the source needs Metal Shading Language " + std::to_string(v.major) + "." +
              std::to_string(v.minor) + " but languageVersion is " + std::to_string(rec.language_version >> 16) + "." +
              std::to_string(rec.language_version & 0xFFFF);
    }
    rec.compiled = log.empty();
    rec.error = log;
    st.records.libraries.push_back(rec);
  }
  if (!log.empty()) {
    if (error) *error = fm::make_error(MTLLibraryErrorDomain, MTLLibraryErrorCompileFailure, log);
    return nil;
  }
  FakeMTLLibrary* lib = [FakeMTLLibrary new];
  lib->device_ = [self retain];
  lib->kernel_ = new Kernel(std::move(kernel));
  return lib;
}
- (nullable id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)function
                                                                      error:(__autoreleasing NSError**)error {
  [self checkAlive:"newComputePipelineStateWithFunction:error:"];
  FakeMTLFunction* f = (FakeMTLFunction*)function;
  [f checkAlive:"(used to create a pipeline)"];
  std::string failure;
  uint64_t limit = 0;
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    fm::take(fm::state().pipeline_faults, &failure);
    limit = fm::state().pipeline_thread_limit;
    fm::state().records.pipelines.push_back(fm::str(f->name_));
  }
  const Kernel& k = *f->library_->kernel_;
  // Metal refuses a pipeline whose threadgroup memory exceeds the device's.
  if (failure.empty() && k.threadgroup_memory_bytes() > config_->max_threadgroup_memory)
    failure = "Compiler encountered an internal error: threadgroup memory of " +
              std::to_string(k.threadgroup_memory_bytes()) + " bytes exceeds the device's " +
              std::to_string(config_->max_threadgroup_memory);
  std::shared_ptr<Program> program;
  if (failure.empty()) {
    try {
      program = open_device("cpu")->compile(k, CompileOptions{});
    } catch (const std::exception& e) {
      failure = std::string("fake Metal: the CPU backend could not build the kernel: ") + e.what();
    }
  }
  if (!failure.empty()) {
    if (error) *error = fm::make_error(MTLLibraryErrorDomain, MTLLibraryErrorInternal, failure);
    return nil;
  }
  FakeMTLComputePipelineState* p = [FakeMTLComputePipelineState new];
  p->function_ = [f retain];
  p->max_threads_ = limit ? limit : config_->max_threads_per_threadgroup;
  p->cpu_program_ = new std::shared_ptr<Program>(std::move(program));
  return p;
}
@end

@implementation FakeMTLBuffer
- (void)releaseResources {
  std::free(contents_);
  contents_ = nullptr;
  [label_ release];
  [device_ release];
}
- (NSUInteger)length {
  return length_;
}
- (void*)contents {
  [self checkAlive:"contents"];
  return contents_;
}
- (nullable NSString*)label {
  return label_;
}
- (void)setLabel:(nullable NSString*)label {
  NSString* old = label_;
  label_ = [label copy];
  [old release];
}
@end

@implementation FakeMTLLibrary
- (void)releaseResources {
  delete kernel_;
  kernel_ = nullptr;
  [device_ release];
}
- (id<MTLDevice>)device {
  return device_;
}
- (NSArray<NSString*>*)functionNames {
  return [NSArray arrayWithObject:fm::ns(msl_entry_name(*kernel_))];
}
- (nullable id<MTLFunction>)newFunctionWithName:(NSString*)name {
  [self checkAlive:"newFunctionWithName:"];
  const bool found = fm::str(name) == msl_entry_name(*kernel_);
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    fm::state().records.functions.push_back(fm::FunctionRecord{fm::str(name), found});
  }
  if (!found) return nil;
  FakeMTLFunction* f = [FakeMTLFunction new];
  f->library_ = [self retain];
  f->name_ = [name copy];
  return f;
}
@end

@implementation FakeMTLFunction
- (void)releaseResources {
  [name_ release];
  [library_ release];
}
- (NSString*)name {
  return name_;
}
- (id<MTLDevice>)device {
  return library_->device_;
}
@end

@implementation FakeMTLComputePipelineState
- (void)releaseResources {
  delete cpu_program_;
  cpu_program_ = nullptr;
  [function_ release];
}
- (NSUInteger)maxTotalThreadsPerThreadgroup {
  [self checkAlive:"maxTotalThreadsPerThreadgroup"];
  return max_threads_;
}
- (NSUInteger)threadExecutionWidth {
  return 32;
}
- (NSUInteger)staticThreadgroupMemoryLength {
  return function_->library_->kernel_->threadgroup_memory_bytes();
}
- (id<MTLDevice>)device {
  return [function_ device];
}
@end

@implementation FakeMTLCommandQueue
- (void)releaseResources {
  [device_ release];
}
- (id<MTLDevice>)device {
  return device_;
}
- (nullable id<MTLCommandBuffer>)commandBuffer {
  [self checkAlive:"commandBuffer"];
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    if (fm::take(fm::state().command_buffer_creation_faults)) return nil;
  }
  FakeMTLCommandBuffer* cb = [FakeMTLCommandBuffer new];
  cb->queue_ = [self retain];
  cb->pipelines_ = new std::vector<FakeMTLComputePipelineState*>();
  cb->bound_ = new std::vector<std::vector<std::pair<FakeMTLBuffer*, uint64_t>>>();
  cb->status_ = MTLCommandBufferStatusNotEnqueued;
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    cb->record_ = fm::state().records.command_buffers.size();
    fm::state().records.command_buffers.emplace_back();
  }
  return [cb autorelease];  // +0: the caller does not own it
}
@end

@implementation FakeMTLCommandBuffer
- (void)releaseResources {
  for (auto* p : *pipelines_) [p release];
  for (auto& dispatch : *bound_)
    for (auto& [buffer, offset] : dispatch) [buffer release];
  delete pipelines_;
  delete bound_;
  pipelines_ = nullptr;
  bound_ = nullptr;
  [error_ release];
  [queue_ release];
}
- (id<MTLDevice>)device {
  return queue_->device_;
}
- (id<MTLCommandQueue>)commandQueue {
  return queue_;
}
- (nullable id<MTLComputeCommandEncoder>)computeCommandEncoder {
  [self checkAlive:"computeCommandEncoder"];
  if (encoding_) fm::misused("computeCommandEncoder while the previous encoder has not ended encoding");
  if (committed_) fm::misused("computeCommandEncoder on a committed command buffer");
  encoding_ = YES;
  return [[[FakeMTLComputeCommandEncoder alloc] initWithCommandBuffer:self] autorelease];
}
- (void)addDispatch:(const fm::DispatchRecord&)d
           pipeline:(FakeMTLComputePipelineState*)p
            buffers:(const std::vector<std::pair<FakeMTLBuffer*, uint64_t>>&)buffers {
  pipelines_->push_back([p retain]);
  bound_->push_back(buffers);
  for (auto& [buffer, offset] : bound_->back()) [buffer retain];
  std::lock_guard<std::mutex> lock(fm::state().mu);
  fm::cb_record(record_).dispatches.push_back(d);
}
- (void)encoderEnded {
  encoding_ = NO;
  std::lock_guard<std::mutex> lock(fm::state().mu);
  fm::cb_record(record_).encoder_ended = true;
}

// Runs the recorded dispatches on the CPU backend.
- (void)commit {
  [self checkAlive:"commit"];
  if (encoding_) fm::misused("commit while a command encoder has not ended encoding");
  if (committed_) fm::misused("commit of a command buffer committed before");
  committed_ = YES;
  fm::CommandBufferFault fault;
  bool faulted = false, times_set = false;
  double start = 0, end = 0;
  std::vector<fm::DispatchRecord> dispatches;
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    auto& st = fm::state();
    faulted = fm::take(st.command_buffer_faults, &fault);
    times_set = st.gpu_times_set;
    start = st.gpu_start;
    end = st.gpu_end;
    st.gpu_times_set = false;
    fm::cb_record(record_).committed = true;
    dispatches = fm::cb_record(record_).dispatches;
  }
  const double host_start = fm::host_seconds();
  std::string failure;
  if (!faulted) {
    try {
      std::shared_ptr<Device> cpu = open_device("cpu");
      for (size_t i = 0; i < dispatches.size(); ++i) {
        const Kernel& k = *(*pipelines_)[i]->function_->library_->kernel_;
        const fm::DispatchRecord& d = dispatches[i];
        const auto& bound = (*bound_)[i];
        std::vector<std::unique_ptr<DeviceBuffer>> buffers(k.params.size());
        std::vector<LaunchArg> args(k.params.size());
        for (size_t p = 0; p < k.params.size(); ++p) {
          if (k.params[p].kind == Param::Kind::Buffer) {
            FakeMTLBuffer* b = p < bound.size() ? bound[p].first : nil;
            if (b == nil) throw RuntimeError("fake Metal: no buffer bound at index " + std::to_string(p));
            const uint64_t offset = bound[p].second;
            buffers[p] = cpu->allocate(b->length_ - offset);
            cpu->upload(*buffers[p], static_cast<char*>(b->contents_) + offset, b->length_ - offset);
            args[p].buffer = buffers[p].get();
          } else {
            const fm::BytesBinding* bytes = nullptr;
            for (const auto& bb : d.bytes)
              if (bb.index == p) bytes = &bb;
            if (bytes == nullptr || bytes->bytes.size() != static_cast<size_t>(k.params[p].type.size_bytes()))
              throw RuntimeError("fake Metal: scalar '" + k.params[p].name + "' at index " + std::to_string(p) +
                                 " needs setBytes of " + std::to_string(k.params[p].type.size_bytes()) + " bytes");
            std::memcpy(&args[p].scalar_bits, bytes->bytes.data(), bytes->bytes.size());
          }
        }
        cpu->launch(k, **(*pipelines_)[i]->cpu_program_, args, Dim3{d.grid[0], d.grid[1], d.grid[2]},
                    Dim3{d.threads[0], d.threads[1], d.threads[2]});
        for (size_t p = 0; p < k.params.size(); ++p)
          if (buffers[p]) {
            FakeMTLBuffer* b = bound[p].first;
            cpu->download(*buffers[p], static_cast<char*>(b->contents_) + bound[p].second,
                          b->length_ - bound[p].second);
          }
      }
    } catch (const std::exception& e) { failure = e.what(); }
  }
  const double host_end = fm::host_seconds();
  start_ = times_set ? start : host_start;
  end_ = times_set ? end : host_end;
  if (faulted) {
    status_ = MTLCommandBufferStatusError;
    if (!fault.domain.empty()) error_ = [fm::make_error(fm::ns(fault.domain), fault.code, fault.description) retain];
  } else if (!failure.empty()) {
    status_ = MTLCommandBufferStatusError;
    error_ = [fm::make_error(MTLCommandBufferErrorDomain, MTLCommandBufferErrorInternal, failure) retain];
  } else {
    status_ = MTLCommandBufferStatusCompleted;
  }
  std::lock_guard<std::mutex> lock(fm::state().mu);
  auto& rec = fm::cb_record(record_);
  rec.status = status_;
  rec.gpu_start = start_;
  rec.gpu_end = end_;
  if (error_) {
    rec.error_domain = fm::str(error_.domain);
    rec.error_code = error_.code;
    rec.error_description = fm::str(error_.localizedDescription);
  }
}
// The work ran in commit, but as on a GPU its outcome is visible only once
// the command buffer completed: until waitUntilCompleted the status is
// Committed, with no error and no timestamps.
- (void)waitUntilCompleted {
  [self checkAlive:"waitUntilCompleted"];
  if (!committed_) fm::misused("waitUntilCompleted on a command buffer never committed (it would wait forever)");
  completed_ = committed_;
  std::lock_guard<std::mutex> lock(fm::state().mu);
  fm::cb_record(record_).waited = true;
}
- (MTLCommandBufferStatus)status {
  [self checkAlive:"status"];
  if (completed_) return status_;
  return committed_ ? MTLCommandBufferStatusCommitted : MTLCommandBufferStatusNotEnqueued;
}
- (nullable NSError*)error {
  [self checkAlive:"error"];
  return completed_ ? error_ : nil;
}
- (CFTimeInterval)GPUStartTime {
  return completed_ ? start_ : 0;
}
- (CFTimeInterval)GPUEndTime {
  return completed_ ? end_ : 0;
}
@end

@implementation FakeMTLComputeCommandEncoder
- (instancetype)initWithCommandBuffer:(FakeMTLCommandBuffer*)cb {
  if ((self = [super init])) {
    command_buffer_ = [cb retain];
    buffers_ = new std::vector<std::pair<FakeMTLBuffer*, uint64_t>>();
    pending_ = new fm::DispatchRecord();
  }
  return self;
}
- (void)releaseResources {
  if (!ended_) {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    fm::state().misuse.push_back("a compute command encoder was released without endEncoding");
  }
  [pipeline_ release];
  delete buffers_;
  buffers_ = nullptr;
  delete pending_;
  pending_ = nullptr;
  [command_buffer_ release];
}
- (id<MTLDevice>)device {
  return [command_buffer_ device];
}
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state {
  [self checkAlive:"setComputePipelineState:"];
  FakeMTLComputePipelineState* old = pipeline_;
  pipeline_ = [(FakeMTLComputePipelineState*)state retain];
  [old release];
}
- (void)setBytes:(const void*)bytes length:(NSUInteger)length atIndex:(NSUInteger)index {
  [self checkAlive:"setBytes:length:atIndex:"];
  if (ended_) fm::misused("setBytes:length:atIndex: after endEncoding");
  if (length > 4096)
    fm::misused("setBytes:length:atIndex: of " + std::to_string(length) + " bytes (Metal: up to 4 KB)");
  fm::BytesBinding b;
  b.index = index;
  b.bytes.assign(static_cast<const uint8_t*>(bytes), static_cast<const uint8_t*>(bytes) + length);
  pending_->bytes.push_back(b);
}
- (void)setBuffer:(nullable id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index {
  [self checkAlive:"setBuffer:offset:atIndex:"];
  if (ended_) fm::misused("setBuffer:offset:atIndex: after endEncoding");
  FakeMTLBuffer* b = (FakeMTLBuffer*)buffer;
  [b checkAlive:"(bound with setBuffer:offset:atIndex:)"];
  if (buffers_->size() <= index) buffers_->resize(index + 1, {nil, 0});
  (*buffers_)[index] = {b, offset};
  pending_->buffers.push_back(fm::BufferBinding{index, offset, b ? b->length_ : 0, b ? b->id_ : ~uint64_t(0)});
}
- (void)setThreadgroupMemoryLength:(NSUInteger)length atIndex:(NSUInteger)index {
  [self checkAlive:"setThreadgroupMemoryLength:atIndex:"];
  pending_->threadgroup_memory.emplace_back(index, length);
}
- (void)dispatchThreadgroups:(MTLSize)groups threadsPerThreadgroup:(MTLSize)threads {
  std::lock_guard<std::mutex> lock(fm::state().mu);
  fm::state().misuse.push_back("dispatchThreadgroups:threadsPerThreadgroup: is not supported by the fake");
}
- (void)dispatchThreads:(MTLSize)grid threadsPerThreadgroup:(MTLSize)threads {
  [self checkAlive:"dispatchThreads:threadsPerThreadgroup:"];
  if (ended_) fm::misused("dispatchThreads:threadsPerThreadgroup: after endEncoding");
  // Metal would skip (or, with validation, reject) a dispatch above the pipeline's limit.
  if (pipeline_ != nil && threads.width * threads.height * threads.depth > pipeline_->max_threads_)
    fm::misused("dispatchThreads: threadgroup of " + std::to_string(threads.width * threads.height * threads.depth) +
                " threads above the pipeline's maxTotalThreadsPerThreadgroup");
  fm::DispatchRecord d = *pending_;
  d.function = pipeline_ ? fm::str(pipeline_->function_->name_) : std::string();
  d.grid[0] = grid.width;
  d.grid[1] = grid.height;
  d.grid[2] = grid.depth;
  d.threads[0] = threads.width;
  d.threads[1] = threads.height;
  d.threads[2] = threads.depth;
  if (pipeline_ == nil) {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    fm::state().misuse.push_back("dispatchThreads:threadsPerThreadgroup: without a compute pipeline state");
    return;
  }
  [command_buffer_ addDispatch:d pipeline:pipeline_ buffers:*buffers_];
}
- (void)endEncoding {
  [self checkAlive:"endEncoding"];
  if (ended_) fm::misused("endEncoding twice");
  ended_ = YES;
  [command_buffer_ encoderEnded];
}
@end

// ---- compile options and constant values -----------------------------------------

// Apple declares no instance variables, and this runtime (fragile ABI)
// cannot add any in the @implementation: the properties live in a side table.
namespace enigma::fake_metal {
namespace {
struct CompileOptionsState {
  BOOL fast_math = YES;  // Metal's defaults
  MTLMathMode math_mode = MTLMathModeFast;
  MTLMathFloatingPointFunctions functions = MTLMathFloatingPointFunctionsFast;
  MTLLanguageVersion language_version = MTLLanguageVersion3_2;
  NSDictionary<NSString*, NSObject*>* macros = nil;  // owned
};
std::map<const void*, CompileOptionsState>& compile_options() {
  static auto* table = new std::map<const void*, CompileOptionsState>();
  return *table;
}
CompileOptionsState& options_of(MTLCompileOptions* o) {
  std::lock_guard<std::mutex> lock(state().mu);
  return compile_options()[o];  // std::map: references stay valid while other entries change
}
}  // namespace
}  // namespace enigma::fake_metal

@implementation MTLCompileOptions
+ (id)allocWithZone:(NSZone*)zone {
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    ++fm::state().alive["MTLCompileOptions"];
  }
  return [super allocWithZone:zone];
}
- (void)dealloc {
  [fm::options_of(self).macros release];
  {
    std::lock_guard<std::mutex> lock(fm::state().mu);
    fm::compile_options().erase(self);
    --fm::state().alive["MTLCompileOptions"];
  }
  [super dealloc];
}
- (id)copyWithZone:(nullable NSZone*)zone {
  MTLCompileOptions* c = [[MTLCompileOptions allocWithZone:zone] init];
  fm::CompileOptionsState& mine = fm::options_of(self);
  fm::CompileOptionsState& theirs = fm::options_of(c);
  theirs = mine;
  theirs.macros = [mine.macros copy];
  return c;
}
// As Apple documents: the deprecated switch sets both newer properties.
- (BOOL)fastMathEnabled {
  return fm::options_of(self).fast_math;
}
- (void)setFastMathEnabled:(BOOL)enabled {
  fm::CompileOptionsState& o = fm::options_of(self);
  o.fast_math = enabled;
  o.math_mode = enabled ? MTLMathModeFast : MTLMathModeSafe;
  o.functions = enabled ? MTLMathFloatingPointFunctionsFast : MTLMathFloatingPointFunctionsPrecise;
}
- (MTLMathMode)mathMode {
  return fm::options_of(self).math_mode;
}
- (void)setMathMode:(MTLMathMode)mode {
  fm::CompileOptionsState& o = fm::options_of(self);
  o.math_mode = mode;
  o.fast_math = mode == MTLMathModeFast;
}
- (MTLMathFloatingPointFunctions)mathFloatingPointFunctions {
  return fm::options_of(self).functions;
}
- (void)setMathFloatingPointFunctions:(MTLMathFloatingPointFunctions)functions {
  fm::options_of(self).functions = functions;
}
- (MTLLanguageVersion)languageVersion {
  return fm::options_of(self).language_version;
}
- (void)setLanguageVersion:(MTLLanguageVersion)version {
  fm::options_of(self).language_version = version;
}
- (nullable NSDictionary<NSString*, NSObject*>*)preprocessorMacros {
  return fm::options_of(self).macros;
}
- (void)setPreprocessorMacros:(nullable NSDictionary<NSString*, NSObject*>*)macros {
  fm::CompileOptionsState& o = fm::options_of(self);
  NSDictionary* old = o.macros;
  o.macros = [macros copy];
  [old release];
}
@end

// ---- the entry point and the control API -------------------------------------------

extern "C" id<MTLDevice> _Nullable MTLCreateSystemDefaultDevice(void) {
  fm::DeviceConfig config;
  if (!fm::configured_from_environment(&config)) return nil;
  id<MTLDevice> device = nil;
  @autoreleasepool {  // Metal's own temporaries are not the caller's
    device = [[FakeMTLDevice alloc] initWithConfig:config];
  }
  return device;
}

namespace enigma::fake_metal {

bool configured_from_environment(DeviceConfig* out) {
  const char* env = std::getenv("ENIGMA_METAL_FAKE");
  if (env == nullptr || *env == '\0') return false;
  const std::string v = env;
  static const std::map<std::string, std::pair<int, const char*>> known = {
      {"none", {0, "Fake GPU without an Apple family"}},
      {"apple7", {7, "Fake Apple M1"}},
      {"m1", {7, "Fake Apple M1"}},
      {"apple8", {8, "Fake Apple M2"}},
      {"m2", {8, "Fake Apple M2"}},
      {"apple9", {9, "Fake Apple M3"}},
      {"m3", {9, "Fake Apple M3"}},
      {"m4", {9, "Fake Apple M4"}},
      {"apple10", {10, "Fake Apple M5"}},
      {"m5", {10, "Fake Apple M5"}},
  };
  auto it = known.find(v);
  if (it == known.end())
    throw RuntimeError("ENIGMA_METAL_FAKE='" + v +
                       "' is not a GPU family the fake Metal knows; use none, apple7..apple10 or m1..m5");
  out->apple_family = it->second.first;
  out->name = it->second.second;
  return true;
}

void remember_kernel(const std::string& msl, const Kernel& k) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().kernels.insert_or_assign(msl, k);
}

void fail_next_command_buffer(const CommandBufferFault& fault) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().command_buffer_faults.push_back(fault);
}
void fail_next_library(const std::string& compiler_log) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().library_faults.push_back(compiler_log);
}
void fail_next_pipeline(const std::string& description) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().pipeline_faults.push_back(description);
}
void fail_next_command_buffer_creation() {
  std::lock_guard<std::mutex> lock(state().mu);
  ++state().command_buffer_creation_faults;
}
void fail_next_buffer_allocation() {
  std::lock_guard<std::mutex> lock(state().mu);
  ++state().buffer_allocation_faults;
}
void set_next_gpu_times(double start_seconds, double end_seconds) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().gpu_times_set = true;
  state().gpu_start = start_seconds;
  state().gpu_end = end_seconds;
}
void set_pipeline_thread_limit(uint64_t limit) {
  std::lock_guard<std::mutex> lock(state().mu);
  state().pipeline_thread_limit = limit;
}

Records records() {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().records;
}
void clear_records() {
  std::lock_guard<std::mutex> lock(state().mu);
  state().records = Records{};
}

std::map<std::string, int64_t> live_objects() {
  std::lock_guard<std::mutex> lock(state().mu);
  std::map<std::string, int64_t> out;
  for (const auto& [name, n] : state().alive)
    if (n != 0) out[name] = n;
  return out;
}
std::vector<std::string> misuse() {
  std::lock_guard<std::mutex> lock(state().mu);
  return state().misuse;
}

}  // namespace enigma::fake_metal
