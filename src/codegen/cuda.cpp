// CUDA C++ for NVIDIA GPUs, compiled at run time by NVRTC (no host headers:
// the file declares every type and helper it uses).
//
// Metal's execution model on CUDA: a threadgroup is a block, the grid counts
// threads, so the runtime launches ceil(grid / threads) blocks and threads
// outside the grid return at once; edge groups report their real size, as
// the CPU backend does. f16/bf16 values live in float registers and are
// rounded after every operation, and the en_* helpers mirror cpu_prelude.h,
// so every result is bit-identical to the CPU backend's.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>

#include "codegen/c_family.h"
#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/support/error.h"

namespace enigma {
namespace embedded {
extern const char* const kCudaMathPrelude;
}  // namespace embedded

namespace {

// Fixed-width types without <cstdint>, then the f16/bf16 storage conversions
// (hardware cvt where it matches the CPU prelude bit for bit; NaNs keep their
// payload as the CPU prelude does).
// Fixed-width types without <cstdint>, and what every kernel's frame uses.
const char* const kCudaPrelude = R"(typedef signed char en_i8;
typedef unsigned char en_u8;
typedef short en_i16;
typedef unsigned short en_u16;
typedef int en_i32;
typedef unsigned int en_u32;
typedef long long en_i64;
typedef unsigned long long en_u64;

__device__ __forceinline__ en_u32 en_minu(en_u32 a, en_u32 b) { return a < b ? a : b; }
)";

// The parts below are pasted only into kernels that use them (each costs
// NVRTC time). f16/bf16 storage conversions: hardware cvt where it matches
// cpu_prelude.h bit for bit; NaNs keep their payload as the CPU prelude does.
const char* const kCudaF32Bits = R"(__device__ __forceinline__ float en_f32_bits(en_u32 b) { return __uint_as_float(b); }
)";

const char* const kCudaHalf = R"(__device__ __forceinline__ float en_h2f(en_u16 h) {
  if ((h & 0x7C00u) == 0x7C00u)  // inf / nan, payload kept
    return __uint_as_float(((en_u32)(h & 0x8000u) << 16) | 0x7F800000u | ((en_u32)(h & 0x3FFu) << 13));
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ en_u16 en_f2h(float f) {
  en_u32 x = __float_as_uint(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u)  // quiet nan with the top payload bits
    return (en_u16)(((x >> 16) & 0x8000u) | 0x7E00u | ((x >> 13) & 0x3FFu));
  en_u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
__device__ __forceinline__ float en_rh(float f) { return en_h2f(en_f2h(f)); }
)";

const char* const kCudaBfloat = R"(__device__ __forceinline__ float en_b2f(en_u16 b) { return __uint_as_float((en_u32)b << 16); }
__device__ __forceinline__ en_u16 en_f2b(float f) {
  en_u32 x = __float_as_uint(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (en_u16)((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);  // round to nearest even
  return (en_u16)(x >> 16);
}
__device__ __forceinline__ float en_rb(float f) { return en_b2f(en_f2b(f)); }
)";

const char* cuda_scalar_type(Scalar s) {
  switch (s) {
    case Scalar::B1: return "bool";
    case Scalar::I8: return "en_i8";
    case Scalar::U8: return "en_u8";
    case Scalar::I16: return "en_i16";
    case Scalar::U16: return "en_u16";
    case Scalar::I32: return "en_i32";
    case Scalar::U32: return "en_u32";
    case Scalar::I64: return "en_i64";
    case Scalar::U64: return "en_u64";
    case Scalar::F16:
    case Scalar::BF16:
    case Scalar::F32: return "float";  // f16/bf16 are held in float, rounded per op
  }
  return "?";
}

// Type of an element in memory (f16/bf16 as their 16-bit patterns).
std::string memory_type(Scalar s) {
  if (s == Scalar::F16 || s == Scalar::BF16) return "en_u16";
  return cuda_scalar_type(s);
}
std::string vector_of(const std::string& elem, int lanes) {
  return "en_vec<" + elem + ", " + std::to_string(lanes) + ">";
}
std::string memory_type(const DType& t) {
  if (t.is_vector()) return vector_of(memory_type(t.elem), t.lanes);
  return memory_type(t.elem);
}
std::string from_memory(Scalar s, const std::string& x) {
  if (s == Scalar::F16) return "en_h2f(" + x + ")";
  if (s == Scalar::BF16) return "en_b2f(" + x + ")";
  return x;
}
std::string to_memory(Scalar s, const std::string& x) {
  if (s == Scalar::F16) return "en_f2h(" + x + ")";
  if (s == Scalar::BF16) return "en_f2b(" + x + ")";
  return x;
}

// Adds `levels` levels of indentation (two spaces each) to every line.
std::string indented(const std::string& text, int levels) {
  std::string pad(static_cast<size_t>(levels) * 2, ' '), out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start && text[start] != '#') out += pad;
    out.append(text, start, end - start).push_back('\n');
    start = end + 1;
  }
  return out;
}

