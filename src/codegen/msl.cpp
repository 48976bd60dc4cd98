// Metal Shading Language. Readable output: the user's parameter names, values
// named after the user's variables where known, one statement a line.
//
// Every backend computes the same results (docs/semantics.md), so the MSL
// never relies on what Metal leaves undefined or unspecified:
//  - integer division, remainder and shifts go through en_* helpers, emitted
//    only when used, with the results of src/semantics/numbers.h;
//  - float -> integer conversion saturates (en_sat_*), NaN gives 0;
//  - signed add/sub/mul/neg that could overflow compute in unsigned (wraps);
//  - bfloat arithmetic and comparisons, and half division, compute in float
//    and round once, exactly as the CPU backend does; 16-bit floats convert
//    to and from anything but float through float.
// Library functions are called as metal::name so no parameter can hide them.
// tests/msl/metal_stdlib declares exactly what this file may use.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <set>
#include <vector>

#include "codegen/c_family.h"
#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/support/error.h"

namespace enigma {

namespace {

bool is_16bit_float(Scalar s) { return s == Scalar::F16 || s == Scalar::BF16; }

std::string msl_type(const DType& t) {
  std::string e = info(t.elem).metal_name;
  switch (t.kind) {
    case DType::Kind::Scalar: return e;
    case DType::Kind::Vector: return e + std::to_string(t.lanes);
    case DType::Kind::SimdMatrix: return "simdgroup_" + e + "8x8";
    case DType::Kind::Matrix: return e + std::to_string(t.cols) + "x" + std::to_string(t.rows);
    case DType::Kind::Void: return "void";
  }
  return "?";
}

// "(a + b)" -> "a + b", for use inside a call's parentheses.
std::string unparen(const std::string& e) {
  if (e.size() < 2 || e.front() != '(' || e.back() != ')') return e;
  int depth = 0;
  for (size_t i = 0; i + 1 < e.size(); ++i) {
    if (e[i] == '(') ++depth;
    if (e[i] == ')') --depth;
    if (depth == 0) return e;  // the first '(' closes before the end
  }
  return e.substr(1, e.size() - 2);
}

std::string int_literal_64(Scalar t, int64_t v) {
  // l / ul: MSL's long is 64 bits (long long is not an MSL type).
  if (t == Scalar::U64) return std::to_string(static_cast<uint64_t>(v)) + "ul";
  if (v == std::numeric_limits<int64_t>::min()) return "(-9223372036854775807l - 1l)";
  return std::to_string(v) + "l";
}

// A power of two as an exact float literal: the bounds of saturation.
std::string pow2_literal(int n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1ff", std::ldexp(1.0, n));
  return buf;
}

struct QuerySpelling {
  const char* var;
  const char* attribute;
  bool vector;
};

QuerySpelling spelling(ThreadQuery q) {
  switch (q) {
    case ThreadQuery::ThreadPositionInGrid: return {"en_tpig", "thread_position_in_grid", true};
    case ThreadQuery::ThreadPositionInThreadgroup: return {"en_tpitg", "thread_position_in_threadgroup", true};
    case ThreadQuery::ThreadgroupPositionInGrid: return {"en_tgpig", "threadgroup_position_in_grid", true};
    case ThreadQuery::ThreadsPerThreadgroup: return {"en_tptg", "threads_per_threadgroup", true};
    case ThreadQuery::ThreadsPerGrid:
    case ThreadQuery::GridSize: return {"en_tpg", "threads_per_grid", true};
    case ThreadQuery::ThreadgroupsPerGrid: return {"en_tgpg", "threadgroups_per_grid", true};
    case ThreadQuery::ThreadIndexInThreadgroup: return {"en_tiitg", "thread_index_in_threadgroup", false};
    case ThreadQuery::ThreadIndexInSimdgroup: return {"en_tiisg", "thread_index_in_simdgroup", false};
    case ThreadQuery::SimdgroupIndexInThreadgroup: return {"en_sgitg", "simdgroup_index_in_threadgroup", false};
    case ThreadQuery::ThreadsPerSimdgroup: return {"en_tpsg", "threads_per_simdgroup", false};
    case ThreadQuery::SimdgroupsPerThreadgroup: return {"en_sgptg", "simdgroups_per_threadgroup", false};
  }
  return {"?", "?", false};
}

// Async copies go through the AIR intrinsics (M3+); declared only when used.
const char* const kAsyncPreamble = R"(struct _enigma_async_event_t;
thread _enigma_async_event_t* _enigma_async_copy_1d_d2t(ulong, ulong, threadgroup void*, const device void*, ulong)
    __asm("air.simdgroup_async_copy_1d.p3i8.p1i8");
thread _enigma_async_event_t* _enigma_async_copy_1d_t2d(ulong, ulong, device void*, const threadgroup void*, ulong)
    __asm("air.simdgroup_async_copy_1d.p1i8.p3i8");
thread _enigma_async_event_t* _enigma_async_copy_2d_d2t(ulong, ulong, threadgroup void*, ulong, ulong, ulong2,
    const device void*, ulong, ulong, ulong2, long2, int) __asm("air.simdgroup_async_copy_2d.p3i8.p1i8");
thread _enigma_async_event_t* _enigma_async_copy_2d_t2d(ulong, ulong, device void*, ulong, ulong, ulong2,
    const threadgroup void*, ulong, ulong, ulong2, long2, int) __asm("air.simdgroup_async_copy_2d.p1i8.p3i8");
void _enigma_async_wait(int, thread _enigma_async_event_t**) __asm("air.wait_simdgroup_events");
)";

class MslEmitter : public CFamilyEmitter {
 public:
  MslEmitter(const Kernel& k, const MslEmitOptions& o) : CFamilyEmitter(k) {
    check_memory_ = o.bounds_check || o.debug;
    report_loads_ = o.debug;
  }

