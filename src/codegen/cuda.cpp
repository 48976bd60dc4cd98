// CUDA C++ for NVIDIA GPUs, compiled at run time by NVRTC (no host headers:
// the file declares every type and helper it uses).
//
// Metal's execution model on CUDA: a threadgroup is a block, the grid counts
// threads, so the runtime launches ceil(grid / threads) blocks and threads
// outside the grid return at once; edge groups report their real size, as
// the CPU backend does. f16/bf16 values live in float registers and are
// rounded after every operation, and the en_* helpers mirror semantics/numbers.h,
// so every result is bit-identical to the CPU backend's.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <map>
#include <set>

#include "codegen/c_family.h"
#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/ir/uniformity.h"
#include "enigma/support/error.h"

namespace enigma {
namespace embedded {
extern const char* const kCudaMathPrelude;
extern const char* const kCudaTypes;
}  // namespace embedded

namespace {

// What every kernel's frame uses, after the fixed-width types (embedded::kCudaTypes).
const char* const kCudaPrelude = R"(
__device__ __forceinline__ en_u32 en_minu(en_u32 a, en_u32 b) { return a < b ? a : b; }
)";

// The parts below are pasted only into kernels that use them (each costs
// NVRTC time). f16/bf16 storage conversions: hardware cvt where it matches
// semantics/numbers.h bit for bit; NaNs keep their payload as the CPU prelude does.
const char* const kCudaF32Bits =
    R"(__device__ __forceinline__ float en_f32_bits(en_u32 b) { return __uint_as_float(b); }
)";

// The f16 storage conversions: hardware cvt where it matches the CPU prelude
// bit for bit; NaNs keep their payload as the CPU prelude does.
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

const char* const kCudaBfloat =
    R"(__device__ __forceinline__ float en_b2f(en_u16 b) { return __uint_as_float((en_u32)b << 16); }
__device__ __forceinline__ en_u16 en_f2b(float f) {
  en_u32 x = __float_as_uint(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (en_u16)((x >> 16) | 0x40u);
  x += 0x7FFFu + ((x >> 16) & 1u);  // round to nearest even
  return (en_u16)(x >> 16);
}
__device__ __forceinline__ float en_rb(float f) { return en_b2f(en_f2b(f)); }
)";

// Cooperative kernels (cuda_is_cooperative). Threads of a partial edge group
// that lie outside the grid exit at once; barriers are `bar.sync` with an
// explicit thread count: the group's running threads rounded up to whole
// warps (a warp arrives for all its lanes, and warps whose lanes all exited
// are not counted), so every barrier the running threads reach completes.
const char* const kCudaCoop = R"(__device__ __forceinline__ void en_barrier(en_u32 nthreads) {
  asm volatile("bar.sync 0, %0;" : : "r"(nthreads) : "memory");
}
__device__ __forceinline__ en_u32 en_active() {
  en_u32 m;
  asm volatile("activemask.b32 %0;" : "=r"(m));
  return m;
}
__device__ __forceinline__ void en_syncwarp(en_u32 m) { asm volatile("bar.warp.sync %0;" : : "r"(m) : "memory"); }
__device__ __forceinline__ en_u32 en_shfl32(en_u32 m, en_u32 x, en_u32 lane) {
  en_u32 r;
  asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, %3;" : "=r"(r) : "r"(x), "r"(lane), "r"(m));
  return r;
}
// Any scalar through 32-bit shuffles (bit patterns, so values are exact).
__device__ __forceinline__ float en_shfl(en_u32 m, float x, en_u32 l) { return __uint_as_float(en_shfl32(m, __float_as_uint(x), l)); }
__device__ __forceinline__ bool en_shfl(en_u32 m, bool x, en_u32 l) { return en_shfl32(m, x ? 1u : 0u, l) != 0u; }
__device__ __forceinline__ en_u64 en_shfl(en_u32 m, en_u64 x, en_u32 l) {
  return ((en_u64)en_shfl32(m, (en_u32)(x >> 32), l) << 32) | en_shfl32(m, (en_u32)x, l);
}
__device__ __forceinline__ en_i64 en_shfl(en_u32 m, en_i64 x, en_u32 l) { return (en_i64)en_shfl(m, (en_u64)x, l); }
template <class T> __device__ __forceinline__ T en_shfl(en_u32 m, T x, en_u32 l) { return (T)en_shfl32(m, (en_u32)x, l); }
// The value of lane `lane ^ o` (butterfly reductions of full simdgroups and quads).
__device__ __forceinline__ en_u32 en_xor32(en_u32 m, en_u32 x, en_u32 o) {
  en_u32 r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, %3;" : "=r"(r) : "r"(x), "r"(o), "r"(m));
  return r;
}
__device__ __forceinline__ float en_xor(en_u32 m, float x, en_u32 o) { return __uint_as_float(en_xor32(m, __float_as_uint(x), o)); }
template <class T> __device__ __forceinline__ T en_xor(en_u32 m, T x, en_u32 o) { return (T)en_xor32(m, (en_u32)x, o); }
__device__ __forceinline__ en_u32 en_first(en_u32 m) { return (en_u32)(__ffs((int)m) - 1); }
__device__ __forceinline__ en_u32 en_rank(en_u32 m, en_u32 lane) { return (en_u32)__popc(m & ((1u << lane) - 1u)); }
)";

// 8x8 simdgroup matrices: every lane of the warp holds the whole tile as 64
// floats (f16/bf16 elements rounded), so each lane computes the exact float
// sums of the CPU backend in the same order.
const char* const kCudaMatrix = R"(struct en_sgmat {
  float v[64];
};
)";

// The same matrices as fragments (CudaEmitOptions::matrix_fragments): lane
// 4g + t holds row g, columns 2t and 2t + 1 (the accumulator layout of
// mma.sync m16n8k8, whose A operand has the same layout for rows 0-7).
// half/bfloat products run on the tensor cores: A as packed pairs, B moved
// into the operand layout by movmatrix (a transpose), rows 8-15 of A zero.
const char* const kCudaMatrixFragments = R"(struct en_sgmat {
  float v[2];
};
__device__ __forceinline__ en_u32 en_pack_b(float lo, float hi) { return (en_u32)en_f2b(lo) | ((en_u32)en_f2b(hi) << 16); }
__device__ __forceinline__ en_u32 en_pack_h(float lo, float hi) { return (en_u32)en_f2h(lo) | ((en_u32)en_f2h(hi) << 16); }
// Not volatile: the same B tile in several products is transposed once.
__device__ __forceinline__ en_u32 en_trans8(en_u32 x) {
  en_u32 r;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(x));
  return r;
}
// d[2], d[3]: rows 8-15 of the product, whose A rows are zero.
__device__ __forceinline__ void en_mma_bf16(float* d, en_u32 a, en_u32 b, float c0, float c1) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a), "r"(0u), "r"(b), "f"(c0), "f"(c1), "f"(0.0f), "f"(0.0f));
}
// d[2], d[3]: rows 8-15 of the product, whose A rows are zero.
__device__ __forceinline__ void en_mma_f16(float* d, en_u32 a, en_u32 b, float c0, float c1) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a), "r"(0u), "r"(b), "f"(c0), "f"(c1), "f"(0.0f), "f"(0.0f));
}
// Two products that share B in one instruction: A's rows 0-7 and 8-15 are
// two tiles, d[0..1] and d[2..3] their results.
__device__ __forceinline__ void en_mma2_bf16(float* d, en_u32 a0, en_u32 a1, en_u32 b, const float* c) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a0), "r"(a1), "r"(b), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void en_mma2_f16(float* d, en_u32 a0, en_u32 a1, en_u32 b, const float* c) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a0), "r"(a1), "r"(b), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
// An 8x8 tile of 16-bit elements from threadgroup memory, rows 16-byte
// aligned (row j at p + j * stride): lane 4g + t gets row g, columns 2t and
// 2t + 1 (trans: column g, rows 2t and 2t + 1).
__device__ __forceinline__ en_u32 en_ldmatrix(const en_u16* p, bool trans) {
  en_u32 a, r;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  if (trans) asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r) : "r"(a) : "memory");
  else asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r) : "r"(a) : "memory");
  return r;
}
)";

// Device -> threadgroup async copies in 16-byte chunks on the copy path of
// cp.async (completion groups: one per copy op, counted in en_cp).
const char* const kCudaCpAsync = R"(__device__ __forceinline__ void en_cp16(void* dst, const void* src) {
  en_u32 d;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(d) : "l"(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" : : "r"(d), "l"(src) : "memory");
}
__device__ __forceinline__ void en_cp_commit() { asm volatile("cp.async.commit_group;" : : : "memory"); }
// Waits until at most `pending` of the latest groups are still in flight.
__device__ __forceinline__ void en_cp_wait(en_u32 pending) {
  switch (pending < 7u ? pending : 7u) {
    case 0: asm volatile("cp.async.wait_group 0;" : : : "memory"); break;
    case 1: asm volatile("cp.async.wait_group 1;" : : : "memory"); break;
    case 2: asm volatile("cp.async.wait_group 2;" : : : "memory"); break;
    case 3: asm volatile("cp.async.wait_group 3;" : : : "memory"); break;
    case 4: asm volatile("cp.async.wait_group 4;" : : : "memory"); break;
    case 5: asm volatile("cp.async.wait_group 5;" : : : "memory"); break;
    case 6: asm volatile("cp.async.wait_group 6;" : : : "memory"); break;
    default: asm volatile("cp.async.wait_group 7;" : : : "memory"); break;
  }
}
)";