std::string pow2_literal(int n) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1ff", std::ldexp(1.0, n));
  return buf;
}

class CudaEmitter : public CFamilyEmitter {
 public:
  CudaEmitter(const Kernel& k, const CudaEmitOptions& o) : CFamilyEmitter(k), opt_(o) {}

  std::string run() {
    for (const Param& p : k_.params) check_type(p.type, "parameter '" + p.name + "'");
    walk(k_.body, [&](const Op& op) {
      for (ValueId r : op.results) check_type(k_.type_of(r), op.info().name);
    });
    // Body first: it discovers the helpers the file needs.
    indent_ = 1;
    region(k_.body);
    std::string body = out_.str();
    out_.str("");

    std::vector<std::string> params;
    std::vector<std::string> unpack;  // scalars passed as bits, converted on entry
    for (size_t i = 0; i < k_.params.size(); ++i) {
      const Param& p = k_.params[i];
      const std::string& n = param_name(static_cast<int>(i));
      std::string mem = memory_type(p.type);
      if (p.kind == Param::Kind::Buffer) {
        // Buffers never alias (the runtime allocates each one, and copies
        // inputs the kernel writes), so __restrict__ is safe; const lets
        // read-only data go through the non-coherent cache.
        params.push_back((p.written ? "" : "const ") + mem + "* __restrict__ " + n);
      } else if (p.type.elem == Scalar::F16 || p.type.elem == Scalar::BF16) {
        std::string raw = "en_arg" + std::to_string(i);
        params.push_back("const en_u16 " + raw);
        unpack.push_back("const float " + n + " = " + from_memory(p.type.elem, raw) + ";");
      } else {
        params.push_back("const " + mem + " " + n);
      }
    }
    if (opt_.debug) {
      for (size_t i = 0; i < k_.params.size(); ++i)
        if (k_.params[i].kind == Param::Kind::Buffer) params.push_back("const en_u64 en_len" + std::to_string(i));
      params.push_back("en_u64* __restrict__ en_err");
    }
    params.push_back("const en_u32 en_grid0");
    params.push_back("const en_u32 en_grid1");
    params.push_back("const en_u32 en_grid2");

    std::ostringstream f;
    f << "// Generated by Enigma for CUDA (NVRTC): kernel '" << k_.name << "'.\n";
    f << "// nvrtc-options:";
    for (const std::string& o : cuda_nvrtc_options()) f << " " << o;
    f << "\n" << kCudaPrelude;
    std::string used = body;
    for (const std::string& u : unpack) used += u;
    auto uses = [&](std::initializer_list<const char*> names) {
      for (const char* n : names)
        if (used.find(std::string(n) + "(") != std::string::npos) return true;
      return false;
    };
    // The language's library needs the 16-bit float helpers (fract of half).
    const bool lang = uses_language();
    if (uses({"en_f32_bits"}) || lang) f << kCudaF32Bits;
    if (uses({"en_h2f", "en_f2h", "en_rh"}) || lang) f << kCudaHalf;
    if (uses({"en_b2f", "en_f2b", "en_rb"}) || lang) f << kCudaBfloat;
    f << "\n";
    // Scalar helpers first: the library's vector forms call them.
    for (const auto& [key, text] : helpers_) f << text << "\n";
    if (!helpers_.empty()) f << "\n";
    if (lang) f << embedded::kCudaMathPrelude << "\n";

    std::string signature;
    for (size_t i = 0; i < params.size(); ++i) signature += (i ? ",\n    " : "\n    ") + params[i];
    bool ntg0 = used_queries().count({ThreadQuery::ThreadgroupsPerGrid, 0}) > 0;

    const int groups = opt_.groups_per_block;
    if (groups <= 1) {
      f << "extern \"C\" __global__ void " << cuda_entry_name(k_) << "(" << signature << ") {\n";
      // Threads of an edge group past the grid do not run; the others see the
      // group's real size (same as the CPU backend's loops).
      f << "  const en_u32 lx = threadIdx.x, ly = threadIdx.y, lz = threadIdx.z;\n";
      f << "  const en_u32 en_tgx = blockIdx.x, en_bx = en_tgx * blockDim.x, en_by = blockIdx.y * blockDim.y, "
           "en_bz = blockIdx.z * blockDim.z;\n";
      f << "  const en_u32 en_ex = en_minu(blockDim.x, en_grid0 - en_bx), en_ey = en_minu(blockDim.y, en_grid1 - en_by), "
           "en_ez = en_minu(blockDim.z, en_grid2 - en_bz);\n";
      f << "  if (lx >= en_ex || ly >= en_ey || lz >= en_ez) return;\n";
      if (ntg0) f << "  const en_u32 en_ntg0 = gridDim.x;\n";
      for (const std::string& u : unpack) f << "  " << u << "\n";
      f << body << "}\n";
      return f.str();
    }
    // Each block runs `groups` consecutive threadgroups along x: more loads
    // in flight per thread, which memory-bound kernels need to reach the
    // bandwidth floor. Exact only while threads of different groups never
    // interact (cuda_preferred_groups_per_block checks the ops).
    const std::string kg = std::to_string(groups) + "u";
    f << "// " << groups << " threadgroups per block along x.\n";
    f << "extern \"C\" __global__ void " << cuda_entry_name(k_) << "_g" << groups << "(" << signature << ") {\n";
    f << "  const en_u32 lx = threadIdx.x, ly = threadIdx.y, lz = threadIdx.z;\n";
    f << "  const en_u32 en_by = blockIdx.y * blockDim.y, en_bz = blockIdx.z * blockDim.z;\n";
    f << "  const en_u32 en_ey = en_minu(blockDim.y, en_grid1 - en_by), en_ez = en_minu(blockDim.z, en_grid2 - en_bz);\n";
    f << "  if (ly >= en_ey || lz >= en_ez) return;\n";
    if (ntg0) f << "  const en_u32 en_ntg0 = (en_grid0 - 1u) / blockDim.x + 1u;\n";
    for (const std::string& u : unpack) f << "  " << u << "\n";
    f << "  const en_u32 en_tg0 = blockIdx.x * " << kg << ";\n";
    // Interior blocks: every group full, straight-line code whose loads the
    // compiler issues together.
    f << "  if ((static_cast<en_u64>(en_tg0) + " << kg << ") * blockDim.x <= en_grid0) {\n";
    f << "#pragma unroll\n";
    f << "    for (en_u32 en_k = 0; en_k < " << kg << "; ++en_k) {\n";
    f << "      const en_u32 en_tgx = en_tg0 + en_k, en_bx = en_tgx * blockDim.x, en_ex = blockDim.x;\n";
    f << "      (void)en_tgx; (void)en_bx; (void)en_ex;\n";
    f << indented(body, 2) << "    }\n";
    f << "  } else {\n";
    f << "    for (en_u32 en_k = 0; en_k < " << kg << "; ++en_k) {\n";
    f << "      const en_u32 en_tgx = en_tg0 + en_k;\n";
    f << "      if (static_cast<en_u64>(en_tgx) * blockDim.x >= en_grid0) break;\n";
    f << "      const en_u32 en_bx = en_tgx * blockDim.x, en_ex = en_minu(blockDim.x, en_grid0 - en_bx);\n";
    f << "      if (lx >= en_ex) continue;\n";
    f << "      (void)en_tgx; (void)en_bx;\n";
    f << indented(body, 2) << "    }\n";
    f << "  }\n}\n";
    return f.str();
  }