  std::string run() {
    // The body first: it discovers which helpers the file needs.
    indent_ = 1;
    region(k_.body);
    std::string body = out_.str();
    out_.str("");

    MslVersion v = msl_language_version(k_);
    std::ostringstream file;
    file << "// Generated by Enigma: kernel '" << comment_text(k_.name) << "'.\n";
    file << "// Needs Metal Shading Language " << v.major << "." << v.minor << (v.minor == 1 ? " (bfloat)" : "")
         << ".\n";
    file << "#include <metal_stdlib>\n";
    if (uses_matrices_) file << "#include <metal_simdgroup_matrix>\n";
    file << "using namespace metal;\n\n";
    if (uses_async_) file << kAsyncPreamble << "\n";
    for (const std::string& h : helpers_) file << h << "\n";
    file << function_constant_declarations();
    file << "kernel void " << msl_entry_name(k_) << "(";
    std::vector<std::string> params;
    for (size_t i = 0; i < k_.params.size(); ++i) {
      const Param& p = k_.params[i];
      const std::string& n = param_name(static_cast<int>(i));
      std::string slot = " [[buffer(" + std::to_string(i) + ")]]";
      if (p.kind == Param::Kind::Buffer)
        params.push_back((p.written ? "device " : "const device ") + msl_type(p.type) + "* " + n + slot);
      else
        params.push_back("constant " + msl_type(p.type) + "& " + n + slot);
    }
    if (check_memory_) {
      params.push_back("constant ulong* en_lens [[buffer(" + std::to_string(k_.params.size()) + ")]]");
      params.push_back("device atomic_uint* en_err [[buffer(" + std::to_string(k_.params.size() + 1) + ")]]");
    }
    std::set<std::string> declared;
    auto queries = used_queries();
    if (uses_lane_) queries.insert({ThreadQuery::ThreadIndexInSimdgroup, 0});
    if (uses_position_) queries.insert({ThreadQuery::ThreadPositionInGrid, 0});
    for (const auto& [q, dim] : queries) {
      QuerySpelling s = spelling(q);
      if (!declared.insert(s.var).second) continue;
      params.push_back(std::string(s.vector ? "uint3 " : "uint ") + s.var + " [[" + s.attribute + "]]");
    }
    for (size_t i = 0; i < params.size(); ++i) file << (i ? ",\n    " : "\n    ") << params[i];
    file << ") {\n";
    // MSL allows threadgroup arrays only at kernel scope: all are hoisted here.
    for (size_t i = 0; i < k_.tg_arrays.size(); ++i) {
      const ThreadgroupArray& a = k_.tg_arrays[i];
      // Arrays read or written as vectors need the vector's alignment.
      file << "  " << (vec_tg_.count(i) ? "alignas(16) " : "") << "threadgroup " << msl_type(a.type) << " "
           << tg_name(i) << "[" << a.size << "];\n";
    }
    file << body << "}\n";
    return file.str();
  }

 protected:
  std::string type(const DType& t) const override { return msl_type(t); }

  std::string constant(const Op& op) const override {
    const Scalar s = op.type.elem;
    if (!op.type.is_float()) {
      if (s == Scalar::I64 || s == Scalar::U64) return int_literal_64(s, op.value.i);
      return int_literal(s, op.value.i);
    }
    const double f = op.value.f;
    const std::string t = msl_type(op.type);
    if (std::isnan(f)) {
      // The NaN the CPU backend stores for each type, bit for bit.
      if (s == Scalar::F16) return "as_type<half>(ushort(0x7e00))";
      if (s == Scalar::BF16) return "as_type<bfloat>(ushort(0x7fc0))";
      return "as_type<float>(0x7fc00000u)";
    }
    std::string v;
    if (std::isinf(f)) {
      v = f > 0 ? "INFINITY" : "-INFINITY";
    } else {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", f);  // round-trips a float exactly
      v = buf;
      if (v.find_first_of(".e") == std::string::npos) v += ".0";
      v += "f";
    }
    if (s == Scalar::F32) return v;
    return t + "(" + v + ")";  // the value is exact in the 16-bit type
  }

  std::string query(ThreadQuery q, int dim) override {
    QuerySpelling s = spelling(q);
    if (!s.vector) return s.var;
    return std::string(s.var) + "." + "xyz"[dim];
  }

  std::string tg_name(size_t i) const { return tg_array_name(i); }
  std::string mem(int64_t m) const {
    return is_threadgroup_memory(m) ? tg_name(threadgroup_array_index(m)) : param_name(static_cast<int>(m));
  }
  std::string space(int64_t m) const { return is_threadgroup_memory(m) ? "threadgroup" : "device"; }

  // The zero of a scalar or vector type (bfloat converts only from float).
  static std::string zero(const DType& t) {
    return msl_type(t) + (t.is_float() ? "(0.0f)" : t.elem == Scalar::B1 ? "(false)" : "(0)");
  }

  // ---- checked memory: lengths from en_lens, the record in en_err ----
  std::string mem_length(int64_t m) const override {
    if (is_threadgroup_memory(m)) return CFamilyEmitter::mem_length(m);
    return "en_lens[" + std::to_string(m) + "]";
  }
  std::string report_oob(int64_t m, const std::string& index, Access access) override {
    uses_position_ = true;
    return "if (metal::atomic_exchange_explicit(&en_err[0], 1u, memory_order_relaxed) == 0u) { device uint* en_r = "
           "reinterpret_cast<device uint*>(en_err); en_r[1] = uint(" +
           std::to_string(m) + "); en_r[2] = uint(" + index + "); en_r[3] = uint(" + index +
           " >> 32); en_r[4] = " + std::to_string(static_cast<int>(access)) +
           "u; en_r[5] = en_tpig.x; en_r[6] = en_tpig.y; en_r[7] = en_tpig.z; }";
  }

  // A vector access (load_vec/store_vec) when the value's type is not the
  // memory's element type; the layout path proved the element index aligned.
  std::string load(const Op& op) override {
    const bool vec = op.type != k_.memory_type(op.memory());
    std::string ok = bounds_check(op.memory(), op.operands[0], vec ? op.type.lanes : 1, kLoad);
    std::string at = mem(op.memory()) + "[" + name(op.operands[0]) + "]";
    if (vec) {
      if (is_threadgroup_memory(op.memory())) vec_tg_.insert(threadgroup_array_index(op.memory()));
      at = "*reinterpret_cast<const " + space(op.memory()) + " " + msl_type(op.type) + "*>(&" + at + ")";
    }
    return ok.empty() ? at : "(" + ok + " ? " + at + " : " + zero(op.type) + ")";
  }

  void store(const Op& op) override {
    std::string at = mem(op.memory()) + "[" + name(op.operands[0]) + "]";
    const DType vt = k_.type_of(op.operands[1]);
    std::string ok =
        bounds_check(op.memory(), op.operands[0], vt != k_.memory_type(op.memory()) ? vt.lanes : 1, kStore);
    if (vt != k_.memory_type(op.memory()) && is_threadgroup_memory(op.memory()))
      vec_tg_.insert(threadgroup_array_index(op.memory()));
    if (vt != k_.memory_type(op.memory()))
      at = "*reinterpret_cast<" + space(op.memory()) + " " + msl_type(vt) + "*>(&" + at + ")";
    line((ok.empty() ? "" : "if (" + ok + ") ") + at + " = " + name(op.operands[1]) + ";");
  }

