#include "codegen/c_family.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_set>

#include "enigma/codegen/spelling.h"
#include "enigma/support/error.h"

namespace enigma {

namespace {
// Keywords and reserved names of C++, CUDA C++ and MSL a parameter could hit.
const std::unordered_set<std::string>& reserved() {
  static const std::unordered_set<std::string> words = {
      "alignas",     "alignof",    "and",          "asm",      "auto",        "bool",
      "break",       "case",       "catch",        "char",     "class",       "const",
      "constexpr",   "const_cast", "continue",     "decltype", "default",     "delete",
      "do",          "double",     "dynamic_cast", "else",     "enum",        "explicit",
      "export",      "extern",     "false",        "float",    "for",         "friend",
      "goto",        "if",         "inline",       "int",      "long",        "mutable",
      "namespace",   "new",        "noexcept",     "not",      "nullptr",     "operator",
      "or",          "private",    "protected",    "public",   "register",    "reinterpret_cast",
      "return",      "short",      "signed",       "sizeof",   "static",      "static_assert",
      "static_cast", "struct",     "switch",       "template", "this",        "throw",
      "true",        "try",        "typedef",      "typeid",   "typename",    "union",
      "unsigned",    "using",      "virtual",      "void",     "volatile",    "while",
      "xor",         "half",       "bfloat",       "uchar",    "ushort",      "uint",
      "ulong",       "kernel",     "device",       "constant", "threadgroup", "thread",
      "vertex",      "fragment",   "metal",        "std",      "min",         "max",
      "select",      "abs",        "dim3",         "blockIdx", "threadIdx",   "blockDim",
      "gridDim",     "warpSize",   "main",         "L",        "tg",          "lx",
      "ly",          "lz",         "as_type",      "INFINITY", "NAN"};
  return words;
}

// MSL's vector and matrix type names (float4, uint3, half2x2, ...).
bool is_msl_vector_type(const std::string& s) {
  for (const char* e :
       {"bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "half", "bfloat", "float"}) {
    std::string elem = e;
    if (s.size() <= elem.size() || s.compare(0, elem.size(), elem) != 0) continue;
    std::string rest = s.substr(elem.size());
    auto dim = [](char c) { return c >= '2' && c <= '4'; };
    if ((rest.size() == 1 && dim(rest[0])) || (rest.size() == 3 && dim(rest[0]) && rest[1] == 'x' && dim(rest[2])))
      return true;
  }
  return false;
}
}  // namespace

bool is_reserved_identifier(const std::string& s) {
  return reserved().count(s) || is_msl_vector_type(s) || s.rfind("en_", 0) == 0 || s.find("__") != std::string::npos;
}

namespace {
// Letters, digits and '_' kept (runs of '_' collapsed: "__" is reserved in
// C++), each byte of a non-ASCII character as xHH, anything else as '_'.
std::string identifier_chars(const std::string& name) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (char ch : name) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '_') {
      if (c != '_' || s.empty() || s.back() != '_') s += static_cast<char>(c);
    } else if (c >= 0x80) {
      s += 'x';
      s += hex[c >> 4];
      s += hex[c & 15];
    } else if (s.empty() || s.back() != '_') {
      s += '_';
    }
  }
  return s;
}
}  // namespace

std::string sanitize_identifier(const std::string& name) {
  std::string s = identifier_chars(name);
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) s = "p_" + s;
  // Emitter-owned prefixes, names with a numeric suffix (value names) and
  // double underscores (reserved in C++) get a prefix.
  bool numeric_suffix = false;
  size_t us = s.find_last_of('_');
  if (us != std::string::npos && us + 1 < s.size()) {
    numeric_suffix = true;
    for (size_t i = us + 1; i < s.size(); ++i) numeric_suffix &= std::isdigit(static_cast<unsigned char>(s[i])) != 0;
  }
  if (is_reserved_identifier(s) || numeric_suffix ||
      (s.size() > 1 && s[0] == 'v' && std::isdigit(static_cast<unsigned char>(s[1]))))
    s = "p_" + s;
  return s;
}