 protected:
  static void check_type(const DType& t, const std::string& where) {
    if (t.is_void() || t.is_scalar() || t.is_vector() || t.is_matrix()) return;
    throw KernelError("kernel: " + where + ": dtype " + t.str() + " is not supported by the CUDA backend yet");
  }

  // Whether the kernel needs the vector/matrix/math library (scalar kernels
  // compile as fast as before without it).
  bool uses_language() const {
    bool any = !k_.locals.empty();
    for (const Param& p : k_.params) any = any || !p.type.is_scalar();
    walk(k_.body, [&](const Op& op) {
      any = any || op.info().category >= OpCategory::Math || (!op.type.is_void() && !op.type.is_scalar());
    });
    return any;
  }

  std::string type(const DType& t) const override {
    if (t.is_vector()) return vector_of(cuda_scalar_type(t.elem), t.lanes);
    if (t.is_matrix())
      return "en_mat<" + std::string(cuda_scalar_type(t.elem)) + ", " + std::to_string(t.cols) + ", " +
             std::to_string(t.rows) + ">";
    return cuda_scalar_type(t.elem);
  }

  std::string constant(const Op& op) const override {
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

  std::string finish(const DType& t, const std::string& e) const override {
    if (t.elem == Scalar::F16) return "en_rh(" + e + ")";
    if (t.elem == Scalar::BF16) return "en_rb(" + e + ")";
    return CFamilyEmitter::finish(t, e);
  }

  // Signed overflow is undefined in C++ (and NVRTC has no -fwrapv): signed
  // add/sub/mul/neg of 32 and 64 bits compute in unsigned, as does u16 * u16
  // (promoted to int, it can overflow). Narrower types cannot overflow int.
  std::string expr(const Op& op) override {
    bool arith = op.code == OpCode::Add || op.code == OpCode::Sub || op.code == OpCode::Mul;
    if ((arith || op.code == OpCode::Neg) && op.type.is_scalar() && is_integer(op.type.elem)) {
      Scalar s = op.type.elem;
      int bits = info(s).bits;
      bool wrap = (is_signed_int(s) && bits >= 32) || (s == Scalar::U16 && op.code == OpCode::Mul);
      if (wrap) {
        std::string u = bits == 64 ? "en_u64" : "en_u32";
        std::string t = type(op.type);
        auto as_u = [&](ValueId v) { return "static_cast<" + u + ">(" + name(v) + ")"; };
        if (op.code == OpCode::Neg) return "static_cast<" + t + ">(" + u + "(0) - " + as_u(op.operands[0]) + ")";
        const char* sym = op.code == OpCode::Add ? " + " : op.code == OpCode::Sub ? " - " : " * ";
        return "static_cast<" + t + ">(" + as_u(op.operands[0]) + sym + as_u(op.operands[1]) + ")";
      }
    }
    return CFamilyEmitter::expr(op);
  }

  std::string query(ThreadQuery q, int dim) override {
    static const char* xyz[] = {"x", "y", "z"};
    std::string d = xyz[dim];
    const std::string flat = "((lz * en_ey + ly) * en_ex + lx)";
    switch (q) {
      case ThreadQuery::ThreadPositionInGrid: return "(en_b" + d + " + l" + d + ")";
      case ThreadQuery::ThreadPositionInThreadgroup: return "l" + d;
      case ThreadQuery::ThreadgroupPositionInGrid: return dim == 0 ? std::string("en_tgx") : "blockIdx." + d;
      case ThreadQuery::ThreadsPerThreadgroup: return "en_e" + d;
      case ThreadQuery::ThreadsPerGrid:
      case ThreadQuery::GridSize: return "en_grid" + std::to_string(dim);
      case ThreadQuery::ThreadgroupsPerGrid: return dim == 0 ? std::string("en_ntg0") : "gridDim." + d;
      case ThreadQuery::ThreadIndexInThreadgroup: return flat;
      case ThreadQuery::ThreadIndexInSimdgroup: return "(" + flat + " & 31u)";
      case ThreadQuery::SimdgroupIndexInThreadgroup: return "(" + flat + " >> 5)";
      case ThreadQuery::ThreadsPerSimdgroup: return "32u";
      case ThreadQuery::SimdgroupsPerThreadgroup: return "((en_ex * en_ey * en_ez + 31u) >> 5)";
    }
    return "0u";
  }

  // Debug mode: an out-of-bounds index is reported once (first thread wins)
  // and replaced by 0, like the CPU backend; a zero-length buffer is skipped.
  std::string checked_index(const Op& op, bool is_store) {
    std::string idx = name(op.operands[0]);
    if (!opt_.debug) return idx;
    std::string p = std::to_string(op.attr);
    std::string t = "en_idx" + std::to_string(temp_++);
    line("en_u64 " + t + " = static_cast<en_u64>(" + idx + ");");
    open("if (" + t + " >= en_len" + p + ")");
    open("if (atomicCAS(en_err, 0ull, 1ull) == 0ull)");
    line("en_err[1] = " + p + "ull; en_err[2] = " + t + "; en_err[3] = " + (is_store ? "1ull" : "0ull") +
         "; en_err[4] = en_bx + lx; en_err[5] = en_by + ly; en_err[6] = en_bz + lz;");
    line("__threadfence();");
    close();
    line(t + " = 0;");
    close();
    return t;
  }

  std::string load(const Op& op) override {
    std::string idx = checked_index(op, false);
    std::string buf = param_name(static_cast<int>(op.attr));
    std::string v = from_memory(op.type.elem, buf + "[" + idx + "]");
    if (opt_.debug) return "(en_len" + std::to_string(op.attr) + " ? " + v + " : " + type(op.type) + "{})";
    return v;
  }

  void store(const Op& op) override {
    std::string idx = checked_index(op, true);
    std::string buf = param_name(static_cast<int>(op.attr));
    std::string st = buf + "[" + idx + "] = " + to_memory(k_.params[op.attr].type.elem, name(op.operands[1])) + ";";
    if (opt_.debug) st = "if (en_len" + std::to_string(op.attr) + ") " + st;
    line(st);
  }

  std::string convert(const DType& from, const DType& to, const std::string& x) override {
    if (to.is_matrix() || to.is_vector()) {
      std::string et = cuda_scalar_type(to.elem), ef = cuda_scalar_type(from.elem);
      std::string r;
      if (to.is_matrix()) r = x;  // float <-> half: the same registers, rounded below
      else if (from.is_vector()) r = "en_vcvt<" + et + ", " + ef + ">(" + x + ")";
      else r = type(to) + "(" + convert(from, DType::scalar(to.elem), x) + ")";  // splat
      if (from.is_vector() || to.is_matrix()) {
        if (to.elem == Scalar::F16 && from.elem != Scalar::F16) return "en_rh(" + r + ")";
        if (to.elem == Scalar::BF16 && from.elem != Scalar::BF16) return "en_rb(" + r + ")";
      }
      return r;
    }
    if (to.elem == Scalar::B1) return "(" + x + " != 0)";
    if (from.is_float() && is_integer(to.elem)) return helper_cvt(to) + "(" + x + ")";
    if (from.is_float() && to.is_float()) {
      if (to.elem == Scalar::F16 && from.elem != Scalar::F16) return "en_rh(" + x + ")";
      if (to.elem == Scalar::BF16 && from.elem != Scalar::BF16) return "en_rb(" + x + ")";
      return x;
    }
    std::string r = "static_cast<" + type(to) + ">(" + x + ")";
    if (to.elem == Scalar::F16) return "en_rh(" + r + ")";
    if (to.elem == Scalar::BF16) return "en_rb(" + r + ")";
    return r;
  }

  std::string bitcast(const DType& from, const DType& to, const std::string& x) override {
    Scalar f = from.elem, t = to.elem;
    if (from.is_vector() || to.is_vector()) {  // through the memory forms, as the CPU's bit_cast
      std::string raw = "en_bitcast<" + memory_type(to) + ">(" + memory_type(from) + "(" + to_memory(f, x) + "))";
      return from_memory(t, raw);
    }
    if (f == Scalar::F32) return t == Scalar::I32 ? "__float_as_int(" + x + ")" : "__float_as_uint(" + x + ")";
    if (t == Scalar::F32) return "__uint_as_float(static_cast<en_u32>(" + x + "))";
    // Same-width integers and 16-bit patterns: a conversion of the bits.
    std::string bits = to_memory(f, x);
    if (t == Scalar::F16 || t == Scalar::BF16) return from_memory(t, "static_cast<en_u16>(" + bits + ")");
    return "static_cast<" + type(to) + ">(" + bits + ")";
  }

  std::string param_value(const Op& op) override { return param_name(static_cast<int>(op.attr)); }

  std::string float_floordiv(const DType& t, const std::string& a, const std::string& b) override {
    if (t.is_vector()) return "en_floor(" + a + " / " + b + ")";
    return "floorf(" + a + " / " + b + ")";
  }
  std::string float_rem(const DType& t, const std::string& a, const std::string& b) override {
    if (t.is_vector()) return "en_fmod(" + a + ", " + b + ")";
    return "fmodf(" + a + ", " + b + ")";
  }

  // ---- the per-thread language: en_<Metal name> from cuda_math_prelude.h,
  // except where spelling.cpp's table says otherwise.
  bool supports_language() const override { return true; }

  std::string library_function(const std::string& fn, const Op& op) override {
    Scalar e = op.operands.empty() ? op.type.elem : k_.type_of(op.operands[0]).elem;
    if (const char* s = spelling_exception("cuda", fn, e)) return s;
    return "en_" + fn;
  }

  // Masked lanes never touch memory: the conditional reads only where mask is true.
  std::string load_if(const Op& op) override {
    std::string buf = param_name(static_cast<int>(op.attr));
    std::string idx = name(op.operands[0]), mask = name(op.operands[1]), dflt = name(op.operands[2]);
    if (opt_.debug) {
      std::string p = std::to_string(op.attr);
      std::string t = "en_idx" + std::to_string(temp_++);
      line("en_u64 " + t + " = " + mask + " ? static_cast<en_u64>(" + idx + ") : 0ull;");
      open("if (" + mask + " && " + t + " >= en_len" + p + ")");
      open("if (atomicCAS(en_err, 0ull, 1ull) == 0ull)");
      line("en_err[1] = " + p + "ull; en_err[2] = " + t +
           "; en_err[3] = 0ull; en_err[4] = en_bx + lx; en_err[5] = en_by + ly; en_err[6] = en_bz + lz;");
      line("__threadfence();");
      close();
      line(t + " = 0;");
      close();
      idx = t;
      mask = "(" + mask + " && en_len" + p + ")";
    }
    return "(" + mask + " ? " + from_memory(op.type.elem, buf + "[" + idx + "]") + " : " + dflt + ")";
  }

  // Per-thread arrays: local arrays the compiler keeps in registers when
  // every index is constant.
  void local_alloc(const Op& op) override {
    const LocalArray& a = k_.locals.at(static_cast<size_t>(op.attr));
    std::string n = local_name(op.attr);
    line(type(a.elem) + " " + n + "[" + std::to_string(a.size) + "];  // " + a.name);
    line("for (int en_k = 0; en_k < " + std::to_string(a.size) + "; ++en_k) " + n + "[en_k] = " +
         name(op.operands[0]) + ";");
    line("(void)" + n + "[0];");  // an array never read is no warning
  }
  // Always through the clamp: NVRTC folds it for constant indices, and the
  // index's variable stays used (no unused-variable warning).
  std::string reg_index(const Op& op) {
    const LocalArray& a = k_.locals.at(static_cast<size_t>(op.attr));
    return "en_clamp_index(" + name(op.operands[0]) + ", " + std::to_string(a.size) + "ull)";
  }
  std::string local_load(const Op& op) override { return local_name(op.attr) + "[" + reg_index(op) + "]"; }
  void local_store(const Op& op) override {
    line(local_name(op.attr) + "[" + reg_index(op) + "] = " + name(op.operands[1]) + ";");
  }

  // Per-type overloads of the en_* helpers, defined as in cpu_prelude.h.
  std::string helper(const std::string& h, const DType& vt) override {
    // Vectors use the library's lane-wise forms of the scalar helper.
    const DType dt = DType::scalar(vt.elem);
    std::string ty = type(dt);
    std::string key = h + "_" + ty;
    if (helpers_.count(key) || !dt.is_integer()) return h;
    bool sgn = is_signed_int(dt.elem);
    int bits = info(dt.elem).bits;
    std::string ut = type(dt.with_elem(unsigned_of(dt.elem)));
    std::string pre = "__device__ __forceinline__ " + ty + " " + h + "(" + ty + " a, " + ty + " b) { ";
    std::string def;
    if (h == "en_div") {
      def = pre + "if (b == 0) return 0; " +
            (sgn ? "if (b == -1) return static_cast<" + ty + ">(static_cast<" + ut + ">(0) - static_cast<" + ut +
                       ">(a)); "
                 : "") +
            "return static_cast<" + ty + ">(a / b); }";
    } else if (h == "en_rem") {
      def = pre + "if (b == 0) return a; " + (sgn ? "if (b == -1) return 0; " : "") + "return static_cast<" + ty +
            ">(a % b); }";
    } else if (h == "en_floordiv") {
      helper("en_div", dt);
      def = pre + ty + " q = en_div(a, b); " +
            (sgn ? "if (b != 0 && b != -1 && static_cast<" + ty + ">(a % b) != 0 && ((a < 0) != (b < 0))) q = static_cast<" +
                       ty + ">(q - 1); "
                 : "") +
            "return q; }";
    } else if (h == "en_shl") {
      def = pre + "return static_cast<" + ty + ">(static_cast<" + ut + ">(a) << (static_cast<en_u32>(b) & " +
            std::to_string(bits - 1) + "u)); }";
    } else if (h == "en_shr") {
      // Arithmetic for signed types, logical for unsigned.
      def = pre + "return static_cast<" + ty + ">(a >> (static_cast<en_u32>(b) & " + std::to_string(bits - 1) + "u)); }";
    } else {
      throw KernelError("internal: no CUDA helper " + h);
    }
    helpers_[key] = def;
    return h;
  }

  // float -> integer saturates and NaN gives 0 (cpu_prelude.h en_cvt); the
  // bounds are powers of two, exact in float, so float compares suffice.
  std::string helper_cvt(const DType& to) {
    std::string tt = type(to);
    std::string fn = "en_cvt_" + std::string(info(to.elem).short_name);
    if (!helpers_.count(fn)) {
      int nbits = info(to.elem).bits;
      bool sgn = is_signed_int(to.elem);
      std::string lo = sgn ? pow2_literal(nbits - 1).insert(0, 1, '-') : "0.0f";  // GCC 12 -Wrestrict on "-" + s
      std::string hi = pow2_literal(sgn ? nbits - 1 : nbits);
      std::string ut = type(to.with_elem(unsigned_of(to.elem)));
      std::string mn = sgn ? "static_cast<" + tt + ">(static_cast<" + ut + ">(1) << " + std::to_string(nbits - 1) + ")"
                           : "static_cast<" + tt + ">(0)";
      std::string mx = sgn ? "static_cast<" + tt + ">(~" + mn + ")" : "static_cast<" + tt + ">(~static_cast<" + ut + ">(0))";
      helpers_[fn] = "__device__ __forceinline__ " + tt + " " + fn + "(float x) { if (x != x) return 0; if (x <= " +
                     lo + ") return " + mn + "; if (x >= " + hi + ") return " + mx + "; return static_cast<" + tt +
                     ">(x); }";
    }
    return fn;
  }

 private:
  CudaEmitOptions opt_;
  std::map<std::string, std::string> helpers_;
  int temp_ = 0;
};

}  // namespace

