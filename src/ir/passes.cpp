#include "enigma/ir/passes.h"

#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "enigma/ir/const_eval.h"
#include "enigma/ir/verifier.h"
#include "enigma/support/error.h"

namespace enigma {

namespace {

// Value substitution collected by a pass and applied to later operands.
struct Substitution {
  std::unordered_map<ValueId, ValueId> map;
  ValueId operator()(ValueId v) const {
    auto it = map.find(v);
    while (it != map.end()) {
      v = it->second;
      it = map.find(v);
    }
    return v;
  }
  void apply(Op& op) const {
    for (ValueId& v : op.operands) v = (*this)(v);
  }
};

bool is_plain_pure(const Op& op) { return op.info().pure && op.regions.empty(); }

// A pass that rewrites the region tree from the kernel's body (Pass::region),
// substituting values as it removes ops; run() returns how many it changed.
template <class Pass>
class RewritePass {
 public:
  explicit RewritePass(Kernel& k) : k_(k) {}
  int run() {
    static_cast<Pass*>(this)->region(k_.body);
    return changed_;
  }

 protected:
  // Rewrites r's ops in order, each with its operands substituted first;
  // keep(op) says whether it stays.
  template <class Keep>
  void rewrite(Region& r, Keep keep) {
    std::vector<Op> kept;
    kept.reserve(r.ops.size());
    for (Op& op : r.ops) {
      subst_.apply(op);
      if (keep(op)) kept.push_back(std::move(op));
    }
    r.ops = std::move(kept);
  }

  Kernel& k_;
  Substitution subst_;
  int changed_ = 0;
};

// ---- folding ------------------------------------------------------------

class Folder : public RewritePass<Folder> {
 public:
  using RewritePass::RewritePass;

  void region(Region& r) {
    rewrite(r, [&](Op& op) {
      for (Region& sub : op.regions) region(sub);
      return !this->op(op);
    });
  }

 private:
  const Const* constant(ValueId v) const {
    auto it = consts_.find(v);
    return it == consts_.end() ? nullptr : &it->second;
  }

  void to_constant(Op& op, Const c) {
    Op repl;
    repl.code = OpCode::Constant;
    repl.type = op.type;
    repl.value = normalize_const(op.type.elem, c);
    repl.results = op.results;
    repl.loc = op.loc;
    op = std::move(repl);
    consts_[op.result()] = op.value;
    ++changed_;
  }

  // Returns true when the op was removed (its result substituted).
  bool op(Op& op) {
    const OpCategory cat = op.info().category;
    if (cat == OpCategory::Constant) {
      consts_[op.result()] = op.value;
      return false;
    }
    if (cat == OpCategory::VecMake) vectors_[op.result()] = op.operands;
    if (cat == OpCategory::VecExtract) {  // make_vec(a, b, ...)[k] is the k-th component
      auto it = vectors_.find(op.operands[0]);
      if (it != vectors_.end()) {
        subst_.map[op.result()] = it->second.at(static_cast<size_t>(op.component()));
        ++changed_;
        return true;
      }
    }
    if (!op.type.is_scalar() || !is_plain_pure(op)) return false;
    if (cat == OpCategory::Select) {
      if (const Const* c = constant(op.operands[0])) {
        subst_.map[op.result()] = c->i ? op.operands[1] : op.operands[2];
        ++changed_;
        return true;
      }
      return false;
    }
    std::vector<const Const*> in;
    for (ValueId v : op.operands) {
      const Const* c = constant(v);
      if (!c) return false;
      in.push_back(c);
    }
    if (in.empty()) return false;
    const DType& t0 = k_.type_of(op.operands[0]);
    if (!t0.is_scalar()) return false;
    switch (cat) {
      case OpCategory::Arith:
      case OpCategory::Bitwise:
      case OpCategory::Shift:
      case OpCategory::Negate:
      case OpCategory::BitNot: {
        auto r = fold_scalar_op(op.code, op.type.elem, *in[0], in.size() > 1 ? *in[1] : Const{});
        if (r) to_constant(op, *r);
        return false;
      }
      case OpCategory::Compare: {
        Const c;
        c.i = fold_compare(op.predicate(), t0.elem, *in[0], *in[1]);
        to_constant(op, c);
        return false;
      }
      case OpCategory::Convert: to_constant(op, convert_const(*in[0], t0.elem, op.type.elem)); return false;
      case OpCategory::Bitcast: to_constant(op, bitcast_const(*in[0], t0.elem, op.type.elem)); return false;
      case OpCategory::Math: {
        std::vector<Const> args;
        for (const Const* c : in) args.push_back(*c);
        auto r = fold_math(op.code, t0.elem, args, op.bit_range());
        if (r) to_constant(op, *r);
        return false;
      }
      default: return false;
    }
  }