std::vector<std::string> unique_identifiers(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  std::unordered_set<std::string> used;
  for (const std::string& n : names) {
    std::string s = sanitize_identifier(n);
    // The suffix ends in a letter-led part, so it never looks like a value name.
    for (int k = 2; used.count(s); ++k) s = sanitize_identifier(n) + "_n" + std::to_string(k);
    used.insert(s);
    out.push_back(s);
  }
  return out;
}

std::string comment_text(const std::string& name) {
  std::string s;
  for (char ch : name) {
    if (s.size() >= 80) return s + "...";
    unsigned char c = static_cast<unsigned char>(ch);
    // No backslash (a line splice) and no '?' ("??'" is a trigraph to NVRTC,
    // "??/" a backslash where trigraphs are on).
    s += (c >= 0x20 && c < 0x7f && c != '\\' && c != '?') ? static_cast<char>(c) : '_';
  }
  return s;
}

CFamilyEmitter::CFamilyEmitter(const Kernel& k) : k_(k) {
  // Parameters and threadgroup arrays share one namespace in the generated code.
  std::vector<std::string> names;
  for (const Param& p : k.params) names.push_back(p.name);
  for (const ThreadgroupArray& a : k.tg_arrays) names.push_back(a.name);
  std::vector<std::string> unique = unique_identifiers(names);
  param_names_.assign(unique.begin(), unique.begin() + static_cast<long>(k.params.size()));
  tg_names_.assign(unique.begin() + static_cast<long>(k.params.size()), unique.end());
}

std::string CFamilyEmitter::name(ValueId v) const {
  const std::string& hint = k_.values.at(v).hint;
  if (hint.empty()) return "v" + std::to_string(v);
  std::string s = identifier_chars(hint);
  while (!s.empty() && s.back() == '_') s.pop_back();  // the id's '_' must not make "__"
  if (s.empty()) return "v" + std::to_string(v);
  // p_ is the parameters' prefix: a value named p_x_2 could meet parameter x_2.
  if (s.rfind("en_", 0) == 0 || s.rfind("p_", 0) == 0 || s.find("__") != std::string::npos ||
      std::isdigit(static_cast<unsigned char>(s[0])))
    s = "v_" + s;
  return s + "_" + std::to_string(v);
}

void CFamilyEmitter::line(const std::string& s) { out_ << std::string(indent_ * 2, ' ') << s << "\n"; }
void CFamilyEmitter::open(const std::string& s) {
  line(s + " {");
  ++indent_;
}
void CFamilyEmitter::close(const std::string& s) {
  --indent_;
  line(s);
}

std::string CFamilyEmitter::int_literal(Scalar t, int64_t v) const {
  const std::string ty = type(DType::scalar(t));
  if (t == Scalar::B1) return v ? "true" : "false";
  if (t == Scalar::U64) return "static_cast<" + ty + ">(" + std::to_string(static_cast<uint64_t>(v)) + "ull)";
  if (v == std::numeric_limits<int64_t>::min()) return "static_cast<" + ty + ">(-9223372036854775807ll - 1)";
  if (t == Scalar::I64) return "static_cast<" + ty + ">(" + std::to_string(v) + "ll)";
  if (t == Scalar::U32) return std::to_string(static_cast<uint32_t>(v)) + "u";
  if (t == Scalar::I32) {
    if (v == std::numeric_limits<int32_t>::min()) return "(-2147483647 - 1)";
    return std::to_string(v);
  }
  return "static_cast<" + ty + ">(" + std::to_string(v) + ")";
}

std::string CFamilyEmitter::finish(const DType& t, const std::string& e) const {
  // `e` may be a call (en_div(a, b)), so it is always parenthesised.
  if (t.is_scalar() && is_integer(t.elem) && info(t.elem).bits < 32) return "static_cast<" + type(t) + ">(" + e + ")";
  return e;
}

std::set<std::pair<ThreadQuery, int>> CFamilyEmitter::used_queries() const {
  std::set<std::pair<ThreadQuery, int>> used;
  walk(k_.body, [&](const Op& op) {
    if (op.code == OpCode::ThreadQuery) used.insert({op.query(), op.query_dim()});
  });
  return used;
}

static std::string substitute(const char* templ, const std::vector<std::string>& args) {
  std::string out;
  for (const char* p = templ; *p; ++p) {
    if (*p == '{' && p[1] >= '0' && p[1] <= '9' && p[2] == '}') {
      out += args.at(p[1] - '0');
      p += 2;
    } else {
      out += *p;
    }
  }
  return out;
}