  // Simdgroup matrices and async copies check their whole range first: a
  // tile or copy that is not entirely in bounds takes an element loop
  // instead, run by each thread: it reports the first offending element; a
  // tile then loads as zeros or is not stored (docs/metal.md), a copy copies
  // its in-bounds elements (source elements out of bounds read 0).
  // The tile's element (en_r, en_c) at origin `o`, `p` elements per row.
  static std::string tile_offset(const Op& op, const std::string& o, const std::string& p) {
    return op.transposed() ? o + " + en_c * " + p + " + en_r" : o + " + en_r * " + p + " + en_c";
  }

  // Opens `if (<tile in bounds>) {`; the caller emits the fast form, then
  // calls tile_fallback() for the else branch.
  void tile_open(const Op& op, size_t origin, size_t epr) {
    line("const ulong en_o" + std::to_string(temp_) + " = ulong(" + name(op.operands[origin]) + "), en_p" +
         std::to_string(temp_) + " = ulong(" + name(op.operands[epr]) + ");");
    const std::string o = "en_o" + std::to_string(temp_), p = "en_p" + std::to_string(temp_);
    const std::string last = o + " + 7ul * " + p + " + 7ul";
    open("if (" + last + " >= " + o + " && " + last + " < " + mem_length(op.memory()) + ")");
  }
  void tile_fallback(const Op& op, Access access) {
    const std::string o = "en_o" + std::to_string(temp_), p = "en_p" + std::to_string(temp_);
    ++temp_;
    close("} else {");
    ++indent_;
    if (access == kStore || report_loads_) {
      open("for (ulong en_r = 0; en_r < 8ul; ++en_r) for (ulong en_c = 0; en_c < 8ul; ++en_c)");
      bounds_check_expr(op.memory(), tile_offset(op, o, p), 1, access);
      close();
    }
  }

  // dst[d + i] = src[s + i] for i < n by this thread, checked element by element.
  void copy_elements(const Op& op, const std::string& d, const std::string& s, const std::string& n) {
    const std::string dl = mem_length(op.copy_destination());
    open("");
    line("const ulong en_cd = " + d + ", en_cs = " + s + ", en_cn = " + n + ";");
    line("const ulong en_cin = en_cd < " + dl + " ? metal::min(en_cn, " + dl + " - en_cd) : 0ul;");
    line("if (en_cin < en_cn) { " + report_oob(op.copy_destination(), "(en_cd + en_cin)", kStore) + " }");
    open("for (ulong en_k = 0; en_k < en_cin; ++en_k)");
    std::string ok = bounds_check_expr(op.copy_source(), "en_cs + en_k", 1, kLoad);
    line(mem(op.copy_destination()) + "[en_cd + en_k] = " + ok + " ? " + mem(op.copy_source()) +
         "[en_cs + en_k] : " + zero(k_.memory_type(op.copy_destination())) + ";");
    close();
    close();
  }
  // Whether [off, off + n) lies in memory `m` (no sum wraps).
  std::string range_ok(int64_t m, const std::string& off, const std::string& n) {
    const std::string len = mem_length(m);
    return "(" + n + " <= " + len + " && " + off + " <= " + len + " - " + n + ")";
  }

