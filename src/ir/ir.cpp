#include "enigma/ir/ir.h"

#include <array>

namespace enigma {

namespace {
constexpr OpInfo kOps[] = {
#define OP(e, name, cat, n, r, eff, cexpr) \
  {OpCode::e, name, OpCategory::cat, n, r, OpEffect::eff, OpEffect::eff == OpEffect::Pure, cexpr, "", "", ""},
#define OPX(e, name, cat, n, cexpr, operands, result, tol) \
  {OpCode::e, name, OpCategory::cat, n, 0, OpEffect::Pure, true, cexpr, operands, result, tol},
#include "enigma/ir/ops.def"
#undef OPX
#undef OP
};

constexpr const char* kCmpNames[] = {
#define ENIGMA_X(e, s) s,
    ENIGMA_CMP_PREDICATES(ENIGMA_X)
#undef ENIGMA_X
};

struct QueryInfo {
  const char* name;
  bool has_dim;
};
constexpr QueryInfo kQueries[] = {
#define ENIGMA_X(e, s, v) {s, v},
    ENIGMA_THREAD_QUERIES(ENIGMA_X)
#undef ENIGMA_X
};
}  // namespace

const OpInfo& info(OpCode code) { return kOps[static_cast<int>(code)]; }
int num_opcodes() { return static_cast<int>(sizeof(kOps) / sizeof(kOps[0])); }

const char* name(CmpPred p) { return kCmpNames[static_cast<int>(p)]; }
bool parse_cmp_pred(std::string_view s, CmpPred* out) {
  for (size_t i = 0; i < sizeof(kCmpNames) / sizeof(kCmpNames[0]); ++i) {
    if (s == kCmpNames[i]) {
      *out = static_cast<CmpPred>(i);
      return true;
    }
  }
  return false;
}

const char* name(ThreadQuery q) { return kQueries[static_cast<int>(q)].name; }
bool has_dim(ThreadQuery q) { return kQueries[static_cast<int>(q)].has_dim; }
bool parse_thread_query(std::string_view s, ThreadQuery* out) {
  for (int i = 0; i < kNumThreadQueries; ++i) {
    if (s == kQueries[i].name) {
      *out = static_cast<ThreadQuery>(i);
      return true;
    }
  }
  return false;
}

int Kernel::num_buffer_params() const {
  int n = 0;
  for (const Param& p : params) n += p.kind == Param::Kind::Buffer;
  return n;
}
int Kernel::num_scalar_params() const { return static_cast<int>(params.size()) - num_buffer_params(); }

bool Kernel::valid_memory(int64_t mem) const {
  if (is_threadgroup_memory(mem)) return threadgroup_array_index(mem) < tg_arrays.size();
  return mem < static_cast<int64_t>(params.size()) && params[mem].kind == Param::Kind::Buffer;
}
const std::string& Kernel::memory_name(int64_t mem) const {
  return is_threadgroup_memory(mem) ? tg_arrays.at(threadgroup_array_index(mem)).name : params.at(mem).name;
}
const DType& Kernel::memory_type(int64_t mem) const {
  return is_threadgroup_memory(mem) ? tg_arrays.at(threadgroup_array_index(mem)).type : params.at(mem).type;
}
uint64_t Kernel::threadgroup_memory_bytes() const {
  uint64_t total = 0;
  for (const ThreadgroupArray& a : tg_arrays)
    total += (a.size * static_cast<uint64_t>(a.type.size_bytes()) + 15) / 16 * 16;
  return total;
}

namespace {
constexpr const char* kFlagNames[] = {"mem_none", "mem_device", "mem_threadgroup", "mem_device_and_threadgroup",
                                      "mem_texture"};
constexpr int64_t kFlagValues[] = {kMemNone, kMemDevice, kMemThreadgroup, kMemDevice | kMemThreadgroup, kMemTexture};
constexpr const char* kOrderNames[] = {"relaxed", "acquire", "release", "acq_rel", "seq_cst"};
}  // namespace

bool parse_mem_flags(std::string_view s, int64_t* out) {
  for (size_t i = 0; i < 5; ++i) {
    if (s == kFlagNames[i]) {
      *out = kFlagValues[i];
      return true;
    }
  }
  return false;
}

std::string mem_flags_name(int64_t flags) {
  for (size_t i = 0; i < 5; ++i)
    if (kFlagValues[i] == flags) return kFlagNames[i];
  return "mem_flags(" + std::to_string(flags) + ")";
}

bool parse_memory_order(std::string_view s, MemoryOrder* out) {
  for (size_t i = 0; i < 5; ++i) {
    if (s == kOrderNames[i]) {
      *out = static_cast<MemoryOrder>(i);
      return true;
    }
  }
  return false;
}
const char* name(MemoryOrder o) { return kOrderNames[static_cast<int>(o)]; }

bool valid_mem_flags(int64_t flags) {
  for (int64_t v : kFlagValues)
    if (v == flags) return true;
  return false;
}

AttrKind attr_kind(OpCode code) {
  switch (info(code).category) {
    case OpCategory::Param: return AttrKind::ParamIndex;
    case OpCategory::ThreadQuery: return AttrKind::Query;
    case OpCategory::Compare: return AttrKind::Predicate;
    case OpCategory::Load:
    case OpCategory::Store:
    case OpCategory::LoadIf: return AttrKind::Memory;
    case OpCategory::Atomic: return AttrKind::Atomic;
    case OpCategory::MatrixLoad:
    case OpCategory::MatrixStore: return AttrKind::Matrix;
    case OpCategory::AsyncCopy: return AttrKind::Copy;
    case OpCategory::Barrier: return AttrKind::MemFlags;
    case OpCategory::Math:
      return code == OpCode::ExtractBits || code == OpCode::InsertBits ? AttrKind::BitRange : AttrKind::None;
    case OpCategory::VecExtract:
    case OpCategory::MatColumn: return AttrKind::Component;
    case OpCategory::LocalAlloc:
    case OpCategory::LocalLoad:
    case OpCategory::LocalStore: return AttrKind::LocalArray;
    case OpCategory::FuncConst: return AttrKind::FunctionConstant;
    default: return AttrKind::None;
  }
}

std::string OpAttrs::check(OpCode code) const {
  // Each kind must read back as what its factory writes (no stray bits, no
  // attribute on an op that takes none), and enums must be in range.
  auto valid_order = [](MemoryOrder o) { return o <= MemoryOrder::SeqCst; };
  switch (attr_kind(code)) {
    case AttrKind::None: return *this == OpAttrs() ? "" : "takes no attributes";
    case AttrKind::ParamIndex:
      return *this == of_param(param_index()) && param_index() >= 0 ? "" : "bad parameter index";
    case AttrKind::Query:
      if (a_ < 0 || a_ >= kNumThreadQueries) return "unknown query";
      if (dim_ < 0 || dim_ > 2 || (!has_dim(query()) && dim_ != 0)) return "dim out of range";
      return *this == of_query(query(), dim_) ? "" : "bad query attributes";
    case AttrKind::Predicate:
      return a_ >= 0 && a_ <= static_cast<int64_t>(CmpPred::Uge) && b_ == 0 && dim_ == 0 ? "" : "unknown predicate";
    case AttrKind::Memory: return *this == of_memory(memory()) ? "" : "bad memory attributes";
    case AttrKind::Atomic:
      if (*this != of_atomic(memory(), atomic_order(), atomic_failure_order()) || !valid_order(atomic_order()) ||
          !valid_order(atomic_failure_order()))
        return "unknown memory order";
      return "";
    case AttrKind::Matrix: return *this == of_matrix(memory(), transposed()) ? "" : "bad transpose flag";
    case AttrKind::Copy: return *this == of_copy(copy_destination(), copy_source()) ? "" : "bad copy attributes";
    case AttrKind::MemFlags:
      return *this == of_mem_flags(mem_flags()) && valid_mem_flags(mem_flags()) ? "" : "unknown mem_flags value";
    case AttrKind::BitRange: {
      const BitRange r = bit_range();
      return *this == of_bit_range(r) && r.offset >= 0 && r.bits >= 0 ? "" : "bad bit range";
    }
    case AttrKind::Component:
      return *this == of_component(component()) && component() >= 0 ? "" : "bad component index";
    case AttrKind::LocalArray:
      return *this == of_local_array(local_array()) && local_array() >= 0 ? "" : "bad per-thread array index";
    case AttrKind::FunctionConstant:
      return *this == of_function_constant(function_constant_index()) ? "" : "bad function constant index";
  }
  return "unknown attribute kind";
}

CollectiveInfo collective_info(OpCode code) {
  using K = CollectiveInfo::Kind;
  switch (code) {
    case OpCode::SimdSum: return {K::Sum, 32, false, false};
    case OpCode::SimdProduct: return {K::Product, 32, false, false};
    case OpCode::SimdMin: return {K::Min, 32, false, false};
    case OpCode::SimdMax: return {K::Max, 32, false, false};
    case OpCode::SimdAnd: return {K::And, 32, false, false};
    case OpCode::SimdOr: return {K::Or, 32, false, false};
    case OpCode::SimdXor: return {K::Xor, 32, false, false};
    case OpCode::QuadSum: return {K::Sum, 4, false, false};
    case OpCode::QuadProduct: return {K::Product, 4, false, false};
    case OpCode::QuadMin: return {K::Min, 4, false, false};
    case OpCode::QuadMax: return {K::Max, 4, false, false};
    case OpCode::QuadAnd: return {K::And, 4, false, false};
    case OpCode::QuadOr: return {K::Or, 4, false, false};
    case OpCode::QuadXor: return {K::Xor, 4, false, false};
    case OpCode::SimdPrefixExclusiveSum: return {K::Sum, 32, true, false};
    case OpCode::SimdPrefixInclusiveSum: return {K::Sum, 32, true, true};
    case OpCode::SimdPrefixExclusiveProduct: return {K::Product, 32, true, false};
    case OpCode::SimdPrefixInclusiveProduct: return {K::Product, 32, true, true};
    case OpCode::QuadPrefixExclusiveSum: return {K::Sum, 4, true, false};
    case OpCode::QuadPrefixInclusiveSum: return {K::Sum, 4, true, true};
    case OpCode::SimdShuffle: return {K::Shuffle, 32, false, false};
    case OpCode::SimdShuffleUp: return {K::ShuffleUp, 32, false, false};
    case OpCode::SimdShuffleDown: return {K::ShuffleDown, 32, false, false};
    case OpCode::SimdShuffleXor: return {K::ShuffleXor, 32, false, false};
    case OpCode::SimdBroadcast: return {K::Broadcast, 32, false, false};
    case OpCode::QuadShuffle: return {K::Shuffle, 4, false, false};
    case OpCode::QuadShuffleUp: return {K::ShuffleUp, 4, false, false};
    case OpCode::QuadShuffleDown: return {K::ShuffleDown, 4, false, false};
    case OpCode::QuadShuffleXor: return {K::ShuffleXor, 4, false, false};
    case OpCode::QuadBroadcast: return {K::Broadcast, 4, false, false};
    default: return {};
  }
}

bool is_sync(const Op& op) {
  switch (op.info().category) {
    case OpCategory::Barrier:
    case OpCategory::GroupReduce:
    case OpCategory::GroupScan:
    case OpCategory::GroupShuffle:
    case OpCategory::MatrixLoad:
    case OpCategory::MatrixStore:
    case OpCategory::MatrixFill:
    case OpCategory::MatrixMma:
    case OpCategory::AsyncCopy:
    case OpCategory::AsyncWait: return true;
    default: return false;
  }
}

bool contains_sync(const Op& op) {
  if (is_sync(op)) return true;
  for (const Region& r : op.regions)
    for (const Op& o : r.ops)
      if (contains_sync(o)) return true;
  return false;
}

}  // namespace enigma
