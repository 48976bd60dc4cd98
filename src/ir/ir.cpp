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

}  // namespace enigma