  // ---- cooperative ops (the Metal spellings; other backends differ) ----
  bool special(const Op& op) override {
    const OpCategory cat = op.info().category;
    auto n = [&](size_t i) { return name(op.operands[i]); };
    switch (cat) {
      case OpCategory::Barrier: {
        std::string f;
        switch (op.mem_flags()) {
          case kMemNone: f = "mem_flags::mem_none"; break;
          case kMemDevice: f = "mem_flags::mem_device"; break;
          case kMemThreadgroup: f = "mem_flags::mem_threadgroup"; break;
          case kMemTexture: f = "mem_flags::mem_texture"; break;
          default: f = "mem_flags::mem_device | mem_flags::mem_threadgroup"; break;
        }
        line(std::string(op.code == OpCode::Barrier ? "metal::threadgroup_barrier(" : "metal::simdgroup_barrier(") + f +
             ");");
        return true;
      }
      case OpCategory::GroupReduce:
      case OpCategory::GroupScan:
        line("const " + msl_type(op.type) + " " + name(op.result()) + " = metal::" + op.info().name + "(" + n(0) +
             ");");
        return true;
      case OpCategory::GroupShuffle:
        line("const " + msl_type(op.type) + " " + name(op.result()) + " = " + shuffle_helper(op) + "(" + n(0) + ", " +
             n(1) + ", en_tiisg);");
        return true;
      case OpCategory::Atomic: atomic(op); return true;
      case OpCategory::MatrixLoad:
        uses_matrices_ = true;
        line(msl_type(op.type) + " " + name(op.result()) + ";");
        if (check_memory_) tile_open(op, 0, 1);
        line("metal::simdgroup_load(" + name(op.result()) + ", &" + mem(op.memory()) + "[" + n(0) + "], " + n(1) +
             ", ulong2(0ul, 0ul), " + (op.transposed() ? "true" : "false") + ");");
        if (check_memory_) {
          tile_fallback(op, kLoad);
          const std::string e = info(op.type.elem).metal_name;
          line(name(op.result()) + " = metal::make_filled_simdgroup_matrix<" + e + ", 8, 8>(" +
               zero(DType::scalar(op.type.elem)) + ");");
          close();
        }
        return true;
      case OpCategory::MatrixStore:
        uses_matrices_ = true;
        if (check_memory_) tile_open(op, 1, 2);
        line("metal::simdgroup_store(" + n(0) + ", &" + mem(op.memory()) + "[" + n(1) + "], " + n(2) +
             ", ulong2(0ul, 0ul), " + (op.transposed() ? "true" : "false") + ");");
        if (check_memory_) {
          tile_fallback(op, kStore);
          close();
        }
        return true;
      case OpCategory::MatrixFill:
        uses_matrices_ = true;
        line(msl_type(op.type) + " " + name(op.result()) + " = metal::make_filled_simdgroup_matrix<" +
             info(op.type.elem).metal_name + ", 8, 8>(" + n(0) + ");");
        return true;
      case OpCategory::MatrixMma:
        uses_matrices_ = true;
        line(msl_type(op.type) + " " + name(op.result()) + ";");
        line("metal::simdgroup_multiply_accumulate(" + name(op.result()) + ", " + n(0) + ", " + n(1) + ", " + n(2) +
             ");");
        return true;
      case OpCategory::AsyncCopy: {
        uses_async_ = true;
        bool d2t = is_threadgroup_memory(op.copy_destination());
        std::string T = msl_type(k_.memory_type(op.copy_destination()));
        std::string dst = "(" + space(op.copy_destination()) + " void*)(" + mem(op.copy_destination()) + " + ";
        std::string src = "(const " + space(op.copy_source()) + " void*)(" + mem(op.copy_source()) + " + ";
        std::string call;
        // Checked: a copy not entirely in bounds is issued empty (for its
        // event) and done element by element by this thread instead.
        std::string ok;
        if (check_memory_) {
          ok = "en_cok" + std::to_string(temp_++);
          if (op.code == OpCode::AsyncCopy1D) {
            line("const bool " + ok + " = " +
                 range_ok(op.copy_destination(), "ulong(" + n(0) + ")", "ulong(" + n(2) + ")") + " && " +
                 range_ok(op.copy_source(), "ulong(" + n(1) + ")", "ulong(" + n(2) + ")") + ";");
          } else {  // rows of cols elements; the last row starts at offset + (rows - 1) * pitch
            auto last = [&](size_t off, size_t pitch) {
              return "(ulong(" + n(off) + ") + (ulong(" + n(5) + ") - 1ul) * ulong(" + n(pitch) + "))";
            };
            line("const bool " + ok + " = ulong(" + n(5) + ") == 0ul || (" +
                 range_ok(op.copy_destination(), last(0, 1), "ulong(" + n(4) + ")") + " && " +
                 range_ok(op.copy_source(), last(2, 3), "ulong(" + n(4) + ")") + ");");
          }
        }
        auto count = [&](const std::string& c) {
          return ok.empty() ? "ulong(" + c + ")" : "(" + ok + " ? ulong(" + c + ") : 0ul)";
        };
        if (op.code == OpCode::AsyncCopy1D) {
          call = std::string(d2t ? "_enigma_async_copy_1d_d2t" : "_enigma_async_copy_1d_t2d") + "(sizeof(" + T +
                 "), alignof(" + T + "), " + dst + n(0) + "), " + src + n(1) + "), " + count(n(2)) + ")";
        } else {
          std::string tile = "ulong2(" + count(n(4)) + ", " + count(n(5)) + ")";
          call = std::string(d2t ? "_enigma_async_copy_2d_d2t" : "_enigma_async_copy_2d_t2d") + "(sizeof(" + T +
                 "), alignof(" + T + "), " + dst + n(0) + "), ulong(" + n(1) + "), 1ul, " + tile + ", " + src + n(2) +
                 "), ulong(" + n(3) + "), 1ul, " + tile + ", long2(0l, 0l), 0)";
        }
        line("thread _enigma_async_event_t* " + name(op.result()) + " = " + call + ";");
        if (!ok.empty()) {
          open("if (!" + ok + ")");
          if (op.code == OpCode::AsyncCopy1D) {
            copy_elements(op, "ulong(" + n(0) + ")", "ulong(" + n(1) + ")", "ulong(" + n(2) + ")");
          } else {
            open("for (ulong en_row = 0; en_row < ulong(" + n(5) + "); ++en_row)");
            copy_elements(op, "ulong(" + n(0) + ") + en_row * ulong(" + n(1) + ")",
                          "ulong(" + n(2) + ") + en_row * ulong(" + n(3) + ")", "ulong(" + n(4) + ")");
            close();
          }
          close();
        }
        return true;
      }
      case OpCategory::AsyncWait: {
        std::string list;
        for (size_t i = 0; i < op.operands.size(); ++i) list += (i ? ", " : "") + n(i);
        std::string arr = "en_events" + std::to_string(temp_++);
        line("thread _enigma_async_event_t* " + arr + "[] = {" + list + "};");
        line("_enigma_async_wait(" + std::to_string(op.operands.size()) + ", " + arr + ");");
        return true;
      }
      default: return false;
    }
  }

  // Shuffles keep the thread's own value when the source lane is out of range
  // or inactive (Metal leaves that undefined; every backend agrees on this).
  std::string shuffle_helper(const Op& op) {
    uses_lane_ = true;
    CollectiveInfo ci = collective_info(op.code);
    std::string fn = std::string("en_") + op.info().name;
    if (!want(fn)) return fn;
    if (want("en_lane_active"))
      helpers_.push_back(
          "inline bool en_lane_active(uint l) { return l < 32u && ((static_cast<ulong>(static_cast<simd_vote::vote_t>("
          "metal::simd_active_threads_mask())) >> l) & 1ul) != 0; }");
    using K = CollectiveInfo::Kind;
    std::string W = std::to_string(ci.width) + "u", M = std::to_string(ci.width - 1) + "u";
    std::string base = ci.width == 4 ? "(lane & ~3u)" : "0u";
    std::string l = ci.width == 4 ? "(lane & 3u)" : "lane";
    std::string src, ok;
    switch (ci.kind) {
      case K::Shuffle:
      case K::Broadcast:
        src = "d";
        ok = "d < " + W;
        break;
      case K::ShuffleUp:
        src = l + " - d";
        ok = "d <= " + l;
        break;
      case K::ShuffleDown:
        src = l + " + d";
        ok = "d < " + W + " && " + l + " + d < " + W;
        break;
      case K::ShuffleXor:
        src = l + " ^ d";
        ok = "d < " + W;
        break;
      default: break;
    }
    std::string builtin = op.info().name;
    std::string arg = (ci.kind == K::ShuffleUp || ci.kind == K::ShuffleDown) ? "ushort(d < " + M + " ? d : " + M + ")"
                                                                             : "ushort(d & " + M + ")";
    helpers_.push_back("template <typename T> inline T " + fn + "(T x, uint d, uint lane) { T r = metal::" + builtin +
                       "(x, " + arg + "); return (" + ok + " && en_lane_active(" + base + " + (" + src +
                       "))) ? r : x; }");
    return fn;
  }

