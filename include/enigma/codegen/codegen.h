// Source emitters. Every backend is a C-family language; a shared printer
// (src/codegen/c_family.*) writes expressions and structured control flow,
// and each backend supplies its spellings and lowers the execution model.
#pragma once

#include <string>
#include <vector>

#include "enigma/ir/ir.h"
#include "enigma/codegen/cpu_abi.h"

namespace enigma {

// An emitter's options (MslEmitOptions, CpuEmitOptions, CudaEmitOptions)
// with the checks of `c` (anything with debug and bounds_check).
template <class EmitOptions, class Checks>
EmitOptions with_checks(const Checks& c) {
  EmitOptions o;
  o.debug = c.debug;
  o.bounds_check = c.bounds_check;
  return o;
}

// Metal Shading Language. The file's second line states the language
// version it needs (msl_language_version); the function is named
// msl_entry_name(k), which is k.name unless that is not a plain identifier
// or is an MSL keyword or library name (then sanitize_identifier's spelling).
// Parameter i is bound at [[buffer(i)]]. Checked memory adds, with N
// parameters, `constant ulong* en_lens [[buffer(N)]]` (elements of each
// buffer parameter, by parameter index) and `device atomic_uint* en_err
// [[buffer(N + 1)]]`: 8 zeroed uints that the first out-of-bounds access
// fills as {1, memory id (int), index low, index high, access, x, y, z}.
struct MslEmitOptions {
  bool debug = false;        // also report out-of-bounds loads
  bool bounds_check = true;  // as CpuEmitOptions
};
std::string emit_msl(const Kernel& k, const MslEmitOptions& options = {});
struct MslVersion {
  int major = 3;
  int minor = 0;
};
// 3.0 (Metal 3: macOS 13, iOS 16), or 3.1 (macOS 14, iOS 17) when the
// kernel uses bfloat.
MslVersion msl_language_version(const Kernel& k);
std::string msl_entry_name(const Kernel& k);

// C++20 for the CPU backend. The source defines
//   extern "C" void <entry>(const EnigmaCpuLaunch* launch, uint64_t tg_begin, uint64_t tg_end)
// which runs the threadgroups [tg_begin, tg_end) (linear index, x fastest).
// Checked memory (bounds_check, the default): buffer lengths come from
// launch->buffer_sizes; the first out-of-bounds store or atomic (every kind of
// access in debug mode) is recorded in launch->error_flag / error_info as
// {memory id, index, access (0 load, 1 store, 2 atomic), x, y, z}.
struct CpuEmitOptions {
  std::string entry = "enigma_kernel";
  bool debug = false;        // also report out-of-bounds loads; no vectorisation
  bool bounds_check = true;  // out-of-bounds loads read 0, stores and atomics are dropped and reported
};
std::string emit_cpu(const Kernel& k, const CpuEmitOptions& options = {});

// CUDA C++ for NVRTC (no host headers). The source defines
//   extern "C" __global__ void <cuda_entry_name(k)>(<params>, [debug: en_len<i> per
//       buffer, u64* en_err,] u32 grid_x, u32 grid_y, u32 grid_z)
// where buffers are device pointers and scalars are passed by value (f16/bf16
// as their 16-bit patterns). Launch ceil(grid / threads) blocks of `threads`.
// Debug mode: en_err points at 7 zeroed u64s; the first out-of-bounds access
// writes {1, param, index, is_store, x, y, z} there and is skipped.
struct CudaEmitOptions {
  bool debug = false;  // also report out-of-bounds loads
  // > 1: the entry is <entry>_g<N> instead, and each block runs N
  // consecutive threadgroups along x (launch ceil(ceil(grid.x / threads.x) / N)
  // blocks in x). More memory accesses in flight per thread, for large grids
  // of memory-bound kernels. Not with debug.
  int groups_per_block = 1;
  // Simdgroup matrices as distributed fragments (two elements per lane of
  // the warp; half/bfloat multiply-accumulate on the tensor cores with
  // mma.sync) in an entry named <entry>_tc. Only for launches whose every
  // simdgroup is full (the runtime checks); the plain entry keeps the whole
  // tile in every lane. Not with debug.
  bool matrix_fragments = false;
  bool bounds_check = true;  // as CpuEmitOptions
};
std::string emit_cuda(const Kernel& k, const CudaEmitOptions& options = {});
std::string cuda_entry_name(const Kernel& k);
// The groups_per_block worth using for large grids of this kernel; 1 when
// its threadgroups must run one per block.
int cuda_preferred_groups_per_block(const Kernel& k);
// Whether the kernel uses simdgroup matrices (and so has a _tc entry).
bool cuda_uses_matrices(const Kernel& k);
// Kernels whose threads interact (threadgroup memory, barriers, simd/quad
// ops, atomics, simdgroup matrices, async copies) take a different frame:
// launch each threadgroup as a 1-D block of threads.x * threads.y *
// threads.z threads, append u32 threads_x, threads_y, threads_z to the
// parameters, and pass k.threadgroup_memory_bytes() of dynamic shared memory.
// Warps are then exactly Metal's simdgroups (32 consecutive threads of the
// index flattened with the edge group's real sizes).
bool cuda_is_cooperative(const Kernel& k);
// NVRTC options every generated CUDA file is compiled with (plus the
// architecture); the emitter also writes them into the file's header.
const std::vector<std::string>& cuda_nvrtc_options();

}  // namespace enigma
