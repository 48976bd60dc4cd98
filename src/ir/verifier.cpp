#include "enigma/ir/verifier.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "enigma/ir/builder.h"
#include "enigma/ir/lang.h"
#include "enigma/support/error.h"

namespace enigma {

namespace {

class Verifier {
 public:
  explicit Verifier(const Kernel& k) : k_(k) {}

  void run() {
    for (size_t i = 0; i < k_.params.size(); ++i) {
      const Param& p = k_.params[i];
      if (p.kind == Param::Kind::Buffer && !p.type.is_scalar_or_vector())
        fail(nullptr, "parameter '" + p.name + "' has element dtype " + p.type.str());
    }
    for (const ThreadgroupArray& a : k_.tg_arrays)
      if (!a.type.is_scalar_or_vector() || a.size == 0)
        fail(nullptr, "threadgroup array '" + a.name + "' must hold at least one scalar or vector element");
    region(k_.body, /*terminator=*/nullptr);
  }

 private:
  [[noreturn]] void fail(const Op* op, const std::string& msg) const {
    std::string where = op ? k_.location(*op).str() : "";
    std::string text = where.empty() ? "" : where + ": ";
    text += "kernel '" + k_.name + "': invalid IR: ";
    if (op) text += std::string(op->info().name) + ": ";
    throw KernelError(text + msg);
  }

  const DType& type(const Op& op, ValueId v) const {
    if (v >= k_.values.size()) fail(&op, "operand %" + std::to_string(v) + " does not exist");
    return k_.values[v].type;
  }

  void define(const Op* op, ValueId v) {
    if (v >= k_.values.size()) fail(op, "result %" + std::to_string(v) + " does not exist");
    if (!defined_.insert(v).second) fail(op, "value %" + std::to_string(v) + " is defined twice");
    scopes_.back().push_back(v);
  }

  void expect(const Op& op, bool ok, const std::string& msg) const {
    if (!ok) fail(&op, msg);
  }

  void region(const Region& r, const char* terminator) {
    // Every later pass recurses over regions: IR built without the Builder's
    // check must not take them deeper than it allows.
    if (scopes_.size() > static_cast<size_t>(Builder::kMaxNestingDepth))
      fail(r.ops.empty() ? nullptr : &r.ops.front(),
           "control flow is nested more than " + std::to_string(Builder::kMaxNestingDepth) + " levels deep");
    scopes_.emplace_back();
    for (ValueId a : r.args) define(nullptr, a);
    for (size_t i = 0; i < r.ops.size(); ++i) {
      const Op& op = r.ops[i];
      bool last = i + 1 == r.ops.size();
      if (op.info().category == OpCategory::Terminator && !(last && terminator))
        fail(&op, "terminator in the middle of a region");
      this->op(op);
    }
    if (terminator) {
      if (r.ops.empty() || std::string(r.ops.back().info().name) != terminator)
        fail(nullptr, std::string("region does not end with '") + terminator + "'");
    }
    for (ValueId v : scopes_.back()) defined_.erase(v);
    scopes_.pop_back();
  }