  void atomic(const Op& op) {
    const DType t = k_.memory_type(op.memory());
    static const char* orders[] = {"memory_order_relaxed", "memory_order_relaxed", "memory_order_relaxed",
                                   "memory_order_relaxed", "memory_order_relaxed"};
    // Metal's atomics are relaxed; stronger orders add device-scope fences.
    int order = static_cast<int>(op.atomic_order());
    bool acquire = order == 1 || order == 3 || order == 4, release = order == 2 || order == 3 || order == 4;
    std::string fence = std::string("metal::atomic_thread_fence(mem_flags::") +
                        (is_threadgroup_memory(op.memory()) ? "mem_threadgroup" : "mem_device") +
                        ", memory_order_seq_cst, thread_scope_device);";
    std::string at = t.elem == Scalar::F32   ? "atomic_float"
                     : t.elem == Scalar::I32 ? "atomic_int"
                     : t.elem == Scalar::U32 ? "atomic_uint"
                     : t.elem == Scalar::I64 ? "atomic<long>"
                                             : "atomic<ulong>";
    std::string p = "reinterpret_cast<" + space(op.memory()) + " " + at + "*>(&" + mem(op.memory()) + "[" +
                    name(op.operands[0]) + "])";
    std::string mo = orders[order];
    std::string r = op.results.empty() ? "" : name(op.result());
    // Checked: out of bounds the atomic is dropped and its result is 0; the
    // code below then defines a temporary copied out of the block.
    const std::string ok = bounds_check(op.memory(), op.operands[0], 1, kAtomic);
    const std::string result = r;
    if (!ok.empty()) {
      if (!r.empty()) line(msl_type(op.type) + " " + r + " = " + zero(op.type) + ";");
      open("if (" + ok + ")");
      if (!r.empty()) r += "_in";
    }
    if (release) line(fence);
    std::string fn = std::string(op.info().name);
    if (op.code == OpCode::AtomicStore) {
      line("metal::atomic_store_explicit(" + p + ", " + name(op.operands[1]) + ", " + mo + ");");
    } else if (op.code == OpCode::AtomicLoad) {
      line("const " + msl_type(op.type) + " " + r + " = metal::atomic_load_explicit(" + p + ", " + mo + ");");
    } else if (op.code == OpCode::AtomicCompareExchange) {
      std::string e = "en_expected" + std::to_string(temp_++);
      line(msl_type(t) + " " + e + " = " + name(op.operands[1]) + ";");
      line("const bool " + r + " = metal::atomic_compare_exchange_weak_explicit(" + p + ", &" + e + ", " +
           name(op.operands[2]) + ", " + mo + ", " + mo + ");");
    } else if ((t.elem == Scalar::I64 || t.elem == Scalar::U64) &&
               (op.code == OpCode::AtomicFetchAdd || op.code == OpCode::AtomicFetchSub ||
                op.code == OpCode::AtomicFetchAnd || op.code == OpCode::AtomicFetchOr ||
                op.code == OpCode::AtomicFetchXor)) {
      // Metal's 64-bit atomics only do min/max: these go word by word
      // through 32-bit atomics (the low word's carry added to the high word).
      // The stored result is exact; the returned old value combines words
      // read at two moments, so it is exact only without concurrent updates.
      const std::string id = std::to_string(temp_++);
      const std::string w = "en_w" + id, v = "en_v" + id, lo = "en_lo" + id;
      const std::string u = "reinterpret_cast<" + space(op.memory()) + " atomic_uint*>(&" + mem(op.memory()) + "[" +
                            name(op.operands[0]) + "])";
      line(space(op.memory()) + " atomic_uint* " + w + " = " + u + ";");
      std::string val = "ulong(" + name(op.operands[1]) + ")";
      if (op.code == OpCode::AtomicFetchSub) val = "(0ul - " + val + ")";
      line("const ulong " + v + " = " + val + ";");
      std::string f32 = op.code == OpCode::AtomicFetchSub ? "atomic_fetch_add" : fn;
      line("const uint " + lo + " = metal::" + f32 + "_explicit(" + w + ", uint(" + v + "), " + mo + ");");
      std::string hi_arg = "uint(" + v + " >> 32)";
      if (op.code == OpCode::AtomicFetchAdd || op.code == OpCode::AtomicFetchSub)
        hi_arg = "uint(" + v + " >> 32) + uint(uint(" + lo + " + uint(" + v + ")) < " + lo + ")";
      line("const uint en_hi" + id + " = metal::" + f32 + "_explicit(" + w + " + 1, " + hi_arg + ", " + mo + ");");
      line("const " + msl_type(op.type) + " " + r + " = " + msl_type(op.type) + "((ulong(en_hi" + id +
           ") << 32) | ulong(" + lo + "));");
    } else {
      line("const " + msl_type(op.type) + " " + r + " = metal::" + fn + "_explicit(" + p + ", " + name(op.operands[1]) +
           ", " + mo + ");");
    }
    if (acquire) line(fence);
    if (!ok.empty()) {
      if (!result.empty()) line(result + " = " + r + ";");
      close();
    }
  }

  std::string finish(const DType& t, const std::string& e) const override {
    // Narrow integers were promoted to int by C's rules: truncate back.
    // Helpers (en_*) already return the exact type.
    if (e.rfind("en_", 0) == 0) return e;
    if (t.is_scalar() && is_integer(t.elem) && info(t.elem).bits < 32) return cast(t, unparen(e));
    return e;
  }

  std::string expr(const Op& op) override {
    const OpCategory c = op.info().category;
    const bool arith = c == OpCategory::Arith || c == OpCategory::Negate;
    const DType& t = c == OpCategory::Compare ? k_.type_of(op.operands[0]) : op.type;
    if ((arith || c == OpCategory::Compare) && t.is_float() && computes_in_float(op, t)) return in_float(op, t);
    if (arith && t.is_integer() && could_overflow(op, t)) return wrapping(op, t);
    if (c == OpCategory::Bitwise && t.is_bool()) return bool_logic(op, t);
    if (c == OpCategory::Select) {
      const std::string cond = name(op.operands[0]), yes = name(op.operands[1]), no = name(op.operands[2]);
      if (k_.type_of(op.operands[0]).is_vector()) return "metal::select(" + no + ", " + yes + ", " + cond + ")";
      return "(" + cond + " ? " + yes + " : " + no + ")";
    }
    return CFamilyEmitter::expr(op);
  }

  std::string convert(const DType& from, const DType& to, const std::string& x) override {
    if (to.is_matrix()) return matrix_convert(from, to) + "(" + x + ")";  // column by column
    if (from == to) return x;
    if (to.is_vector() && !from.is_vector())  // a splat: convert the scalar, then build the vector
      return msl_type(to) + "(" + convert(from, DType::scalar(to.elem), x) + ")";
    if (is_16bit_float(from.elem) && to.elem != Scalar::F32) {
      const DType f = from.with_elem(Scalar::F32);
      return convert(f, to, cast(f, x));
    }
    if (is_16bit_float(to.elem) && from.elem != Scalar::F32)
      return cast(to, convert(from, to.with_elem(Scalar::F32), x));
    if (from.elem == Scalar::F32 && to.is_integer()) return saturating(to) + "(" + x + ")";
    return cast(to, x);  // integer <-> integer wraps; anything -> bool is x != 0
  }

  std::string bitcast(const DType& from, const DType& to, const std::string& x) override {
    return "as_type<" + msl_type(to) + ">(" + x + ")";
  }

