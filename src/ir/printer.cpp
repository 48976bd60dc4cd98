#include "enigma/ir/printer.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace enigma {

std::string value_name(const Kernel& k, ValueId v) {
  // Built with append: GCC 12 warns falsely (-Wrestrict) on "%" + std::string.
  std::string s(1, '%');
  const std::string& hint = k.values.at(v).hint;
  if (!hint.empty()) s.append(hint).append(1, '_');
  return s.append(std::to_string(v));
}

namespace {

std::string const_text(const Op& op) {
  if (op.type.is_float()) {
    char buf[64];
    if (std::isnan(op.value.f)) return "nan";
    if (std::isinf(op.value.f)) return op.value.f > 0 ? "inf" : "-inf";
    std::snprintf(buf, sizeof buf, "%.9g", op.value.f);
    std::string s = buf;
    if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
  }
  if (op.type.elem == Scalar::B1) return op.value.i ? "true" : "false";
  if (op.type.elem == Scalar::U64) return std::to_string(static_cast<uint64_t>(op.value.i));
  return std::to_string(op.value.i);
}

class Printer {
 public:
  explicit Printer(const Kernel& k) : k_(k) {}

  std::string run() {
    out_ << "kernel @" << k_.name << "(";
    for (size_t i = 0; i < k_.params.size(); ++i) {
      const Param& p = k_.params[i];
      if (i) out_ << ", ";
      out_ << p.name << ": " << (p.kind == Param::Kind::Buffer ? "device " + p.type.str() + "*" : p.type.str());
    }
    out_ << ") {\n";
    for (const ThreadgroupArray& a : k_.tg_arrays)
      out_ << "  threadgroup " << a.name << ": " << a.type.str() << "[" << a.size << "]\n";
    region(k_.body, 1);
    out_ << "}\n";
    return out_.str();
  }

 private:
  std::string n(ValueId v) const { return value_name(k_, v); }
  std::string list(const std::vector<ValueId>& vs, size_t from = 0, size_t to = ~size_t{0}) const {
    std::string s;
    for (size_t i = from; i < vs.size() && i < to; ++i) s += (i > from ? ", " : "") + n(vs[i]);
    return s;
  }

  void region(const Region& r, int depth) {
    for (const Op& op : r.ops) this->op(op, depth);
  }

  void loc(const Op& op) {
    const Location& l = k_.location(op);
    if (l.line > 0) {
      std::string file = l.file;
      size_t slash = file.find_last_of('/');
      if (slash != std::string::npos) file = file.substr(slash + 1);
      out_ << "  // " << file << ":" << l.line;
    }
  }

