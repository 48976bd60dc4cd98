// The CPU backend's work-group-loop planner (see cpu_plan.h).
#include "codegen/cpu_plan.h"

#include <functional>

#include "enigma/support/error.h"

namespace enigma {

bool is_group_query(ThreadQuery q) {
  switch (q) {
    case ThreadQuery::ThreadPositionInGrid:
    case ThreadQuery::ThreadPositionInThreadgroup:
    case ThreadQuery::ThreadIndexInThreadgroup:
    case ThreadQuery::ThreadIndexInSimdgroup:
    case ThreadQuery::SimdgroupIndexInThreadgroup: return false;
    default: return true;
  }
}

bool is_simdgroup_matrix_op(const Op& op) {
  switch (op.info().category) {
    case OpCategory::MatrixLoad:
    case OpCategory::MatrixStore:
    case OpCategory::MatrixFill:
    case OpCategory::MatrixMma: return true;
    default: return false;
  }
}

bool thread_range_condition(const Kernel& k, const std::vector<const Op*>& def, const std::vector<bool>& group,
                            ValueId cond, bool any_lane_query, ThreadRangeCondition* out) {
  (void)k;
  const Op* c = def[cond];
  if (!c || c->code != OpCode::Cmp || c->predicate() != CmpPred::Eq) return false;
  ValueId a = c->operands[0], b = c->operands[1];
  if (group[a]) std::swap(a, b);
  if (!group[b] || group[a] || !def[a] || def[a]->code != OpCode::ThreadQuery) return false;
  const ThreadQuery q = def[a]->query();
  const bool ok = q == ThreadQuery::ThreadIndexInThreadgroup || q == ThreadQuery::SimdgroupIndexInThreadgroup ||
                  (any_lane_query && q == ThreadQuery::ThreadIndexInSimdgroup);
  if (!ok) return false;
  *out = ThreadRangeCondition{q, b};
  return true;
}

bool thread_strided_start(const std::vector<const Op*>& def, const std::vector<bool>& group, ValueId lo,
                          ValueId* offset, bool* needs_1d) {
  auto thread_index = [&](ValueId v, bool* one_d) {
    const Op* d = def[v];
    if (!d || d->code != OpCode::ThreadQuery || d->query_dim() != 0) return false;
    const ThreadQuery q = d->query();
    *one_d = q == ThreadQuery::ThreadPositionInThreadgroup;
    return q == ThreadQuery::ThreadIndexInThreadgroup || q == ThreadQuery::ThreadPositionInThreadgroup;
  };
  *offset = kNoValue;
  if (thread_index(lo, needs_1d)) return true;
  const Op* d = def[lo];
  if (!d || d->code != OpCode::Add) return false;
  for (int i = 0; i < 2; ++i) {
    ValueId t = d->operands[static_cast<size_t>(i)], g = d->operands[static_cast<size_t>(1 - i)];
    if (group[g] && thread_index(t, needs_1d)) {
      *offset = g;
      return true;
    }
  }
  return false;
}

namespace {

using Item = CpuPlan::Item;
using Scratch = CpuPlan::Scratch;

class Planner {
 public:
  explicit Planner(const Kernel& k) : k_(k) {}

  CpuPlan run() {
    const size_t n = k_.values.size();
    def_.assign(n, nullptr);
    visit_ops(k_.body, [&](const Op& op) {
      for (ValueId r : op.results) def_[r] = &op;
    });
    p_.group.assign(n, false);
    p_.segment.assign(n, -1);
    p_.array.assign(n, std::string());
    local_segs_.assign(k_.locals.size(), {});
    note_users(k_.body);
    plan_region(k_.body);
    p_.local_in_scratch.assign(k_.locals.size(), false);
    for (size_t i = 0; i < k_.locals.size(); ++i) {
      if (local_segs_[i].size() < 2) continue;
      p_.local_in_scratch[i] = true;
      Scratch s;
      s.kind = Scratch::Kind::LocalArray;
      s.elem = k_.locals[i].elem;
      s.local = static_cast<int64_t>(i);
      p_.scratch.push_back(s);
    }
    p_.recompute.assign(n, false);
    for (size_t v = 0; v < n; ++v) p_.recompute[v] = remat(static_cast<ValueId>(v));
    return std::move(p_);
  }