  std::string float_floordiv(const DType& t, const std::string& a, const std::string& b) override {
    return "metal::floor(" + a + " / " + b + ")";
  }
  std::string float_rem(const DType& t, const std::string& a, const std::string& b) override {
    return "metal::fmod(" + a + ", " + b + ")";
  }

  // ---- the per-thread language -------------------------------------------------
  // Library calls are metal::<name>. half and bfloat compute in float and
  // round once, as on the CPU (MSL has no bfloat math; half agrees this way).
  bool supports_language() const override { return true; }

  std::string library_function(const std::string& fn, const Op& op) override {
    if (fn == "expm1" || fn == "log1p") return missing_function(fn, op.type.with_elem(Scalar::F32));
    return "metal::" + fn;
  }

  // Functions Metal's library lacks (spelling.cpp's table says why): exp/log
  // with Kahan's correction, accurate to a few ulp where they are. The ratio
  // is taken first so that no product overflows near the ends of the range;
  // log1p(-inf) is NaN (only +inf is kept), as math.h defines it.
  std::string missing_function(const std::string& fn, const DType& t) {
    const std::string ty = msl_type(t), one = ty + "(1.0f)", name = "en_" + fn;
    if (want("fn " + name + " " + ty)) {
      std::string body = fn == "expm1"
                             ? "  " + ty + " u = metal::exp(x), um1 = u - " + one + ";\n  " + ty +
                                   " r = um1 * (x / metal::log(u));\n"
                                   "  r = metal::select(r, x, u == " +
                                   one +
                                   ");\n  r = metal::select(r, um1, metal::isinf(u));\n"
                                   "  return metal::select(r, um1, um1 == " +
                                   ty + "(-1.0f));\n"
                             : "  " + ty + " u = " + one + " + x;\n  " + ty + " r = metal::log(u) * (x / (u - " + one +
                                   "));\n"
                                   "  r = metal::select(r, x, u == " +
                                   one + ");\n  return metal::select(r, u, u > " + ty + "(0x1.fffffep+127f));\n";
      helpers_.push_back("inline " + ty + " " + name + "(" + ty + " x) {\n" + body + "}\n");
    }
    return name;
  }

  std::string lang_expr(const Op& op, const std::vector<std::string>& args) override {
    const OpCategory cat = op.info().category;
    bool narrow = false;
    for (ValueId v : op.operands) {
      const DType& t = k_.type_of(v);
      narrow = narrow || ((t.is_float() || t.is_matrix()) && is_16bit_float(t.elem));
    }
    const std::string fn = function_of(op);
    const char* special =
        op.operands.empty() ? nullptr : spelling_exception("metal", fn, k_.type_of(op.operands[0]).elem);
    bool native = special && std::string(special).rfind("metal::", 0) == 0;  // on the 16-bit value itself
    if (op.code == OpCode::Rotate) {  // the count modulo the width, as on every backend
      const std::string t = msl_type(op.type), e = msl_type(DType::scalar(op.type.elem));
      const std::string mask = t + "(" + e + "(" + std::to_string(info(op.type.elem).bits - 1) + "))";
      return CFamilyEmitter::lang_expr(op, {args[0], t + "(" + args[1] + " & " + mask + ")"});
    }
    if (!narrow || native || (cat != OpCategory::Math && cat != OpCategory::MatMul))
      return CFamilyEmitter::lang_expr(op, args);
    std::vector<std::string> wide;
    for (size_t i = 0; i < args.size(); ++i) wide.push_back(widen(k_.type_of(op.operands[i]), args[i]));
    std::string e = CFamilyEmitter::lang_expr(op, wide);
    if (!is_16bit_float(op.type.elem) || op.type.is_bool()) return e;
    if (special) return helper_16bit(special, op.type) + "(" + unwrap_call(e) + ")";
    return narrow_to(op.type, e);
  }

  // The library function an op's c_expr calls first ("fract" for fract({0})).
  static std::string function_of(const Op& op) {
    std::string t = op.info().c_expr;
    size_t open = t.find('(');
    return open == std::string::npos ? std::string() : t.substr(0, open);
  }

  // A 16-bit float value as float (matrices column by column).
  std::string widen(const DType& t, const std::string& x) {
    if (!is_16bit_float(t.elem)) return x;
    if (t.is_matrix()) return matrix_convert(t, t.with_elem(Scalar::F32)) + "(" + x + ")";
    return msl_type(t.with_elem(Scalar::F32)) + "(" + x + ")";
  }
  std::string narrow_to(const DType& t, const std::string& x) {
    if (t.is_matrix()) return matrix_convert(t.with_elem(Scalar::F32), t) + "(" + x + ")";
    return msl_type(t) + "(" + x + ")";
  }
  // metal::fract(y) -> y: the helper below calls fract itself.
  static std::string unwrap_call(const std::string& e) {
    size_t open = e.find('(');
    return e.substr(open + 1, e.size() - open - 2);
  }

  std::string matrix_convert(const DType& from, const DType& to) {
    std::string fn = "en_to_" + msl_type(to);
    if (want("fn " + fn + " " + msl_type(from))) {
      std::string s =
          "inline " + msl_type(to) + " " + fn + "(" + msl_type(from) + " m) {\n  return " + msl_type(to) + "(";
      for (int c = 0; c < from.cols; ++c)
        s += (c ? ", " : "") + msl_type(to.column()) + "(m[" + std::to_string(c) + "])";
      helpers_.push_back(s + ");\n}\n");
    }
    return fn;
  }

  // The helpers spelling.cpp names for 16-bit floats. fract: computed in
  // float, kept below 1 after rounding.
  std::string helper_16bit(const std::string& fn, const DType& t) {
    if (fn != "en_fract_h" && fn != "en_fract_b") throw KernelError("internal: no MSL helper " + fn);
    std::string ty = msl_type(t), wide = msl_type(t.with_elem(Scalar::F32));
    if (want("fn " + fn + " " + ty)) {  // compares in float: bfloat has no operators
      std::string below_one = t.elem == Scalar::F16 ? "0x1.ffcp-1f" : "0x1.fep-1f";
      helpers_.push_back("inline " + ty + " " + fn + "(" + wide + " x) {\n  " + wide + " r = " + wide + "(" + ty +
                         "(metal::fract(x)));\n  return " + ty + "(metal::select(r, " + wide + "(" + below_one +
                         "), r == " + wide + "(1.0f)));\n}\n");
    }
    return fn;
  }

  std::string function_constant(const Op& op) override {
    return "en_fc" + std::to_string(op.function_constant_index());
  }