  void op(const Op& op, int depth) {
    if (op.info().category == OpCategory::Terminator && op.operands.empty()) return;  // implicit
    std::string pad(depth * 2, ' ');
    out_ << pad;
    const OpInfo& oi = op.info();
    switch (oi.category) {
      case OpCategory::Constant:
        out_ << n(op.result()) << " = constant " << const_text(op) << " : " << op.type.str();
        break;
      case OpCategory::Param:
        out_ << n(op.result()) << " = param " << k_.params[op.param_index()].name << " : " << op.type.str();
        break;
      case OpCategory::ThreadQuery: {
        ThreadQuery q = op.query();
        out_ << n(op.result()) << " = " << name(q);
        if (has_dim(q)) out_ << "." << "xyz"[op.query_dim()];
        out_ << " : " << op.type.str();
        break;
      }
      case OpCategory::Compare:
        out_ << n(op.result()) << " = cmp " << name(op.predicate()) << " " << list(op.operands) << " : "
             << k_.type_of(op.operands[0]).str();
        break;
      case OpCategory::Convert:
      case OpCategory::Bitcast:
        out_ << n(op.result()) << " = " << oi.name << " " << n(op.operands[0]) << " : "
             << k_.type_of(op.operands[0]).str() << " to " << op.type.str();
        break;
      case OpCategory::Load:
        out_ << n(op.result()) << " = load " << k_.memory_name(op.memory()) << "[" << n(op.operands[0])
             << "] : " << op.type.str();
        break;
      case OpCategory::Store:
        out_ << "store " << k_.memory_name(op.memory()) << "[" << n(op.operands[0]) << "], " << n(op.operands[1])
             << " : " << k_.memory_type(op.memory()).str();
        break;
      case OpCategory::Barrier: out_ << oi.name << " " << mem_flags_name(op.mem_flags()); break;
      case OpCategory::Atomic:
        if (!op.results.empty()) out_ << n(op.result()) << " = ";
        out_ << oi.name << " " << k_.memory_name(op.memory()) << "[" << n(op.operands[0]) << "]";
        if (op.operands.size() > 1) out_ << ", " << list(op.operands, 1);
        out_ << " " << name(op.atomic_order());
        if (op.code == OpCode::AtomicCompareExchange) out_ << " " << name(op.atomic_failure_order());
        out_ << " : " << k_.memory_type(op.memory()).str();
        break;
      case OpCategory::MatrixLoad:
        out_ << n(op.result()) << " = enigma." << oi.name << " " << k_.memory_name(op.memory()) << "["
             << n(op.operands[0]) << "], " << n(op.operands[1]) << (op.transposed() ? " transpose" : "")
             << " : vector<8x8x" << info(op.type.elem).short_name << ">";
        break;
      case OpCategory::MatrixStore:
        out_ << "enigma." << oi.name << " " << n(op.operands[0]) << ", " << k_.memory_name(op.memory()) << "["
             << n(op.operands[1]) << "], " << n(op.operands[2]) << (op.transposed() ? " transpose" : "");
        break;
      case OpCategory::MatrixFill:
      case OpCategory::MatrixMma:
        out_ << n(op.result()) << " = enigma." << oi.name << " " << list(op.operands) << " : vector<8x8x"
             << info(op.type.elem).short_name << ">";
        break;
      case OpCategory::AsyncCopy:
        out_ << n(op.result()) << " = " << oi.name << " " << k_.memory_name(op.copy_destination()) << " <- "
             << k_.memory_name(op.copy_source()) << " (" << list(op.operands) << ") : " << op.type.str();
        break;
      case OpCategory::AsyncWait:
        out_ << oi.name;
        if (!op.operands.empty()) out_ << " " << list(op.operands);
        break;
      case OpCategory::For: {
        const Region& body = op.regions[0];
        if (!op.results.empty()) out_ << list(op.results) << " = ";
        out_ << "for " << n(body.args[0]) << " = " << n(op.operands[0]) << " to " << n(op.operands[1]) << " step "
             << n(op.operands[2]) << " : " << k_.type_of(body.args[0]).str();
        if (body.args.size() > 1) {
          out_ << " iter_args(";
          for (size_t i = 1; i < body.args.size(); ++i)
            out_ << (i > 1 ? ", " : "") << n(body.args[i]) << " = " << n(op.operands[2 + i]) << " : "
                 << k_.type_of(body.args[i]).str();
          out_ << ")";
        }
        out_ << " {";
        loc(op);
        out_ << "\n";
        region(body, depth + 1);
        out_ << pad << "}\n";
        return;
      }
      case OpCategory::If: {
        if (!op.results.empty()) out_ << list(op.results) << " = ";
        out_ << "if " << n(op.operands[0]) << " {";
        loc(op);
        out_ << "\n";
        region(op.regions[0], depth + 1);
        if (op.regions[1].ops.size() > 1 || !op.results.empty()) {
          out_ << pad << "} else {\n";
          region(op.regions[1], depth + 1);
        }
        out_ << pad << "}\n";
        return;
      }
      case OpCategory::While: {
        if (!op.results.empty()) out_ << list(op.results) << " = ";
        out_ << "while";
        if (!op.operands.empty()) {
          out_ << " iter_args(";
          for (size_t i = 0; i < op.operands.size(); ++i)
            out_ << (i ? ", " : "") << n(op.regions[0].args[i]) << " = " << n(op.operands[i]);
          out_ << ")";
        }
        out_ << " {";
        loc(op);
        out_ << "\n";
        region(op.regions[0], depth + 1);
        out_ << pad << "} do {";
        if (!op.operands.empty()) out_ << " (" << list(op.regions[1].args) << ")";
        out_ << "\n";
        region(op.regions[1], depth + 1);
        out_ << pad << "}\n";
        return;
      }
      case OpCategory::FuncConst:
        out_ << n(op.result()) << " = function_constant " << op.function_constant_index() << " : " << op.type.str();
        break;
      case OpCategory::LoadIf:
        out_ << n(op.result()) << " = load_if " << k_.memory_name(op.memory()) << "[" << n(op.operands[0]) << "] if "
             << n(op.operands[1]) << " else " << n(op.operands[2]) << " : " << op.type.str();
        break;
      case OpCategory::LocalAlloc: {
        const LocalArray& a = k_.locals[op.local_array()];
        out_ << "local " << a.name << "#" << op.local_array() << "[" << a.size << "] = " << n(op.operands[0]) << " : "
             << a.elem.str();
        break;
      }
      case OpCategory::LocalLoad:
        out_ << n(op.result()) << " = " << k_.locals[op.local_array()].name << "#" << op.local_array() << "["
             << n(op.operands[0]) << "] : " << op.type.str();
        break;
      case OpCategory::LocalStore:
        out_ << k_.locals[op.local_array()].name << "#" << op.local_array() << "[" << n(op.operands[0])
             << "] = " << n(op.operands[1]) << " : " << k_.locals[op.local_array()].elem.str();
        break;
      case OpCategory::VecExtract:
      case OpCategory::MatColumn:
        out_ << n(op.result()) << " = " << oi.name << " " << n(op.operands[0]) << ", " << op.component() << " : "
             << op.type.str();
        break;
      case OpCategory::Math:
        out_ << n(op.result()) << " = " << oi.name << " " << list(op.operands);
        if (op.code == OpCode::ExtractBits || op.code == OpCode::InsertBits)
          out_ << " bits(" << op.bit_range().offset << ", " << op.bit_range().bits << ")";
        out_ << " : " << op.type.str();
        break;
      case OpCategory::Terminator:
        out_ << oi.name;
        if (!op.operands.empty()) out_ << " " << list(op.operands);
        out_ << "\n";
        return;
      default: out_ << n(op.result()) << " = " << oi.name << " " << list(op.operands) << " : " << op.type.str(); break;
    }
    loc(op);
    out_ << "\n";
  }

  const Kernel& k_;
  std::ostringstream out_;
};

}  // namespace

std::string print(const Kernel& k) { return Printer(k).run(); }

}  // namespace enigma