  void op(const Op& op) {
    const OpInfo& oi = op.info();
    if (oi.num_operands >= 0 && static_cast<int>(op.operands.size()) != oi.num_operands)
      fail(&op,
           "expected " + std::to_string(oi.num_operands) + " operand(s), got " + std::to_string(op.operands.size()));
    if (static_cast<int>(op.regions.size()) != oi.num_regions)
      fail(&op, "expected " + std::to_string(oi.num_regions) + " region(s), got " + std::to_string(op.regions.size()));
    for (ValueId v : op.operands) {
      type(op, v);
      if (!defined_.count(v))
        fail(&op,
             "operand %" + std::to_string(v) + " is used outside the region that defines it, or before its definition");
    }
    const std::string bad_attrs = op.check(op.code);
    expect(op, bad_attrs.empty(), bad_attrs);
    auto operand = [&](size_t i) -> const DType& { return type(op, op.operands.at(i)); };
    auto single_result = [&] {
      expect(op, op.results.size() == 1, "expected one result");
      expect(op, type(op, op.results[0]) == op.type, "result dtype does not match the op's dtype");
    };
    switch (oi.category) {
      case OpCategory::Constant:
        single_result();
        expect(op, op.type.is_scalar(), "constant must be a scalar");
        break;
      case OpCategory::Param:
        single_result();
        expect(op,
               op.param_index() < static_cast<int>(k_.params.size()) &&
                   k_.params[op.param_index()].kind == Param::Kind::Scalar &&
                   k_.params[op.param_index()].type == op.type,
               "does not name a Scalar parameter of this dtype");
        break;
      case OpCategory::ThreadQuery:
        single_result();
        expect(op, op.type == DType::scalar(Scalar::U32), "queries return uint");
        break;
      case OpCategory::Arith:
      case OpCategory::Bitwise:
      case OpCategory::Shift:
        single_result();
        expect(op, operand(0) == op.type && operand(1) == op.type,
               "operands " + operand(0).str() + ", " + operand(1).str() + " do not match result " + op.type.str());
        expect(op, op.type.is_scalar_or_vector(), "needs scalar or vector operands");
        if (oi.category == OpCategory::Arith) expect(op, op.type.elem != Scalar::B1, "arithmetic on bool");
        if (oi.category == OpCategory::Bitwise) expect(op, !op.type.is_float(), "bitwise op on floats");
        if (oi.category == OpCategory::Shift) expect(op, op.type.is_integer(), "shift needs integers");
        break;
      case OpCategory::Negate:
      case OpCategory::BitNot:
        single_result();
        expect(op, operand(0) == op.type, "operand dtype does not match result");
        expect(op, oi.category == OpCategory::Negate ? op.type.elem != Scalar::B1 : !op.type.is_float(),
               "invalid operand dtype " + op.type.str());
        break;
      case OpCategory::Compare:
        single_result();
        expect(op, operand(0) == operand(1), "operands differ: " + operand(0).str() + " vs " + operand(1).str());
        expect(op, op.type == operand(0).with_elem(Scalar::B1), "result must be bool of the operands' shape");
        break;
      case OpCategory::Select:
        single_result();
        expect(op, operand(0).is_bool(), "condition must be bool");
        expect(op, operand(1) == op.type && operand(2) == op.type, "values must match the result dtype");
        break;
      case OpCategory::Convert:
        single_result();
        if (op.type.is_matrix()) {
          expect(op, operand(0).is_matrix() && operand(0).rows == op.type.rows && operand(0).cols == op.type.cols,
                 "converts matrices of one shape");
          break;
        }
        expect(op, operand(0).is_scalar_or_vector() && op.type.is_scalar_or_vector(), "converts scalars/vectors");
        expect(op, !operand(0).is_vector() || operand(0).lanes == op.type.lanes, "vector sizes differ");
        break;
      case OpCategory::Bitcast:
        single_result();
        expect(op, info(operand(0).elem).bits * operand(0).width() == info(op.type.elem).bits * op.type.width(),
               "sizes differ");
        break;
      case OpCategory::Load:
      case OpCategory::Store: {
        expect(op, k_.valid_memory(op.memory()), "does not name a buffer parameter or threadgroup array");
        const DType& idx = operand(0);
        expect(op, idx.is_scalar() && is_integer(idx.elem), "index must be an integer scalar");
        if (!k_.valid_memory(op.memory())) break;
        // A 2- or 4-vector of a scalar memory's dtype is a vector access (load_vec/store_vec).
        const DType& pt = k_.memory_type(op.memory());
        auto fits = [&](const DType& t) {
          return t == pt || (pt.is_scalar() && t.is_vector() && t.elem == pt.elem && pt.elem != Scalar::B1 &&
                             (t.lanes == 2 || t.lanes == 4));
        };
        if (oi.category == OpCategory::Load) {
          single_result();
          expect(op, fits(op.type), "result must have the memory's element dtype (or be a 2- or 4-vector of it)");
        } else {
          expect(op, op.results.empty(), "store has no result");
          expect(op, fits(operand(1)),
                 "stored value must have the memory's element dtype (or be a 2- or 4-vector of it)");
        }
        break;
      }
      case OpCategory::Barrier: expect(op, op.results.empty(), "barriers have no result"); break;
      case OpCategory::GroupReduce:
      case OpCategory::GroupScan:
      case OpCategory::GroupShuffle:
        single_result();
        expect(op, operand(0) == op.type && op.type.is_scalar_or_vector(), "value and result dtypes must match");
        if (oi.category == OpCategory::GroupShuffle)
          expect(op, operand(1) == DType::scalar(Scalar::U32), "lane operand must be uint");
        break;
      case OpCategory::Atomic: {
        expect(op, k_.valid_memory(op.memory()), "does not name a buffer parameter or threadgroup array");
        const DType& mt = k_.memory_type(op.memory());
        expect(op, operand(0).is_scalar() && is_integer(operand(0).elem), "index must be an integer scalar");
        for (size_t i = 1; i < op.operands.size(); ++i)
          expect(op, operand(i) == mt, "values must have the memory's dtype");
        if (op.code == OpCode::AtomicStore)
          expect(op, op.results.empty(), "atomic_store has no result");
        else {
          single_result();
          expect(op, op.type == (op.code == OpCode::AtomicCompareExchange ? DType::scalar(Scalar::B1) : mt),
                 "wrong result dtype");
        }
        break;
      }
      case OpCategory::MatrixLoad:
      case OpCategory::MatrixStore: {
        expect(op, k_.valid_memory(op.memory()), "does not name a buffer parameter or threadgroup array");
        size_t first = oi.category == OpCategory::MatrixStore ? 1 : 0;
        const DType& m = oi.category == OpCategory::MatrixStore ? operand(0) : op.type;
        expect(op, m.kind == DType::Kind::SimdMatrix && k_.memory_type(op.memory()) == DType::scalar(m.elem),
               "matrix and memory element dtypes must match");
        expect(op, operand(first) == DType::scalar(Scalar::U32) && operand(first + 1) == DType::scalar(Scalar::U32),
               "origin and elements_per_row must be uint");
        if (oi.category == OpCategory::MatrixLoad)
          single_result();
        else
          expect(op, op.results.empty(), "store has no result");
        break;
      }
      case OpCategory::MatrixFill:
        single_result();
        expect(op, op.type.kind == DType::Kind::SimdMatrix && operand(0) == DType::scalar(op.type.elem),
               "fill value must be a scalar of the matrix's element dtype");
        break;
      case OpCategory::MatrixMma:
        single_result();
        for (size_t i = 0; i < 3; ++i)
          expect(op, operand(i).kind == DType::Kind::SimdMatrix, "operands must be matrices");
        expect(op, operand(2) == op.type, "result dtype must be the accumulator's");
        break;
      case OpCategory::AsyncCopy:
        single_result();
        expect(op,
               k_.valid_memory(op.copy_destination()) && k_.valid_memory(op.copy_source()) &&
                   is_threadgroup_memory(op.copy_destination()) != is_threadgroup_memory(op.copy_source()),
               "copies between a buffer parameter and a threadgroup array");
        expect(op, k_.memory_type(op.copy_destination()) == k_.memory_type(op.copy_source()), "element dtypes differ");
        expect(op, op.type == DType::scalar(Scalar::I64), "events are i64");
        for (size_t i = 0; i < op.operands.size(); ++i)
          expect(op, operand(i) == DType::scalar(Scalar::U32), "operands must be uint");
        break;
      case OpCategory::AsyncWait:
        expect(op, op.results.empty(), "async_copy_wait has no result");
        for (size_t i = 0; i < op.operands.size(); ++i)
          expect(op, operand(i) == DType::scalar(Scalar::I64), "expects events");
        break;
      case OpCategory::For: {
        expect(op, op.operands.size() >= 3, "needs lo, hi, step");
        const Region& body = op.regions[0];
        size_t carried = op.operands.size() - 3;
        expect(op, body.args.size() == carried + 1, "body arguments must be the induction variable and carried values");
        const DType& iv = type(op, body.args[0]);
        expect(op, iv.is_scalar() && is_integer(iv.elem), "induction variable must be an integer");
        for (int i = 0; i < 3; ++i) expect(op, operand(i) == iv, "bounds must have the induction variable's dtype");
        expect(op, op.results.size() == carried, "one result per carried value");
        for (size_t i = 0; i < carried; ++i) {
          expect(op, operand(3 + i) == type(op, body.args[1 + i]) && type(op, op.results[i]) == operand(3 + i),
                 "carried value " + std::to_string(i) + " changes dtype");
        }
        region(body, "yield");
        check_yield(op, body, op.results);
        for (ValueId v : op.results) define(&op, v);
        break;
      }
      case OpCategory::If: {
        expect(op, operand(0) == DType::scalar(Scalar::B1), "condition must be a bool scalar");
        for (const Region& r : op.regions) {
          expect(op, r.args.empty(), "if regions take no arguments");
          region(r, "yield");
          check_yield(op, r, op.results);
        }
        for (ValueId v : op.results) define(&op, v);
        break;
      }
      case OpCategory::While: {
        for (const Region& r : op.regions) {
          expect(op, r.args.size() == op.operands.size(), "regions take the carried values");
          for (size_t i = 0; i < r.args.size(); ++i)
            expect(op, type(op, r.args[i]) == operand(i), "carried value " + std::to_string(i) + " changes dtype");
        }
        region(op.regions[0], "condition");
        expect(op, type(op, op.regions[0].ops.back().operands.at(0)) == DType::scalar(Scalar::B1),
               "condition must be a bool scalar");
        region(op.regions[1], "yield");
        check_yield(op, op.regions[1], op.results);
        expect(op, op.results.size() == op.operands.size(), "one result per carried value");
        for (ValueId v : op.results) define(&op, v);
        break;
      }
      case OpCategory::Terminator: expect(op, op.results.empty(), "terminators have no results"); break;
      default: lang_op(op); break;
    }
    if (oi.category != OpCategory::For && oi.category != OpCategory::If && oi.category != OpCategory::While)
      for (ValueId v : op.results) define(&op, v);
  }