  std::string load_if(const Op& op) override {
    // Built by appending: GCC 12 flags `"(" + temporary` with a false -Wrestrict.
    std::string mask = name(op.operands[1]);
    std::string ok = bounds_check(op.memory(), op.operands[0], 1, kLoad, mask);
    std::string r = "(";
    r += ok.empty() ? mask : "(" + mask + " && " + ok + ")";
    r += " ? " + mem(op.memory()) + "[" + name(op.operands[0]) + "] : " + name(op.operands[2]) + ")";
    return r;
  }

  void local_alloc(const Op& op) override {
    fill_local_array(op, msl_type(k_.locals.at(static_cast<size_t>(op.local_array())).elem), "uint", "u");
  }
  // Out-of-range indices use the last element (as on every backend).
  std::string clamp_index_fn(const Op& op) {
    bool wide = info(k_.type_of(op.operands[0]).elem).bits == 64;
    std::string fn = wide ? "en_clamp_index64" : "en_clamp_index";
    std::string t = wide ? "ulong" : "uint";
    if (want("fn " + fn))
      helpers_.push_back("inline " + t + " " + fn + "(" + t + " i, " + t +
                         " n) {\n  return metal::min(i, n - 1);\n}\n");
    return fn;
  }
  std::string local_load(const Op& op) override {
    return local_name(op.local_array()) + "[" + local_index(op, clamp_index_fn(op)) + "]";
  }
  void local_store(const Op& op) override {
    line(local_name(op.local_array()) + "[" + local_index(op, clamp_index_fn(op)) + "] = " + name(op.operands[1]) +
         ";");
  }

  // File-scope declarations of the function constants the kernel reads.
  std::string function_constant_declarations() {
    std::string s;
    std::set<int> seen;
    walk(k_.body, [&](const Op& op) {
      if (op.code != OpCode::FuncConst || !seen.insert(op.function_constant_index()).second) return;
      s += "constant " + msl_type(op.type) + " en_fc" + std::to_string(op.function_constant_index()) +
           " [[function_constant(" + std::to_string(op.function_constant_index()) + ")]];\n";
    });
    if (!seen.empty()) s += "\n";
    return s;
  }

  // Defines en_div/en_rem/en_floordiv/en_shl/en_shr for operands of type t.
  std::string helper(const std::string& h, const DType& t) override {
    if (t.is_vector()) {
      helper(h, DType::scalar(t.elem));
      if (want(h + " " + msl_type(t))) helpers_.push_back(lanewise(h, h, t, t, 2));
      return h;
    }
    if (!want(h + " " + msl_type(t))) return h;
    if (h == "en_floordiv") helper("en_div", t);
    helpers_.push_back(integer_helper(h, t));
    return h;
  }

 private:
  std::set<size_t> vec_tg_;  // threadgroup arrays with vector accesses

  static std::string cast(const DType& t, const std::string& x) {
    return "static_cast<" + msl_type(t) + ">(" + x + ")";
  }

  bool want(const std::string& key) { return helper_keys_.insert(key).second; }

  static bool computes_in_float(const Op& op, const DType& t) {
    if (t.elem == Scalar::BF16) return true;
    return t.elem == Scalar::F16 && (op.code == OpCode::Div || op.code == OpCode::FloorDiv || op.code == OpCode::Rem);
  }

  // a + b, a - b, a * b or -a with op's operands spelled by `operand`; ""
  // for any other op.
  static std::string add_sub_mul_neg(const Op& op, const std::function<std::string(size_t)>& operand) {
    switch (op.code) {
      case OpCode::Add: return operand(0) + " + " + operand(1);
      case OpCode::Sub: return operand(0) + " - " + operand(1);
      case OpCode::Mul: return operand(0) + " * " + operand(1);
      case OpCode::Neg: return "-" + operand(0);
      default: return "";
    }
  }

  // bfloat (and half division) in float, rounded once to the result type.
  std::string in_float(const Op& op, const DType& t) {
    const std::string f = msl_type(t.with_elem(Scalar::F32));
    auto wide = [&](size_t i) { return f + "(" + name(op.operands[i]) + ")"; };
    std::string e = add_sub_mul_neg(op, wide);
    if (!e.empty()) return msl_type(t) + "(" + e + ")";
    switch (op.code) {
      case OpCode::Div: e = wide(0) + " / " + wide(1); break;
      case OpCode::FloorDiv: e = "metal::floor(" + wide(0) + " / " + wide(1) + ")"; break;
      case OpCode::Rem: e = "metal::fmod(" + wide(0) + ", " + wide(1) + ")"; break;
      case OpCode::Cmp: {
        // Floats compare ordered; the u-predicates are the same on floats.
        static const char* sym[] = {"==", "!=", "<", "<=", ">", ">=", "<", "<=", ">", ">="};
        return "(" + wide(0) + " " + sym[static_cast<int>(op.predicate())] + " " + wide(1) + ")";
      }
      default: throw KernelError(std::string("internal: MSL cannot compute '") + op.info().name + "' in float");
    }
    return msl_type(t) + "(" + e + ")";
  }

  // Signed overflow is undefined in MSL as in C++, and ushort * ushort is
  // promoted to int, where it can overflow. Vectors are not promoted, so
  // signed vectors of every width wrap through unsigned.
  static bool could_overflow(const Op& op, const DType& t) {
    bool add_sub_mul_neg =
        op.code == OpCode::Add || op.code == OpCode::Sub || op.code == OpCode::Mul || op.code == OpCode::Neg;
    if (!add_sub_mul_neg) return false;
    if (is_signed_int(t.elem)) return t.is_vector() || info(t.elem).bits >= 32;
    return t.is_scalar() && t.elem == Scalar::U16 && op.code == OpCode::Mul;
  }

  std::string wrapping(const Op& op, const DType& t) {
    const DType u =
        t.is_vector() || info(t.elem).bits >= 32 ? t.with_elem(unsigned_of(t.elem)) : t.with_elem(Scalar::U32);
    const std::string ut = msl_type(u);
    auto as_u = [&](size_t i) { return ut + "(" + name(op.operands[i]) + ")"; };
    return msl_type(t) + "(" + add_sub_mul_neg(op, as_u) + ")";
  }

  // bool & | ^: logical operators on scalars; vectors through uchar.
  std::string bool_logic(const Op& op, const DType& t) {
    const std::string a = name(op.operands[0]), b = name(op.operands[1]);
    if (t.is_scalar()) {
      const char* sym = op.code == OpCode::And ? " && " : op.code == OpCode::Or ? " || " : " != ";
      return "(" + a + sym + b + ")";
    }
    const std::string u = msl_type(t.with_elem(Scalar::U8));
    const char* sym = op.code == OpCode::And ? " & " : op.code == OpCode::Or ? " | " : " ^ ";
    return msl_type(t) + "(" + u + "(" + a + ")" + sym + u + "(" + b + "))";
  }