std::string CFamilyEmitter::expr(const Op& op) {
  std::vector<std::string> a;
  for (ValueId v : op.operands) a.push_back(name(v));
  const OpInfo& oi = op.info();
  if (oi.category == OpCategory::Select && k_.type_of(op.operands[0]).is_vector())
    return vector_select(a[0], a[1], a[2]);
  switch (oi.category) {
    case OpCategory::Math:
    case OpCategory::MatMul:
    case OpCategory::VecMake:
    case OpCategory::VecExtract:
    case OpCategory::MatMake:
    case OpCategory::MatColumn: return lang_expr(op, a);
    case OpCategory::FuncConst: return function_constant(op);
    case OpCategory::LoadIf: return load_if(op);
    case OpCategory::LocalLoad: return local_load(op);
    case OpCategory::Constant: return constant(op);
    case OpCategory::Param: return param_name(op.param_index());
    case OpCategory::ThreadQuery: return query(op.query(), op.query_dim());
    case OpCategory::Load: return load(op);
    case OpCategory::Convert: return convert(k_.type_of(op.operands[0]), op.type, a[0]);
    case OpCategory::Bitcast: return bitcast(k_.type_of(op.operands[0]), op.type, a[0]);
    case OpCategory::Compare: {
      const DType& t = k_.type_of(op.operands[0]);
      CmpPred p = op.predicate();
      static const char* sym[] = {"==", "!=", "<", "<=", ">", ">=", "<", "<=", ">", ">="};
      std::string x = a[0], y = a[1];
      bool is_signed_pred = p >= CmpPred::Lt && p <= CmpPred::Ge;
      bool is_unsigned_pred = p >= CmpPred::Ult;
      if (t.is_integer() && is_signed_pred && is_unsigned_int(t.elem)) {
        std::string st = type(t.with_elem(signed_of(t.elem)));
        x = "static_cast<" + st + ">(" + x + ")";
        y = "static_cast<" + st + ">(" + y + ")";
      } else if (t.is_integer() && is_unsigned_pred && is_signed_int(t.elem)) {
        std::string ut = type(t.with_elem(unsigned_of(t.elem)));
        x = "static_cast<" + ut + ">(" + x + ")";
        y = "static_cast<" + ut + ">(" + y + ")";
      }
      return "(" + x + " " + sym[static_cast<int>(p)] + " " + y + ")";
    }
    case OpCategory::Arith:
      if (op.type.is_float()) {
        if (op.code == OpCode::Div) return finish(op.type, "(" + a[0] + " / " + a[1] + ")");
        if (op.code == OpCode::FloorDiv) return finish(op.type, float_floordiv(op.type, a[0], a[1]));
        if (op.code == OpCode::Rem) return finish(op.type, float_rem(op.type, a[0], a[1]));
      }
      [[fallthrough]];
    default: {
      std::string templ = oi.c_expr;
      if (templ.empty()) throw KernelError("internal: op '" + std::string(oi.name) + "' has no C spelling");
      // Helpers are named en_<op>; let the backend define or qualify them.
      size_t pos = templ.find("en_");
      if (pos != std::string::npos) {
        size_t end = templ.find('(', pos);
        std::string h = templ.substr(pos, end - pos);
        templ.replace(pos, end - pos, helper(h, op.type));
      }
      if (op.code == OpCode::Not && op.type.elem == Scalar::B1) templ = "(!{0})";
      return finish(op.type, substitute(templ.c_str(), a));
    }
  }
}

// ---- the per-thread language ------------------------------------------------------