  // The per-thread language (ops.def's second section).
  void lang_op(const Op& op) {
    auto operand = [&](size_t i) -> const DType& { return type(op, op.operands.at(i)); };
    auto result = [&] {
      expect(op, op.results.size() == 1, "expected one result");
      expect(op, type(op, op.results[0]) == op.type, "result dtype does not match the op's dtype");
    };
    switch (op.info().category) {
      case OpCategory::Math:
      case OpCategory::MatMul: {
        result();
        std::vector<DType> in;
        for (size_t i = 0; i < op.operands.size(); ++i) in.push_back(operand(i));
        std::string why;
        std::optional<DType> rt = lang_result_type(op.code, in, op.bit_range(), &why);
        expect(op, rt.has_value(), why);
        expect(op, *rt == op.type, "result must be " + rt->str() + ", not " + op.type.str());
        break;
      }
      case OpCategory::VecMake:
        result();
        expect(op, op.type.is_vector() && op.operands.size() == op.type.lanes, "needs one scalar per lane");
        for (size_t i = 0; i < op.operands.size(); ++i)
          expect(op, operand(i) == DType::scalar(op.type.elem), "components must have the vector's element dtype");
        break;
      case OpCategory::VecExtract:
        result();
        expect(op,
               operand(0).is_vector() && op.component() < operand(0).lanes && op.type == DType::scalar(operand(0).elem),
               "extracts an existing lane of a vector");
        break;
      case OpCategory::MatMake:
        result();
        expect(op, op.type.is_matrix() && op.operands.size() == op.type.cols, "needs one vector per column");
        for (size_t i = 0; i < op.operands.size(); ++i)
          expect(op, operand(i) == op.type.column(), "columns must have the matrix's column dtype");
        break;
      case OpCategory::MatColumn:
        result();
        expect(op, operand(0).is_matrix() && op.component() < operand(0).cols && op.type == operand(0).column(),
               "extracts an existing column of a matrix");
        break;
      case OpCategory::FuncConst: {
        result();
        bool declared = false;
        for (const FunctionConstant& fc : k_.function_constants)
          declared = declared || (fc.index == op.function_constant_index() && fc.type == op.type);
        expect(op, declared,
               "function constant " + std::to_string(op.function_constant_index()) + " is not declared as " +
                   op.type.str());
        break;
      }
      case OpCategory::LoadIf:
        result();
        expect(op, k_.valid_memory(op.memory()) && k_.memory_type(op.memory()) == op.type,
               "reads a buffer parameter or threadgroup array of its dtype");
        expect(op, operand(0).is_scalar() && is_integer(operand(0).elem), "index must be an integer scalar");
        expect(op, operand(1) == DType::scalar(Scalar::B1), "mask must be a bool scalar");
        expect(op, operand(2) == op.type, "default must have the buffer's dtype");
        break;
      case OpCategory::LocalAlloc:
      case OpCategory::LocalLoad:
      case OpCategory::LocalStore: {
        expect(op, op.local_array() < static_cast<int>(k_.locals.size()), "names no per-thread array");
        const DType& elem = k_.locals[op.local_array()].elem;
        if (op.code == OpCode::LocalAlloc) {
          expect(op, op.results.empty() && operand(0) == elem, "fill value must have the array's dtype");
        } else {
          expect(op, operand(0).is_scalar() && is_integer(operand(0).elem), "index must be an integer scalar");
          if (op.code == OpCode::LocalLoad) {
            result();
            expect(op, op.type == elem, "reads the array's dtype");
          } else {
            expect(op, op.results.empty() && operand(1) == elem, "stores the array's dtype");
          }
        }
        break;
      }
      default: fail(&op, "unknown op category");
    }
  }

  void check_yield(const Op& op, const Region& r, const std::vector<ValueId>& results) const {
    const Op& y = r.ops.back();
    expect(op, y.operands.size() == results.size(),
           "yields " + std::to_string(y.operands.size()) + " value(s) for " + std::to_string(results.size()) +
               " result(s)");
    for (size_t i = 0; i < results.size(); ++i)
      expect(op, type(y, y.operands[i]) == type(op, results[i]),
             "yielded value " + std::to_string(i) + " changes dtype");
  }

  const Kernel& k_;
  std::unordered_set<ValueId> defined_;
  std::vector<std::vector<ValueId>> scopes_;
};

}  // namespace

void verify(const Kernel& k) { Verifier(k).run(); }

}  // namespace enigma