  // A vector helper that applies the scalar one to each lane.
  std::string lanewise(const std::string& fn, const std::string& scalar_fn, const DType& result, const DType& arg,
                       int arity) {
    const std::string rt = msl_type(result), at = msl_type(arg);
    std::string s = "// " + scalar_fn + " on each lane.\n";
    s += "inline " + rt + " " + fn + "(" + at + " a" + (arity == 2 ? ", " + at + " b" : "") + ") {\n";
    s += "  " + rt + " r;\n";
    s += "  for (int i = 0; i < " + std::to_string(result.lanes) + "; ++i) {\n";
    s += "    r[i] = " + scalar_fn + "(a[i]" + (arity == 2 ? ", b[i]" : "") + ");\n";
    s += "  }\n  return r;\n}\n";
    return s;
  }

  std::string integer_helper(const std::string& h, const DType& t) {
    const std::string ty = msl_type(t);
    const std::string ut = msl_type(t.with_elem(unsigned_of(t.elem)));
    const int bits = info(t.elem).bits;
    const bool sgn = is_signed_int(t.elem);
    const bool narrow = bits < 32;
    // Narrow operands are promoted to int: truncate results back.
    auto fit = [&](const std::string& e) { return narrow ? ty + "(" + e + ")" : e; };
    const std::string head = "inline " + ty + " " + h + "(" + ty + " a, " + ty + " b) {\n";
    const std::string count = "(uint(b) & " + std::to_string(bits - 1) + "u)";
    std::string s;
    if (h == "en_div") {
      s = "// Integer division: x / 0 is 0" + std::string(sgn ? "; MIN / -1 wraps to MIN" : "") + ".\n" + head;
      s += "  if (b == 0) {\n    return 0;\n  }\n";
      if (sgn) s += "  if (b == -1) {\n    return " + ty + "(" + ut + "(0) - " + ut + "(a));\n  }\n";
      s += "  return " + fit("a / b") + ";\n}\n";
    } else if (h == "en_rem") {
      s = "// Integer remainder (sign of the dividend): x % 0 is x" + std::string(sgn ? "; x % -1 is 0" : "") + ".\n" +
          head;
      s += "  if (b == 0) {\n    return a;\n  }\n";
      if (sgn) s += "  if (b == -1) {\n    return 0;\n  }\n";
      s += "  return " + fit("a % b") + ";\n}\n";
    } else if (h == "en_floordiv") {
      s = "// Floor division: rounds toward negative infinity; x // 0 is 0.\n" + head;
      if (!sgn) {
        s += "  return en_div(a, b);\n}\n";
      } else {
        s += "  " + ty + " q = en_div(a, b);\n";
        s += "  if (b != 0 && b != -1 && a % b != 0 && (a < 0) != (b < 0)) {\n";
        s += "    q = " + fit("q - 1") + ";\n  }\n  return q;\n}\n";
      }
    } else if (h == "en_shl") {
      s = "// Shift left by the count modulo " + std::to_string(bits) + ".\n" + head;
      s += "  return " + (sgn || narrow ? ty + "(" + ut + "(a) << " + count + ")" : "a << " + count) + ";\n}\n";
    } else if (h == "en_shr") {
      s = "// Shift right (" + std::string(sgn ? "arithmetic" : "logical") + ") by the count modulo " +
          std::to_string(bits) + ".\n" + head;
      s += "  return " + fit("a >> " + count) + ";\n}\n";
    } else {
      throw KernelError("internal: no MSL helper " + h);
    }
    return s;
  }

  // en_sat_<T>(float): float -> integer T (scalar or vector), saturating, NaN -> 0.
  std::string saturating(const DType& to) {
    const std::string fn = "en_sat_" + msl_type(to);
    if (to.is_vector()) {
      const DType s = DType::scalar(to.elem);
      const std::string scalar_fn = saturating(s);
      if (want(fn)) helpers_.push_back(lanewise(fn, scalar_fn, to, to.with_elem(Scalar::F32), 1));
      return fn;
    }
    if (!want(fn)) return fn;
    const Scalar t = to.elem;
    const int bits = info(t).bits;
    const bool sgn = is_signed_int(t);
    const int64_t lo = sgn ? (bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1))) : 0;
    const int64_t hi = sgn ? (bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1)
                           : (bits == 64 ? -1 : static_cast<int64_t>((uint64_t{1} << bits) - 1));
    auto lit = [&](int64_t v) { return bits == 64 ? int_literal_64(t, v) : int_literal(t, v); };
    const std::string ty = msl_type(to);
    std::string s = "// float to " + ty + ": saturates, NaN is 0.\n";
    s += "inline " + ty + " " + fn + "(float x) {\n";
    s += "  if (metal::isnan(x)) {\n    return 0;\n  }\n";
    s += "  if (x <= " + (sgn ? "-" + pow2_literal(bits - 1) : std::string("0.0f")) + ") {\n    return " + lit(lo) +
         ";\n  }\n";
    s += "  if (x >= " + pow2_literal(sgn ? bits - 1 : bits) + ") {\n    return " + lit(hi) + ";\n  }\n";
    s += "  return " + ty + "(x);\n}\n";
    helpers_.push_back(s);
    return fn;
  }

  std::vector<std::string> helpers_;  // definitions, dependencies first
  std::set<std::string> helper_keys_;
  bool uses_matrices_ = false, uses_async_ = false, uses_lane_ = false;
  bool uses_position_ = false;  // out-of-bounds reports name the thread
  int temp_ = 0;
};

}  // namespace

MslVersion msl_language_version(const Kernel& k) {
  bool bfloat = false;
  for (const Param& p : k.params) bfloat = bfloat || p.type.elem == Scalar::BF16;
  for (const ValueInfo& v : k.values) bfloat = bfloat || (v.type.is_scalar_or_vector() && v.type.elem == Scalar::BF16);
  return bfloat ? MslVersion{3, 1} : MslVersion{3, 0};
}

std::string msl_entry_name(const Kernel& k) {
  bool plain = !k.name.empty() && !std::isdigit(static_cast<unsigned char>(k.name[0]));
  for (char c : k.name) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  return plain && !is_reserved_identifier(k.name) ? k.name : sanitize_identifier(k.name);
}

std::string emit_msl(const Kernel& k, const MslEmitOptions& options) {
  MslEmitter e(k, options);
  return e.run();
}

}  // namespace enigma
