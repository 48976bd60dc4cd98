// Uniformity analysis: which values are the same for every thread of a
// threadgroup (or of a simdgroup), and the check that barriers and other
// collective ops are only reached under control flow that is uniform enough
// for every participating thread to reach them (SEMANTICS 4).
#pragma once

#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

// Ordered: a value is at least as varying as its operands.
enum class Uniformity : uint8_t {
  Uniform = 0,    // the same in every thread of the threadgroup
  Simdgroup = 1,  // the same within each simdgroup
  Varying = 2,    // may differ between any two threads
};

// Varying sources: per-thread queries (thread_position_*, thread_index_*),
// atomics, scans/shuffles, loads at varying indices; the simdgroup index,
// simd reductions and simdgroup matrices are per-simdgroup. Loop-carried
// values are as varying as their inits, yields and the loop's trip count.
std::vector<Uniformity> analyze_uniformity(const Kernel& k);

// Throws KernelError at the offending op's source line when a barrier sits
// under control flow that is not uniform across the threadgroup, or a
// simd_barrier / simdgroup matrix op / async copy under control flow that is
// not uniform across its simdgroup. Simd and quad collectives are allowed
// anywhere: they combine the lanes that are active.
void check_sync_uniformity(const Kernel& k);

}  // namespace enigma