 private:
  bool needs_group(const Op& op) const {
    bool r = contains_sync(op);
    for (ValueId v : op.results) r = r || k_.type_of(v).kind == DType::Kind::SimdMatrix;
    return r;
  }

  bool is_group_op(const Op& op) const {
    if (!op.regions.empty() || !op.info().pure || op.results.size() != 1) return false;
    if (op.code == OpCode::ThreadQuery) return is_group_query(op.query());
    for (ValueId v : op.operands)
      if (!p_.group[v]) return false;
    return true;
  }

  // Whether `op` (or an op nested in it) may write memory `mem`.
  static bool may_write(const Op& op, int64_t mem) {
    switch (op.info().category) {
      case OpCategory::Store:
      case OpCategory::Atomic:
      case OpCategory::MatrixStore:
      case OpCategory::AsyncCopy:
        if (op.memory() == mem) return true;  // a copy's destination
        break;
      default: break;
    }
    for (const Region& r : op.regions)
      for (const Op& o : r.ops)
        if (may_write(o, mem)) return true;
    return false;
  }

  // A load of threadgroup memory at an index that is the group's, with no
  // write to that array between the sync points around it (the ops of the
  // pending thread loop `seg`, and those after `at` up to the next sync
  // op): every thread reads the same element and the same value, so it is
  // read once per group (e.g. `inv = red[0]` after a group reduction).
  bool uniform_load(const Op& op, const Region& r, size_t at, const std::vector<const Op*>& seg) const {
    if (op.code != OpCode::Load || !is_threadgroup_memory(op.memory()) || !p_.group[op.operands[0]]) return false;
    for (const Op* o : seg)
      if (may_write(*o, op.memory())) return false;
    for (size_t j = at + 1; j < r.ops.size(); ++j) {
      const Op& o = r.ops[j];
      if (o.info().category == OpCategory::Terminator || is_sync(o)) break;
      if (!o.regions.empty() && needs_group(o)) break;
      if (may_write(o, op.memory())) return false;
    }
    return true;
  }

  // Splits a region into group-level items.
  const std::vector<Item>& partition(const Region& r) {
    std::vector<Item> items;
    std::vector<const Op*> seg;
    auto push = [&](Item::Kind kind, const Op* op) {
      Item it;
      it.kind = kind;
      it.op = op;
      items.push_back(std::move(it));
    };
    auto flush = [&] {
      if (seg.empty()) return;
      Item it;
      it.kind = Item::Kind::Segment;
      it.ops = std::move(seg);
      it.id = next_seg_++;
      items.push_back(std::move(it));
      seg.clear();
    };
    for (size_t i = 0; i < r.ops.size(); ++i) {
      const Op& op = r.ops[i];
      if (op.info().category == OpCategory::Terminator) break;
      if (is_group_op(op) || uniform_load(op, r, i, seg)) {
        p_.group[op.result()] = true;
        push(Item::Kind::GroupOp, &op);
      } else if (is_sync(op)) {
        flush();
        push(Item::Kind::Sync, &op);
      } else if (!op.regions.empty() && needs_group(op)) {
        flush();
        push(Item::Kind::Control, &op);
      } else {
        seg.push_back(&op);
      }
    }
    flush();
    return p_.items[&r] = std::move(items);
  }

  void add_scratch(Scratch::Kind kind, const std::string& name, const DType& elem) {
    Scratch s;
    s.kind = kind;
    s.name = name;
    s.elem = elem;
    p_.scratch.push_back(s);
  }

  // A per-thread value needed outside its segment gets an array.
  void spill(ValueId v) {
    if (p_.group[v] || !p_.array[v].empty()) return;
    p_.array[v] = "en_s" + std::to_string(v);
    add_scratch(Scratch::Kind::ThreadValue, p_.array[v], k_.type_of(v));
  }
  void array_result(ValueId v) {
    const DType& t = k_.type_of(v);
    if (t.kind == DType::Kind::SimdMatrix) {
      p_.array[v] = "en_x" + std::to_string(v);
      add_scratch(Scratch::Kind::SimdgroupMatrix, p_.array[v], t);
    } else {
      p_.array[v] = "en_s" + std::to_string(v);
      add_scratch(Scratch::Kind::ThreadValue, p_.array[v], t);
    }
  }