// Float atomics that must not flush subnormals (the hardware's f32 atomic add
// does): a compare-exchange loop on the bits.
const char* const kCudaAtomicF32 = R"(__device__ __forceinline__ float en_atomic_addf(float* p, float v, bool sub) {
  en_u32* q = (en_u32*)p;
  en_u32 old = *(volatile en_u32*)q, seen;
  do {
    seen = old;
    const float f = __uint_as_float(seen);
    old = atomicCAS(q, seen, __float_as_uint(sub ? f - v : f + v));
  } while (old != seen);
  return __uint_as_float(old);
}
)";

const char* cuda_scalar_type(Scalar s) {  // the integer types of semantics/types_cuda.h
  return register_scalar_type(s, {"en_i8", "en_u8", "en_i16", "en_u16", "en_i32", "en_u32", "en_i64", "en_u64"});
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

class CudaEmitter : public FloatRegisterEmitter {
 public:
  CudaEmitter(const Kernel& k, const CudaEmitOptions& o) : FloatRegisterEmitter(k, o.debug, o.bounds_check), opt_(o) {}

  std::string run() {
    for (const Param& p : k_.params) check_type(p.type, "parameter '" + p.name + "'");
    walk(k_.body, [&](const Op& op) {
      for (ValueId r : op.results) check_type(k_.type_of(r), op.info().name);
    });
    coop_ = cuda_is_cooperative(k_);
    deferred_ = check_memory_ && !coop_;
    if (coop_) {
      uniformity_ = analyze_uniformity(k_);
      find_barriers(k_.body);
      if (opt_.matrix_fragments) find_tensor_operands();
    }
    // Body first: it discovers the helpers the file needs.
    indent_ = 1;
    region(k_.body);
    std::string body = out_.str();
    out_.str("");
    // Checked memory, several groups per block: when every access is at the
    // thread's grid position x, an interior block whose last position is in
    // every buffer needs no checks, so the body is also emitted unchecked
    // (its accesses then merge into vectors as without checks).
    std::string body_fast;
    std::set<int64_t> accessed;
    bool at_x = deferred_ && opt_.groups_per_block > 1;
    walk(k_.body, [&](const Op& o) {
      const OpCategory c = o.info().category;
      if (c != OpCategory::Load && c != OpCategory::Store && c != OpCategory::LoadIf && c != OpCategory::Atomic) return;
      const Op* d = nullptr;
      walk(k_.body, [&](const Op& q) {
        if (!q.results.empty() && q.result() == o.operands[0]) d = &q;
      });
      const DType vt = c == OpCategory::Store ? k_.type_of(o.operands[1]) : o.type;
      at_x = at_x && !is_threadgroup_memory(o.memory()) && d && d->code == OpCode::ThreadQuery &&
             d->query() == ThreadQuery::ThreadPositionInGrid && d->query_dim() == 0 &&
             (c == OpCategory::Atomic || vt == k_.memory_type(o.memory()));
      accessed.insert(o.memory());
    });
    if (at_x && !accessed.empty()) {
      check_memory_ = false;
      region(k_.body);
      body_fast = out_.str();
      out_.str("");
      check_memory_ = true;
    }

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
    if (check_memory_) {
      for (size_t i = 0; i < k_.params.size(); ++i)
        if (k_.params[i].kind == Param::Kind::Buffer) params.push_back("const en_u64 en_len" + std::to_string(i));
      params.push_back("en_u64* __restrict__ en_err");
    }
    params.push_back("const en_u32 en_grid0");
    params.push_back("const en_u32 en_grid1");
    params.push_back("const en_u32 en_grid2");

    std::ostringstream f;
    f << "// Generated by Enigma for CUDA (NVRTC): kernel '" << comment_text(k_.name) << "'.\n";
    f << "// nvrtc-options:";
    for (const std::string& o : cuda_nvrtc_options()) f << " " << o;
    f << "\n" << embedded::kCudaTypes << kCudaPrelude;
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
    const bool fragments = uses_matrix_ && opt_.matrix_fragments;  // its helpers pack pairs of 16-bit floats
    if (uses({"en_h2f", "en_f2h", "en_rh"}) || lang || fragments) f << kCudaHalf;
    if (uses({"en_b2f", "en_f2b", "en_rb"}) || lang || fragments) f << kCudaBfloat;
    if (coop_) f << kCudaCoop;
    if (uses_matrix_) f << (fragments ? kCudaMatrixFragments : kCudaMatrix);
    if (uses_async_) f << kCudaCpAsync;
    if (uses({"en_atomic_addf"})) f << kCudaAtomicF32;
    f << "\n";
    // Scalar helpers first: the library's vector forms call them.
    for (const auto& [key, text] : helpers_) f << text << "\n";
    if (!helpers_.empty()) f << "\n";
    if (lang) f << embedded::kCudaMathPrelude << "\n";

    std::string signature;
    for (size_t i = 0; i < params.size(); ++i) signature += (i ? ",\n    " : "\n    ") + params[i];
    bool ntg0 = used_queries().count({ThreadQuery::ThreadgroupsPerGrid, 0}) > 0;

    if (coop_) {
      f << "extern \"C\" __global__ void " << cuda_entry_name(k_) << (fragments ? "_tc" : "") << "(" << signature
        << ",\n    const en_u32 en_tx,\n    const en_u32 en_ty,\n    const en_u32 en_tz) {\n";
      // One 1-D block per threadgroup; the flattened index uses the edge
      // group's real sizes, so warps are Metal's simdgroups.
      f << "  const en_u32 en_tgx = blockIdx.x, en_bx = en_tgx * en_tx, en_by = blockIdx.y * en_ty, en_bz = blockIdx.z * en_tz;\n";
      f << "  const en_u32 en_ex = en_minu(en_tx, en_grid0 - en_bx), en_ey = en_minu(en_ty, en_grid1 - en_by), "
           "en_ez = en_minu(en_tz, en_grid2 - en_bz);\n";
      f << "  const en_u32 en_flat = threadIdx.x;\n";
      if (has_barrier_) f << "  const en_u32 en_nbar = (en_ex * en_ey * en_ez + 31u) & ~31u;\n";
      f << "  if (en_flat >= en_ex * en_ey * en_ez) return;\n";
      f << "  const en_u32 lx = en_flat % en_ex, ly = (en_flat / en_ex) % en_ey, lz = en_flat / (en_ex * en_ey);\n";
      f << "  (void)lx; (void)ly; (void)lz;\n";
      if (ntg0) f << "  const en_u32 en_ntg0 = gridDim.x;\n";
      if (!k_.tg_arrays.empty()) {
        f << "  extern __shared__ __align__(16) unsigned char en_smem[];\n";
        uint64_t off = 0;
        for (size_t i = 0; i < k_.tg_arrays.size(); ++i) {
          const ThreadgroupArray& a = k_.tg_arrays[i];
          f << "  " << memory_type(a.type.elem) << "* const " << tg_name(i) << " = reinterpret_cast<"
            << memory_type(a.type.elem) << "*>(en_smem + " << off << "u);\n";
          f << "  (void)" << tg_name(i) << ";\n";
          off += (a.size * static_cast<uint64_t>(a.type.size_bytes()) + 15) / 16 * 16;
        }
      }
      for (const std::string& u : unpack) f << "  " << u << "\n";
      if (uses_async_) f << "  en_u32 en_cp = 0;  // cp.async groups committed by this thread\n";
      f << body;
      f << "}\n";
      return f.str();
    }
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
      f << deferred_declarations() << body << deferred_report() << "}\n";
      return f.str();
    }
    // Each block runs `groups` consecutive threadgroups along x: more loads
    // in flight per thread, which memory-bound kernels need to reach the
    // bandwidth floor. Exact only while threads of different groups never
    // interact (cuda_preferred_groups_per_block checks the ops).
    const std::string kg = std::to_string(groups) + "u";
    f << "// " << groups << " threadgroups per block along x.\n";
    f << "extern \"C\" __global__ void " << cuda_entry_name(k_) << "_g" << groups << "(" << signature << ") {\n";
    f << "  const en_u32 en_px = threadIdx.x, ly = threadIdx.y, lz = threadIdx.z;\n";
    f << "  const en_u32 en_by = blockIdx.y * blockDim.y, en_bz = blockIdx.z * blockDim.z;\n";
    f << "  const en_u32 en_ey = en_minu(blockDim.y, en_grid1 - en_by), en_ez = en_minu(blockDim.z, en_grid2 - en_bz);\n";
    f << "  if (ly >= en_ey || lz >= en_ez) return;\n";
    if (ntg0) f << "  const en_u32 en_ntg0 = (en_grid0 - 1u) / blockDim.x + 1u;\n";
    for (const std::string& u : unpack) f << "  " << u << "\n";
    f << deferred_declarations();
    f << "  const en_u32 en_tg0 = blockIdx.x * " << kg << ";\n";
    // Interior blocks: every group full, straight-line code whose loads the
    // compiler issues together.
    f << "  if ((static_cast<en_u64>(en_tg0) + " << kg << ") * blockDim.x <= en_grid0) {\n";
    const std::string checked_body = body;
    for (int fast = body_fast.empty() ? 0 : 1; fast >= 0; --fast) {
      if (!body_fast.empty()) {
        if (fast) {
          std::string all;
          for (int64_t m : accessed)
            all += std::string(all.empty() ? "" : " && ") + "(static_cast<en_u64>(en_tg0) + " + kg +
                   ") * blockDim.x <= en_len" + std::to_string(m);
          f << "  if (" << all << ") {  // every access of this block in bounds\n";
        } else {
          f << "  } else {\n";
        }
      }
      body = fast ? body_fast : checked_body;
      std::vector<std::string> buffers;
      int narrowest = 8;
      bool f16 = false;  // its conversions are inline asm, which keeps accesses apart: no merging
      for (size_t i = 0; i < k_.params.size(); ++i)
        if (k_.params[i].kind == Param::Kind::Buffer) {
          buffers.push_back(param_name(static_cast<int>(i)));
          narrowest = std::min(narrowest, k_.params[i].type.size_bytes());
          f16 = f16 || k_.params[i].type.elem == Scalar::F16;
        }
      if (narrowest <= 2 && !f16) {
        // 16-bit (bfloat, integer) and 8-bit elements: thread p runs the block's logical
        // threads p*G .. p*G+G-1 (any order is exact: threads never interact),
        // so an access at the thread's grid position covers 16 contiguous
        // bytes, which the compiler merges into one vector access when every
        // buffer is 16-byte aligned (checked here: bound views may not be).
        std::string any;
        for (const std::string& b : buffers)
          any += (any.empty() ? "" : " | ") + ("reinterpret_cast<en_u64>(" + b + ")");
        f << "    const en_u32 en_l0 = en_tg0 * blockDim.x + en_px * " << kg << ";\n";
        f << "    const bool en_aligned = ((" << any << ") & 15u) == 0u;\n";
        for (int aligned = 1; aligned >= 0; --aligned) {
          f << (aligned ? "    if (en_aligned) {\n" : "    } else {\n");
          if (aligned)
            for (size_t i = 0; i < k_.params.size(); ++i)
              if (k_.params[i].kind == Param::Kind::Buffer) {
                const std::string& n = param_name(static_cast<int>(i));
                f << "      " << n << " = static_cast<" << (k_.params[i].written ? "" : "const ")
                  << memory_type(k_.params[i].type) << "*>(__builtin_assume_aligned(" << n << ", 16));\n";
              }
          f << "#pragma unroll\n";
          f << "      for (en_u32 en_k = 0; en_k < " << kg << "; ++en_k) {\n";
          f << "        const en_u32 en_l = en_l0 + en_k, en_tgx = en_l / blockDim.x, en_bx = en_tgx * blockDim.x, "
               "lx = en_l - en_bx, en_ex = blockDim.x;\n";
          f << "        (void)en_tgx; (void)en_bx; (void)lx; (void)en_ex;\n";
          f << indented(body, 3) << "      }\n";
        }
        f << "    }\n";
      } else {
        f << "#pragma unroll\n";
        f << "    for (en_u32 en_k = 0; en_k < " << kg << "; ++en_k) {\n";
        f << "      const en_u32 en_tgx = en_tg0 + en_k, en_bx = en_tgx * blockDim.x, lx = en_px, en_ex = blockDim.x;\n";
        f << "      (void)en_tgx; (void)en_bx; (void)lx; (void)en_ex;\n";
        f << indented(body, 2) << "    }\n";
      }
    }
    body = checked_body;
    if (!body_fast.empty()) f << "  }\n";
    f << "  } else {\n";
    f << "    for (en_u32 en_k = 0; en_k < " << kg << "; ++en_k) {\n";
    f << "      const en_u32 en_tgx = en_tg0 + en_k;\n";
    f << "      if (static_cast<en_u64>(en_tgx) * blockDim.x >= en_grid0) break;\n";
    f << "      const en_u32 en_bx = en_tgx * blockDim.x, en_ex = en_minu(blockDim.x, en_grid0 - en_bx), lx = en_px;\n";
    f << "      if (lx >= en_ex) continue;\n";
    f << "      (void)en_tgx; (void)en_bx;\n";
    f << indented(body, 2) << "    }\n";
    f << "  }\n" << deferred_report() << "}\n";
    return f.str();
  }

 protected:
  static void check_type(const DType& t, const std::string& where) {
    if (t.is_void() || t.is_scalar() || t.is_vector() || t.is_matrix() || t.kind == DType::Kind::SimdMatrix) return;
    throw KernelError("kernel: " + where + ": dtype " + t.str() + " is not supported by the CUDA backend yet");
  }

  // Whether the kernel needs the vector/matrix/math library (scalar kernels
  // and cooperative-only kernels compile as fast as before without it).
  bool uses_language() const {
    bool any = !k_.locals.empty();
    for (const Param& p : k_.params) any = any || !p.type.is_scalar();
    walk(k_.body, [&](const Op& op) {
      const OpCategory c = op.info().category;
      any = any || (c >= OpCategory::Math && c <= OpCategory::LocalStore) || op.type.is_vector() || op.type.is_matrix();
    });
    return any;
  }

  const char* scalar_type(Scalar s) const override { return cuda_scalar_type(s); }
  const char* spelling_backend() const override { return "cuda"; }
  std::string scalar_math(const std::string& fn) const override { return fn + "f"; }
  std::string type(const DType& t) const override {
    return t.kind == DType::Kind::SimdMatrix ? "en_sgmat" : FloatRegisterEmitter::type(t);
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
    const std::string flat = coop_ ? "en_flat" : "((lz * en_ey + ly) * en_ex + lx)";
    switch (q) {
      case ThreadQuery::ThreadPositionInGrid: return "(en_b" + d + " + l" + d + ")";
      case ThreadQuery::ThreadPositionInThreadgroup: return "l" + d;
      case ThreadQuery::ThreadgroupPositionInGrid: return dim == 0 ? std::string("en_tgx") : "blockIdx." + d;
      case ThreadQuery::ThreadsPerThreadgroup: return "en_e" + d;
      case ThreadQuery::ThreadsPerGrid:
      case ThreadQuery::GridSize: return "en_grid" + std::to_string(dim);
      case ThreadQuery::ThreadgroupsPerGrid: return dim == 0 ? std::string("en_ntg0") : "gridDim." + d;
      default: return flat_index_query(q, flat);
    }
  }

  // Checked memory: the first out-of-bounds access is recorded (first
  // thread wins) in en_err = {1, memory id, index, access, x, y, z}.
  std::string report_oob(int64_t mem, const std::string& index, Access access) override {
    if (deferred_)  // registers only: no atomic or fence between the thread's loads
      return "if (!en_bad) { en_bad = true; en_bad_mem = static_cast<en_u64>(" + std::to_string(mem) +
             "ll); en_bad_index = " + index + "; en_bad_access = " + std::to_string(static_cast<int>(access)) +
             "u; en_bad_x = en_bx + lx; }";
    return "if (atomicCAS(en_err, 0ull, 1ull) == 0ull) { en_err[1] = static_cast<en_u64>(" + std::to_string(mem) +
           "ll); en_err[2] = " + index + "; en_err[3] = " + std::to_string(static_cast<int>(access)) +
           "ull; en_err[4] = " +
           (thread_xyz_.empty() ? "en_bx + lx; en_err[5] = en_by + ly; en_err[6] = en_bz + lz" : thread_xyz_) +
           "; __threadfence(); }";
  }

  // Kernels whose threads never interact note their first out-of-bounds
  // access in registers and write the record once, at the end: the hot path
  // then holds no atomic or fence that would stop the compiler from issuing
  // the loads of several threadgroups together.
  std::string deferred_declarations() const {
    if (!deferred_) return "";
    return "  bool en_bad = false;\n  en_u64 en_bad_mem = 0, en_bad_index = 0;\n  en_u32 en_bad_access = 0, en_bad_x = 0;\n";
  }
  std::string deferred_report() const {
    if (!deferred_) return "";
    return "  if (en_bad && atomicCAS(en_err, 0ull, 1ull) == 0ull) { en_err[1] = en_bad_mem; en_err[2] = en_bad_index; "
           "en_err[3] = en_bad_access; en_err[4] = en_bad_x; en_err[5] = en_by + ly; en_err[6] = en_bz + lz; }\n";
  }

  // The grid position of the thread with flat index `t` in the group: x, y, z
  // as the report's en_err[4..6] assignments.
  static std::string lane_xyz(const std::string& t) {
    return "en_bx + " + t + " % en_ex; en_err[5] = en_by + (" + t + " / en_ex) % en_ey; en_err[6] = en_bz + " + t +
           " / (en_ex * en_ey)";
  }

  static bool halfish(Scalar s) { return s == Scalar::F16 || s == Scalar::BF16; }

  // A vector access (load_vec/store_vec) of `lanes` elements from an index the
  // layout path proved a multiple of `lanes`; buffers and shared arrays are
  // 16-byte aligned, so 32/64-bit lanes become one aligned en_vec access.
  std::string load_vector(const Op& op) {
    const Scalar e = k_.memory_type(op.memory()).elem;
    const int lanes = op.type.lanes;
    std::string ok = bounds_check(op.memory(), op.operands[0], lanes, kLoad);
    std::string idx = name(op.operands[0]);
    std::string buf = mem(op.memory());
    std::string v;
    if (halfish(e)) {  // 16-bit patterns widen lane by lane
      v = type(op.type) + "(";
      for (int i = 0; i < lanes; ++i)
        v += (i ? ", " : "") + from_memory(e, buf + "[" + idx + " + " + std::to_string(i) + "]");
      v += ")";
    } else {
      v = "*reinterpret_cast<const " + memory_type(op.type) + "*>(" + buf + " + " + idx + ")";
    }
    return ok.empty() ? v : "(" + ok + " ? " + v + " : " + type(op.type) + "{})";
  }

  void store_vector(const Op& op, const DType& vt) {
    const Scalar e = k_.memory_type(op.memory()).elem;
    std::string guard = bounds_check(op.memory(), op.operands[0], vt.lanes, kStore);
    if (!guard.empty()) guard = "if (" + guard + ") ";
    std::string idx = name(op.operands[0]);
    std::string buf = mem(op.memory());
    if (halfish(e)) {
      for (int i = 0; i < vt.lanes; ++i)
        line(guard + buf + "[" + idx + " + " + std::to_string(i) +
             "] = " + to_memory(e, name(op.operands[1]) + "[" + std::to_string(i) + "]") + ";");
    } else {
      line(guard + "*reinterpret_cast<" + memory_type(vt) + "*>(" + buf + " + " + idx + ") = " + name(op.operands[1]) +
           ";");
    }
  }

  std::string load(const Op& op) override {
    if (op.type != k_.memory_type(op.memory())) return load_vector(op);
    std::string ok = bounds_check(op.memory(), op.operands[0], 1, kLoad);
    std::string v = from_memory(op.type.elem, mem(op.memory()) + "[" + name(op.operands[0]) + "]");
    return ok.empty() ? v : "(" + ok + " ? " + v + " : " + type(op.type) + "{})";
  }

  void store(const Op& op) override {
    const DType vt = k_.type_of(op.operands[1]);
    if (vt != k_.memory_type(op.memory())) {
      store_vector(op, vt);
      return;
    }
    std::string ok = bounds_check(op.memory(), op.operands[0], 1, kStore);
    line((ok.empty() ? "" : "if (" + ok + ") ") + mem(op.memory()) + "[" + name(op.operands[0]) +
         "] = " + to_memory(k_.memory_type(op.memory()).elem, name(op.operands[1])) + ";");
  }

  std::string convert(const DType& from, const DType& to, const std::string& x) override {
    if (to.is_matrix() || to.is_vector()) {
      std::string et = cuda_scalar_type(to.elem), ef = cuda_scalar_type(from.elem);
      std::string r;
      if (to.is_matrix())
        r = x;  // float <-> half: the same registers, rounded below
      else if (from.is_vector())
        r = "en_vcvt<" + et + ", " + ef + ">(" + x + ")";
      else
        r = type(to) + "(" + convert(from, DType::scalar(to.elem), x) + ")";  // splat
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

  // Masked lanes never touch memory: the conditional reads only where mask is true.
  // Any memory id: a masked read of a shared array is a real masked load too.
  std::string load_if(const Op& op) override {
    std::string buf = mem(op.memory());
    std::string idx = name(op.operands[0]), mask = name(op.operands[1]), dflt = name(op.operands[2]);
    std::string ok = bounds_check(op.memory(), op.operands[0], 1, kLoad, mask);
    if (!ok.empty()) mask = "(" + mask + " && " + ok + ")";
    return "(" + mask + " ? " + from_memory(op.type.elem, buf + "[" + idx + "]") + " : " + dflt + ")";
  }

  // Per-thread arrays: local arrays the compiler keeps in registers when
  // every index is constant.
  void local_alloc(const Op& op) override {
    fill_local_array(op, type(k_.locals.at(static_cast<size_t>(op.local_array())).elem), "int", "");
    line("(void)" + local_name(op.local_array()) + "[0];");  // an array never read is no warning
  }
  // Always through the clamp: NVRTC folds it for constant indices, and the
  // index's variable stays used (no unused-variable warning).
  std::string reg_index(const Op& op) {
    const LocalArray& a = k_.locals.at(static_cast<size_t>(op.local_array()));
    return "en_clamp_index(" + name(op.operands[0]) + ", " + std::to_string(a.size) + "ull)";
  }
  std::string local_load(const Op& op) override { return local_name(op.local_array()) + "[" + reg_index(op) + "]"; }
  void local_store(const Op& op) override {
    line(local_name(op.local_array()) + "[" + reg_index(op) + "] = " + name(op.operands[1]) + ";");
  }

  // Per-type overloads of the en_* helpers, defined as in semantics/numbers.h.
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
            (sgn ? "if (b != 0 && b != -1 && static_cast<" + ty +
                       ">(a % b) != 0 && ((a < 0) != (b < 0))) q = static_cast<" + ty + ">(q - 1); "
                 : "") +
            "return q; }";
    } else if (h == "en_shl") {
      def = pre + "return static_cast<" + ty + ">(static_cast<" + ut + ">(a) << (static_cast<en_u32>(b) & " +
            std::to_string(bits - 1) + "u)); }";
    } else if (h == "en_shr") {
      // Arithmetic for signed types, logical for unsigned.
      def =
          pre + "return static_cast<" + ty + ">(a >> (static_cast<en_u32>(b) & " + std::to_string(bits - 1) + "u)); }";
    } else {
      throw KernelError("internal: no CUDA helper " + h);
    }
    helpers_[key] = def;
    return h;
  }

  // float -> integer saturates and NaN gives 0 (semantics/numbers.h en_cvt); the
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
      std::string mx =
          sgn ? "static_cast<" + tt + ">(~" + mn + ")" : "static_cast<" + tt + ">(~static_cast<" + ut + ">(0))";
      helpers_[fn] = "__device__ __forceinline__ " + tt + " " + fn +
                     "(float x) { if (x != x) return 0; if (x <= " + lo + ") return " + mn + "; if (x >= " + hi +
                     ") return " + mx + "; return static_cast<" + tt + ">(x); }";
    }
    return fn;
  }

  std::string tg_name(size_t i) const { return "en_tg_" + tg_array_name(i); }
  std::string mem(int64_t m) const {
    return is_threadgroup_memory(m) ? tg_name(threadgroup_array_index(m)) : param_name(static_cast<int>(m));
  }

  void find_barriers(const Region& r) {
    for (const Op& op : r.ops) {
      if (op.code == OpCode::Barrier) has_barrier_ = true;
      for (const Region& sub : op.regions) find_barriers(sub);
    }
  }

  // ---- cooperative ops (see the frame in run() and kCudaCoop) ----
  bool special(const Op& op) override {
    auto n = [&](size_t i) { return name(op.operands[i]); };
    switch (op.info().category) {
      case OpCategory::Barrier:
        if (op.code == OpCode::Barrier)
          line("en_barrier(en_nbar);");  // orders all memory of the block
        else
          line("en_syncwarp(" + sync_mask() + ");");
        return true;
      case OpCategory::GroupReduce:
      case OpCategory::GroupScan: reduce_or_scan(op); return true;
      case OpCategory::GroupShuffle: shuffle(op); return true;
      case OpCategory::Atomic: atomic(op); return true;
      case OpCategory::MatrixLoad:
      case OpCategory::MatrixStore:
      case OpCategory::MatrixFill:
      case OpCategory::MatrixMma: matrix(op); return true;
      case OpCategory::AsyncCopy: {
        // Shared out over the simdgroup's active lanes (operands of its first
        // active lane), as Metal's simdgroup copy. Device -> threadgroup
        // copies whose rows are whole 16-byte chunks, aligned at both ends,
        // are cp.async (one commit group per copy; the event is the group's
        // number); anything else is copied at once.
        uses_async_ = true;
        const bool two_d = op.code == OpCode::AsyncCopy2D;
        open("");
        line("const en_u32 en_m = " + sync_mask() + ", en_k = en_rank(en_m, en_flat & 31u), en_c = __popc(en_m);");
        std::vector<std::string> a;
        for (size_t i = 0; i < op.operands.size(); ++i) {
          a.push_back("en_a" + std::to_string(i));
          line("const en_u64 " + a.back() + " = " + from_first_lane(op.operands[i], "en_u64") + ";");
        }
        const std::string dst = mem(op.copy_destination()), src = mem(op.copy_source());
        // Checked per element (source out of bounds reads 0, the store is
        // dropped), reported as the simdgroup's first active lane.
        thread_xyz_ = lane_xyz("((en_flat & ~31u) + en_first(en_m))");
        auto element = [&](const std::string& d, const std::string& s) {
          std::string okd = bounds_check_expr(op.copy_destination(), d, 1, kStore);
          std::string oks = bounds_check_expr(op.copy_source(), s, 1, kLoad);
          std::string v = src + "[" + s + "]";
          if (!oks.empty())
            v = oks + " ? " + v + " : static_cast<" + memory_type(k_.memory_type(op.copy_source()).elem) + ">(0)";
          line((okd.empty() ? "" : "if (" + okd + ") ") + dst + "[" + d + "] = " + v + ";");
        };
        // Checked memory: the chunked path only for a copy entirely in bounds.
        auto range_ok = [&](int64_t m, const std::string& off, const std::string& cnt) {
          const std::string len = mem_length(m);
          return "(" + cnt + " <= " + len + " && " + off + " <= " + len + " - " + cnt + ")";
        };
        std::string in_bounds;
        if (check_memory_) {
          if (!two_d) {
            in_bounds =
                " && " + range_ok(op.copy_destination(), a[0], a[2]) + " && " + range_ok(op.copy_source(), a[1], a[2]);
          } else {
            const std::string rows = "(" + a[5] + " - 1u)";
            in_bounds = " && " + a[5] + " != 0u && " +
                        range_ok(op.copy_destination(), a[0] + " + " + rows + " * " + a[1], a[4]) + " && " +
                        range_ok(op.copy_source(), a[2] + " + " + rows + " * " + a[3], a[4]);
          }
        }
        const int esize = k_.memory_type(op.copy_source()).size_bytes();
        const bool chunks = is_threadgroup_memory(op.copy_destination()) && !is_threadgroup_memory(op.copy_source()) &&
                            esize <= 16 && 16 % esize == 0;
        if (chunks) {
          const std::string v = std::to_string(16 / esize) + "u";  // elements a chunk
          const std::string fits = two_d ? "(" + a[0] + " | " + a[1] + " | " + a[2] + " | " + a[3] + " | " + a[4] + ")"
                                         : "(" + a[0] + " | " + a[1] + " | " + a[2] + ")";
          open("if ((" + fits + " % " + v + ") == 0u && (reinterpret_cast<en_u64>(" + src + ") & 15u) == 0u" +
               in_bounds + ")");
          if (!two_d) {
            line("for (en_u64 en_i = en_k * " + v + "; en_i < " + a[2] + "; en_i += en_c * " + v + ") en_cp16(" + dst +
                 " + " + a[0] + " + en_i, " + src + " + " + a[1] + " + en_i);");
          } else {
            line("const en_u64 en_w = " + a[4] + " / " + v + ";  // chunks a row");
            open("for (en_u64 en_i = en_k; en_i < en_w * " + a[5] + "; en_i += en_c)");
            line("const en_u64 en_r = en_i / en_w, en_cc = (en_i % en_w) * " + v + ";");
            line("en_cp16(" + dst + " + " + a[0] + " + en_r * " + a[1] + " + en_cc, " + src + " + " + a[2] +
                 " + en_r * " + a[3] + " + en_cc);");
            close();
          }
          close("} else {");
          ++indent_;
        }
        if (!two_d) {
          open("for (en_u64 en_i = en_k; en_i < " + a[2] + "; en_i += en_c)");
          element(a[0] + " + en_i", a[1] + " + en_i");
          close();
        } else {
          open("for (en_u64 en_i = en_k; en_i < " + a[4] + " * " + a[5] + "; en_i += en_c)");
          line("const en_u64 en_r = en_i / " + a[4] + ", en_cc = en_i % " + a[4] + ";");
          element(a[0] + " + en_r * " + a[1] + " + en_cc", a[2] + " + en_r * " + a[3] + " + en_cc");
          close();
        }
        thread_xyz_.clear();
        line("en_syncwarp(en_m);");
        if (chunks) close();
        close();
        line("en_cp_commit();");
        line("const " + type(op.type) + " " + name(op.result()) + " = static_cast<" + type(op.type) + ">(en_cp++);");
        return true;
      }
      case OpCategory::AsyncWait: {
        // Until the latest of the events' groups is done (later groups may
        // stay in flight), then the simdgroup sees every lane's copies.
        uses_async_ = true;
        std::string latest;
        for (size_t i = 0; i < op.operands.size(); ++i) {
          const std::string e = "static_cast<en_u32>(" + n(i) + ")";
          latest = latest.empty() ? e : "(" + latest + " > " + e + " ? " + latest + " : " + e + ")";
        }
        line(latest.empty() ? "en_cp_wait(0u);" : "en_cp_wait(en_cp - 1u - " + latest + ");");
        line("en_syncwarp(" + sync_mask() + ");");
        return true;
      }
      default: return false;
    }
  }

  std::string combine(CollectiveInfo::Kind kd, const DType& t, const std::string& a, const std::string& b) const {
    return combine_scalars(kd, t, a, b);
  }
  std::string identity(CollectiveInfo::Kind kd, const DType& t) const {
    using K = CollectiveInfo::Kind;
    const std::string T = type(t);
    if (t.is_float()) {
      if (kd == K::Product) return "1.0f";
      if (kd == K::Min) return "__uint_as_float(0x7f800000u)";
      if (kd == K::Max) return "__uint_as_float(0xff800000u)";
      return "0.0f";
    }
    const std::string U = type(t.with_elem(unsigned_of(t.elem)));
    const std::string umax = "static_cast<" + U + ">(~static_cast<" + U + ">(0))";
    const bool sgn = is_signed_int(t.elem);
    const std::string smax = "static_cast<" + T + ">(" + umax + " >> 1)";
    switch (kd) {
      case K::Product: return "static_cast<" + T + ">(1)";
      case K::Min: return sgn ? smax : umax;
      case K::Max: return sgn ? "static_cast<" + T + ">(~" + smax + ")" : "static_cast<" + T + ">(0)";
      case K::And: return "static_cast<" + T + ">(" + umax + ")";
      default: return "static_cast<" + T + ">(0)";
    }
  }
  std::string round_to(Scalar s, const std::string& e) const {
    if (s == Scalar::F16) return "en_rh(" + e + ")";
    if (s == Scalar::BF16) return "en_rb(" + e + ")";
    return e;
  }

  // The defined reduction order, shared with the CPU backend: a full
  // simdgroup (quad) reduces as the xor butterfly, offsets 16, 8, 4, 2, 1
  // (quad: 2, 1), each lane combining its value with its partner's (every
  // lane ends with the same bits); a partial one, or one under divergent
  // control flow or of a uniform value (where the CPU reduces lane by
  // lane), gathers the active lanes' values and combines them in ascending
  // lane order. Integer reductions are exact in any order, so they always
  // take the butterfly when the simdgroup (quad) is full.
  // Vectors go lane by lane, as Metal defines vector collectives.
  // make_filled_simdgroup_matrix: the first active lane's value in every
  // element this thread holds (all 64, or its two of a fragment).
  void matrix_fill(const Op& op) {
    const std::string r = name(op.result());
    line("en_sgmat " + r + ";");
    open("");
    line("const en_u32 en_m = " + sync_mask() + ";");
    if (opt_.matrix_fragments) {
      line("(void)en_m;");
      line("const float en_x = static_cast<float>(" + from_first_lane(op.operands[0], "float") + ");");
      line(r + ".v[0] = en_x; " + r + ".v[1] = en_x;");
    } else {
      line("const float en_x = en_shfl(en_m, static_cast<float>(" + name(op.operands[0]) + "), en_first(en_m));");
      line("for (int en_i = 0; en_i < 64; ++en_i) " + r + ".v[en_i] = en_x;");
    }
    close();
  }

  // A simdgroup matrix load or store: declares a loaded matrix, opens the
  // op's block and reads the active lanes. Returns whether it loads, its origin operand's index, the
  // memory's element type and the matrix's name.
  struct MatrixAccess {
    bool load = false;
    size_t first = 0;
    Scalar e = Scalar::F32;
    std::string m;
  };
  MatrixAccess open_matrix_access(const Op& op) {
    const bool load = op.code == OpCode::SimdMatrixLoad;
    MatrixAccess a{load, load ? size_t{0} : size_t{1}, k_.memory_type(op.memory()).elem,
                   load ? name(op.result()) : name(op.operands[0])};
    if (load) line("en_sgmat " + a.m + ";");
    open("");
    // The active lanes, and the first one (whole tiles) or this lane's row and columns (fragments).
    line("const en_u32 en_m = " + sync_mask() + ", " +
         (opt_.matrix_fragments ? "en_g = (en_flat & 31u) >> 2, en_t = (en_flat & 3u) * 2u;"
                                : "en_f = en_first(en_m);"));
    if (opt_.matrix_fragments) line("(void)en_m;");
    return a;
  }

  void reduce_or_scan(const Op& op) { lane_by_lane(op, &CudaEmitter::reduce_or_scan_lane); }

  // Declares op's result and emits `each` for it (result r, value x): once
  // for a scalar, once per lane of a vector.
  using LaneEmitter = void (CudaEmitter::*)(const Op&, const DType&, const std::string&, const std::string&);
  void lane_by_lane(const Op& op, LaneEmitter each) {
    const DType& t = op.type;
    const std::string r = name(op.result()), x = name(op.operands[0]);
    line(type(t) + " " + r + ";");
    if (!t.is_vector()) return (this->*each)(op, t, r, x);
    for (int i = 0; i < t.lanes; ++i) {
      const std::string c = ".v[" + std::to_string(i) + "]";
      (this->*each)(op, DType::scalar(t.elem), r + c, x + c);
    }
  }

  void reduce_or_scan_lane(const Op& op, const DType& t, const std::string& r, const std::string& x) {
    CollectiveInfo ci = collective_info(op.code);
    const std::string T = type(t), W = std::to_string(ci.width);
    open("");
    line("const en_u32 en_m = en_active(), en_l = en_flat & 31u, en_b = en_l & ~" + std::to_string(ci.width - 1) +
         "u;");
    // The defined order depends only on which lanes are active (as on the
    // CPU): every lane of the simdgroup (quad) active gives the butterfly,
    // under divergent control flow and for uniform operands too.
    const bool butterfly = !ci.scan;
    // Quads of one warp may take different branches below, so their shuffles
    // name only the quad's own active lanes.
    const std::string m = ci.width == 32 ? "en_m" : "(en_m & (15u << en_b))";
    if (butterfly) {
      const std::string full = ci.width == 32 ? "en_m == 0xffffffffu" : "((en_m >> en_b) & 15u) == 15u";
      open("if (" + full + ")");
      line(T + " en_acc = " + x + ";");
      line("#pragma unroll");
      open("for (en_u32 en_o = " + std::to_string(ci.width / 2) + "u; en_o > 0u; en_o >>= 1)");
      line("const " + T + " en_y = en_xor(" + m + ", en_acc, en_o);  // every lane shuffles, once");
      line("en_acc = " + combine(ci.kind, t, "en_acc", "en_y") + ";");
      close();
      line(r + " = " + round_to(t.elem, "en_acc") + ";");
      close("} else {");
      ++indent_;
    }
    line(T + " en_v[" + W + "];");
    line("#pragma unroll");
    line("for (en_u32 en_j = 0; en_j < " + W + "u; ++en_j) en_v[en_j] = en_shfl(" + m + ", " + x + ", en_b + en_j);");
    line(T + " en_acc = " + identity(ci.kind, t) + ";");
    if (!ci.scan) {
      line("for (en_u32 en_j = 0; en_j < " + W + "u; ++en_j) if ((en_m >> (en_b + en_j)) & 1u) en_acc = " +
           combine(ci.kind, t, "en_acc", "en_v[en_j]") + ";");
      line(r + " = " + round_to(t.elem, "en_acc") + ";");
    } else {
      const std::string lim = ci.inclusive ? "en_j <= en_l - en_b" : "en_j < en_l - en_b";
      line("for (en_u32 en_j = 0; " + lim + "; ++en_j) if ((en_m >> (en_b + en_j)) & 1u) en_acc = " +
           round_to(t.elem, combine(ci.kind, t, "en_acc", "en_v[en_j]")) + ";");
      line(r + " = en_acc;");
    }
    if (butterfly) close();
    close();
  }

  // A source lane out of range or inactive gives the thread its own value.
  void shuffle(const Op& op) { lane_by_lane(op, &CudaEmitter::shuffle_lane); }

  void shuffle_lane(const Op& op, const DType& t, const std::string& r, const std::string& x) {
    CollectiveInfo ci = collective_info(op.code);
    using K = CollectiveInfo::Kind;
    const std::string W = std::to_string(ci.width) + "u";
    open("");
    line("const en_u32 en_m = en_active(), en_lane = en_flat & 31u, en_l = en_lane & " + std::to_string(ci.width - 1) +
         "u, en_b = en_lane - en_l, en_d = " + name(op.operands[1]) + ";");
    std::string src, ok;
    switch (ci.kind) {
      case K::ShuffleUp:
        ok = "en_d <= en_l";
        src = "en_l - en_d";
        break;
      case K::ShuffleDown:
        ok = "en_d < " + W + " && en_l + en_d < " + W;
        src = "en_l + en_d";
        break;
      case K::ShuffleXor:
        ok = "en_d < " + W;
        src = "en_l ^ en_d";
        break;
      default:
        ok = "en_d < " + W;
        src = "en_d";
        break;
    }
    line("const bool en_ok = " + ok + ";");
    line("const en_u32 en_s = en_b + (en_ok ? " + src + " : en_l);");
    line("const " + type(t) + " en_r = en_shfl(en_m, " + x + ", en_s);");
    line(r + " = (en_ok && ((en_m >> en_s) & 1u)) ? en_r : " + x + ";");
    close();
  }

  void atomic(const Op& op) {
    const Scalar e = k_.memory_type(op.memory()).elem;
    const int order = static_cast<int>(op.atomic_order());
    const bool acquire = order == 1 || order == 3 || order == 4, release = order == 2 || order == 3 || order == 4;
    const bool f32 = e == Scalar::F32, wide = e == Scalar::I64 || e == Scalar::U64;
    const std::string T = memory_type(e);
    const std::string ptr = "&" + mem(op.memory()) + "[" + name(op.operands[0]) + "]";
    // CUDA's atomics take int, unsigned, unsigned long long (and float):
    // 64-bit signed values go through their unsigned bits except for min/max.
    const std::string raw = wide               ? "unsigned long long"
                            : e == Scalar::I32 ? "int"
                            : e == Scalar::U32 ? "unsigned"
                                               : "float";
    const std::string p = "reinterpret_cast<" + raw + "*>(" + ptr + ")";
    auto v = [&](size_t i) { return "static_cast<" + raw + ">(" + name(op.operands[i]) + ")"; };
    const std::string r = op.results.empty() ? "" : name(op.result());
    // Out of bounds, the atomic is dropped and its result is 0.
    const std::string ok = bounds_check(op.memory(), op.operands[0], 1, kAtomic);
    // A checked atomic's result is declared before its guard; one never read
    // is not declared at all (NVRTC warns of a variable set but never used).
    bool read = op.code == OpCode::AtomicCompareExchange && !ok.empty();  // spelled as a declaration below
    if (!ok.empty() && !r.empty())
      walk(k_.body, [&](const Op& o) { read = read || std::count(o.operands.begin(), o.operands.end(), op.result()); });
    const std::string decl = ok.empty() ? "const " + type(op.type) + " " : "";
    if (read) line(type(op.type) + " " + r + " = " + type(op.type) + "{};");
    if (!ok.empty()) open("if (" + ok + ")");
    auto result = [&](const std::string& call) {
      if (!ok.empty() && !read)
        line("(void)" + call + ";");
      else
        line(decl + r + " = static_cast<" + type(op.type) + ">(" + call + ");");
    };
    if (release) line("__threadfence();");
    switch (op.code) {
      case OpCode::AtomicLoad: result("*reinterpret_cast<volatile " + T + "*>(" + ptr + ")"); break;
      case OpCode::AtomicStore: line("(void)atomicExch(" + p + ", " + v(1) + ");"); break;
      case OpCode::AtomicExchange: result("atomicExch(" + p + ", " + v(1) + ")"); break;
      case OpCode::AtomicFetchAdd:
      case OpCode::AtomicFetchSub: {
        bool sub = op.code == OpCode::AtomicFetchSub;
        if (f32)
          result("en_atomic_addf(" + p + ", " + name(op.operands[1]) + (sub ? ", true)" : ", false)"));
        else if (sub)
          result("atomicAdd(" + p + ", static_cast<" + raw + ">(0) - " + v(1) + ")");
        else
          result("atomicAdd(" + p + ", " + v(1) + ")");
        break;
      }
      case OpCode::AtomicFetchMin:
      case OpCode::AtomicFetchMax: {
        const std::string mt = e == Scalar::I64 ? "long long" : raw;
        result(std::string(op.code == OpCode::AtomicFetchMin ? "atomicMin(" : "atomicMax(") + "reinterpret_cast<" + mt +
               "*>(" + ptr + "), static_cast<" + mt + ">(" + name(op.operands[1]) + "))");
        break;
      }
      case OpCode::AtomicFetchAnd: result("atomicAnd(" + p + ", " + v(1) + ")"); break;
      case OpCode::AtomicFetchOr: result("atomicOr(" + p + ", " + v(1) + ")"); break;
      case OpCode::AtomicFetchXor: result("atomicXor(" + p + ", " + v(1) + ")"); break;
      case OpCode::AtomicCompareExchange: {
        if (f32) {
          line("const en_u32 en_e" + r + " = __float_as_uint(" + name(op.operands[1]) + ");");
          line(decl + r + " = atomicCAS(reinterpret_cast<en_u32*>(" + ptr + "), en_e" + r + ", __float_as_uint(" +
               name(op.operands[2]) + ")) == en_e" + r + ";");
        } else {
          line(decl + r + " = atomicCAS(" + p + ", " + v(1) + ", " + v(2) + ") == " + v(1) + ";");
        }
        break;
      }
      default: throw KernelError(std::string("internal: no CUDA atomic ") + op.info().name);
    }
    if (acquire) line("__threadfence();");
    if (!ok.empty()) close();
  }

  void matrix(const Op& op) {
    uses_matrix_ = true;
    if (op.code == OpCode::SimdMatrixFill) return matrix_fill(op);
    if (opt_.matrix_fragments) return matrix_fragment(op);
    auto n = [&](size_t i) { return name(op.operands[i]); };
    switch (op.code) {
      case OpCode::SimdMatrixLoad:
      case OpCode::SimdMatrixStore: {
        const auto [load, first, e, m] = open_matrix_access(op);
        line("const en_u64 en_o = static_cast<en_u64>(en_shfl(en_m, " + n(first) +
             ", en_f)), en_p = static_cast<en_u64>(en_shfl(en_m, " + n(first + 1) + ", en_f));");
        const std::string off = op.transposed() ? "en_o + en_c * en_p + en_r" : "en_o + en_r * en_p + en_c";
        const std::string at = mem(op.memory()) + "[" + off + "]";
        // Checked per element, reported as the simdgroup's first active lane.
        thread_xyz_ = lane_xyz("((en_flat & ~31u) + en_f)");
        if (load) {
          open("for (en_u64 en_r = 0; en_r < 8; ++en_r) for (en_u64 en_c = 0; en_c < 8; ++en_c)");
          std::string ok = bounds_check_expr(op.memory(), off, 1, kLoad);
          std::string v = from_memory(e, at);
          line(m + ".v[en_r * 8 + en_c] = " + (ok.empty() ? v : ok + " ? " + v + " : 0.0f") + ";");
          close();
        } else {
          // The active lanes share the 64 stores out.
          line("const en_u32 en_c0 = __popc(en_m);");
          open("for (en_u32 en_i = en_rank(en_m, en_flat & 31u); en_i < 64u; en_i += en_c0)");
          line("const en_u64 en_r = en_i / 8u, en_c = en_i % 8u;");
          std::string ok = bounds_check_expr(op.memory(), off, 1, kStore);
          line((ok.empty() ? "" : "if (" + ok + ") ") + at + " = " + to_memory(e, m + ".v[en_i]") + ";");
          close();
          line("en_syncwarp(en_m);");
        }
        thread_xyz_.clear();
        close();
        return;
      }
      case OpCode::SimdMatrixMultiplyAccumulate: {
        // d = a * b + c, accumulated in float, rounded to c's dtype.
        const std::string d = name(op.result());
        line("en_sgmat " + d + ";");
        line("#pragma unroll 1");  // rows as a loop: kernels with many products stay quick to compile
        open("for (int en_r = 0; en_r < 8; ++en_r)");
        line("float en_acc[8];");
        line("for (int en_c = 0; en_c < 8; ++en_c) en_acc[en_c] = " + n(2) + ".v[en_r * 8 + en_c];");
        // One fused multiply-add per k, in k order (the defined order).
        line("for (int en_k = 0; en_k < 8; ++en_k) for (int en_c = 0; en_c < 8; ++en_c) en_acc[en_c] = __fmaf_rn(" +
             n(0) + ".v[en_r * 8 + en_k], " + n(1) + ".v[en_k * 8 + en_c], en_acc[en_c]);");
        line("for (int en_c = 0; en_c < 8; ++en_c) " + d +
             ".v[en_r * 8 + en_c] = " + round_to(op.type.elem, "en_acc[en_c]") + ";");
        close();
        return;
      }
      default: throw KernelError(std::string("internal: no CUDA matrix op ") + op.info().name);
    }
  }

  // The lanes taking part in a simdgroup matrix op, an async copy or a
  // simd_barrier. The IR admits these only under control flow uniform across
  // the simdgroup (check_sync_uniformity), and the fragment entry runs only
  // when every simdgroup is full: there, all 32 lanes, a constant the
  // compiler folds (no activemask, no fallback for partial simdgroups).
  std::string sync_mask() const { return opt_.matrix_fragments ? "0xffffffffu" : "en_active()"; }

  // An operand of a simdgroup op as the first active lane sees it: the
  // value itself when the analysis proves it the same across the simdgroup.
  std::string from_first_lane(ValueId v, const std::string& type) {
    if (uniformity_[v] != Uniformity::Varying) return "static_cast<" + type + ">(" + name(v) + ")";
    return "static_cast<" + type + ">(en_shfl(en_m, " + name(v) + ", en_first(en_m)))";
  }

  // Tensor-core operands prepared once where the matrix is made (a product's
  // A as packed pairs, its B packed and transposed), not in every product.
  bool tensor_operands(const Op& op) const {
    const Scalar ea = k_.type_of(op.operands[0]).elem, eb = k_.type_of(op.operands[1]).elem;
    return ea == eb && (ea == Scalar::F16 || ea == Scalar::BF16);
  }
  void find_tensor_operands() {
    walk(k_.body, [&](const Op& op) {
      if (op.code != OpCode::SimdMatrixMultiplyAccumulate || !tensor_operands(op)) return;
      packed_a_.insert(op.operands[0]);
      packed_b_.insert(op.operands[1]);
    });
    pair_products(k_.body);
  }
  // Adjacent tensor products with the same B (and dtypes), the second not
  // reading the first's result, share one m16n8k8: the first emits both.
  void pair_products(const Region& r) {
    for (size_t i = 0; i < r.ops.size(); ++i) {
      for (const Region& sub : r.ops[i].regions) pair_products(sub);
      if (i + 1 >= r.ops.size()) continue;
      const Op &x = r.ops[i], &y = r.ops[i + 1];
      const bool products = x.code == OpCode::SimdMatrixMultiplyAccumulate &&
                            y.code == OpCode::SimdMatrixMultiplyAccumulate && tensor_operands(x) &&
                            tensor_operands(y) && !paired_second_.count(&x);
      if (!products || x.operands[1] != y.operands[1] || x.type != y.type ||
          k_.type_of(x.operands[0]) != k_.type_of(y.operands[0]) ||
          k_.type_of(x.operands[2]) != k_.type_of(y.operands[2]))
        continue;
      if (std::find(y.operands.begin(), y.operands.end(), x.result()) != y.operands.end()) continue;
      paired_first_[&x] = &y;
      paired_second_.insert(&y);
    }
  }
  static const char* pack_fn(Scalar e) { return e == Scalar::BF16 ? "en_pack_b" : "en_pack_h"; }
  void prepare_operands(ValueId m) {
    const Scalar e = k_.type_of(m).elem;
    const std::string x = name(m);
    if (packed_a_.count(m)) line("const en_u32 " + x + "_pa = " + pack_fn(e) + "(" + x + ".v[0], " + x + ".v[1]);");
    if (packed_b_.count(m))
      line("const en_u32 " + x + "_pb = en_trans8(" + pack_fn(e) + "(" + x + ".v[0], " + x + ".v[1]));");
  }
  std::string packed_operand(ValueId m, bool b) {
    const std::set<ValueId>& ready = b ? packed_b_ : packed_a_;
    const std::string x = name(m);
    if (ready.count(m) && prepared_.count(m)) return x + (b ? "_pb" : "_pa");
    const std::string p = std::string(pack_fn(k_.type_of(m).elem)) + "(" + x + ".v[0], " + x + ".v[1])";
    return b ? "en_trans8(" + p + ")" : p;
  }

  // Simdgroup matrices as fragments (kCudaMatrixFragments); the runtime
  // takes this entry only when every simdgroup of the launch is full.
  void matrix_fragment(const Op& op) {
    auto n = [&](size_t i) { return name(op.operands[i]); };
    switch (op.code) {
      case OpCode::SimdMatrixLoad:
      case OpCode::SimdMatrixStore: {
        const auto [load, first, e, m] = open_matrix_access(op);
        line("const en_u64 en_o = " + from_first_lane(op.operands[first], "en_u64") +
             ", en_p = " + from_first_lane(op.operands[first + 1], "en_u64") + ";");
        auto off = [&](const std::string& i) {  // element (g, t + i) of the tile
          const std::string r = "en_g", c = "(en_t + " + i + ")";
          return op.transposed() ? "en_o + " + c + " * en_p + " + r : "en_o + " + r + " * en_p + " + c;
        };
        auto at = [&](const std::string& i) { return mem(op.memory()) + "[" + off(i) + "]"; };
        // Checked per element, reported as the simdgroup's first active lane.
        thread_xyz_ = lane_xyz("((en_flat & ~31u) + en_first(en_m))");
        if (load) {
          const bool ldm = is_threadgroup_memory(op.memory()) && (e == Scalar::F16 || e == Scalar::BF16);
          if (ldm) {  // rows 16-byte aligned: one ldmatrix for the warp (the whole tile in bounds)
            std::string whole = "en_m == 0xffffffffu && ((en_o | en_p) & 7u) == 0u";
            if (check_memory_) {  // the largest element of the tile is (7, 7), either way round
              const std::string len = mem_length(op.memory());
              whole += " && " + len + " >= 8u && en_o + 7u * en_p <= " + len + " - 8u";
            }
            open("if (" + whole + ")");
            // The tile is in threadgroup memory (< 2^32 elements): 32-bit address arithmetic.
            line("const en_u32 en_x = en_ldmatrix(" + mem(op.memory()) +
                 " + static_cast<en_u32>(en_o) + (en_flat & 7u) * static_cast<en_u32>(en_p), " +
                 (op.transposed() ? "true" : "false") + ");");
            line(m + ".v[0] = " + from_memory(e, "static_cast<en_u16>(en_x & 0xffffu)") + "; " + m +
                 ".v[1] = " + from_memory(e, "static_cast<en_u16>(en_x >> 16)") + ";");
            close("} else {");
            ++indent_;
          }
          for (int i = 0; i < 2; ++i) {
            const std::string ix = std::to_string(i) + "u", v = from_memory(e, at(ix));
            const std::string ok = bounds_check_expr(op.memory(), off(ix), 1, kLoad);
            line(m + ".v[" + std::to_string(i) + "] = " + (ok.empty() ? v : ok + " ? " + v + " : 0.0f") + ";");
          }
          if (ldm) close();
        } else {
          for (int i = 0; i < 2; ++i) {
            const std::string ix = std::to_string(i) + "u";
            const std::string ok = bounds_check_expr(op.memory(), off(ix), 1, kStore);
            line((ok.empty() ? "" : "if (" + ok + ") ") + at(ix) + " = " +
                 to_memory(e, m + ".v[" + std::to_string(i) + "]") + ";");
          }
          line("en_syncwarp(en_m);");
        }
        thread_xyz_.clear();
        close();
        if (load) {
          prepare_operands(op.result());
          prepared_.insert(op.result());
        }
        return;
      }
      case OpCode::SimdMatrixMultiplyAccumulate: {
        // d = a * b + c, accumulated in float, rounded to c's dtype.
        if (paired_second_.count(&op)) return;  // emitted with its partner
        const std::string d = name(op.result());
        const Scalar ea = k_.type_of(op.operands[0]).elem, eb = k_.type_of(op.operands[1]).elem;
        if (auto it = paired_first_.find(&op); it != paired_first_.end()) {
          const Op& y = *it->second;
          const std::string d2 = name(y.result());
          line("en_sgmat " + d + ", " + d2 + ";");
          open("");
          open("if (" + sync_mask() + " == 0xffffffffu)");
          line("const float en_c[4] = {" + n(2) + ".v[0], " + n(2) + ".v[1], " + name(y.operands[2]) + ".v[0], " +
               name(y.operands[2]) + ".v[1]};");
          line("float en_d[4];");
          line(std::string(ea == Scalar::BF16 ? "en_mma2_bf16" : "en_mma2_f16") + "(en_d, " +
               packed_operand(op.operands[0], false) + ", " + packed_operand(y.operands[0], false) + ", " +
               packed_operand(op.operands[1], true) + ", en_c);");
          line(d + ".v[0] = " + round_to(op.type.elem, "en_d[0]") + "; " + d +
               ".v[1] = " + round_to(op.type.elem, "en_d[1]") + ";");
          line(d2 + ".v[0] = " + round_to(op.type.elem, "en_d[2]") + "; " + d2 +
               ".v[1] = " + round_to(op.type.elem, "en_d[3]") + ";");
          close("} else {");
          ++indent_;
          line(d + ".v[0] = " + d + ".v[1] = " + d2 + ".v[0] = " + d2 + ".v[1] = __uint_as_float(0x7fc00000u);");
          close();
          close();
          return;
        }
        line("en_sgmat " + d + ";");
        open("");
        line("const en_u32 en_m = " + sync_mask() + ";");
        const bool tensor = ea == eb && (ea == Scalar::F16 || ea == Scalar::BF16);
        if (tensor) {
          // Tensor cores: products of half/bfloat are exact in float; the
          // accumulation's rounding is the hardware's (docs/cooperative.md).
          open("if (en_m == 0xffffffffu)");
          line("float en_d[4];");
          line(std::string(ea == Scalar::BF16 ? "en_mma_bf16" : "en_mma_f16") + "(en_d, " +
               packed_operand(op.operands[0], false) + ", " + packed_operand(op.operands[1], true) + ", " + n(2) +
               ".v[0], " + n(2) + ".v[1]);");
          line(d + ".v[0] = " + round_to(op.type.elem, "en_d[0]") + "; " + d +
               ".v[1] = " + round_to(op.type.elem, "en_d[1]") + ";");
          // Only under control flow that splits the simdgroup, which the
          // compiler rejects where it can see it: NaN, never a hang.
          close("} else {");
          ++indent_;
          line(d + ".v[0] = " + d + ".v[1] = __uint_as_float(0x7fc00000u);");
          close();
          close();
          return;
        }
        // Exact float, the CPU's order: row g of a and columns 2t, 2t + 1
        // of b through shuffles, then fma(a[g][k], b[k][c], .) from c in k order.
        line("const en_u32 en_g = (en_flat & 31u) >> 2, en_t = en_flat & 3u;");
        line("float en_a[8], en_b0[8], en_b1[8];");
        line("#pragma unroll");
        open("for (en_u32 en_j = 0; en_j < 4u; ++en_j)");
        line("en_a[2 * en_j] = en_shfl(en_m, " + n(0) + ".v[0], en_g * 4u + en_j);");
        line("en_a[2 * en_j + 1] = en_shfl(en_m, " + n(0) + ".v[1], en_g * 4u + en_j);");
        close();
        line("#pragma unroll");
        open("for (en_u32 en_k = 0; en_k < 8u; ++en_k)");
        line("en_b0[en_k] = en_shfl(en_m, " + n(1) + ".v[0], en_k * 4u + en_t);");
        line("en_b1[en_k] = en_shfl(en_m, " + n(1) + ".v[1], en_k * 4u + en_t);");
        close();
        line("float en_c0 = " + n(2) + ".v[0], en_c1 = " + n(2) + ".v[1];");
        line("#pragma unroll");
        line(
            "for (int en_k = 0; en_k < 8; ++en_k) { en_c0 = __fmaf_rn(en_a[en_k], en_b0[en_k], en_c0); "
            "en_c1 = __fmaf_rn(en_a[en_k], en_b1[en_k], en_c1); }");
        line(d + ".v[0] = " + round_to(op.type.elem, "en_c0") + "; " + d +
             ".v[1] = " + round_to(op.type.elem, "en_c1") + ";");
        close();
        return;
      }
      default: throw KernelError(std::string("internal: no CUDA matrix op ") + op.info().name);
    }
  }

 private:
  CudaEmitOptions opt_;
  std::string thread_xyz_;  // set while a simdgroup-level op reports on behalf of its first lane
  std::map<std::string, std::string> helpers_;
  int temp_ = 0;
  bool coop_ = false, has_barrier_ = false, uses_matrix_ = false, uses_async_ = false;
  bool deferred_ = false;  // out-of-bounds reports at the end of the kernel (deferred_report)
  std::vector<Uniformity> uniformity_;
  std::set<ValueId> packed_a_, packed_b_, prepared_;  // tensor-core operands (matrix_fragments)
  std::map<const Op*, const Op*> paired_first_;       // products sharing one m16n8k8
  std::set<const Op*> paired_second_;
};

}  // namespace

