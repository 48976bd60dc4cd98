#include "enigma/ir/uniformity.h"

#include <algorithm>
#include <string>

#include "enigma/support/error.h"

namespace enigma {

namespace {

Uniformity join(Uniformity a, Uniformity b) { return std::max(a, b); }

Uniformity query_level(ThreadQuery q) {
  switch (q) {
    case ThreadQuery::ThreadPositionInGrid:
    case ThreadQuery::ThreadPositionInThreadgroup:
    case ThreadQuery::ThreadIndexInThreadgroup:
    case ThreadQuery::ThreadIndexInSimdgroup: return Uniformity::Varying;
    case ThreadQuery::SimdgroupIndexInThreadgroup: return Uniformity::Simdgroup;
    default: return Uniformity::Uniform;
  }
}

class Analysis {
 public:
  explicit Analysis(const Kernel& k)
      : k_(k), level_(k.values.size(), Uniformity::Uniform), locals_(k.locals.size(), Uniformity::Uniform) {}

  std::vector<Uniformity> run() {
    // Loop-carried values feed back into themselves: iterate to a fixed point
    // (levels only rise, so this ends after a few rounds).
    do {
      changed_ = false;
      region(k_.body, Uniformity::Uniform);
    } while (changed_);
    return level_;
  }

 private:
  void raise(ValueId v, Uniformity u) {
    if (u > level_[v]) {
      level_[v] = u;
      changed_ = true;
    }
  }
  // A per-thread array is as varying as anything written into it, and as the
  // control flow its writes happen under.
  void raise_local(int64_t a, Uniformity u) {
    Uniformity& l = locals_.at(static_cast<size_t>(a));
    if (u > l) {
      l = u;
      changed_ = true;
    }
  }
  Uniformity of(ValueId v) const { return level_[v]; }
  Uniformity all(const std::vector<ValueId>& vs, size_t from = 0) const {
    Uniformity u = Uniformity::Uniform;
    for (size_t i = from; i < vs.size(); ++i) u = join(u, of(vs[i]));
    return u;
  }

  void region(const Region& r, Uniformity ctrl) {
    for (const Op& op : r.ops) this->op(op, ctrl);
  }

  void op(const Op& op, Uniformity ctrl) {
    const OpCategory cat = op.info().category;
    switch (cat) {
      case OpCategory::LocalAlloc: raise_local(op.local_array(), join(ctrl, of(op.operands[0]))); return;
      case OpCategory::LocalStore:
        raise_local(op.local_array(), join(ctrl, join(of(op.operands[0]), of(op.operands[1]))));
        return;
      case OpCategory::For: {
        const Region& body = op.regions[0];
        Uniformity trip = join(of(op.operands[0]), join(of(op.operands[1]), of(op.operands[2])));
        raise(body.args[0], join(of(op.operands[0]), of(op.operands[2])));
        const Op& y = body.ops.back();
        for (size_t i = 0; i + 3 < op.operands.size(); ++i) {
          Uniformity u = join(join(of(op.operands[3 + i]), of(y.operands[i])), trip);
          raise(body.args[1 + i], u);
          raise(op.results[i], u);
        }
        region(body, join(ctrl, trip));
        return;
      }
      case OpCategory::If: {
        for (const Region& r : op.regions) region(r, join(ctrl, of(op.operands[0])));
        for (size_t i = 0; i < op.results.size(); ++i)
          for (const Region& r : op.regions)
            raise(op.results[i], join(of(op.operands[0]), of(r.ops.back().operands[i])));
        return;
      }
      case OpCategory::While: {
        const Region& cond = op.regions[0];
        const Region& body = op.regions[1];
        Uniformity c = of(cond.ops.back().operands[0]);
        for (size_t i = 0; i < op.operands.size(); ++i) {
          Uniformity u = join(join(of(op.operands[i]), of(body.ops.back().operands[i])), c);
          raise(cond.args[i], u);
          raise(body.args[i], u);
          raise(op.results[i], u);
        }
        region(cond, join(ctrl, c));
        region(body, join(ctrl, c));
        return;
      }
      default: break;
    }
    if (op.results.empty()) return;
    Uniformity u = Uniformity::Uniform;
    switch (cat) {
      case OpCategory::Constant:
      case OpCategory::Param: break;
      case OpCategory::ThreadQuery: u = query_level(op.query()); break;
      case OpCategory::GroupReduce:
        u = collective_info(op.code).width == 32 ? Uniformity::Simdgroup : Uniformity::Varying;
        break;
      case OpCategory::GroupShuffle:
        u = op.code == OpCode::SimdBroadcast ? join(Uniformity::Simdgroup, of(op.operands[1])) : Uniformity::Varying;
        break;
      case OpCategory::GroupScan:
      case OpCategory::Atomic: u = Uniformity::Varying; break;
      case OpCategory::MatrixLoad:
      case OpCategory::MatrixFill:
      case OpCategory::MatrixMma:
      case OpCategory::AsyncCopy: u = Uniformity::Simdgroup; break;
      case OpCategory::LocalLoad:
        u = join(of(op.operands[0]), locals_.at(static_cast<size_t>(op.local_array())));
        break;
      default: u = all(op.operands); break;
    }
    for (ValueId r : op.results) raise(r, u);
  }