  void define_in(const Op& op, int id) {
    for (ValueId v : op.results) p_.segment[v] = id;
    for (const Region& r : op.regions) {
      for (ValueId a : r.args) p_.segment[a] = id;
      for (const Op& o : r.ops) define_in(o, id);
    }
  }
  void use_in(const Op& op, int id) {
    for (ValueId v : op.operands)
      if (!p_.group[v] && p_.segment[v] != id && !remat(v)) spill(v);
    for (const Region& r : op.regions)
      for (const Op& o : r.ops) use_in(o, id);
  }

  // Cheap per-thread values (thread queries and short pure chains on them)
  // are recomputed in each thread loop that needs them instead of being
  // stored per thread: index arithmetic stays visible to the vectoriser.
  bool remat(ValueId v, int depth = 0) const {
    if (p_.group[v]) return true;
    const Op* d = def_[v];
    if (!d || depth > 4 || !d->regions.empty() || !d->info().pure || d->results.size() != 1) return false;
    if (d->code == OpCode::Constant || d->code == OpCode::Param) return true;
    if (d->code == OpCode::ThreadQuery) return true;
    for (ValueId o : d->operands)
      if (!remat(o, depth + 1)) return false;
    return true;
  }

  void note_locals(const Op& op, int id) {
    OpCategory c = op.info().category;
    if (c == OpCategory::LocalAlloc || c == OpCategory::LocalLoad || c == OpCategory::LocalStore)
      local_segs_[static_cast<size_t>(op.local_array())].insert(id);
    for (const Region& r : op.regions)
      for (const Op& o : r.ops) note_locals(o, id);
  }

  void note_users(const Region& r) {
    for (const Op& op : r.ops) {
      for (ValueId v : op.operands) users_[v].push_back(&op);
      for (const Region& sub : op.regions) note_users(sub);
    }
  }

  // The thread-strided loop of a segment that may run with the thread loop
  // inside it: threads run in any interleaving between sync points and
  // each keeps its own order (the ops before the loop, the loop's
  // iterations, the ops after it).
  const Op* strided_loop(const Item& it) const {
    const Op* f = nullptr;
    for (const Op* op : it.ops) {
      const OpCategory c = op->info().category;
      // Register arrays live in one loop's scope.
      if (c == OpCategory::LocalAlloc || c == OpCategory::LocalLoad || c == OpCategory::LocalStore) return nullptr;
      if (op->regions.empty()) continue;
      if (f || op->code != OpCode::For) return nullptr;
      f = op;
    }
    if (!f) return nullptr;
    const Region& body = f->regions[0];
    if (k_.type_of(body.args[0]) != DType::scalar(Scalar::U32)) return nullptr;
    ValueId offset;
    bool needs_1d;
    if (!thread_strided_start(def_, p_.group, f->operands[0], &offset, &needs_1d)) return nullptr;
    if (!p_.group[f->operands[1]] || !p_.group[f->operands[2]]) return nullptr;
    for (ValueId v : f->results)
      if (k_.type_of(v).kind == DType::Kind::SimdMatrix) return nullptr;
    return f;
  }

  // A matrix that only matrix ops of its own run read (a run: matrix ops
  // with group ops between them, printed as one loop over the simdgroups)
  // lives in that loop as a local float[64], not in scratch.
  bool run_local_matrix(ValueId v, const std::vector<Item>& items, size_t def) const {
    size_t end = def + 1;
    while (end < items.size() && (items[end].kind == Item::Kind::GroupOp ||
                                  (items[end].kind == Item::Kind::Sync && is_simdgroup_matrix_op(*items[end].op))))
      ++end;
    auto it = users_.find(v);
    if (it == users_.end()) return true;
    for (const Op* user : it->second) {
      bool inside = false;
      for (size_t j = def + 1; j < end && !inside; ++j)
        inside = items[j].kind == Item::Kind::Sync && items[j].op == user;
      if (!inside) return false;
    }
    return true;
  }