const std::vector<std::string>& cuda_nvrtc_options() {
  // IEEE results identical to the CPU backend: no FMA contraction, no
  // flush-to-zero, correctly rounded division and square root. --minimal
  // (NVRTC >= 12.4; dropped for older ones) skips headers the generated
  // code never uses: ~15% of a cold compile. Line info (for profilers)
  // costs ~5% more, so it is opt-in.
  static const std::vector<std::string> opts = [] {
    std::vector<std::string> o = {"--std=c++17",     "-default-device",  "--fmad=false", "--ftz=false",
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
  if (cuda_is_cooperative(k)) return 1;
  // Narrow elements need more groups for the same bytes in flight.
  int narrowest = 8;
  for (const Param& p : k.params)
    if (p.kind == Param::Kind::Buffer) narrowest = std::min(narrowest, p.type.size_bytes());
  return narrowest <= 2 ? 8 : 4;
}

bool cuda_uses_matrices(const Kernel& k) {
  bool any = false;
  walk(k.body, [&](const Op& op) {
    const OpCategory c = op.info().category;
    any = any || c == OpCategory::MatrixLoad || c == OpCategory::MatrixStore || c == OpCategory::MatrixFill ||
          c == OpCategory::MatrixMma;
  });
  return any;
}

bool cuda_is_cooperative(const Kernel& k) {
  if (!k.tg_arrays.empty()) return true;
  bool independent = true;
  walk(k.body, [&](const Op& op) {
    switch (op.info().category) {
      case OpCategory::Constant:
      case OpCategory::Param:
      case OpCategory::ThreadQuery:
      case OpCategory::Arith:
      case OpCategory::Bitwise:
      case OpCategory::Shift:
      case OpCategory::Negate:
      case OpCategory::BitNot:
      case OpCategory::Compare:
      case OpCategory::Select:
      case OpCategory::Convert:
      case OpCategory::Bitcast:
      case OpCategory::Load:
      case OpCategory::Store:
      case OpCategory::For:
      case OpCategory::If:
      case OpCategory::While:
      case OpCategory::Terminator: break;
      default: independent = false;
    }
  });
  return !independent;
}

std::string emit_cuda(const Kernel& k, const CudaEmitOptions& options) {
  CudaEmitter e(k, options);
  return e.run();
}

}  // namespace enigma