std::string CFamilyEmitter::lang_expr(const Op& op, const std::vector<std::string>& args) {
  if (!supports_language())
    throw KernelError("kernel '" + k_.name + "': " + op.info().name + " is not supported by this backend yet");
  const std::string templ = op.info().c_expr;
  std::string out;
  for (size_t i = 0; i < templ.size();) {
    char c = templ[i];
    if (c == '{') {  // placeholder
      size_t end = templ.find('}', i);
      std::string key = templ.substr(i + 1, end - i - 1);
      if (key == "T") {
        out += type(op.type);
      } else if (key == "A" || key == "B") {
        int v = op.component();
        if (attr_kind(op.code) == AttrKind::BitRange) v = key == "A" ? op.bit_range().offset : op.bit_range().bits;
        out += std::to_string(v) + "u";
      } else if (key == "*") {
        for (size_t k = 0; k < args.size(); ++k) out += (k ? ", " : "") + args[k];
      } else {
        out += args.at(static_cast<size_t>(std::stoi(key)));
      }
      i = end + 1;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {  // a library call?
      size_t end = i;
      while (end < templ.size() && (std::isalnum(static_cast<unsigned char>(templ[end])) || templ[end] == '_')) ++end;
      std::string id = templ.substr(i, end - i);
      out += end < templ.size() && templ[end] == '(' ? library_function(id, op) : id;
      i = end;
    } else {
      out += c;
      ++i;
    }
  }
  return finish(op.type, out);
}

std::string spell_template(const char* c_expr, const std::string& prefix) {
  std::string t = c_expr, out;
  for (size_t i = 0; i < t.size();) {
    if (t[i] == '{') {
      size_t end = t.find('}', i);
      std::string key = t.substr(i + 1, end - i - 1);
      if (key == "*")
        out += "a, b, ...";
      else if (std::isdigit(static_cast<unsigned char>(key[0])))
        out += static_cast<char>('a' + std::stoi(key));
      else
        out += key;
      i = end + 1;
    } else if (std::isalpha(static_cast<unsigned char>(t[i])) || t[i] == '_') {
      size_t end = i;
      while (end < t.size() && (std::isalnum(static_cast<unsigned char>(t[end])) || t[end] == '_')) ++end;
      out += (end < t.size() && t[end] == '(' ? prefix : "") + t.substr(i, end - i);
      i = end;
    } else {
      out += t[i++];
    }
  }
  return out;
}

std::string CFamilyEmitter::function_constant(const Op& op) {
  throw KernelError("kernel '" + k_.name + "': function constant " + std::to_string(op.function_constant_index()) +
                    " has no value: this backend needs the kernel specialised with constants= first");
}

static KernelError unsupported(const Kernel& k, const Op& op) {
  return KernelError("kernel '" + k.name + "': " + op.info().name + " is not supported by this backend yet");
}
std::string CFamilyEmitter::load_if(const Op& op) { throw unsupported(k_, op); }
void CFamilyEmitter::local_alloc(const Op& op) { throw unsupported(k_, op); }
std::string CFamilyEmitter::local_load(const Op& op) { throw unsupported(k_, op); }
void CFamilyEmitter::local_store(const Op& op) { throw unsupported(k_, op); }

std::string CFamilyEmitter::local_name(int64_t i) const { return "en_reg" + std::to_string(i); }

void CFamilyEmitter::fill_local_array(const Op& op, const std::string& elem_type, const std::string& index_type,
                                      const std::string& size_suffix, bool declare, std::string element) {
  const LocalArray& a = k_.locals.at(static_cast<size_t>(op.local_array()));
  const std::string n = local_name(op.local_array()), size = std::to_string(a.size);
  if (declare) line(elem_type + " " + n + "[" + size + "];  // " + comment_text(a.name));
  if (element.empty()) element = n + "[en_k]";
  line("for (" + index_type + " en_k = 0; en_k < " + size + size_suffix + "; ++en_k) " + element + " = " +
       name(op.operands[0]) + ";");
}

const Op* CFamilyEmitter::constant_def(ValueId v) const {
  if (const_defs_.empty()) {
    const_defs_.assign(k_.values.size() + 1, nullptr);
    walk(k_.body, [&](const Op& o) {
      if (o.code == OpCode::Constant) const_defs_[o.result()] = &o;
    });
  }
  return v < const_defs_.size() ? const_defs_[v] : nullptr;
}

std::string CFamilyEmitter::local_index(const Op& op, const std::string& clamp_fn) {
  const LocalArray& a = k_.locals.at(static_cast<size_t>(op.local_array()));
  ValueId idx = op.operands[0];
  if (const Op* c = constant_def(idx)) {
    uint64_t u = static_cast<uint64_t>(c->value.i);
    if (is_signed_int(c->type.elem) && c->value.i < 0) u = ~uint64_t{0};
    return std::to_string(u < static_cast<uint64_t>(a.size) ? u : static_cast<uint64_t>(a.size - 1));
  }
  return clamp_fn + "(" + name(idx) + ", " + std::to_string(a.size) + "u)";
}

// ---- checked memory ---------------------------------------------------------

std::string CFamilyEmitter::mem_length(int64_t mem) const {
  if (is_threadgroup_memory(mem)) return std::to_string(k_.tg_arrays.at(threadgroup_array_index(mem)).size) + "u";
  return "en_len" + std::to_string(mem);
}

std::string CFamilyEmitter::report_oob(int64_t, const std::string&, Access) {
  throw KernelError("internal: kernel '" + k_.name + "': this backend cannot report out-of-bounds accesses");
}

std::string CFamilyEmitter::bounds_check(int64_t mem, ValueId index, int lanes, Access access,
                                         const std::string& mask) {
  if (!check_memory_) return "";
  // A constant index into a threadgroup array (sizes are known) needs no check.
  if (is_threadgroup_memory(mem)) {
    if (const Op* c = constant_def(index)) {
      uint64_t size = k_.tg_arrays.at(threadgroup_array_index(mem)).size;
      bool negative = is_signed_int(c->type.elem) && c->value.i < 0;
      uint64_t u = static_cast<uint64_t>(c->value.i);
      if (!negative && u <= size && static_cast<uint64_t>(lanes) <= size - u) return "";
    }
  }
  const std::string u64 = type(DType::scalar(Scalar::U64));
  return bounds_check_expr(mem, "static_cast<" + u64 + ">(" + name(index) + ")", lanes, access, mask);
}

std::string CFamilyEmitter::bounds_check_expr(int64_t mem, const std::string& index64, int lanes, Access access,
                                              const std::string& mask) {
  if (!check_memory_) return "";
  const std::string u64 = type(DType::scalar(Scalar::U64));
  const std::string n = std::to_string(check_counter_++);
  const std::string idx = "en_ix" + n, ok = "en_ok" + n;
  line("const " + u64 + " " + idx + " = " + index64 + ";");
  const std::string len = mem_length(mem);
  // Written so that no sum can wrap: idx + lanes <= len.
  std::string cond = lanes == 1 ? idx + " < " + len
                                : "(" + len + " >= " + std::to_string(lanes) + "u && " + idx + " <= " + len + " - " +
                                      std::to_string(lanes) + "u)";
  line("const bool " + ok + " = " + cond + ";");
  if (access != kLoad || report_loads_) {
    std::string when = "!" + ok;
    if (!mask.empty()) when = "(" + mask + ") && " + when;
    line("if (" + when + ") { " + report_oob(mem, idx, access) + " }");
  }
  return ok;
}

void CFamilyEmitter::op(const Op& op) {
  if (special(op)) return;
  switch (op.info().category) {
    case OpCategory::Store: store(op); return;
    case OpCategory::LocalAlloc: local_alloc(op); return;
    case OpCategory::LocalStore: local_store(op); return;
    case OpCategory::For: for_op(op); return;
    case OpCategory::If: if_op(op); return;
    case OpCategory::While: while_op(op); return;
    case OpCategory::Terminator: return;  // handled by the owner
    default: break;
  }
  line("const " + type(op.type) + " " + name(op.result()) + " = " + expr(op) + ";");
}

void CFamilyEmitter::region(const Region& r) {
  for (const Op& op : r.ops) this->op(op);
}

std::vector<std::string> CFamilyEmitter::declare_carried(const Op& op, const std::vector<ValueId>& inits) {
  // Loop results live in mutable variables named after the results.
  std::vector<std::string> vars;
  for (size_t i = 0; i < op.results.size(); ++i) {
    std::string v = name(op.results[i]);
    line(type(k_.type_of(op.results[i])) + " " + v + " = " + name(inits[i]) + ";");
    vars.push_back(v);
  }
  return vars;
}

void CFamilyEmitter::bind_args(const Region& r, const std::vector<std::string>& vars) {
  // Copies, so yields that read other carried values see this iteration's.
  size_t first = r.args.size() - vars.size();
  std::set<ValueId> used;  // a carried value the region never reads is marked, for NVRTC's warnings
  walk(r, [&](const Op& o) { used.insert(o.operands.begin(), o.operands.end()); });
  for (size_t i = 0; i < vars.size(); ++i) {
    ValueId a = r.args[first + i];
    line("const " + type(k_.type_of(a)) + " " + name(a) + " = " + vars[i] + ";" +
         (used.count(a) ? "" : " (void)" + name(a) + ";"));
  }
}

void CFamilyEmitter::assign_yield(const Region& r, const std::vector<std::string>& vars) {
  const Op& y = r.ops.back();
  for (size_t i = 0; i < vars.size(); ++i) line(vars[i] + " = " + name(y.operands[i]) + ";");
}

void CFamilyEmitter::for_op(const Op& op) {
  const Region& body = op.regions[0];
  std::vector<ValueId> inits(op.operands.begin() + 3, op.operands.end());
  std::vector<std::string> vars = declare_carried(op, inits);
  const DType& ivt = k_.type_of(body.args[0]);
  std::string iv = name(body.args[0]);
  std::string lo = name(op.operands[0]), hi = name(op.operands[1]), step = name(op.operands[2]);
  // A constant step picks the comparison at compile time.
  std::string cond;
  const Op* step_def = nullptr;
  std::vector<const Region*> scope{&k_.body};
  walk(k_.body, [&](const Op& o) {
    if (o.code == OpCode::Constant && o.result() == op.operands[2]) step_def = &o;
  });
  bool signed_iv = is_signed_int(ivt.elem);
  if (step_def) {
    cond = (signed_iv && step_def->value.i < 0) ? iv + " > " + hi : iv + " < " + hi;
  } else if (signed_iv) {
    cond = "(" + step + " > 0) ? (" + iv + " < " + hi + ") : (" + step + " < 0 && " + iv + " > " + hi + ")";
  } else {
    cond = step + " != 0 && " + iv + " < " + hi;
  }
  std::string t = type(ivt);
  open("for (" + t + " " + iv + " = " + lo + "; " + cond + "; " + iv + " = " +
       finish(ivt, "(" + iv + " + " + step + ")") + ")");
  bind_args(body, vars);
  region(body);
  assign_yield(body, vars);
  close();
}

void CFamilyEmitter::if_op(const Op& op) {
  std::vector<std::string> vars;
  for (ValueId r : op.results) {
    vars.push_back(name(r));
    line(type(k_.type_of(r)) + " " + vars.back() + ";");
  }
  open("if (" + name(op.operands[0]) + ")");
  region(op.regions[0]);
  assign_yield(op.regions[0], vars);
  const Region& els = op.regions[1];
  if (els.ops.size() > 1 || !vars.empty()) {
    close("} else {");
    ++indent_;
    region(els);
    assign_yield(els, vars);
  }
  close();
}

void CFamilyEmitter::while_op(const Op& op) {
  std::vector<std::string> vars = declare_carried(op, op.operands);
  open("while (true)");
  const Region& cond = op.regions[0];
  bind_args(cond, vars);
  region(cond);
  line("if (!" + name(cond.ops.back().operands[0]) + ") break;");
  bind_args(op.regions[1], vars);
  region(op.regions[1]);
  assign_yield(op.regions[1], vars);
  close();
}

std::string FloatRegisterEmitter::float_floordiv(const DType& t, const std::string& a, const std::string& b) {
  if (t.is_vector()) return "en_floor(" + a + " / " + b + ")";
  return scalar_math("floor") + "(" + a + " / " + b + ")";
}

std::string FloatRegisterEmitter::float_rem(const DType& t, const std::string& a, const std::string& b) {
  if (t.is_vector()) return "en_fmod(" + a + ", " + b + ")";
  return scalar_math("fmod") + "(" + a + ", " + b + ")";
}

std::string FloatRegisterEmitter::library_function(const std::string& fn, const Op& op) {
  Scalar e = op.operands.empty() ? op.type.elem : k_.type_of(op.operands[0]).elem;
  if (const char* s = spelling_exception(spelling_backend(), fn, e)) return s;
  return "en_" + fn;
}

std::string FloatRegisterEmitter::combine_scalars(CollectiveInfo::Kind k, const DType& t, const std::string& a,
                                                  const std::string& b) const {
  using K = CollectiveInfo::Kind;
  const std::string T = type(t);
  switch (k) {
    case K::Sum: return "static_cast<" + T + ">(" + a + " + " + b + ")";
    case K::Product: return "static_cast<" + T + ">(" + a + " * " + b + ")";
    case K::Min:
      return t.is_float() ? scalar_math("fmin") + "(" + a + ", " + b + ")"
                          : "(" + b + " < " + a + " ? " + b + " : " + a + ")";
    case K::Max:
      return t.is_float() ? scalar_math("fmax") + "(" + a + ", " + b + ")"
                          : "(" + a + " < " + b + " ? " + b + " : " + a + ")";
    case K::And: return "static_cast<" + T + ">(" + a + " & " + b + ")";
    case K::Or: return "static_cast<" + T + ">(" + a + " | " + b + ")";
    case K::Xor: return "static_cast<" + T + ">(" + a + " ^ " + b + ")";
    default: return a;
  }
}

std::string FloatRegisterEmitter::flat_index_query(ThreadQuery q, const std::string& flat) {
  switch (q) {
    case ThreadQuery::ThreadIndexInThreadgroup: return flat;
    case ThreadQuery::ThreadIndexInSimdgroup: return "(" + flat + " & 31u)";
    case ThreadQuery::SimdgroupIndexInThreadgroup: return "(" + flat + " >> 5)";
    case ThreadQuery::ThreadsPerSimdgroup: return "32u";
    case ThreadQuery::SimdgroupsPerThreadgroup: return "((en_ex * en_ey * en_ez + 31u) >> 5)";
    default: return "0u";
  }
}

const char* register_scalar_type(Scalar s, const std::array<const char*, 8>& ints) {
  if (s == Scalar::B1) return "bool";
  if (is_integer(s)) return ints[static_cast<size_t>(s) - static_cast<size_t>(Scalar::I8)];
  return "float";
}

std::string FloatRegisterEmitter::memory_type(Scalar s) const {
  return scalar_type(s == Scalar::F16 || s == Scalar::BF16 ? Scalar::U16 : s);
}

std::string FloatRegisterEmitter::memory_type(const DType& t) const {
  if (t.is_vector()) return vector_of(memory_type(t.elem), t.lanes);
  return memory_type(t.elem);
}

std::string FloatRegisterEmitter::from_memory(Scalar s, const std::string& x) {
  if (s == Scalar::F16) return "en_h2f(" + x + ")";
  if (s == Scalar::BF16) return "en_b2f(" + x + ")";
  return x;
}

std::string FloatRegisterEmitter::to_memory(Scalar s, const std::string& x) {
  if (s == Scalar::F16) return "en_f2h(" + x + ")";
  if (s == Scalar::BF16) return "en_f2b(" + x + ")";
  return x;
}

std::string FloatRegisterEmitter::type(const DType& t) const {
  if (t.is_vector()) return vector_of(scalar_type(t.elem), t.lanes);
  if (t.is_matrix())
    return "en_mat<" + std::string(scalar_type(t.elem)) + ", " + std::to_string(t.cols) + ", " +
           std::to_string(t.rows) + ">";
  return scalar_type(t.elem);
}

std::string FloatRegisterEmitter::constant(const Op& op) const {
  if (op.type.is_float()) {
    double v = op.value.f;
    if (std::isnan(v)) return "en_f32_bits(0x7fc00000u)";
    if (std::isinf(v)) return v > 0 ? "en_f32_bits(0x7f800000u)" : "en_f32_bits(0xff800000u)";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9gf", v);
    std::string s = buf;
    if (s.find_first_of(".e") == std::string::npos) s.insert(s.size() - 1, ".0");
    return s;
  }
  return int_literal(op.type.elem, op.value.i);
}

std::string FloatRegisterEmitter::finish(const DType& t, const std::string& e) const {
  if (t.elem == Scalar::F16) return "en_rh(" + e + ")";
  if (t.elem == Scalar::BF16) return "en_rb(" + e + ")";
  return CFamilyEmitter::finish(t, e);
}

}  // namespace enigma
