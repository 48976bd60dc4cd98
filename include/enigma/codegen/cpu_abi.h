// The launch record passed from the CPU runtime to a generated CPU kernel.
// This text is also pasted into every generated kernel, so both sides agree
// on the layout by construction. Plain C layout; fixed-width fields only.
#ifndef ENIGMA_CPU_ABI_H
#define ENIGMA_CPU_ABI_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct EnigmaCpuLaunch {
  void* const* buffers;         /* one per parameter; a Scalar parameter points at its value */
  const uint64_t* buffer_sizes; /* bytes, one per parameter */
  uint32_t grid[3];             /* threads per dimension */
  uint32_t threads[3];          /* threadgroup size */
  uint32_t groups[3];           /* threadgroups per dimension */
  /* Debug mode: the first out-of-bounds access is reported here and skipped. */
  int32_t* error_flag;
  uint64_t* error_info; /* {param, index, is_store, x, y, z} */
  /* Per-worker scratch of at least `bytes` (64-byte aligned, zeroed when it
     grows; null if out of memory): threadgroup memory and per-thread state
     of cooperative kernels. Owned by the runtime, reused across launches. */
  void* (*scratch)(uint64_t bytes);
} EnigmaCpuLaunch;

typedef void (*EnigmaCpuEntry)(const EnigmaCpuLaunch* launch, uint64_t tg_begin, uint64_t tg_end);

#define ENIGMA_CPU_ABI_VERSION 2

#ifdef __cplusplus
}
#endif
#endif