  void plan_region(const Region& r) {
    const std::vector<Item>& items = partition(r);
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& it = items[i];
      switch (it.kind) {
        case Item::Kind::GroupOp: break;
        case Item::Kind::Segment:
          for (const Op* op : it.ops) define_in(*op, it.id);
          for (const Op* op : it.ops) use_in(*op, it.id);
          for (const Op* op : it.ops) note_locals(*op, it.id);
          if (const Op* f = strided_loop(it)) {
            p_.interchange[it.id] = f;
            for (ValueId v : f->results) spill(v);
            // Values of the ops before the loop that the loop or the ops
            // after it read: computed once per thread, kept per thread
            // (unless cheap to recompute).
            std::set<ValueId> before;
            for (const Op* op : it.ops) {
              if (op == f) break;
              for (ValueId v : op->results) before.insert(v);
            }
            std::function<void(const Op&)> reads = [&](const Op& op) {
              for (ValueId v : op.operands)
                if (before.count(v) && !remat(v)) spill(v);
              for (const Region& sub : op.regions)
                for (const Op& o : sub.ops) reads(o);
            };
            bool after = false;
            for (const Op* op : it.ops) {
              after = after || op == f;
              if (after) reads(*op);
            }
          }
          break;
        case Item::Kind::Sync: {
          const Op& op = *it.op;
          for (ValueId v : op.operands) spill(v);
          for (ValueId v : op.results) {
            if (op.info().category == OpCategory::AsyncCopy) {
              p_.group[v] = true;  // events: no state on the CPU
            } else if (is_simdgroup_matrix_op(op) && run_local_matrix(v, items, i)) {
              p_.array[v] = "en_x" + std::to_string(v);
              p_.run_local_matrices.insert(v);
            } else {
              array_result(v);
            }
          }
          break;
        }
        case Item::Kind::Control: plan_control(*it.op); break;
      }
    }
  }

  void carried_arrays(const Op& op, const std::vector<const Region*>& regions, size_t first_arg) {
    for (size_t i = 0; i < op.results.size(); ++i) {
      ValueId res = op.results[i];
      array_result(res);
      for (const Region* r : regions) p_.array[r->args[first_arg + i]] = p_.array[res];
      // A carried matrix is copied through a second array (the new values
      // may be computed from the old ones).
      if (k_.type_of(res).kind == DType::Kind::SimdMatrix)
        add_scratch(Scratch::Kind::SimdgroupMatrix, p_.array[res] + "t", k_.type_of(res));
    }
  }

  void plan_control(const Op& op) {
    switch (op.code) {
      case OpCode::For: {
        const Region& body = op.regions[0];
        for (ValueId v : op.operands) spill(v);
        p_.group[body.args[0]] = true;
        carried_arrays(op, {&body}, 1);
        for (ValueId v : body.ops.back().operands) spill(v);
        plan_region(body);
        break;
      }
      case OpCode::While: {
        for (ValueId v : op.operands) spill(v);
        carried_arrays(op, {&op.regions[0], &op.regions[1]}, 0);
        plan_region(op.regions[0]);
        spill(op.regions[0].ops.back().operands[0]);
        plan_region(op.regions[1]);
        for (ValueId v : op.regions[1].ops.back().operands) spill(v);
        break;
      }
      case OpCode::If: {
        if (!p_.group[op.operands[0]]) {
          const int id = static_cast<int>(p_.mask.size());
          p_.mask[&op] = id;
          ThreadRangeCondition range;
          // `if simdgroup_index == g` with no else: a known range, no stored condition.
          if (!(thread_range_condition(k_, def_, p_.group, op.operands[0], false, &range) &&
                op.regions[1].ops.size() == 1))
            spill(op.operands[0]);
          add_scratch(Scratch::Kind::Mask, "en_m" + std::to_string(id), DType::scalar(Scalar::U8));
          add_scratch(Scratch::Kind::Mask, "en_m" + std::to_string(id) + "e", DType::scalar(Scalar::U8));
        }
        plan_region(op.regions[0]);
        plan_region(op.regions[1]);
        break;
      }
      default: throw KernelError("internal: unexpected control op " + std::string(op.info().name));
    }
  }

  static void visit_ops(const Region& r, const std::function<void(const Op&)>& f) {
    for (const Op& op : r.ops) {
      f(op);
      for (const Region& sub : op.regions) visit_ops(sub, f);
    }
  }

  const Kernel& k_;
  CpuPlan p_;
  std::vector<const Op*> def_;
  std::vector<std::set<int>> local_segs_;  // the thread loops each local array is used in
  std::unordered_map<ValueId, std::vector<const Op*>> users_;
  int next_seg_ = 0;
};

}  // namespace

CpuPlan plan_cpu_kernel(const Kernel& k) { return Planner(k).run(); }

}  // namespace enigma