const std::vector<std::string>& cuda_nvrtc_options() {
  // IEEE results identical to the CPU backend: no FMA contraction, no
  // flush-to-zero, correctly rounded division and square root. --minimal
  // (NVRTC >= 12.4; dropped for older ones) skips headers the generated
  // code never uses: ~15% of a cold compile. Line info (for profilers)
  // costs ~5% more, so it is opt-in.
  static const std::vector<std::string> opts = [] {
    std::vector<std::string> o = {"--std=c++17", "-default-device", "--fmad=false", "--ftz=false",
                                  "--prec-div=true", "--prec-sqrt=true", "--minimal"};
    const char* env = std::getenv("ENIGMA_CUDA_LINEINFO");
    if (env && *env && std::string(env) != "0") o.push_back("-lineinfo");
    return o;
  }();
  return opts;
}

std::string cuda_entry_name(const Kernel& k) { return sanitize_identifier(k.name); }

int cuda_preferred_groups_per_block(const Kernel& k) {
  // Only ops whose threads never interact: a future barrier, threadgroup
  // memory or simd op must not run several groups in one block unchecked.
  bool independent = true;
  walk(k.body, [&](const Op& op) {
    switch (op.info().category) {
      case OpCategory::Constant: case OpCategory::Param: case OpCategory::ThreadQuery: case OpCategory::Arith:
      case OpCategory::Bitwise: case OpCategory::Shift: case OpCategory::Negate: case OpCategory::BitNot:
      case OpCategory::Compare: case OpCategory::Select: case OpCategory::Convert: case OpCategory::Bitcast:
      case OpCategory::Load: case OpCategory::Store: case OpCategory::For: case OpCategory::If:
      case OpCategory::While: case OpCategory::Terminator:
        break;
      default:
        independent = false;
    }
  });
  if (!independent) return 1;
  // Narrow elements need more groups for the same bytes in flight.
  int narrowest = 8;
  for (const Param& p : k.params)
    if (p.kind == Param::Kind::Buffer) narrowest = std::min(narrowest, p.type.size_bytes());
  return narrowest <= 2 ? 8 : 4;
}

std::string emit_cuda(const Kernel& k, const CudaEmitOptions& options) {
  CudaEmitter e(k, options);
  return e.run();
}

}  // namespace enigma
