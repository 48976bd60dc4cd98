// The CPU backend's plan of a cooperative kernel (one with barriers, simd/
// quad ops, simdgroup matrices or async copies): how the threads of a group
// run as loops. A pure function of the kernel, printed by cpu.cpp.
//
// Each region is split at sync points into items: runs of ordinary ops
// (segments, each one loop over the group's threads), sync ops (run at group
// level between the loops: a barrier is the boundary between two loops),
// control flow that holds sync ops (run at group level), and ops whose
// operands are all the same for the whole group (computed once). A value
// that lives across segments is kept per thread in a scratch array, unless
// it is cheap to recompute where it is used.
#pragma once

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "enigma/ir/ir.h"

namespace enigma {

struct CpuPlan {
  struct Item {
    enum class Kind { GroupOp, Segment, Sync, Control } kind = Kind::GroupOp;
    const Op* op = nullptr;      // GroupOp, Sync, Control
    std::vector<const Op*> ops;  // Segment: the ops of one thread loop
    int id = 0;                  // Segment: its number, in program order
  };

  // One array of the per-worker scratch memory.
  struct Scratch {
    enum class Kind {
      ThreadValue,      // one `elem` per thread: a value live across thread loops
      SimdgroupMatrix,  // 64 floats per simdgroup: a simdgroup matrix
      Mask,             // one byte per thread: the active threads of a varying if_
      LocalArray,       // `elem` x the array's size per thread: a per-thread array used by several loops
    } kind = Kind::ThreadValue;
    std::string name;  // the C name (LocalArray: the printer's name of local array `local`)
    DType elem;
    int64_t local = -1;
  };

  // Per value id.
  std::vector<bool> group;               // computed once per group (its operands are the group's)
  std::vector<int> segment;              // the segment that defines it, -1 if none
  std::vector<std::string> array;        // its per-thread (or per-simdgroup) array, empty if none
  std::vector<bool> recompute;           // recomputed in each thread loop that reads it (cheap index math)
  std::set<ValueId> run_local_matrices;  // matrices read only in their run of matrix ops: a local float[64]

  std::vector<bool> local_in_scratch;  // per local (register) array: used in several thread loops
  std::vector<Scratch> scratch;        // laid out in this order, after the threadgroup arrays
  std::unordered_map<const Region*, std::vector<Item>> items;
  std::unordered_map<const Op*, int> mask;  // per if_ with a per-thread condition: its mask number
  // Segments holding one thread-strided loop `for i in range(lid + g, hi,
  // step)` (g, hi, step the group's) and no other control flow: printed with
  // the thread loop inside the strided one (passes of contiguous i), each
  // thread's carried values in the arrays of the loop's results, the values
  // of the ops before the loop that the rest reads in arrays too.
  std::unordered_map<int, const Op*> interchange;

  const std::vector<Item>& items_of(const Region& r) const { return items.at(&r); }
  // Whether any thread loop reads `v` from its per-thread array.
  bool in_array(ValueId v) const { return !array[v].empty(); }
};

// The work-group-loop plan of a kernel with sync ops.
CpuPlan plan_cpu_kernel(const Kernel& k);

// Thread queries with one value for the whole group.
bool is_group_query(ThreadQuery q);
// Simdgroup-matrix loads, stores, fills and multiply-accumulates.
bool is_simdgroup_matrix_op(const Op& op);
// `cond` is `q == g` with q the thread's index in the group (or its
// simdgroup's index) and g the same for the whole group: the threads where
// it holds are one contiguous range. Returns the query and g.
struct ThreadRangeCondition {
  ThreadQuery query;
  ValueId group_value;
};
// For a thread-strided loop: whether `lo` is the thread's index in the group
// (or its x position, `needs_1d`) plus a group value `*offset` (kNoValue: 0).
bool thread_strided_start(const std::vector<const Op*>& def, const std::vector<bool>& group, ValueId lo,
                          ValueId* offset, bool* needs_1d);
bool thread_range_condition(const Kernel& k, const std::vector<const Op*>& def, const std::vector<bool>& group,
                            ValueId cond, bool any_lane_query, ThreadRangeCondition* out);

}  // namespace enigma
