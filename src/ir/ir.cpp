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
  for (const ThreadgroupArray& a : tg_arrays) total += (a.size * static_cast<uint64_t>(a.type.size_bytes()) + 15) / 16 * 16;
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