  const Kernel& k_;
  std::vector<Uniformity> level_;
  std::vector<Uniformity> locals_;
  bool changed_ = false;
};

class Checker {
 public:
  Checker(const Kernel& k, const std::vector<Uniformity>& level) : k_(k), level_(level) {}
  void run() { region(k_.body, Uniformity::Uniform, nullptr); }

 private:
  void region(const Region& r, Uniformity ctrl, const Op* culprit) {
    for (const Op& op : r.ops) this->op(op, ctrl, culprit);
  }

  void op(const Op& op, Uniformity ctrl, const Op* culprit) {
    const OpCategory cat = op.info().category;
    if (is_sync(op) && cat != OpCategory::GroupReduce && cat != OpCategory::GroupScan &&
        cat != OpCategory::GroupShuffle) {
      Uniformity need = op.code == OpCode::Barrier ? Uniformity::Uniform : Uniformity::Simdgroup;
      if (ctrl > need) fail(op, culprit, need);
    }
    auto sub = [&](const Region& r, Uniformity u) {
      Uniformity c = join(ctrl, u);
      region(r, c, c > ctrl ? &op : culprit);
    };
    switch (cat) {
      case OpCategory::For: {
        Uniformity u = join(level_[op.operands[0]], join(level_[op.operands[1]], level_[op.operands[2]]));
        sub(op.regions[0], u);
        break;
      }
      case OpCategory::If:
        for (const Region& r : op.regions) sub(r, level_[op.operands[0]]);
        break;
      case OpCategory::While: {
        Uniformity c = level_[op.regions[0].ops.back().operands[0]];
        sub(op.regions[0], c);
        sub(op.regions[1], c);
        break;
      }
      default: break;
    }
  }

  [[noreturn]] void fail(const Op& op, const Op* culprit, Uniformity need) const {
    std::string where = k_.location(op).str();
    std::string text = where.empty() ? "" : where + ": ";
    text += "kernel '" + k_.name + "': " + op.info().name +
            ": reached under control flow that differs between the "
            "threads of a " +
            (need == Uniformity::Uniform ? "threadgroup" : "simdgroup");
    if (culprit) {
      const char* what = culprit->code == OpCode::For  ? "for_range bounds"
                         : culprit->code == OpCode::If ? "if_ condition"
                                                       : "while_ condition";
      std::string cw = k_.location(*culprit).str();
      text += std::string(" (the ") + what + (cw.empty() ? "" : " at " + cw) + " depend on the thread)";
    }
    text += op.code == OpCode::Barrier
                ? "; every thread of a threadgroup must reach the same barriers: make the condition uniform (e.g. "
                  "compute it from threadgroup_position_in_grid or a Scalar), or move the barrier out of the branch"
                : "; every thread of the simdgroup must reach it together";
    throw KernelError(text);
  }

  const Kernel& k_;
  const std::vector<Uniformity>& level_;
};

}  // namespace

std::vector<Uniformity> analyze_uniformity(const Kernel& k) { return Analysis(k).run(); }

void check_sync_uniformity(const Kernel& k) {
  bool any = false;
  walk(k.body, [&](const Op& op) { any = any || is_sync(op); });
  if (!any) return;
  std::vector<Uniformity> level = analyze_uniformity(k);
  Checker(k, level).run();
}

}  // namespace enigma
