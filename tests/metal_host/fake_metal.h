// The control side of the fake Metal (fake_metal.mm): plain C++, so the
// Python bindings and the Metal device can include it without Objective-C.
//
// The fake stands in for Apple's Metal framework on Linux so that
// src/runtime/metal/metal_device.mm is compiled and exercised: every call the
// device makes is recorded, results come from running the same kernel on the
// CPU backend, faults can be injected, and every fake object is counted so
// tests can prove each +1 reference is released exactly once.
//
// It is active only when ENIGMA_METAL_FAKE names a GPU family ("apple7",
// "apple8", "apple9", "apple10", "m1".."m5", or "none" for a GPU without an
// Apple family); without it MTLCreateSystemDefaultDevice() returns nil and
// the build behaves as one without Metal.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma::fake_metal {

// What the fake device reports (fixed when the device is created).
struct DeviceConfig {
  int apple_family = 0;  // N of MTLGPUFamilyAppleN; 0: none
  std::string name;
  uint64_t max_threadgroup_memory = 32768;
  uint64_t max_threads_per_threadgroup = 1024;
  uint64_t max_buffer_length = uint64_t(1) << 34;
};

// ENIGMA_METAL_FAKE parsed; false when it is unset or empty. Throws
// RuntimeError naming the variable for a value it does not know.
bool configured_from_environment(DeviceConfig* out);

// The device's Metal code calls this before compiling `msl`: the fake runs
// the IR behind a source on the CPU backend.
void remember_kernel(const std::string& msl, const Kernel& k);

// ---- faults: each is consumed by the next call it applies to ----------------
struct CommandBufferFault {
  std::string domain;  // "" with code 0: status Error without an NSError
  int64_t code = 0;
  std::string description;
};
void fail_next_command_buffer(const CommandBufferFault& fault);
void fail_next_library(const std::string& compiler_log);
void fail_next_pipeline(const std::string& description);
void fail_next_command_buffer_creation();  // -[MTLCommandQueue commandBuffer] returns nil
void fail_next_buffer_allocation();        // -[MTLDevice newBufferWithLength:options:] returns nil
void set_next_gpu_times(double start_seconds, double end_seconds);
// maxTotalThreadsPerThreadgroup of pipelines created from now on (0: the device's limit).
void set_pipeline_thread_limit(uint64_t limit);

// ---- records ------------------------------------------------------------------
struct LibraryRecord {
  std::string source;
  uint64_t language_version = 0;  // MTLLanguageVersion; 0 without options
  int64_t math_mode = 0;          // MTLMathMode
  int64_t math_functions = 0;     // MTLMathFloatingPointFunctions
  bool compiled = false;
  std::string error;  // the compiler log when it failed
};
struct FunctionRecord {
  std::string name;
  bool found = false;
};
struct BufferBinding {
  uint64_t index = 0, offset = 0, length = 0, buffer_id = 0;
};
struct BytesBinding {
  uint64_t index = 0;
  std::vector<uint8_t> bytes;
};
struct DispatchRecord {
  std::string function;
  std::vector<BufferBinding> buffers;
  std::vector<BytesBinding> bytes;
  std::vector<std::pair<uint64_t, uint64_t>> threadgroup_memory;  // (index, length)
  uint64_t grid[3] = {0, 0, 0}, threads[3] = {0, 0, 0};
};
struct CommandBufferRecord {
  std::vector<DispatchRecord> dispatches;
  bool encoder_ended = false, committed = false, waited = false;
  uint64_t status = 0;  // MTLCommandBufferStatus
  std::string error_domain;
  int64_t error_code = 0;
  std::string error_description;
  double gpu_start = 0, gpu_end = 0;
};
struct Records {
  std::vector<LibraryRecord> libraries;
  std::vector<FunctionRecord> functions;
  std::vector<std::string> pipelines;  // function names, in creation order
  std::vector<uint64_t> buffer_lengths;  // newBufferWithLength: lengths, by buffer id
  std::vector<CommandBufferRecord> command_buffers;
};
Records records();
void clear_records();

// ---- object accounting --------------------------------------------------------
// Fake objects alive now, by class (classes with none alive are left out).
std::map<std::string, int64_t> live_objects();
// Misuse seen so far: messages to released objects, releases past zero.
std::vector<std::string> misuse();

}  // namespace enigma::fake_metal