  std::unordered_map<ValueId, Const> consts_;
  std::unordered_map<ValueId, std::vector<ValueId>> vectors_;  // make_vec components
};

// ---- CSE ------------------------------------------------------------------

struct OpKey {
  OpCode code;
  DType type;
  OpAttrs attrs;
  int64_t ci;
  uint64_t cf_bits;
  std::vector<ValueId> operands;
  bool operator<(const OpKey& o) const {
    auto t = [](const OpKey& k) {
      return std::tie(k.code, k.type.kind, k.type.elem, k.type.lanes, k.type.rows, k.type.cols, k.attrs, k.ci,
                      k.cf_bits, k.operands);
    };
    return t(*this) < t(o);
  }
};

class Cse : public RewritePass<Cse> {
 public:
  using RewritePass::RewritePass;

  void region(Region& r) {
    scopes_.emplace_back();
    rewrite(r, [&](Op& op) {
      if (is_plain_pure(op) && op.results.size() == 1) {
        OpKey k = key(op);
        ValueId found = lookup(k);
        if (found != kNoValue) {
          subst_.map[op.result()] = found;
          ++changed_;
          return false;
        }
        scopes_.back().emplace(std::move(k), op.result());
      }
      for (Region& sub : op.regions) region(sub);
      return true;
    });
    scopes_.pop_back();
  }

 private:
  OpKey key(const Op& op) const {
    uint64_t bits = 0;
    std::memcpy(&bits, &op.value.f, sizeof bits);
    return OpKey{op.code, op.type, op.attrs(), op.value.i, bits, op.operands};
  }

  ValueId lookup(const OpKey& k) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(k);
      if (f != it->end()) return f->second;
    }
    return kNoValue;
  }

  std::vector<std::map<OpKey, ValueId>> scopes_;
};

// ---- DCE ------------------------------------------------------------------

void count_uses(const Region& r, std::vector<int>& uses) {
  for (const Op& op : r.ops) {
    for (ValueId v : op.operands) ++uses[v];
    for (const Region& sub : op.regions) count_uses(sub, uses);
  }
}

bool region_is_empty(const Region& r) { return r.ops.size() == 1 && r.ops[0].operands.empty(); }

int dce_region(Region& r, std::vector<int>& uses) {
  int removed = 0;
  for (Op& op : r.ops)
    for (Region& sub : op.regions) removed += dce_region(sub, uses);
  // Backwards, so a chain of dead ops dies in one sweep.
  std::vector<bool> dead(r.ops.size(), false);
  for (size_t i = r.ops.size(); i-- > 0;) {
    const Op& op = r.ops[i];
    bool unused = true;
    for (ValueId v : op.results) unused = unused && uses[v] == 0;
    bool side_effect_free = op.regions.empty() && op.info().effect != OpEffect::Writes;
    bool removable = (side_effect_free && unused) || (op.code == OpCode::If && op.results.empty() &&
                                                      region_is_empty(op.regions[0]) && region_is_empty(op.regions[1]));
    if (removable) {
      dead[i] = true;
      for (ValueId v : op.operands) --uses[v];
      ++removed;
    }
  }
  std::vector<Op> kept;
  for (size_t i = 0; i < r.ops.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(r.ops[i]));
  r.ops = std::move(kept);
  return removed;
}

}  // namespace

int fold_constants(Kernel& k) { return Folder(k).run(); }
int eliminate_common_subexpressions(Kernel& k) { return Cse(k).run(); }

int eliminate_dead_code(Kernel& k) {
  std::vector<int> uses(k.values.size(), 0);
  count_uses(k.body, uses);
  return dce_region(k.body, uses);
}

void specialize_function_constants(Kernel& k, const std::vector<std::pair<int, Const>>& values) {
  walk(k.body, [&](Op& op) {
    if (op.code != OpCode::FuncConst) return;
    const Const* v = nullptr;
    for (const auto& [index, c] : values)
      if (index == op.function_constant_index()) v = &c;
    if (!v)
      throw KernelError("kernel '" + k.name + "': function constant " + std::to_string(op.function_constant_index()) +
                        " (" + op.type.str() + ") has no value");
    op.code = OpCode::Constant;
    op.value = normalize_const(op.type.elem, *v);
    op.set_attrs(OpAttrs());
  });
}

void optimize(Kernel& k) {
  for (int round = 0; round < 8; ++round) {
    int changed = fold_constants(k);
    changed += eliminate_common_subexpressions(k);
    changed += eliminate_dead_code(k);
    verify(k);
    if (changed == 0) break;
  }
}

}  // namespace enigma
