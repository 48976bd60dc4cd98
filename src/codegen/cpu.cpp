// C++ for the CPU backend. Threadgroups are distributed over cores by the
// runtime; inside a threadgroup the threads run as loops (x innermost) that
// the compiler vectorises, since threads without barriers are independent.
//
// Kernels with sync ops (barriers, simd/quad ops, simdgroup matrices, async
// copies) use the work-group-loop technique: each region is split at sync
// points into runs of ordinary ops, each run a loop over the group's threads;
// values live across runs are kept per thread in scratch arrays; sync ops run
// at group level between the loops. Control flow holding sync ops runs at
// group level: its bounds must agree across the threads (checked at run
// time), and an if_ whose condition varies runs its branches under a mask.
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "codegen/c_family.h"
#include "codegen/cpu_plan.h"
#include "enigma/codegen/codegen.h"
#include "enigma/codegen/spelling.h"
#include "enigma/support/error.h"

namespace enigma {
namespace embedded {
extern const char* const kCpuPrelude;
extern const char* const kCpuMathPrelude;
extern const char* const kCpuAbi;
}  // namespace embedded

namespace {

const char* cpu_scalar_type(Scalar s) {
  return register_scalar_type(
      s, {"int8_t", "uint8_t", "int16_t", "uint16_t", "int32_t", "uint32_t", "int64_t", "uint64_t"});
}

// Generated-code helpers of cooperative kernels: per-worker scratch memory,
// atomics the __atomic builtins lack, and the run-time failure report.
const char* const kCoopPrelude = R"(static inline size_t en_align64(size_t n) { return (n + 63) & ~size_t{63}; }
// A threadgroup's control flow disagreed between its threads (or memory ran
// out): report once and stop this chunk of threadgroups.
static inline void en_fail(const EnigmaCpuLaunch* L, int32_t kind, uint64_t loc, uint64_t tg, uint64_t thread) {
  int32_t expected = 0;
  if (__atomic_compare_exchange_n(L->error_flag, &expected, kind, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    uint64_t* e = L->error_info;
    e[0] = loc; e[1] = tg; e[2] = thread;
  }
}
// The xor butterfly of a full simdgroup's 32 floats (offsets 16, 8, 4, 2, 1:
// docs/cooperative.md) on 8-float vectors. K: 0 sum, 1 product.
typedef float en_v8f __attribute__((vector_size(32)));
typedef float en_v4f __attribute__((vector_size(16)));
template <int K> static inline float en_butterfly32(const float* x) {
  en_v8f a0, a1, a2, a3;  // lanes 0-7, 8-15, 16-23, 24-31
  std::memcpy(&a0, x, 32);
  std::memcpy(&a1, x + 8, 32);
  std::memcpy(&a2, x + 16, 32);
  std::memcpy(&a3, x + 24, 32);
  auto op = [](auto p, auto q) { if constexpr (K == 0) return p + q; else return p * q; };
  const en_v8f s = op(op(a0, a2), op(a1, a3));  // offsets 16 and 8
  const en_v4f q = op(__builtin_shufflevector(s, s, 0, 1, 2, 3), __builtin_shufflevector(s, s, 4, 5, 6, 7));
  return op(op(q[0], q[2]), op(q[1], q[3]));
}
)";

const char* const kAtomicPrelude = R"(template <class T> static inline T en_atomic_min(T* p, T v, int mo) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v < old && !__atomic_compare_exchange_n(p, &old, v, true, mo, __ATOMIC_RELAXED)) {}
  return old;
}
template <class T> static inline T en_atomic_max(T* p, T v, int mo) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, mo, __ATOMIC_RELAXED)) {}
  return old;
}
// float read-modify-write through compare-exchange on the value's bytes.
static inline float en_atomic_fadd(float* p, float v, int mo) {
  float old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  float next = old + v;
  while (!__atomic_compare_exchange(p, &old, &next, true, mo, __ATOMIC_RELAXED)) next = old + v;
  return old;
}
)";

// Simdgroup matrices: 8x8 floats, row-major, one per simdgroup in scratch.
// Each op is one call of these helpers, kept out of line: a kernel with
// hundreds of matrix ops (enigma.gemm's unrolled tiles) compiles in about a
// second instead of inlining a loop nest per use. E is
// the memory's element: 0 a float type, 1 half, 2 bfloat; R rounds the
// product to half (1) or bfloat (2).
const char* const kMatrixPrelude = R"(template <int E, class M> static inline float en_mat_in(M v) {
  if constexpr (E == 1) return en_h2f(v);
  else if constexpr (E == 2) return en_b2f(v);
  else return static_cast<float>(v);
}
template <int E, class M> static inline M en_mat_out(float v) {
  if constexpr (E == 1) return en_f2h(v);
  else if constexpr (E == 2) return en_f2b(v);
  else return static_cast<M>(v);
}
typedef float en_mrow __attribute__((vector_size(32)));  // one row of 8 floats
template <int E, class M> static inline __attribute__((always_inline)) void en_mat_ld(float* __restrict m, const M* __restrict p, uint64_t o, uint64_t ld, bool tr) {
  if (tr) { for (uint64_t r = 0; r < 8; ++r) for (uint64_t c = 0; c < 8; ++c) m[r * 8 + c] = en_mat_in<E>(p[o + c * ld + r]); return; }
  if constexpr (E == 0 && std::is_same_v<M, float>) {
    for (uint64_t r = 0; r < 8; ++r) std::memcpy(m + r * 8, p + o + r * ld, 32);
  } else {
    for (uint64_t r = 0; r < 8; ++r) for (uint64_t c = 0; c < 8; ++c) m[r * 8 + c] = en_mat_in<E>(p[o + r * ld + c]);
  }
}
// A tile partly out of bounds: those elements read 0 (checked memory).
template <int E, class M> __attribute__((noinline, cold)) static void en_mat_load_checked(float* __restrict m, const M* __restrict p, uint64_t o, uint64_t ld, uint64_t len, bool tr) {
  for (uint64_t r = 0; r < 8; ++r)
    for (uint64_t c = 0; c < 8; ++c) {
      const uint64_t i = tr ? o + c * ld + r : o + r * ld + c;
      m[r * 8 + c] = i < len ? en_mat_in<E>(p[i]) : 0.0f;
    }
}
// Out of line where matrix ops run one after another (compile time); the
// K loops of simdgroup_loop inline it (registers stay live across it).
template <int E, class M> __attribute__((noinline)) static void en_mat_load(float* __restrict m, const M* __restrict p, uint64_t o, uint64_t ld, bool tr) {
  en_mat_ld<E>(m, p, o, ld, tr);
}
template <int E, class M> __attribute__((noinline)) static void en_mat_store(const float* __restrict m, M* __restrict p, uint64_t o, uint64_t ld, bool tr) {
  if (tr) { for (uint64_t r = 0; r < 8; ++r) for (uint64_t c = 0; c < 8; ++c) p[o + c * ld + r] = en_mat_out<E, M>(m[r * 8 + c]); return; }
  if constexpr (E == 0 && std::is_same_v<M, float>) {
    for (uint64_t r = 0; r < 8; ++r) std::memcpy(p + o + r * ld, m + r * 8, 32);
  } else {
    for (uint64_t r = 0; r < 8; ++r) for (uint64_t c = 0; c < 8; ++c) p[o + r * ld + c] = en_mat_out<E, M>(m[r * 8 + c]);
  }
}
// Fused multiply-adds on rows of 8 (and 16) floats: each lane is
// fma(a, b, c), one rounding, as the hardware's FMA and CUDA's __fmaf_rn.
typedef float en_mrow2 __attribute__((vector_size(64)));  // rows of two tiles side by side
static inline __attribute__((always_inline)) en_mrow en_vfma(en_mrow a, en_mrow b, en_mrow c) {
#if defined(__FMA__)
  return __builtin_ia32_vfmaddps256(a, b, c);
#else
  for (int j = 0; j < 8; ++j) c[j] = __builtin_fmaf(a[j], b[j], c[j]);
  return c;
#endif
}
static inline __attribute__((always_inline)) en_mrow en_mrow_half(en_mrow2 v, int h) {
  en_mrow r;
  std::memcpy(&r, reinterpret_cast<const char*>(&v) + h * 32, 32);
  return r;
}
static inline __attribute__((always_inline)) en_mrow2 en_mrow_join(en_mrow lo, en_mrow hi);
static inline __attribute__((always_inline)) en_mrow2 en_vfma(en_mrow2 a, en_mrow2 b, en_mrow2 c) {
#if defined(__AVX512F__)
  return __builtin_ia32_vfmaddps512_mask(a, b, c, static_cast<unsigned short>(0xffff), 4);
#elif defined(__FMA__)  // two 8-float halves
  return en_mrow_join(en_vfma(en_mrow_half(a, 0), en_mrow_half(b, 0), en_mrow_half(c, 0)),
                      en_vfma(en_mrow_half(a, 1), en_mrow_half(b, 1), en_mrow_half(c, 1)));
#else
  for (int j = 0; j < 16; ++j) c[j] = __builtin_fmaf(a[j], b[j], c[j]);
  return c;
#endif
}
static inline __attribute__((always_inline)) en_mrow en_msplat(float x) { return en_mrow{x, x, x, x, x, x, x, x}; }
static inline __attribute__((always_inline)) en_mrow2 en_msplat2(float x) {
  return en_mrow2{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
}
static inline __attribute__((always_inline)) en_mrow en_mrow_at(const float* p) { en_mrow r; std::memcpy(&r, p, 32); return r; }
static inline __attribute__((always_inline)) en_mrow2 en_mrow_join(en_mrow lo, en_mrow hi) {
#if defined(__clang__) || __GNUC__ >= 12
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
  return en_mrow2{lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7], hi[0], hi[1], hi[2], hi[3], hi[4], hi[5], hi[6], hi[7]};
#endif
}
// d = a * b + c: for each element, c then one fused multiply-add per k in
// order: d = fma(a[r][7], b[7][c], ... fma(a[r][0], b[0][c], c[r][c])) (the
// order every backend uses). Written on 8-float rows: a row of d is c's row
// and a[r][k] times b's row k, for every element at once. d may be c.
template <int R> __attribute__((noinline)) static void en_mat_mma(float* d, const float* __restrict a, const float* __restrict b, const float* c) {
  en_mrow br[8];
  for (int k = 0; k < 8; ++k) br[k] = en_mrow_at(b + k * 8);
  for (int r = 0; r < 8; ++r) {
    en_mrow acc = en_mrow_at(c + r * 8);
    for (int k = 0; k < 8; ++k) acc = en_vfma(en_msplat(a[r * 8 + k]), br[k], acc);
    if constexpr (R != 0)
      for (int j = 0; j < 8; ++j) acc[j] = R == 1 ? en_rh(acc[j]) : en_rb(acc[j]);
    std::memcpy(d + r * 8, &acc, 32);
  }
}
// A register block of MI x NJ float accumulator tiles (NJ <= 2: a row of the
// block is NJ tiles' rows side by side, one 8- or 16-float vector), kept in
// registers across a K loop; en_mblk_mma is the same fused order per element.
template <int NJ> struct en_mblk_row { typedef en_mrow type; };
template <> struct en_mblk_row<2> { typedef en_mrow2 type; };
template <int MI, int NJ> struct en_mblk { typename en_mblk_row<NJ>::type r[MI][8]; };
// Tile (i, j) of the block is t[i * NJ + j] (64 floats, row-major).
template <int MI, int NJ> static inline __attribute__((always_inline)) void en_mblk_get(en_mblk<MI, NJ>& m, const float* const (&t)[MI * NJ]) {
  for (int i = 0; i < MI; ++i) for (int r = 0; r < 8; ++r) {
    if constexpr (NJ == 2) m.r[i][r] = en_mrow_join(en_mrow_at(t[i * 2] + r * 8), en_mrow_at(t[i * 2 + 1] + r * 8));
    else m.r[i][r] = en_mrow_at(t[i] + r * 8);
  }
}
template <int MI, int NJ> static inline __attribute__((always_inline)) void en_mblk_put(const en_mblk<MI, NJ>& m, float* const (&t)[MI * NJ]) {
  for (int i = 0; i < MI; ++i) for (int r = 0; r < 8; ++r)
    for (int j = 0; j < NJ; ++j) std::memcpy(t[i * NJ + j] + r * 8, reinterpret_cast<const char*>(&m.r[i][r]) + j * 32, 32);
}
template <int MI, int NJ> static inline __attribute__((always_inline)) void en_mblk_mma(en_mblk<MI, NJ>& m, const float* const (&a)[MI], const float* const (&b)[NJ]) {
  for (int k = 0; k < 8; ++k) {
    if constexpr (NJ == 2) {
      const en_mrow2 bk = en_mrow_join(en_mrow_at(b[0] + k * 8), en_mrow_at(b[1] + k * 8));
      for (int i = 0; i < MI; ++i) for (int r = 0; r < 8; ++r) m.r[i][r] = en_vfma(en_msplat2(a[i][r * 8 + k]), bk, m.r[i][r]);
    } else {
      const en_mrow bk = en_mrow_at(b[0] + k * 8);
      for (int i = 0; i < MI; ++i) for (int r = 0; r < 8; ++r) m.r[i][r] = en_vfma(en_msplat(a[i][r * 8 + k]), bk, m.r[i][r]);
    }
  }
}
)";

// Iterations of a simdgroup K loop that each simdgroup runs in its turn.
constexpr int kSimdgroupLoopChunk = 16;

constexpr const char* kOrders[] = {"__ATOMIC_RELAXED", "__ATOMIC_ACQUIRE", "__ATOMIC_RELEASE", "__ATOMIC_ACQ_REL",
                                   "__ATOMIC_SEQ_CST"};

class CpuEmitter : public FloatRegisterEmitter {
 public:
  CpuEmitter(const Kernel& k, const CpuEmitOptions& o) : FloatRegisterEmitter(k, o.debug, o.bounds_check), opt_(o) {}

  std::string run() {
    for (const Param& p : k_.params) check_type(p.type, "parameter '" + p.name + "'");
    for (const ThreadgroupArray& a : k_.tg_arrays) check_type(a.type, "threadgroup array '" + a.name + "'");
    bool atomics = false, matrices = false;
    walk(k_.body, [&](const Op& op) {
      for (ValueId r : op.results) {
        if (k_.type_of(r).kind != DType::Kind::SimdMatrix)
          check_type(k_.type_of(r), op.info().name);
        else
          matrices = true;
      }
      coop_ = coop_ || is_sync(op);
      atomics = atomics || op.info().category == OpCategory::Atomic;
    });
    out_ << "// Generated by Enigma for the CPU backend: kernel '" << comment_text(k_.name) << "'.\n";
    out_
        << "#include <bit>\n#include <cmath>\n#include <cstddef>\n#include <cstdint>\n#include <cstdlib>\n#include <cstring>\n#include <limits>\n#include <type_traits>\n";
    out_ << embedded::kCpuAbi << "\n" << embedded::kCpuPrelude << "\n";
    // The vector/matrix/math library only where the kernel uses it: scalar
    // kernels compile as fast as before.
    if (uses_language()) out_ << embedded::kCpuMathPrelude << "\n";
    out_ << R"(static inline float en_f32_bits(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
static inline void en_report_oob(const EnigmaCpuLaunch* L, uint64_t param, uint64_t index, uint64_t access,
                                 uint64_t x, uint64_t y, uint64_t z) {
  int32_t expected = 0;
  if (__atomic_compare_exchange_n(L->error_flag, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    uint64_t* e = L->error_info;
    e[0] = param; e[1] = index; e[2] = access; e[3] = x; e[4] = y; e[5] = z;
  }
}

)";
    if (coop_ || !k_.tg_arrays.empty()) out_ << kCoopPrelude << "\n";
    if (atomics) out_ << kAtomicPrelude << "\n";
    if (matrices) out_ << kMatrixPrelude << "\n";
    open("extern \"C\" __attribute__((visibility(\"default\"))) void " + opt_.entry +
         "(const EnigmaCpuLaunch* L, uint64_t tg_begin, uint64_t tg_end)");
    for (size_t i = 0; i < k_.params.size(); ++i) {
      const Param& p = k_.params[i];
      std::string mem = memory_type(p.type);
      if (p.kind == Param::Kind::Buffer) {
        line(mem + "* __restrict " + param_name(static_cast<int>(i)) + " = static_cast<" + mem + "*>(L->buffers[" +
             std::to_string(i) + "]);");
        if (check_memory_)
          line("const uint64_t en_len" + std::to_string(i) + " = L->buffer_sizes[" + std::to_string(i) + "] / sizeof(" +
               mem + ");");
      } else {
        line("const " + type(p.type) + " " + param_name(static_cast<int>(i)) + " = " +
             from_memory(p.type, "*static_cast<const " + mem + "*>(L->buffers[" + std::to_string(i) + "])") + ";");
      }
    }
    line("const uint32_t en_grid0 = L->grid[0], en_grid1 = L->grid[1], en_grid2 = L->grid[2];");
    line("const uint32_t en_tpg0 = L->threads[0], en_tpg1 = L->threads[1], en_tpg2 = L->threads[2];");
    line("const uint32_t en_ntg0 = L->groups[0], en_ntg1 = L->groups[1], en_ntg2 = L->groups[2];");
    line("(void)en_grid2; (void)en_ntg2;");
    def_.assign(k_.values.size(), nullptr);
    walk(k_.body, [&](const Op& op) {
      for (ValueId r : op.results) def_[r] = &op;
    });
    if (coop_) plan_ = plan_cpu_kernel(k_);
    declare_scratch();
    // The group's 3-D position is advanced with carries, not divided out of
    // the linear index per group (64-bit divisions cost more than a small group).
    line("uint32_t en_tgx = static_cast<uint32_t>(tg_begin % en_ntg0);");
    line("uint32_t en_tgy = static_cast<uint32_t>((tg_begin / en_ntg0) % en_ntg1);");
    line("uint32_t en_tgz = static_cast<uint32_t>(tg_begin / (static_cast<uint64_t>(en_ntg0) * en_ntg1));");
    open(
        "for (uint64_t en_tg = tg_begin; en_tg < tg_end; ++en_tg, (++en_tgx == en_ntg0 ? (en_tgx = 0, "
        "(++en_tgy == en_ntg1 ? (en_tgy = 0, ++en_tgz) : 0u)) : 0u))");
    // Edge threadgroups are partial: only threads inside the grid run.
    line("const uint32_t en_ex = std::min(en_tpg0, en_grid0 - en_tgx * en_tpg0);");
    line("const uint32_t en_ey = std::min(en_tpg1, en_grid1 - en_tgy * en_tpg1);");
    line("const uint32_t en_ez = std::min(en_tpg2, en_grid2 - en_tgz * en_tpg2);");
    line("const uint32_t en_bx = en_tgx * en_tpg0, en_by = en_tgy * en_tpg1, en_bz = en_tgz * en_tpg2;");
    line("(void)en_ex; (void)en_ey; (void)en_ez; (void)en_bx; (void)en_by; (void)en_bz;");
    if (coop_) {
      line("const uint32_t en_n = en_ex * en_ey * en_ez;  // threads in this group");
      line("(void)en_n;");
      line("if (__atomic_load_n(L->error_flag, __ATOMIC_RELAXED) > 1) return;");
      group_region(k_.body);
    } else {
      std::vector<const Op*> top;
      for (const Op& op : k_.body.ops) top.push_back(&op);
      open("for (uint32_t lz = 0; lz < en_ez; ++lz)");
      open("for (uint32_t ly = 0; ly < en_ey; ++ly)");
      // Threads are independent between sync points: the x loop is a SIMD
      // loop over the global position, a plain induction variable that lets
      // the compiler prove the buffer accesses contiguous.
      x_loop(top, "", [&] {
        line("const uint32_t lx = en_gx - en_bx;");
        line("(void)lx;");
        region(k_.body);
      });
      close();
      close();
    }
    close();
    close();
    std::string src = out_.str();
    // std::min needs <algorithm>; add it once at the top.
    return "#include <algorithm>\n" + src;
  }

 protected:
  static void check_type(const DType& t, const std::string& where) {
    if (t.is_void() || t.is_scalar() || t.is_vector() || t.is_matrix()) return;
    throw KernelError("kernel: " + where + ": dtype " + t.str() + " is not supported by the CPU backend yet");
  }

  bool uses_language() const {
    bool any = !k_.locals.empty();
    for (const Param& p : k_.params) any = any || !p.type.is_scalar();
    // The language's categories sit between Math and LocalStore (the
    // cooperative ones follow and need no prelude); simdgroup matrices neither.
    walk(k_.body, [&](const Op& op) {
      OpCategory c = op.info().category;
      any = any || (c >= OpCategory::Math && c <= OpCategory::LocalStore) ||
            (!op.type.is_void() && !op.type.is_scalar() && op.type.kind != DType::Kind::SimdMatrix);
    });
    return any;
  }

  static std::string round_to(Scalar s, const std::string& x) {
    if (s == Scalar::F16) return "en_rh(" + x + ")";
    if (s == Scalar::BF16) return "en_rb(" + x + ")";
    return x;
  }

  // The C pointer of a memory id: a parameter, or a threadgroup array in scratch.
  std::string mem_ptr(int64_t mem) const {
    if (is_threadgroup_memory(mem)) return "en_tg" + std::to_string(threadgroup_array_index(mem));
    return param_name(static_cast<int>(mem));
  }

  const char* scalar_type(Scalar s) const override { return cpu_scalar_type(s); }
  const char* spelling_backend() const override { return "cpu"; }
  std::string scalar_math(const std::string& fn) const override { return "std::" + fn; }

  std::string query(ThreadQuery q, int dim) override {
    static const char* xyz[] = {"x", "y", "z"};
    std::string d = xyz[dim];
    std::string l = "l" + d;
    const char* grid_dims[] = {"en_grid0", "en_grid1", "en_grid2"};
    const char* ntg_dims[] = {"en_ntg0", "en_ntg1", "en_ntg2"};
    const std::string flat = coop_ ? "en_t" : "((lz * en_ey + ly) * en_ex + lx)";
    switch (q) {
      case ThreadQuery::ThreadPositionInGrid: return dim == 0 ? std::string("en_gx") : "(en_b" + d + " + " + l + ")";
      case ThreadQuery::ThreadPositionInThreadgroup: return l;
      case ThreadQuery::ThreadgroupPositionInGrid: return "en_tg" + d;
      case ThreadQuery::ThreadsPerThreadgroup: return "en_e" + d;
      case ThreadQuery::ThreadsPerGrid:
      case ThreadQuery::GridSize: return grid_dims[dim];
      case ThreadQuery::ThreadgroupsPerGrid: return ntg_dims[dim];
      case ThreadQuery::SimdgroupIndexInThreadgroup: return sg_var_.empty() ? flat_index_query(q, flat) : sg_var_;
      default: return flat_index_query(q, flat);
    }
  }

  // The first offending thread of a report: the thread loop's, or set by a
  // group-level op (simdgroup matrices, async copies) to its first lane's.
  std::string report_oob(int64_t mem, const std::string& index, Access access) override {
    const std::string thread = thread_xyz_.empty() ? "en_gx, en_by + ly, en_bz + lz" : thread_xyz_;
    return "en_report_oob(L, static_cast<uint64_t>(" + std::to_string(mem) + "ll), " + index + ", " +
           std::to_string(static_cast<int>(access)) + "u, " + thread + ");";
  }

  // Element `i` of memory `mem` as a register value (`ok`: in bounds, else 0).
  std::string read(int64_t mem, const DType& t, const std::string& i, const std::string& ok) {
    std::string v = from_memory(t, mem_ptr(mem) + "[" + i + "]");
    return ok.empty() ? v : "(" + ok + " ? " + v + " : " + type(t) + "{})";
  }

  std::string load(const Op& op) override {
    if (fast_ && fast_->count(&op)) return from_memory(op.type.elem, fast_->at(&op) + "[" + fast_var_ + "]");
    const DType& pt = k_.memory_type(op.memory());
    std::string idx = name(op.operands[0]);
    std::string buf = mem_ptr(op.memory());
    const bool proved = proved_ && proved_->count(&op);
    if (op.type != pt) {  // load_vec: `lanes` elements from idx
      std::string ok = proved ? "" : bounds_check(op.memory(), op.operands[0], op.type.lanes, kLoad);
      std::string v;
      if (pt.elem == Scalar::F16 || pt.elem == Scalar::BF16) {
        v = type(op.type) + "(";
        for (int i = 0; i < op.type.lanes; ++i)
          v += (i ? ", " : "") + from_memory(pt, buf + "[" + idx + " + " + std::to_string(i) + "]");
        v += ")";
      } else {
        v = "*reinterpret_cast<const " + type(op.type) + "*>(" + buf + " + " + idx + ")";
      }
      return ok.empty() ? v : "(" + ok + " ? " + v + " : " + type(op.type) + "{})";
    }
    return read(op.memory(), op.type, idx, proved ? "" : bounds_check(op.memory(), op.operands[0], 1, kLoad));
  }

  void store(const Op& op) override {
    if (fast_ && fast_->count(&op)) {
      line(fast_->at(&op) + "[" + fast_var_ +
           "] = " + to_memory(k_.memory_type(op.memory()).elem, name(op.operands[1])) + ";");
      return;
    }
    const DType& pt = k_.memory_type(op.memory());
    const DType vt = k_.type_of(op.operands[1]);
    std::string idx = name(op.operands[0]);
    std::string buf = mem_ptr(op.memory());
    const int lanes = vt == pt ? 1 : vt.lanes;  // a vector buffer's element is one vector
    std::string guard = proved_ && proved_->count(&op) ? "" : bounds_check(op.memory(), op.operands[0], lanes, kStore);
    if (!guard.empty()) guard = "if (" + guard + ") ";
    if (vt != pt) {  // store_vec
      if (pt.elem == Scalar::F16 || pt.elem == Scalar::BF16) {
        for (int i = 0; i < vt.lanes; ++i)
          line(guard + buf + "[" + idx + " + " + std::to_string(i) +
               "] = " + to_memory(pt, name(op.operands[1]) + "[" + std::to_string(i) + "]") + ";");
      } else {
        line(guard + "*reinterpret_cast<" + type(vt) + "*>(" + buf + " + " + idx + ") = " + name(op.operands[1]) + ";");
      }
      return;
    }
    line(guard + buf + "[" + idx + "] = " + to_memory(pt, name(op.operands[1])) + ";");
  }

  std::string convert(const DType& from, const DType& to, const std::string& x) override {
    std::string et = cpu_scalar_type(to.elem), ef = cpu_scalar_type(from.elem);
    std::string r;
    if (to.is_matrix())
      r = x;  // float <-> half: the same registers, rounded below
    else if (to.is_vector() && from.is_vector())
      r = "en_vcvt<" + et + ", " + ef + ">(" + x + ")";
    else if (to.is_vector())
      r = type(to) + "(en_cvt<" + et + ", " + ef + ">(" + x + "))";  // splat
    else
      r = "en_cvt<" + et + ", " + ef + ">(" + x + ")";
    if (to.elem == Scalar::F16 && from.elem != Scalar::F16) return "en_rh(" + r + ")";
    if (to.elem == Scalar::BF16 && from.elem != Scalar::BF16) return "en_rb(" + r + ")";
    return r;
  }

  std::string bitcast(const DType& from, const DType& to, const std::string& x) override {
    std::string bits = to_memory(from, x);
    std::string mt = memory_type(to), mf = memory_type(from);
    std::string raw = "std::bit_cast<" + mt + ">(static_cast<" + mf + ">(" + bits + "))";
    if (mt == mf) raw = "static_cast<" + mt + ">(" + bits + ")";
    return from_memory(to, raw);
  }

  std::string load_if(const Op& op) override {
    std::string idx = name(op.operands[0]), mask = name(op.operands[1]), dflt = name(op.operands[2]);
    // Checked (and reported) only where the mask lets the access happen.
    std::string ok = bounds_check(op.memory(), op.operands[0], 1, kLoad, mask);
    if (!ok.empty()) mask = "(" + mask + " && " + ok + ")";
    return "(" + mask + " ? " + from_memory(op.type, mem_ptr(op.memory()) + "[" + idx + "]") + " : " + dflt + ")";
  }

  // In a work-group loop, an array used by several thread loops (across a
  // barrier) lives in scratch, one row per thread; otherwise in registers.
  bool local_in_scratch(int64_t i) const {
    return static_cast<size_t>(i) < plan_.local_in_scratch.size() && plan_.local_in_scratch[static_cast<size_t>(i)];
  }
  std::string local_elem(const Op& op, const std::string& idx) const {
    if (!local_in_scratch(op.local_array())) return local_name(op.local_array()) + "[" + idx + "]";
    const LocalArray& a = k_.locals.at(static_cast<size_t>(op.local_array()));
    return local_name(op.local_array()) + "[static_cast<size_t>(en_t) * " + std::to_string(a.size) + "u + " + idx + "]";
  }

  void local_alloc(const Op& op) override {
    fill_local_array(op, type(k_.locals.at(static_cast<size_t>(op.local_array())).elem), "int", "",
                     !local_in_scratch(op.local_array()), local_elem(op, "en_k"));
  }
  std::string local_load(const Op& op) override { return local_elem(op, local_index(op, "en_clamp_index")); }
  void local_store(const Op& op) override {
    line(local_elem(op, local_index(op, "en_clamp_index")) + " = " + name(op.operands[1]) + ";");
  }

  // ---- atomics: per-thread ops, real atomics (threadgroups run in parallel) ----
  bool special(const Op& op) override {
    if (op.info().category != OpCategory::Atomic) return false;
    const DType t = k_.memory_type(op.memory());
    const std::string T = type(t);
    std::string p = "&" + mem_ptr(op.memory()) + "[" + name(op.operands[0]) + "]";
    // Out of bounds, the atomic acts on a zeroed local instead (dropped; reads 0).
    std::string ok = bounds_check(op.memory(), op.operands[0], 1, kAtomic);
    if (!ok.empty()) {
      std::string spare = "en_sp" + std::to_string(temp_++);
      line(T + " " + spare + " = " + T + "{};");
      p = "(" + ok + " ? " + p + " : &" + spare + ")";
    }
    const int order = static_cast<int>(op.atomic_order());
    const int failure = static_cast<int>(op.atomic_failure_order());
    const std::string mo = kOrders[order];
    const bool flt = t.is_float();
    auto v = [&](size_t i) { return name(op.operands[i]); };
    std::string r = op.results.empty() ? "" : name(op.result());
    auto def = [&](const std::string& e) { line("const " + type(op.type) + " " + r + " = " + e + ";"); };
    if (is_threadgroup_memory(op.memory()) && op.code != OpCode::AtomicCompareExchange) {
      // A threadgroup's threads are loops of one worker thread: its atomics
      // on threadgroup memory are plain read-modify-writes in the threads'
      // order (the loops holding them are not `omp simd`, see plain_rmw).
      const std::string ref = "(*" + p + ")";  // the element, or the spare when out of bounds
      auto update = [&](const std::string& next) {
        def(ref);
        line(ref + " = " + next + ";");
      };
      switch (op.code) {
        case OpCode::AtomicLoad: def(ref); return true;
        case OpCode::AtomicStore: line(ref + " = " + v(1) + ";"); return true;
        case OpCode::AtomicExchange: update(v(1)); return true;
        case OpCode::AtomicFetchAdd: update("static_cast<" + T + ">(" + r + " + " + v(1) + ")"); return true;
        case OpCode::AtomicFetchSub: update("static_cast<" + T + ">(" + r + " - " + v(1) + ")"); return true;
        case OpCode::AtomicFetchMin: update("(" + v(1) + " < " + r + " ? " + v(1) + " : " + r + ")"); return true;
        case OpCode::AtomicFetchMax: update("(" + r + " < " + v(1) + " ? " + v(1) + " : " + r + ")"); return true;
        case OpCode::AtomicFetchAnd: update("static_cast<" + T + ">(" + r + " & " + v(1) + ")"); return true;
        case OpCode::AtomicFetchOr: update("static_cast<" + T + ">(" + r + " | " + v(1) + ")"); return true;
        case OpCode::AtomicFetchXor: update("static_cast<" + T + ">(" + r + " ^ " + v(1) + ")"); return true;
        default: break;
      }
    }
    switch (op.code) {
      case OpCode::AtomicLoad:
        if (flt) {
          line(T + " " + r + ";");
          line("__atomic_load(" + p + ", &" + r + ", " + mo + ");");
        } else {
          def("__atomic_load_n(" + p + ", " + mo + ")");
        }
        return true;
      case OpCode::AtomicStore:
        if (flt) {
          std::string tmp = "en_a" + std::to_string(temp_++);
          line(T + " " + tmp + " = " + v(1) + ";");
          line("__atomic_store(" + p + ", &" + tmp + ", " + mo + ");");
        } else {
          line("__atomic_store_n(" + p + ", " + v(1) + ", " + mo + ");");
        }
        return true;
      case OpCode::AtomicExchange:
        if (flt) {
          std::string tmp = "en_a" + std::to_string(temp_++);
          line(T + " " + tmp + " = " + v(1) + ";");
          line(T + " " + r + ";");
          line("__atomic_exchange(" + p + ", &" + tmp + ", &" + r + ", " + mo + ");");
        } else {
          def("__atomic_exchange_n(" + p + ", " + v(1) + ", " + mo + ")");
        }
        return true;
      case OpCode::AtomicFetchAdd:
      case OpCode::AtomicFetchSub:
        if (flt) {
          std::string val = op.code == OpCode::AtomicFetchSub ? "-" + v(1) : v(1);
          def("en_atomic_fadd(" + p + ", " + val + ", " + mo + ")");
        } else {
          def(std::string(op.code == OpCode::AtomicFetchAdd ? "__atomic_fetch_add(" : "__atomic_fetch_sub(") + p +
              ", " + v(1) + ", " + mo + ")");
        }
        return true;
      case OpCode::AtomicFetchMin: def("en_atomic_min(" + p + ", " + v(1) + ", " + mo + ")"); return true;
      case OpCode::AtomicFetchMax: def("en_atomic_max(" + p + ", " + v(1) + ", " + mo + ")"); return true;
      case OpCode::AtomicFetchAnd: def("__atomic_fetch_and(" + p + ", " + v(1) + ", " + mo + ")"); return true;
      case OpCode::AtomicFetchOr: def("__atomic_fetch_or(" + p + ", " + v(1) + ", " + mo + ")"); return true;
      case OpCode::AtomicFetchXor: def("__atomic_fetch_xor(" + p + ", " + v(1) + ", " + mo + ")"); return true;
      case OpCode::AtomicCompareExchange: {
        // A strong compare-exchange is a valid weak one (it never fails spuriously).
        int f = failure == 2 ? 0 : failure == 3 ? 1 : failure;  // failure orders cannot release
        if (f > order && order != 3) f = order == 2 ? 0 : order;
        std::string e = "en_a" + std::to_string(temp_++), d = "en_a" + std::to_string(temp_++);
        line(T + " " + e + " = " + v(1) + ", " + d + " = " + v(2) + ";");
        def("__atomic_compare_exchange(" + p + ", &" + e + ", &" + d + ", false, " + mo + ", " + kOrders[f] + ")");
        return true;
      }
      default: return false;
    }
  }

  // ======================= cooperative kernels ==============================
  // The plan (cpu_plan.h) says where each value lives at group level: a C
  // variable at group scope (group), or an array indexed by the thread
  // (spilled values, carried values, collective results) or by the
  // simdgroup (matrices, 64 floats each).

  using Item = CpuPlan::Item;

  // Prints the recomputation of a cheap per-thread value in segment `id`.
  void emit_remat(ValueId v, int id, std::vector<bool>& done) {
    if (plan_.group[v] || plan_.segment[v] == id || done[v]) return;
    done[v] = true;
    for (ValueId o : def_[v]->operands) emit_remat(o, id, done);
    CFamilyEmitter::op(*def_[v]);
  }

  void declare_scratch() {
    struct Decl {
      std::string name, ctype, count;  // count: an expression of en_nmax / en_sgmax
    };
    std::vector<Decl> decls;
    for (size_t i = 0; i < k_.tg_arrays.size(); ++i) {
      const ThreadgroupArray& a = k_.tg_arrays[i];
      decls.push_back(Decl{"en_tg" + std::to_string(i), memory_type(a.type), std::to_string(a.size)});
    }
    for (const CpuPlan::Scratch& a : plan_.scratch) {
      switch (a.kind) {
        case CpuPlan::Scratch::Kind::ThreadValue: decls.push_back(Decl{a.name, type(a.elem), "en_nmax"}); break;
        case CpuPlan::Scratch::Kind::SimdgroupMatrix: decls.push_back(Decl{a.name, "float", "en_sgmax * 64"}); break;
        case CpuPlan::Scratch::Kind::Mask: decls.push_back(Decl{a.name, "uint8_t", "en_nmax"}); break;
        case CpuPlan::Scratch::Kind::LocalArray:
          decls.push_back(Decl{local_name(a.local), type(a.elem),
                               "en_nmax * " + std::to_string(k_.locals[static_cast<size_t>(a.local)].size) + "u"});
          break;
      }
    }
    if (decls.empty()) return;
    line("const size_t en_nmax = static_cast<size_t>(en_tpg0) * en_tpg1 * en_tpg2;");
    line("const size_t en_sgmax = (en_nmax + 31) / 32;");
    line("(void)en_sgmax;");
    line("size_t en_bytes = 0;");
    for (const Decl& a : decls) {
      line("const size_t en_o_" + a.name + " = en_bytes;");
      line("en_bytes += en_align64(static_cast<size_t>(" + a.count + ") * sizeof(" + a.ctype + "));");
    }
    line("char* en_mem = static_cast<char*>(L->scratch(en_bytes));  // per worker, reused");
    line("if (!en_mem) { en_fail(L, 3, 0, tg_begin, en_bytes); return; }");
    for (const Decl& a : decls) {
      line(a.ctype + "* __restrict " + a.name + " = reinterpret_cast<" + a.ctype + "*>(en_mem + en_o_" + a.name + ");");
      line("(void)" + a.name + ";");
    }
  }

  // ---- emission ----------------------------------------------------------

  struct Mask {
    std::string arr;      // uint8_t per thread; empty: every thread of [lo, hi] is active
    std::string partial;  // expression: some thread of the group is inactive
    std::string lo, hi;   // first and last active thread: masked loops visit only this range
  };

  // `v` for thread index expression t: a group variable or an array element.
  std::string at(ValueId v, const std::string& t) {
    if (plan_.group[v] || sg_values_.count(v)) return name(v);
    if (plan_.array[v].empty())
      throw KernelError("internal: value " + std::to_string(v) + " has no per-thread storage");
    if (t == "en_t") return slot(plan_.array[v]);
    return plan_.array[v] + "[" + t + "]";
  }
  // The current thread's element of a per-thread array. In the x loop it is
  // addressed through a row pointer indexed by the loop variable: the uint32
  // flat index would hide the unit stride from the vectoriser.
  std::string slot(const std::string& arr) {
    if (flat_.empty() || flat_.back()) return arr + "[en_t]";
    rowptrs_.back().insert(arr);
    return arr + "_r[en_gx]";
  }
  // Whether thread t of the mask's range [lo, hi] is active. A mask with no
  // array is the whole range.
  std::string active(const std::string& t) const {
    if (masks_.empty()) return "";
    const Mask& m = masks_.back();
    if (m.arr.empty()) return "(" + t + " >= " + m.lo + " && " + t + " <= " + m.hi + ")";
    return m.arr + "[" + t + "]";
  }
  // Whether thread t (any thread of the group) is active: mask entries are
  // written only around the mask's range.
  std::string in_mask(const std::string& t) const {
    return "(" + t + " >= " + masks_.back().lo + " && " + t + " <= " + masks_.back().hi + " && " + active(t) + ")";
  }

  // Threadgroup atomics are plain read-modify-writes (special()): a loop
  // holding one must keep the threads' order, so it is not `omp simd` (the
  // compiler's own vectoriser sees the dependence and leaves it scalar).
  bool plain_rmw(const std::vector<const Op*>& ops) const {
    return any_op(ops, [](const Op& op) {
      return op.info().category == OpCategory::Atomic && is_threadgroup_memory(op.memory());
    });
  }

  // Whether `pred` holds for one of `ops` or an op nested in them.
  static bool any_op(const std::vector<const Op*>& ops, const std::function<bool(const Op&)>& pred) {
    std::function<bool(const Op&)> visit = [&](const Op& op) {
      if (pred(op)) return true;
      for (const Region& r : op.regions)
        for (const Op& o : r.ops)
          if (visit(o)) return true;
      return false;
    };
    for (const Op* op : ops)
      if (visit(*op)) return true;
    return false;
  }

  // The coordinates in the group of thread en_t (a flat index), for loops
  // that visit threads by flat index.
  void thread_coordinates() {
    line("const uint32_t lx = en_t % en_ex, en_q = en_t / en_ex, ly = en_q % en_ey, lz = en_q / en_ey;");
    line("const uint32_t en_gx = en_bx + lx;");
    line("(void)lx; (void)ly; (void)lz; (void)en_gx;");
  }

  // Runs `body` once per thread of the group (x innermost); `guard` skips
  // inactive threads (and then visits only the active range, as one flat
  // loop). `ops` are the ops the body emits, for the x loop's versioning.
  void thread_loop(bool guard, const std::string& clauses, const std::vector<const Op*>& ops,
                   const std::function<void()>& body) {
    if (guard && !masks_.empty()) {
      flat_.push_back(true);
      const Mask& m = masks_.back();
      if (!opt_.debug && !plain_rmw(ops)) line("#pragma omp simd" + clauses);
      open("for (uint32_t en_t = " + m.lo + "; en_t <= " + m.hi + "; ++en_t)");
      if (!m.arr.empty()) line("if (!" + active("en_t") + ") continue;");
      thread_coordinates();
      body();
      close();
      flat_.pop_back();
      return;
    }
    flat_.push_back(false);
    open("for (uint32_t lz = 0; lz < en_ez; ++lz)");
    open("for (uint32_t ly = 0; ly < en_ey; ++ly)");
    line("const uint32_t en_row = (lz * en_ey + ly) * en_ex;");
    line("const std::ptrdiff_t en_off = static_cast<std::ptrdiff_t>(en_row) - static_cast<std::ptrdiff_t>(en_bx);");
    line("(void)en_off;");
    row_x_loop(ops, clauses, thread_x_loop(), body);
    close();
    close();
    flat_.pop_back();
  }

  // ---- x-loop versioning ----
  // A uint32 index `inv + x` (inv the same for the whole x loop) may wrap in
  // 32 bits, so the compiler cannot treat it as unit-stride and gives up on
  // vectorising (GCC: "data ref analysis failed"). When a run-time check shows
  // that no such index wraps over this row of threads, a second copy of the
  // loop addresses memory through row pointers `(A + inv)[en_gx]`, which is
  // the same element without the 32-bit arithmetic.
  struct Affine {
    std::vector<std::string> terms;  // summed as uint32: the invariant part
    int x = 0;                       // coefficient of the x position
  };

  bool x_invariant(ValueId v, int depth = 0) {
    if (!plan_.group.empty() && plan_.group[v]) return true;
    const Op* d = def_[v];
    if (!d || depth > 8 || !d->regions.empty() || !d->info().pure || d->results.size() != 1) return false;
    if (d->code == OpCode::Constant || d->code == OpCode::Param) return true;
    if (d->code == OpCode::ThreadQuery) {
      ThreadQuery q = d->query();
      if (is_group_query(q)) return true;
      if (rounds_iv_ != kNoValue) return false;
      if (!sg_var_.empty() && q == ThreadQuery::SimdgroupIndexInThreadgroup)
        return true;  // a simdgroup-blocked loop  // the passes loop over all the group's threads
      return (q == ThreadQuery::ThreadPositionInGrid || q == ThreadQuery::ThreadPositionInThreadgroup) &&
             d->query_dim() > 0;
    }
    for (ValueId o : d->operands)
      if (!x_invariant(o, depth + 1)) return false;
    return true;
  }

  std::optional<Affine> affine(ValueId v, int depth = 0) {
    if (depth > 8 || k_.type_of(v) != DType::scalar(Scalar::U32)) return std::nullopt;
    if (x_invariant(v)) return Affine{{name(v)}, 0};
    if (rounds_iv_ != kNoValue && v == rounds_iv_) return Affine{{}, 1};
    const Op* d = def_[v];
    if (!d) return std::nullopt;
    if (rounds_iv_ == kNoValue && d->code == OpCode::ThreadQuery && d->query_dim() == 0) {
      ThreadQuery q = d->query();
      if (q == ThreadQuery::ThreadPositionInGrid) return Affine{{}, 1};
      if (q == ThreadQuery::ThreadPositionInThreadgroup) return Affine{{"(0u - en_bx)"}, 1};
      return std::nullopt;
    }
    if (d->code == OpCode::Add || d->code == OpCode::Sub) {
      auto a = affine(d->operands[0], depth + 1), b = affine(d->operands[1], depth + 1);
      if (!a || !b) return std::nullopt;
      for (const std::string& t : b->terms) a->terms.push_back(d->code == OpCode::Add ? t : "(0u - " + t + ")");
      a->x += d->code == OpCode::Add ? b->x : -b->x;
      return a;
    }
    return std::nullopt;
  }

  void emit_invariant(ValueId v, std::vector<bool>& done) {
    if ((!plan_.group.empty() && plan_.group[v]) || done[v]) return;
    done[v] = true;
    const Op* d = def_[v];
    for (ValueId o : d->operands) emit_invariant(o, done);
    CFamilyEmitter::op(*d);
  }

  void collect_values(const Op& op, std::vector<ValueId>& out) {
    for (ValueId v : op.operands) out.push_back(v);
  }

  // The loop x_loop versions: its header, its variable, the variable's first
  // value, the index value `x` at the first iteration, and the trip count.
  struct XLoop {
    std::string header, var, var_start, x_start, count;
  };
  XLoop thread_x_loop() const {
    return XLoop{"for (uint32_t en_gx = en_bx; en_gx < en_bx + en_ex; ++en_gx)", "en_gx", "en_bx", "en_bx", "en_ex"};
  }

  // The x loop `L` over a row of threads (en_t = en_row + lx), the per-thread
  // arrays it touches addressed through row pointers (`arr + en_off`). The
  // loop is printed first, aside, to learn which arrays those are; their
  // declarations precede it.
  void row_x_loop(const std::vector<const Op*>& ops, const std::string& clauses, const XLoop& L,
                  const std::function<void()>& body) {
    rowptrs_.emplace_back();
    std::ostringstream loop;
    std::swap(loop, out_);
    x_loop(
        ops, clauses,
        [&] {
          line("const uint32_t lx = en_gx - en_bx;");
          line("const uint32_t en_t = en_row + lx;");
          line("(void)lx; (void)en_t;");
          body();
        },
        L);
    std::swap(loop, out_);
    std::string decl;
    for (const std::string& a : rowptrs_.back()) decl += "auto* __restrict " + a + "_r = " + a + " + en_off; ";
    line(decl.empty() ? "// (no per-thread arrays)" : decl);
    out_ << loop.str();
    rowptrs_.pop_back();
  }

  void x_loop(const std::vector<const Op*>& ops, const std::string& clauses, const std::function<void()>& body) {
    x_loop(ops, clauses, body, thread_x_loop());
  }
  void x_loop(const std::vector<const Op*>& ops, const std::string& clauses, const std::function<void()>& body,
              const XLoop& L) {
    const std::string& header = L.header;
    const bool simd = !opt_.debug && !plain_rmw(ops);
    // Candidates: buffer accesses in the body with an index inv + x.
    std::vector<std::pair<const Op*, Affine>> cands;
    // Checked memory: accesses whose index is the same for the whole row are
    // checked once per row too (the fast copy then skips their checks).
    std::vector<const Op*> hoisted;
    if (!opt_.debug) {
      std::function<void(const Op&)> visit = [&](const Op& op) {
        const bool access = op.code == OpCode::Load || op.code == OpCode::Store;
        if (access && check_memory_ && x_invariant(op.operands[0])) {
          hoisted.push_back(&op);
        } else if (access &&  // scalar accesses only: a vector access keeps its own aligned form
                   (op.code == OpCode::Load ? op.type : k_.type_of(op.operands[1])) == k_.memory_type(op.memory())) {
          auto a = affine(op.operands[0]);
          // With checked memory, plain `x` indices too: the row's check proves them in bounds.
          // So for 8- and 16-bit elements: GCC 12 gives up on `A[x]` with a
          // uint32 x there ("complicated access pattern"; half/bfloat loops).
          const Scalar e = k_.memory_type(op.memory()).elem;
          const bool narrow = e == Scalar::F16 || e == Scalar::BF16 || e == Scalar::I16 || e == Scalar::U16 ||
                              e == Scalar::I8 || e == Scalar::U8 || e == Scalar::B1;
          if (a && a->x == 1 && (!a->terms.empty() || check_memory_ || narrow)) cands.emplace_back(&op, *a);
        }
        for (const Region& r : op.regions)
          for (const Op& o : r.ops) visit(o);
      };
      for (const Op* op : ops) visit(*op);
    }
    if (cands.empty() && hoisted.empty()) {
      if (simd) line("#pragma omp simd" + clauses);
      open(header);
      body();
      close();
      return;
    }
    // The invariant parts, computed once per row (same names as in the body,
    // which redeclares them in its own scope).
    open("");
    std::vector<bool> done(k_.values.size(), false);
    std::function<void(ValueId)> need = [&](ValueId v) {
      if (x_invariant(v))
        emit_invariant(v, done);
      else if (def_[v])
        for (ValueId o : def_[v]->operands) need(o);
    };
    for (auto& [op, a] : cands) need(op->operands[0]);
    for (const Op* op : hoisted) need(op->operands[0]);
    std::string check;
    std::set<const Op*> proved;
    for (const Op* op : hoisted) {
      const DType vt = op->code == OpCode::Load ? op->type : k_.type_of(op->operands[1]);
      const int lanes = vt == k_.memory_type(op->memory()) ? 1 : vt.lanes;
      const std::string len = mem_length(op->memory()), idx = "static_cast<uint64_t>(" + name(op->operands[0]) + ")";
      check +=
          (check.empty() ? "" : " && ") + (lanes == 1 ? idx + " < " + len
                                                      : "(" + len + " >= " + std::to_string(lanes) + "u && " + idx +
                                                            " <= " + len + " - " + std::to_string(lanes) + "u)");
      proved.insert(op);
    }
    std::map<const Op*, std::string> ptrs;
    for (size_t i = 0; i < cands.size(); ++i) {
      const auto& [op, a] = cands[i];
      std::string sum = "0u";
      for (const std::string& t : a.terms) sum = "(" + sum + " + " + t + ")";
      // `first`: the index of the row's first thread; no wrap when the
      // row's last index still fits in 32 bits.
      std::string first = "en_a" + std::to_string(temp_) + "_" + std::to_string(i);
      line("const uint32_t " + first + " = static_cast<uint32_t>(" + sum + " + " + L.x_start + ");");
      // No index of the row wraps in 32 bits; implied for a threadgroup
      // array by the bounds check below (its size is small).
      if (!(check_memory_ && is_threadgroup_memory(op->memory())))
        check +=
            (check.empty() ? "" : " && ") + ("static_cast<uint64_t>(" + first + ") + " + L.count + " <= 4294967296ull");
      // Checked memory: the row's indices [first, first + count) are all in
      // bounds, so the fast copy needs no per-access check.
      if (check_memory_)
        check += (check.empty() ? "" : " && ") +
                 ("static_cast<uint64_t>(" + first + ") + " + L.count + " <= " + mem_length(op->memory()));
      std::string p = first + "p";
      std::string mt = memory_type(k_.memory_type(op->memory()));
      line(mt + "* __restrict " + p + " = " + mem_ptr(op->memory()) + " + (static_cast<std::ptrdiff_t>(" + first +
           ") - static_cast<std::ptrdiff_t>(" + L.var_start + "));");
      ptrs[op] = p;
    }
    ++temp_;
    open("if (" + check + ")");
    if (rounds_iv_ != kNoValue) prefetch_next_passes(ptrs, L.count);
    if (!sg_var_.empty()) prefetch_later_simdgroups(ptrs, L.var_start);
    fast_ = &ptrs;
    proved_ = &proved;
    fast_var_ = L.var;
    if (simd) line("#pragma omp simd" + clauses);
    open(header);
    body();
    close();
    fast_ = nullptr;
    proved_ = nullptr;
    close("} else {");
    ++indent_;
    if (simd) line("#pragma omp simd" + clauses);
    open(header);
    body();
    close();
    close();
    close();
  }

  // Passes of a thread-strided loop further apart than the group (a grid-
  // strided loop: `for i in range(group_start + lid, n, threads_in_grid)`)
  // read short runs far apart, which the hardware prefetcher follows poorly:
  // each pass prefetches what its loads read two passes later.
  void prefetch_next_passes(const std::map<const Op*, std::string>& ptrs, const std::string& count) {
    std::vector<std::string> loads;
    for (const auto& [op, p] : ptrs)
      if (op->code == OpCode::Load) loads.push_back(p);
    if (loads.empty() || rounds_step_.empty()) return;
    open("if (" + rounds_step_ + " > en_n)");
    for (const std::string& p : loads) {
      line("for (uint64_t en_o = 0; en_o < uint64_t{" + count + "} * sizeof(*" + p +
           "); en_o += 64) __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(" + p +
           ") + en_o + 2u * sizeof(*" + p + ") * uint64_t{" + rounds_step_ + "}));");
    }
    close();
  }

  // A loop run one simdgroup at a time is a chain of short loops the
  // hardware prefetcher follows late: each simdgroup prefetches what its
  // loads read eight simdgroups later.
  void prefetch_later_simdgroups(const std::map<const Op*, std::string>& ptrs, const std::string& first) {
    for (const auto& [op, p] : ptrs) {
      if (op->code != OpCode::Load) continue;
      line("for (uint64_t en_o = 0; en_o < 32u * sizeof(*" + p +
           "); en_o += 64) __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(" + p + " + " +
           first + ") + en_o + 8u * 32u * sizeof(*" + p + ")));");
    }
  }

  void group_region(const Region& r) {
    const std::vector<Item>& items = plan_.items_of(r);
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& it = items[i];
      switch (it.kind) {
        case Item::Kind::GroupOp: group_op(*it.op); break;
        case Item::Kind::Segment:
          if (i + 1 < items.size() && fusible(it, items[i + 1])) {
            fused_segment_and_simd_op(it, *items[i + 1].op);
            ++i;
          } else if (!dead_segment(it)) {
            segment(it);
          }
          break;
        case Item::Kind::Sync:
          if (is_simdgroup_matrix_op(*it.op)) {
            i = matrix_run(items, i) - 1;
            break;
          }
          sync_op(*it.op);
          break;
        case Item::Kind::Control: control(*it.op); break;
      }
    }
  }

  // An op computed once for the group. A load among them (threadgroup
  // memory at a uniform index, see the planner) reports on behalf of the
  // first active thread.
  void group_op(const Op& op) {
    if (op.code == OpCode::Load) thread_xyz_ = lane_xyz(masks_.empty() ? std::string("0u") : masks_.back().lo);
    CFamilyEmitter::op(op);
    thread_xyz_.clear();
  }

  // A run of simdgroup-matrix ops (with group-level values between them)
  // runs as one loop over the simdgroups, each doing the whole run: matrix
  // ops only touch their own simdgroup's matrices, and memory they share
  // without a barrier is a race in the model anyway. Returns the end.
  size_t matrix_run(const std::vector<Item>& items, size_t first) {
    size_t end = first;
    std::vector<const Op*> mats;
    for (; end < items.size(); ++end) {
      const Item& it = items[end];
      if (it.kind == Item::Kind::GroupOp) {
        group_op(*it.op);  // uniform: computed before the loop
      } else if (it.kind == Item::Kind::Sync && is_simdgroup_matrix_op(*it.op)) {
        mats.push_back(it.op);
      } else {
        break;
      }
    }
    per_simdgroup([&] {
      for (const Op* op : mats)
        for (ValueId v : op->results)
          if (plan_.run_local_matrices.count(v)) line("alignas(64) float " + plan_.array[v] + "[64];");
      for (const Op* op : mats) matrix_op(*op);
    });
    return end;
  }

  // A run of pure ops whose results no other run reads (they are recomputed
  // where needed, or unused: e.g. the condition of an `if` that runs over a
  // known range of threads) prints nothing.
  bool dead_segment(const Item& it) const {
    for (const Op* op : it.ops) {
      if (!op->regions.empty() || !op->info().pure) return false;
      for (ValueId v : op->results)
        if (!plan_.array[v].empty()) return false;
    }
    return true;
  }

  void collect_uses(const Op& op, std::vector<ValueId>& uses, std::vector<bool>& seen) {
    for (ValueId v : op.operands)
      if (!seen[v]) {
        seen[v] = true;
        uses.push_back(v);
      }
    for (const Region& r : op.regions)
      for (const Op& o : r.ops) collect_uses(o, uses, seen);
  }

  // One thread's ops of a segment: its inputs (loaded from their arrays or
  // recomputed), the ops, the results other loops read stored.
  void segment_body(const Item& it) {
    std::vector<ValueId> uses;
    std::vector<bool> seen(k_.values.size(), false);
    for (const Op* op : it.ops) collect_uses(*op, uses, seen);
    std::vector<bool> done(k_.values.size(), false);
    for (ValueId v : uses)
      if (!plan_.group[v] && plan_.segment[v] != it.id) {
        if (plan_.recompute[v])
          emit_remat(v, it.id, done);
        else
          line("const " + type(k_.type_of(v)) + " " + name(v) + " = " + at(v, "en_t") + ";");
      }
    for (const Op* op : it.ops) CFamilyEmitter::op(*op);
    for (const Op* o : it.ops)
      for (ValueId v : o->results)
        if (!plan_.array[v].empty()) line(slot(plan_.array[v]) + " = " + name(v) + ";");
  }

  void segment(const Item& it) {
    auto body = [&] { segment_body(it); };
    auto f = plan_.interchange.find(it.id);
    if (f != plan_.interchange.end() && masks_.empty()) {
      interchanged(it, *f->second, body);
      return;
    }
    if (sparse_loop(it, body)) return;
    if (masks_.empty() && !opt_.debug && indexes_by_simdgroup(it.ops)) {
      open("if (en_ey * en_ez == 1)");
      simdgroup_blocked_loop(it.ops, body);
      close("} else {");
      ++indent_;
      thread_loop(true, "", it.ops, body);
      close();
      return;
    }
    thread_loop(true, "", it.ops, body);
  }

  // A thread loop of plain ops (no control flow) followed by a simd
  // reduction or scan of a value it computes: in a 1-D group, both run one
  // simdgroup at a time, the simd op reading its operands while they are
  // still in the first level cache.
  bool fusible(const Item& seg, const Item& next) const {
    if (next.kind != Item::Kind::Sync || !masks_.empty() || opt_.debug) return false;
    const OpCategory c = next.op->info().category;
    if (c != OpCategory::GroupReduce && c != OpCategory::GroupScan) return false;
    if (collective_info(next.op->code).width != 32) return false;
    const ValueId v = next.op->operands[0];
    if (plan_.group[v] || plan_.segment[v] != seg.id || plan_.interchange.count(seg.id)) return false;
    for (const Op* op : seg.ops)
      if (!op->regions.empty()) return false;
    return true;
  }

  void fused_segment_and_simd_op(const Item& seg, const Op& simd_op) {
    open("if (en_ey * en_ez == 1)");
    simdgroup_blocked_loop(
        seg.ops, [&] { segment_body(seg); },
        [&] {
          line("const uint32_t en_b = en_sg * 32u;");
          reduce_or_scan_block(simd_op);
        });
    close("} else {");
    ++indent_;
    if (!dead_segment(seg)) segment(seg);
    sync_op(simd_op);
    close();
  }

  // Whether a memory access of `ops` has an index computed from the
  // thread's simdgroup index (e.g. `partial[simdgroup]`).
  bool indexes_by_simdgroup(const std::vector<const Op*>& ops) const {
    std::function<bool(ValueId, int)> from_sg = [&](ValueId v, int depth) {
      const Op* d = def_[v];
      if (!d || depth > 6 || plan_.group[v]) return false;
      if (d->code == OpCode::ThreadQuery) return d->query() == ThreadQuery::SimdgroupIndexInThreadgroup;
      if (!d->regions.empty() || !d->info().pure) return false;
      for (ValueId o : d->operands)
        if (from_sg(o, depth + 1)) return true;
      return false;
    };
    return any_op(ops, [&](const Op& op) {
      const OpCategory c = op.info().category;
      return (c == OpCategory::Load || c == OpCategory::Store || c == OpCategory::LoadIf || c == OpCategory::Atomic) &&
             from_sg(op.operands[0], 0);
    });
  }

  // The threads of a 1-D group, one simdgroup at a time: inside a
  // simdgroup its index is the loop's, the same for the x loop, so accesses
  // like `partial[simdgroup]` are hoisted out of it and the loop vectorises.
  void simdgroup_blocked_loop(const std::vector<const Op*>& ops, const std::function<void()>& body,
                              const std::function<void()>& after = nullptr) {
    flat_.push_back(false);
    open("for (uint32_t en_sg = 0; en_sg * 32u < en_n; ++en_sg)");
    line("const uint32_t lz = 0, ly = 0, en_row = 0;");
    line("const std::ptrdiff_t en_off = -static_cast<std::ptrdiff_t>(en_bx);");
    line("const uint32_t en_sgx = en_bx + en_sg * 32u, en_sge = en_bx + std::min(en_n, en_sg * 32u + 32u);");
    line("(void)lz; (void)ly; (void)en_row; (void)en_off;");
    sg_var_ = "en_sg";
    row_x_loop(ops, "",
               XLoop{"for (uint32_t en_gx = en_sgx; en_gx < en_sge; ++en_gx)", "en_gx", "en_sgx", "en_sgx",
                     "(en_sge - en_sgx)"},
               body);
    sg_var_.clear();
    if (after) after();
    close();
    flat_.pop_back();
  }

  // A segment `pure ops; for i in range(lid + g, hi, step) {...}; ops` with
  // the thread loop moved inside the strided one: pass j runs i = g + j *
  // step + t for threads t = 0, 1, ... (contiguous i, a vector loop), each
  // thread's carried values in per-thread arrays. Each thread still runs its
  // own iterations in order. Three loops: the carried values' start, the
  // passes, the ops after the loop. `standard` is the plain segment, used
  // where the indices could wrap in 32 bits or the step is 0.
  void interchanged(const Item& it, const Op& f, const std::function<void()>& standard) {
    const Region& body = f.regions[0];
    ValueId offset;
    bool needs_1d;
    thread_strided_start(def_, plan_.group, f.operands[0], &offset, &needs_1d);
    const std::string g = offset == kNoValue ? std::string("0u") : name(offset);
    const std::string hi = name(f.operands[1]), step = name(f.operands[2]);
    std::vector<const Op*> pre, post;
    bool after = false;
    for (const Op* op : it.ops) {
      if (op == &f)
        after = true;
      else
        (after ? post : pre).push_back(op);
    }
    std::set<ValueId> before;
    for (const Op* op : pre)
      for (ValueId v : op->results) before.insert(v);
    // The values `ops` read from outside them: from other thread loops or
    // the ops before the loop, each loaded from its array or recomputed.
    auto inputs = [&](const std::vector<const Op*>& ops, bool in_prologue) {
      std::vector<ValueId> uses;
      std::vector<bool> seen(k_.values.size(), false), done(k_.values.size(), false);
      for (const Op* op : ops) collect_uses(*op, uses, seen);
      std::function<void(ValueId)> recompute = [&](ValueId v) {
        if (plan_.group[v] || done[v]) return;
        done[v] = true;
        for (ValueId o : def_[v]->operands) recompute(o);
        CFamilyEmitter::op(*def_[v]);
      };
      for (ValueId v : uses) {
        if (plan_.group[v] || (plan_.segment[v] == it.id && (in_prologue || !before.count(v)))) continue;
        if (plan_.recompute[v])
          recompute(v);
        else if (!done[v]) {
          done[v] = true;
          line("const " + type(k_.type_of(v)) + " " + name(v) + " = " + at(v, "en_t") + ";");
        }
      }
    };
    // The ops before the loop, once per thread, in the first loop.
    auto prologue = [&] {
      inputs(pre, true);
      for (const Op* op : pre) CFamilyEmitter::op(*op);
      for (const Op* op : pre)
        for (ValueId v : op->results)
          if (!plan_.array[v].empty()) line(slot(plan_.array[v]) + " = " + name(v) + ";");
    };
    std::string cond = step + " != 0u && uint64_t{" + g + "} + en_n + " + step + " <= 4294967296ull && uint64_t{" + hi +
                       "} + " + step + " <= 4294967296ull";
    if (needs_1d) cond += " && en_ey * en_ez == 1u";
    open("if (" + cond + ")");
    bool first = !f.results.empty();
    for (const Op* op : pre) first = first || !op->info().pure;
    for (ValueId v : before) first = first || !plan_.array[v].empty();
    if (first) {
      thread_loop(true, "", pre, [&] {
        prologue();
        for (size_t i = 0; i < f.results.size(); ++i)
          line(slot(plan_.array[f.results[i]]) + " = " + name(f.operands[3 + i]) + ";");
      });
    }
    open("for (uint64_t en_base = " + g + "; en_base < " + hi + "; en_base += " + step + ")");
    line("const uint32_t en_tn = static_cast<uint32_t>(std::min<uint64_t>(en_n, uint64_t{" + hi + "} - en_base));");
    flat_.push_back(true);
    std::vector<const Op*> inner;
    for (const Op& op : body.ops) inner.push_back(&op);
    // Accesses at `invariant + i` go through pointers advanced once per pass.
    rounds_iv_ = body.args[0];
    rounds_step_ = step;
    x_loop(
        inner, "",
        [&] {
          thread_coordinates();
          inputs({&f}, false);
          line("const uint32_t " + name(body.args[0]) + " = static_cast<uint32_t>(en_base + en_t);");
          for (size_t i = 0; i < f.results.size(); ++i)
            line("const " + type(k_.type_of(body.args[1 + i])) + " " + name(body.args[1 + i]) + " = " +
                 slot(plan_.array[f.results[i]]) + ";");
          for (const Op& op : body.ops)
            if (op.info().category != OpCategory::Terminator) CFamilyEmitter::op(op);
          const Op& yield = body.ops.back();
          for (size_t i = 0; i < f.results.size(); ++i)
            line(slot(plan_.array[f.results[i]]) + " = " + name(yield.operands[i]) + ";");
        },
        XLoop{"for (uint32_t en_t = 0; en_t < en_tn; ++en_t)", "en_t", "0", "static_cast<uint32_t>(en_base)", "en_tn"});
    rounds_iv_ = kNoValue;
    rounds_step_.clear();
    flat_.pop_back();
    close();
    if (!post.empty()) {
      thread_loop(true, "", post, [&] {
        std::vector<const Op*> rest = post;
        for (ValueId v : f.results)
          line("const " + type(k_.type_of(v)) + " " + name(v) + " = " + slot(plan_.array[v]) + ";");
        inputs(rest, false);
        for (const Op* op : post) CFamilyEmitter::op(*op);
        for (const Op* op : post)
          for (ValueId v : op->results)
            if (!plan_.array[v].empty()) line(slot(plan_.array[v]) + " = " + name(v) + ";");
      });
    }
    close("} else {");
    ++indent_;
    thread_loop(true, "", it.ops, standard);
    close();
  }

  // A run that is only `if (q == g) {...}` with q the thread's index in the
  // group / in its simdgroup / its simdgroup's index and g uniform (the
  // GPU idiom `if lane == 0: partial[sg] = s`) visits just the threads that
  // take the branch: a strided loop instead of a scalar pass over the group.
  bool sparse_loop(const Item& it, const std::function<void()>& body) {
    const Op* last = it.ops.back();
    if (last->code != OpCode::If || last->regions[1].ops.size() != 1) return false;
    for (size_t i = 0; i + 1 < it.ops.size(); ++i)
      if (!it.ops[i]->regions.empty() || !it.ops[i]->info().pure) return false;
    const Op* c = def_[last->operands[0]];
    if (!c || c->code != OpCode::Cmp || c->predicate() != CmpPred::Eq) return false;
    ValueId a = c->operands[0], b = c->operands[1];
    if (plan_.group[a]) std::swap(a, b);
    if (!plan_.group[b] || plan_.group[a] || !def_[a] || def_[a]->code != OpCode::ThreadQuery) return false;
    std::string g = name(b), start, step = "1", end;
    switch (def_[a]->query()) {
      case ThreadQuery::ThreadIndexInThreadgroup:
        start = g;
        end = "std::min<uint64_t>(en_n, uint64_t{" + g + "} + 1)";
        break;
      case ThreadQuery::ThreadIndexInSimdgroup:
        start = "(" + g + " < 32u ? uint64_t{" + g + "} : uint64_t{en_n})";
        step = "32";
        end = "en_n";
        break;
      case ThreadQuery::SimdgroupIndexInThreadgroup:
        start = "uint64_t{" + g + "} * 32u";
        end = "std::min<uint64_t>(en_n, uint64_t{" + g + "} * 32u + 32u)";
        break;
      default: return false;
    }
    flat_.push_back(true);
    open("for (uint64_t en_t64 = " + start + "; en_t64 < " + end + "; en_t64 += " + step + ")");
    line("const uint32_t en_t = static_cast<uint32_t>(en_t64);");
    // Mask entries exist only for the mask's range (scratch is shared).
    if (!masks_.empty())
      line("if (en_t < " + masks_.back().lo + " || en_t > " + masks_.back().hi + " || !" + active("en_t") +
           ") continue;");
    thread_coordinates();
    body();
    close();
    flat_.pop_back();
    return true;
  }

  // [first, end) of the threads where `c` holds, when `c` is
  // `thread_index_in_threadgroup == g` or `simdgroup_index_in_threadgroup == g`.
  std::optional<std::pair<std::string, std::string>> contiguous_range(ValueId cond) {
    ThreadRangeCondition rc;
    if (!thread_range_condition(k_, def_, plan_.group, cond, false, &rc)) return std::nullopt;
    std::string g = "uint64_t{" + name(rc.group_value) + "}";
    if (rc.query == ThreadQuery::ThreadIndexInThreadgroup)
      return std::make_pair(g, "std::min<uint64_t>(en_n, " + g + " + 1)");
    return std::make_pair(g + " * 32u", "std::min<uint64_t>(en_n, " + g + " * 32u + 32u)");
  }

  void fail_and_return(const Op& op, int kind, const std::string& thread) {
    line("{ en_fail(L, " + std::to_string(kind) + ", " + std::to_string(op.loc) + "u, en_tg, " + thread +
         "); return; }");
  }

  // The group's value of a per-thread value that must agree across the
  // active threads (loop bounds, while conditions); a disagreement fails the
  // dispatch instead of deadlocking or running some threads wrongly.
  std::string uniform(ValueId v, const Op& owner) {
    if (plan_.group[v]) return name(v);
    std::string g = "en_u" + std::to_string(temp_++);
    std::string t = type(k_.type_of(v));
    line("uint32_t " + g + "_f = " + (masks_.empty() ? std::string("0") : masks_.back().lo) + ";");
    line("const " + t + " " + g + " = " + at(v, g + "_f") + ";");
    open("for (uint32_t en_i = " + g + "_f + 1; en_i " + (masks_.empty() ? "< en_n" : "<= " + masks_.back().hi) +
         "; ++en_i)");
    std::string cond = at(v, "en_i") + " != " + g;
    if (!masks_.empty()) cond = active("en_i") + " && " + cond;
    line("if (" + cond + ")");
    ++indent_;
    fail_and_return(owner, 2, "en_i");
    --indent_;
    close();
    return g;
  }

  // Copies values into carried storage (per thread, or per simdgroup for matrices).
  void copy_into_carried(const std::vector<ValueId>& from, const std::vector<ValueId>& carried) {
    bool any_scalar = false;
    for (size_t i = 0; i < from.size(); ++i) {
      if (k_.type_of(carried[i]).kind == DType::Kind::SimdMatrix) {
        line("std::memcpy(" + plan_.array[carried[i]] + "t, " + plan_.array[from[i]] +
             ", en_sgmax * 64 * sizeof(float));");
      } else {
        any_scalar = true;
      }
    }
    for (size_t i = 0; i < from.size(); ++i)
      if (k_.type_of(carried[i]).kind == DType::Kind::SimdMatrix)
        line("std::memcpy(" + plan_.array[carried[i]] + ", " + plan_.array[carried[i]] +
             "t, en_sgmax * 64 * sizeof(float));");
    if (!any_scalar) return;
    thread_loop(true, "", {}, [&] {
      std::vector<std::string> tmp;
      for (size_t i = 0; i < from.size(); ++i) {
        if (k_.type_of(carried[i]).kind == DType::Kind::SimdMatrix) {
          tmp.push_back("");
          continue;
        }
        tmp.push_back("en_y" + std::to_string(i));
        line("const " + type(k_.type_of(carried[i])) + " " + tmp.back() + " = " + at(from[i], "en_t") + ";");
      }
      for (size_t i = 0; i < from.size(); ++i)
        if (!tmp[i].empty()) line(slot(plan_.array[carried[i]]) + " = " + tmp[i] + ";");
    });
  }

  void control(const Op& op) {
    switch (op.code) {
      case OpCode::For: {
        if (simdgroup_loop_ok(op)) {
          simdgroup_loop(op);
          return;
        }
        const Region& body = op.regions[0];
        open("");
        std::vector<ValueId> inits(op.operands.begin() + 3, op.operands.end());
        copy_into_carried(inits, op.results);
        std::string lo = uniform(op.operands[0], op), hi = uniform(op.operands[1], op),
                    step = uniform(op.operands[2], op);
        const DType ivt = k_.type_of(body.args[0]);
        std::string iv = name(body.args[0]), t = type(ivt);
        std::string cond = is_signed_int(ivt.elem) ? "(" + step + " > 0) ? (" + iv + " < " + hi + ") : (" + step +
                                                         " < 0 && " + iv + " > " + hi + ")"
                                                   : step + " != 0 && " + iv + " < " + hi;
        open("for (" + t + " " + iv + " = " + lo + "; " + cond + "; " + iv + " = " +
             finish(ivt, "(" + iv + " + " + step + ")") + ")");
        group_region(body);
        copy_into_carried(body.ops.back().operands, op.results);
        close();
        close();
        return;
      }
      case OpCode::While: {
        open("");
        copy_into_carried(op.operands, op.results);
        open("while (true)");
        const Region& cond = op.regions[0];
        group_region(cond);
        std::string c = uniform(cond.ops.back().operands[0], op);
        line("if (!" + c + ") break;");
        group_region(op.regions[1]);
        copy_into_carried(op.regions[1].ops.back().operands, op.results);
        close();
        close();
        return;
      }
      case OpCode::If: {
        ValueId c = op.operands[0];
        if (plan_.group[c]) {
          open("if (" + name(c) + ")");
          group_region(op.regions[0]);
          close("} else {");
          ++indent_;
          group_region(op.regions[1]);
          close();
          return;
        }
        // A condition that varies between threads: both branches run under masks.
        const int id = plan_.mask.at(&op);
        std::string m = "en_m" + std::to_string(id), n = "en_n" + std::to_string(id);
        if (auto range = contiguous_range(c); range && op.regions[1].ops.size() == 1) {
          // `if simdgroup_index == g` / `if thread_index == g` with nothing in
          // the else branch: the active threads are one known range.
          line("const uint32_t " + n + "lo = static_cast<uint32_t>(std::min<uint64_t>(en_n, " + range->first + "));");
          line("const uint32_t " + n + "end = static_cast<uint32_t>(" + range->second + ");");
          if (masks_.empty()) {
            // The whole range is active: no mask array.
            line("const uint32_t " + n + " = " + n + "end > " + n + "lo ? " + n + "end - " + n + "lo : 0u;");
            open("if (" + n + " != 0)");
            masks_.push_back(Mask{"", "(" + n + " != en_n)", n + "lo", "(" + n + "end - 1)"});
            group_region(op.regions[0]);
            masks_.pop_back();
            close();
            return;
          }
          line("uint32_t " + n + " = 0;");
          std::string parent = in_mask("en_i");
          // Entries are written over the simdgroups that hold the range (simd
          // ops read whole simdgroups); readers of other entries check the
          // range first (in_mask).
          line("const uint32_t " + n + "clo = " + n + "lo & ~31u, " + n +
               "cend = static_cast<uint32_t>(std::min<uint64_t>(en_n, (uint64_t{" + n +
               "end} + 31u) & ~uint64_t{31}));");
          line("#pragma omp simd reduction(+ : " + n + ")");
          line("for (uint32_t en_i = " + n + "clo; en_i < " + n + "cend; ++en_i) { " + m + "[en_i] = en_i >= " + n +
               "lo && en_i < " + n + "end && " + parent + "; " + n + " += " + m + "[en_i]; }");
          open("if (" + n + " != 0)");
          masks_.push_back(Mask{m, "(" + n + " != en_n)", n + "lo", "(" + n + "end - 1)"});
          group_region(op.regions[0]);
          masks_.pop_back();
          close();
          return;
        }
        line("uint32_t " + n + " = 0, " + n + "e = 0, " + n + "lo = en_n, " + n + "hi = 0, " + n + "elo = en_n, " + n +
             "ehi = 0;");
        thread_loop(false,
                    " reduction(+ : " + n + ", " + n + "e) reduction(min : " + n + "lo, " + n +
                        "elo) reduction(max : " + n + "hi, " + n + "ehi)",
                    {}, [&] {
                      std::string act = "true";
                      if (!masks_.empty()) {
                        const Mask& pm = masks_.back();
                        act = "(en_t >= " + pm.lo + " && en_t <= " + pm.hi +
                              (pm.arr.empty() ? "" : " && " + slot(pm.arr)) + ")";
                      }
                      line("const bool en_a = " + act + ";");
                      line("const bool en_c = en_a && " + at(c, "en_t") + ";");
                      line("const bool en_ce = en_a && !en_c;");
                      line(slot(m) + " = en_c; " + slot(m + "e") + " = en_ce;");
                      line(n + " += en_c; " + n + "e += en_ce;");
                      line(n + "lo = std::min(" + n + "lo, en_c ? en_t : en_n); " + n + "hi = std::max(" + n +
                           "hi, en_c ? en_t : 0u);");
                      line(n + "elo = std::min(" + n + "elo, en_ce ? en_t : en_n); " + n + "ehi = std::max(" + n +
                           "ehi, en_ce ? en_t : 0u);");
                    });
        open("if (" + n + " != 0)");
        masks_.push_back(Mask{m, "(" + n + " != en_n)", n + "lo", n + "hi"});
        group_region(op.regions[0]);
        masks_.pop_back();
        close();
        open("if (" + n + "e != 0)");
        masks_.push_back(Mask{m + "e", "(" + n + "e != en_n)", n + "elo", n + "ehi"});
        group_region(op.regions[1]);
        masks_.pop_back();
        close();
        return;
      }
      default: throw KernelError("internal: unexpected control op");
    }
  }

  // ---- simdgroup-matrix K loops ----
  // A group-level `for` whose body is only pure (index) math and
  // simdgroup-matrix loads, fills and products, and which carries only
  // matrices, runs with the simdgroup loop outside it: each simdgroup runs
  // the whole loop for its first active lane (matrix ops touch only their
  // simdgroup's matrices, and the body neither writes memory nor
  // synchronises). Its matrices are local arrays, and the products whose
  // accumulators are carried become register blocks held across the loop.
  bool simdgroup_loop_ok(const Op& op) const {
    bool any_mma = false;
    for (ValueId r : op.results)
      if (k_.type_of(r).kind != DType::Kind::SimdMatrix) return false;
    const Region& body = op.regions[0];
    for (const Op& o : body.ops) {
      if (&o == &body.ops.back()) break;  // the yield
      if (!o.regions.empty()) return false;
      const OpCategory c = o.info().category;
      if (c == OpCategory::MatrixLoad || c == OpCategory::MatrixFill) continue;
      if (c == OpCategory::MatrixMma) {
        any_mma = true;
        continue;
      }
      if (!o.info().pure) return false;
      for (ValueId v : o.results)
        if (k_.type_of(v).kind == DType::Kind::SimdMatrix) return false;
      for (ValueId v : o.operands)
        if (k_.type_of(v).kind == DType::Kind::SimdMatrix) return false;
    }
    return any_mma;
  }

  // Products d = a * b + c of a K loop's body whose c is carried value i
  // (read by nothing else) and whose d is yielded as carried value i (and
  // read by nothing else), a float accumulator: grouped into blocks of at
  // most 2 x 2 tiles when their a's and b's form a full grid.
  struct MatBlock {
    std::vector<ValueId> a, b;
    std::vector<std::vector<size_t>> carried;  // [i][j]: the carried value
    const Op* last = nullptr;                  // the block's products run here
    std::string name;
  };
  std::vector<MatBlock> matrix_blocks(const Op& loop) {
    const Region& body = loop.regions[0];
    const Op& yield = body.ops.back();
    std::map<ValueId, int> uses;
    for (const Op& o : body.ops)
      for (ValueId v : o.operands) ++uses[v];
    std::set<ValueId> args(body.args.begin() + 1, body.args.end());
    std::vector<const Op*> prods;
    std::map<std::pair<ValueId, ValueId>, std::pair<size_t, const Op*>> grid;
    std::vector<ValueId> as, bs;
    std::map<const Op*, size_t> pos;
    for (const Op& o : body.ops) pos[&o] = pos.size();
    for (const Op& o : body.ops) {
      if (o.code != OpCode::SimdMatrixMultiplyAccumulate || o.type.elem != Scalar::F32) continue;
      ValueId a = o.operands[0], b = o.operands[1], c = o.operands[2];
      if (args.count(a) || args.count(b) || !args.count(c) || uses[c] != 1 || uses[o.result()] != 1) continue;
      size_t i = static_cast<size_t>(std::find(body.args.begin(), body.args.end(), c) - body.args.begin()) - 1;
      if (yield.operands[i] != o.result()) continue;
      if (!grid.emplace(std::make_pair(a, b), std::make_pair(i, &o)).second) return {};
      if (std::find(as.begin(), as.end(), a) == as.end()) as.push_back(a);
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) bs.push_back(b);
    }
    if (grid.empty() || grid.size() != as.size() * bs.size()) return {};
    std::vector<MatBlock> blocks;
    for (size_t i0 = 0; i0 < as.size(); i0 += 2)
      for (size_t j0 = 0; j0 < bs.size(); j0 += 2) {
        MatBlock m;
        m.a.assign(as.begin() + i0, as.begin() + std::min(as.size(), i0 + 2));
        m.b.assign(bs.begin() + j0, bs.begin() + std::min(bs.size(), j0 + 2));
        for (ValueId a : m.a) {
          m.carried.emplace_back();
          for (ValueId b : m.b) {
            auto [idx, prod] = grid.at({a, b});
            m.carried.back().push_back(idx);
            // The last product in program order: every a and b is made by then.
            if (!m.last || pos.at(prod) > pos.at(m.last)) m.last = prod;
          }
        }
        m.name = "en_mb" + std::to_string(temp_++);
        blocks.push_back(std::move(m));
      }
    return blocks;
  }

  void simdgroup_loop(const Op& op) {
    const Region& body = op.regions[0];
    const Op& yield = body.ops.back();
    const size_t n = op.results.size();
    std::vector<ValueId> inits(op.operands.begin() + 3, op.operands.end());
    open("");
    std::string lo = uniform(op.operands[0], op), hi = uniform(op.operands[1], op), step = uniform(op.operands[2], op);
    std::vector<MatBlock> blocks = matrix_blocks(op);
    std::map<size_t, std::pair<const MatBlock*, std::pair<size_t, size_t>>> in_block;
    std::map<const Op*, const MatBlock*> block_at;
    std::set<const Op*> in_blocks;
    for (const MatBlock& m : blocks) {
      block_at[m.last] = &m;
      for (size_t i = 0; i < m.a.size(); ++i)
        for (size_t j = 0; j < m.b.size(); ++j) in_block[m.carried[i][j]] = {&m, {i, j}};
    }
    for (const Op& o : body.ops)
      if (o.code == OpCode::SimdMatrixMultiplyAccumulate) {
        for (size_t i = 0; i < n; ++i)
          if (in_block.count(i) && yield.operands[i] == o.result()) in_blocks.insert(&o);
      }
    std::set<ValueId> inside(body.args.begin(), body.args.end());
    for (const Op& o : body.ops)
      for (ValueId v : o.results) inside.insert(v);
    // The loop's results hold each simdgroup's carried matrices between
    // chunks of iterations: the simdgroups take turns per chunk, so tiles one
    // of them reads are still in cache for the others of the group.
    per_simdgroup([&] {
      for (size_t i = 0; i < n; ++i)
        line("std::memmove(" + mat(op.results[i]) + ", " + mat(inits[i]) + ", 64 * sizeof(float));");
    });
    const DType ivt = k_.type_of(body.args[0]);
    const std::string t = type(ivt), kc = "en_kc" + std::to_string(temp_), ke = "en_ke" + std::to_string(temp_++);
    auto cond = [&](const std::string& v) {
      return is_signed_int(ivt.elem)
                 ? "((" + step + " > 0) ? (" + v + " < " + hi + ") : (" + step + " < 0 && " + v + " > " + hi + "))"
                 : "(" + step + " != 0 && " + v + " < " + hi + ")";
    };
    line(t + " " + kc + " = " + lo + ";");
    open("while (" + cond(kc) + ")");
    line(t + " " + ke + " = " + kc + ";");
    line("for (uint32_t en_i = 0; en_i < " + std::to_string(kSimdgroupLoopChunk) + "u && " + cond(ke) + "; ++en_i) " +
         ke + " = " + finish(ivt, "(" + ke + " + " + step + ")") + ";");
    per_simdgroup([&] {
      line("const uint32_t en_t = en_f;");
      thread_coordinates();
      flat_.push_back(true);
      // Per-thread values from before the loop, for the first lane.
      std::vector<bool> done(k_.values.size(), false);
      for (const Op& o : body.ops)
        for (ValueId v : o.operands) {
          if (inside.count(v) || plan_.group[v] || sg_values_.count(v) || k_.type_of(v).kind == DType::Kind::SimdMatrix)
            continue;
          if (plan_.recompute[v]) {
            std::vector<bool> before = done;
            emit_remat(v, -1000, done);
            for (size_t u = 0; u < done.size(); ++u)
              if (done[u] && !before[u]) sg_values_.insert(static_cast<ValueId>(u));
          } else {
            line("const " + type(k_.type_of(v)) + " " + name(v) + " = " + at(v, "en_f") + ";");
            sg_values_.insert(v);
          }
        }
      // The carried matrices: register blocks or local arrays.
      auto tiles = [&](const MatBlock& m) {
        std::string ts;
        for (size_t i = 0; i < m.a.size(); ++i)
          for (size_t j = 0; j < m.b.size(); ++j) ts += (ts.empty() ? "" : ", ") + mat(op.results[m.carried[i][j]]);
        return "{" + ts + "}";
      };
      for (const MatBlock& m : blocks) {
        line("en_mblk<" + std::to_string(m.a.size()) + ", " + std::to_string(m.b.size()) + "> " + m.name + ";");
        line("en_mblk_get(" + m.name + ", " + tiles(m) + ");");
      }
      for (size_t i = 0; i < n; ++i) {
        if (in_block.count(i)) continue;
        std::string c = "en_c" + std::to_string(temp_++);
        line("alignas(64) float " + c + "[64];");
        line("std::memcpy(" + c + ", " + mat(op.results[i]) + ", 64 * sizeof(float));");
        sg_matrices_[body.args[i + 1]] = c;
      }
      const std::string iv = name(body.args[0]);
      open("for (" + t + " " + iv + " = " + kc + "; " + iv + " != " + ke + "; " + iv + " = " +
           finish(ivt, "(" + iv + " + " + step + ")") + ")");
      sg_values_.insert(body.args[0]);
      for (const Op& o : body.ops) {
        if (&o == &yield) break;
        if (!is_simdgroup_matrix_op(o)) {
          CFamilyEmitter::op(o);
          for (ValueId v : o.results) sg_values_.insert(v);
          continue;
        }
        if (auto b = block_at.find(&o); b != block_at.end()) {
          const MatBlock& m = *b->second;
          std::string as, bs;
          for (ValueId a : m.a) as += (as.empty() ? "" : ", ") + mat(a);
          for (ValueId v : m.b) bs += (bs.empty() ? "" : ", ") + mat(v);
          line("en_mblk_mma(" + m.name + ", {" + as + "}, {" + bs + "});");
        }
        if (in_blocks.count(&o)) continue;
        std::string x = "en_l" + std::to_string(temp_++);
        line("alignas(64) float " + x + "[64];");
        sg_matrices_[o.result()] = x;
        inline_loads_ = true;
        matrix_op(o);
        inline_loads_ = false;
      }
      // The yield: values read from carried ones first go through copies.
      std::vector<std::string> src(n);
      for (size_t i = 0; i < n; ++i) {
        if (in_block.count(i) || yield.operands[i] == body.args[i + 1]) continue;
        src[i] = mat(yield.operands[i]);
        if (std::find(body.args.begin() + 1, body.args.end(), yield.operands[i]) != body.args.end()) {
          std::string y = "en_y" + std::to_string(temp_++);
          line("alignas(64) float " + y + "[64];");
          line("std::memcpy(" + y + ", " + src[i] + ", 64 * sizeof(float));");
          src[i] = y;
        }
      }
      for (size_t i = 0; i < n; ++i)
        if (!src[i].empty()) line("std::memcpy(" + mat(body.args[i + 1]) + ", " + src[i] + ", 64 * sizeof(float));");
      close();
      for (const MatBlock& m : blocks) line("en_mblk_put(" + m.name + ", " + tiles(m) + ");");
      for (size_t i = 0; i < n; ++i)
        if (!in_block.count(i))
          line("std::memcpy(" + mat(op.results[i]) + ", " + mat(body.args[i + 1]) + ", 64 * sizeof(float));");
      flat_.pop_back();
      sg_values_.clear();
      sg_matrices_.clear();
    });
    line(kc + " = " + ke + ";");
    close();
    close();
  }

  // ---- sync ops at group level ----
  void sync_op(const Op& op) {
    const OpCategory cat = op.info().category;
    switch (cat) {
      case OpCategory::Barrier:
        // Between two thread loops every thread has finished the first: the
        // loop boundary is the barrier. Only a barrier some threads skip fails.
        line("// " + std::string(op.info().name) + "(" + mem_flags_name(op.mem_flags()) + ")");
        if (!masks_.empty()) {
          line("if (" + masks_.back().partial + ")");
          ++indent_;
          fail_and_return(op, 4, "0");
          --indent_;
        }
        return;
      case OpCategory::GroupReduce:
      case OpCategory::GroupScan: reduce_or_scan(op); return;
      case OpCategory::GroupShuffle: shuffle(op); return;
      case OpCategory::MatrixLoad:
      case OpCategory::MatrixStore:
      case OpCategory::MatrixFill:
      case OpCategory::MatrixMma: per_simdgroup([&] { matrix_op(op); }); return;
      case OpCategory::AsyncCopy: async_copy(op); return;
      case OpCategory::AsyncWait: line("// async_copy_wait: copies complete when issued on the CPU"); return;
      default: throw KernelError("internal: unexpected sync op");
    }
  }

  std::string combine(CollectiveInfo::Kind k, const DType& t, const std::string& a, const std::string& b) const {
    using K = CollectiveInfo::Kind;
    if (t.is_vector()) {  // lanewise, through the math prelude
      switch (k) {
        case K::Sum: return "(" + a + " + " + b + ")";
        case K::Product: return "(" + a + " * " + b + ")";
        case K::Min: return std::string(t.is_float() ? "en_fmin(" : "en_min(") + a + ", " + b + ")";
        case K::Max: return std::string(t.is_float() ? "en_fmax(" : "en_max(") + a + ", " + b + ")";
        case K::And: return "(" + a + " & " + b + ")";
        case K::Or: return "(" + a + " | " + b + ")";
        case K::Xor: return "(" + a + " ^ " + b + ")";
        default: return a;
      }
    }
    return combine_scalars(k, t, a, b);
  }
  std::string identity(CollectiveInfo::Kind k, const DType& t) const {
    using K = CollectiveInfo::Kind;
    const std::string T = type(t);
    if (t.is_vector()) return T + "(" + identity(k, DType::scalar(t.elem)) + ")";  // splat
    switch (k) {
      case K::Product: return "static_cast<" + T + ">(1)";
      case K::Min: return t.is_float() ? "en_f32_bits(0x7f800000u)" : "std::numeric_limits<" + T + ">::max()";
      case K::Max: return t.is_float() ? "en_f32_bits(0xff800000u)" : "std::numeric_limits<" + T + ">::lowest()";
      case K::And: return "static_cast<" + T + ">(~static_cast<" + T + ">(0))";
      default: return "static_cast<" + T + ">(0)";
    }
  }

  void reduce_or_scan(const Op& op) {
    const std::string W = std::to_string(collective_info(op.code).width) + "u";
    std::string first = masks_.empty() ? "0" : "(" + masks_.back().lo + " / " + W + ") * " + W;
    std::string last = masks_.empty() ? "en_n" : "std::min(en_n, " + masks_.back().hi + " + 1)";
    open("for (uint32_t en_b = " + first + "; en_b < " + last + "; en_b += " + W + ")");
    reduce_or_scan_block(op);
    close();
  }

  // One simdgroup (or quad) of a reduction or scan: the one starting at
  // thread en_b.
  void reduce_or_scan_block(const Op& op) {
    CollectiveInfo ci = collective_info(op.code);
    const DType& t = op.type;
    const std::string T = type(t), W = std::to_string(ci.width) + "u";
    ValueId v = op.operands[0];
    std::string out = plan_.array[op.result()];
    std::string act = masks_.empty() ? "" : "if (" + active("en_i") + ") ";
    line("const uint32_t en_e = std::min(en_n, en_b + " + W + ");");
    line(T + " en_acc = " + identity(ci.kind, t) + ";");
    if (!ci.scan) {
      // The one reduction order (docs/cooperative.md): a full simdgroup or
      // quad, every lane active, combines as the xor butterfly (offsets W/2
      // .. 1, lane 0's operand first); a partial one lane by lane over its
      // active lanes. Floats accumulate in float and round once to the dtype.
      // The butterfly's halving steps are contiguous vector ops.
      const std::string H = std::to_string(ci.width / 2);
      line("bool en_full = en_e - en_b == " + W + ";");
      if (!masks_.empty() && masks_.back().arr.empty())
        line("en_full = en_full && en_b >= " + masks_.back().lo + " && en_e - 1 <= " + masks_.back().hi + ";");
      else if (!masks_.empty())
        line("for (uint32_t en_i = en_b; en_i < en_e; ++en_i) en_full = en_full && " + active("en_i") + ";");
      open("if (en_full)");
      const bool vector_butterfly = ci.width == 32 && !plan_.group[v] && t.is_scalar() && t.is_float() &&
                                    (ci.kind == CollectiveInfo::Kind::Sum || ci.kind == CollectiveInfo::Kind::Product);
      if (vector_butterfly) {
        line("en_acc = en_butterfly32<" + std::string(ci.kind == CollectiveInfo::Kind::Sum ? "0" : "1") + ">(" +
             plan_.array[v] + " + en_b);");
      } else {
        line(T + " en_p[" + H + "];");
        line("for (uint32_t en_l = 0; en_l < " + H + "u; ++en_l) en_p[en_l] = " +
             combine(ci.kind, t, at(v, "en_b + en_l"), at(v, "en_b + en_l + " + H + "u")) + ";");
        line("for (uint32_t en_s = " + std::to_string(ci.width / 4) +
             "u; en_s > 0; en_s >>= 1) for (uint32_t en_l = 0; en_l < en_s; ++en_l) en_p[en_l] = " +
             combine(ci.kind, t, "en_p[en_l]", "en_p[en_l + en_s]") + ";");
        line("en_acc = en_p[0];");
      }
      close("} else {");
      ++indent_;
      line("for (uint32_t en_i = en_b; en_i < en_e; ++en_i) " + act +
           "en_acc = " + combine(ci.kind, t, "en_acc", at(v, "en_i")) + ";");
      close();
      line("en_acc = " + round_to(t.elem, "en_acc") + ";");
      line("for (uint32_t en_i = en_b; en_i < en_e; ++en_i) " + out + "[en_i] = en_acc;");
    } else {
      open("for (uint32_t en_i = en_b; en_i < en_e; ++en_i)");
      if (!masks_.empty()) line("if (!" + active("en_i") + ") continue;");
      std::string next = round_to(t.elem, combine(ci.kind, t, "en_acc", at(v, "en_i")));
      if (ci.inclusive) {
        line("en_acc = " + next + ";");
        line(out + "[en_i] = en_acc;");
      } else {
        line(out + "[en_i] = en_acc;");
        line("en_acc = " + next + ";");
      }
      close();
    }
  }

  void shuffle(const Op& op) {
    CollectiveInfo ci = collective_info(op.code);
    using K = CollectiveInfo::Kind;
    const std::string W = std::to_string(ci.width) + "u";
    ValueId v = op.operands[0], lane = op.operands[1];
    std::string out = plan_.array[op.result()];
    if (masks_.empty())
      open("for (uint32_t en_i = 0; en_i < en_n; ++en_i)");
    else
      open("for (uint32_t en_i = " + masks_.back().lo + "; en_i <= " + masks_.back().hi + "; ++en_i)");
    if (!masks_.empty()) line("if (!" + active("en_i") + ") continue;");
    line("const uint32_t en_l = en_i % " + W + ", en_d = " + at(lane, "en_i") + ";");
    // Source lane (within the simdgroup/quad) and whether it exists and is
    // active; otherwise the thread keeps its own value (documented).
    switch (ci.kind) {
      case K::Shuffle:
      case K::Broadcast: line("const uint32_t en_sl = en_d; bool en_ok = en_d < " + W + ";"); break;
      case K::ShuffleUp: line("const uint32_t en_sl = en_l - en_d; bool en_ok = en_d <= en_l;"); break;
      case K::ShuffleDown:
        line("const uint64_t en_sl = static_cast<uint64_t>(en_l) + en_d; bool en_ok = en_sl < " + W + ";");
        break;
      case K::ShuffleXor: line("const uint32_t en_sl = en_l ^ en_d; bool en_ok = en_sl < " + W + ";"); break;
      default: break;
    }
    line("const uint64_t en_src = static_cast<uint64_t>(en_i - en_l) + en_sl;");
    line("en_ok = en_ok && en_src < en_n;");
    if (!masks_.empty()) line("en_ok = en_ok && " + active("en_src") + ";");
    line(out + "[en_i] = en_ok ? " + at(v, "en_src") + " : " + at(v, "en_i") + ";");
    close();
  }

  // Runs `body` once per simdgroup with at least one active lane; en_f is
  // the simdgroup's first active lane (whose operands the op uses).
  void per_simdgroup(const std::function<void()>& body) {
    if (masks_.empty())
      open("for (uint32_t en_sg = 0; en_sg * 32u < en_n; ++en_sg)");
    else
      open("for (uint32_t en_sg = " + masks_.back().lo + " / 32u; en_sg <= " + masks_.back().hi + " / 32u; ++en_sg)");
    line("uint32_t en_f = en_sg * 32u;");
    if (!masks_.empty()) {
      line("const uint32_t en_e = std::min(en_n, en_f + 32u);");
      line("while (en_f < en_e && !" + active("en_f") + ") ++en_f;");
      line("if (en_f == en_e) continue;");
    }
    body();
    close();
  }

  std::string mat(ValueId v) const {
    if (auto it = sg_matrices_.find(v); it != sg_matrices_.end()) return it->second;
    if (plan_.run_local_matrices.count(v)) return plan_.array[v];
    return "(" + plan_.array[v] + " + en_sg * 64u)";
  }

  // One matrix op for simdgroup en_sg, inside per_simdgroup.
  void matrix_op(const Op& op) {
    {
      switch (op.code) {
        case OpCode::SimdMatrixFill:
          line("std::fill_n(" + mat(op.result()) + ", 64, static_cast<float>(" + at(op.operands[0], "en_f") + "));");
          break;
        case OpCode::SimdMatrixLoad:
        case OpCode::SimdMatrixStore: {
          bool load = op.code == OpCode::SimdMatrixLoad;
          size_t first = load ? 0 : 1;
          Scalar e = k_.memory_type(op.memory()).elem;
          std::string kind = e == Scalar::F16 ? "1" : e == Scalar::BF16 ? "2" : "0";
          std::string m = mat(load ? op.result() : op.operands[0]);
          auto call = [&](const std::string& o, const std::string& ld) {
            line(std::string(load ? (inline_loads_ ? "en_mat_ld<" : "en_mat_load<") : "en_mat_store<") + kind + ">(" +
                 m + ", " + mem_ptr(op.memory()) + ", " + o + ", " + ld + ", " + (op.transposed() ? "true" : "false") +
                 ");");
          };
          if (!check_memory_) {
            call(at(op.operands[first], "en_f"), at(op.operands[first + 1], "en_f"));
            break;
          }
          // Checked: a tile entirely in bounds (its last element is
          // o + 7 * ld + 7 in both layouts) takes the helper; any other goes
          // element by element (loads read 0, stores are dropped).
          open("");
          line("const uint64_t en_o = " + at(op.operands[first], "en_f") +
               ", en_p = " + at(op.operands[first + 1], "en_f") + ";");
          line("const uint64_t en_last = en_o + 7u * en_p + 7u;");
          open("if (en_p < (uint64_t{1} << 60) && en_last >= en_o && en_last < " + mem_length(op.memory()) + ")");
          call("en_o", "en_p");
          close("} else {");
          ++indent_;
          if (load && !report_loads_) {  // out-of-bounds elements read 0, unreported: one out-of-line helper
            line("en_mat_load_checked<" + kind + ">(" + m + ", " + mem_ptr(op.memory()) + ", en_o, en_p, " +
                 mem_length(op.memory()) + ", " + (op.transposed() ? "true" : "false") + ");");
            close();
            close();
            break;
          }
          line("float* en_m = " + m + ";");
          std::string off = op.transposed() ? "en_o + en_c * en_p + en_r" : "en_o + en_r * en_p + en_c";
          open("for (uint64_t en_r = 0; en_r < 8; ++en_r)");
          open("for (uint64_t en_c = 0; en_c < 8; ++en_c)");
          thread_xyz_ = lane_xyz("en_f");
          std::string ok = bounds_check_expr(op.memory(), off, 1, load ? kLoad : kStore);
          thread_xyz_.clear();
          if (load) {
            line("en_m[en_r * 8 + en_c] = " + read(op.memory(), DType::scalar(e), off, ok) + ";");
          } else {
            line((ok.empty() ? "" : "if (" + ok + ") ") + mem_ptr(op.memory()) + "[" + off +
                 "] = " + to_memory(e, "en_m[en_r * 8 + en_c]") + ";");
          }
          close();
          close();
          close();
          close();
          break;
        }
        case OpCode::SimdMatrixMultiplyAccumulate: {
          // d = a * b + c, accumulated in float, rounded to c's dtype.
          Scalar e = op.type.elem;
          std::string round = e == Scalar::F16 ? "1" : e == Scalar::BF16 ? "2" : "0";
          line("en_mat_mma<" + round + ">(" + mat(op.result()) + ", " + mat(op.operands[0]) + ", " +
               mat(op.operands[1]) + ", " + mat(op.operands[2]) + ");");
          break;
        }
        default: break;
      }
    }
  }

  // The coordinates in the grid of thread `t` of the group (flat index).
  static std::string lane_xyz(const std::string& t) {
    return "en_bx + " + t + " % en_ex, en_by + (" + t + " / en_ex) % en_ey, en_bz + " + t + " / (en_ex * en_ey)";
  }

  // dst[d + i] = src[s + i] for i < n, checked: one memcpy when both ranges
  // are in bounds, else element by element over the part of dst in bounds
  // (source elements out of bounds read 0; the first dropped store is reported).
  void checked_copy(const Op& op, const std::string& d, const std::string& s, const std::string& n) {
    std::string dst = mem_ptr(op.copy_destination()), src = mem_ptr(op.copy_source());
    if (!check_memory_) {
      line("std::memcpy(" + dst + " + " + d + ", " + src + " + " + s + ", " + n + " * sizeof(*" + dst + "));");
      return;
    }
    std::string dl = mem_length(op.copy_destination()), sl = mem_length(op.copy_source());
    open("");
    line("const uint64_t en_cd = " + d + ", en_cs = " + s + ", en_cn = " + n + ";");
    open("if (en_cn <= " + dl + " && en_cd <= " + dl + " - en_cn && en_cn <= " + sl + " && en_cs <= " + sl +
         " - en_cn)");
    line("std::memcpy(" + dst + " + en_cd, " + src + " + en_cs, en_cn * sizeof(*" + dst + "));");
    close("} else {");
    ++indent_;
    line("const uint64_t en_cin = en_cd < " + dl + " ? std::min<uint64_t>(en_cn, " + dl + " - en_cd) : 0;");
    line("if (en_cin < en_cn) { " + report_oob(op.copy_destination(), "en_cd + en_cin", kStore) + " }");
    open("for (uint64_t en_k = 0; en_k < en_cin; ++en_k)");
    std::string ok = bounds_check_expr(op.copy_source(), "en_cs + en_k", 1, kLoad);
    line(dst + "[en_cd + en_k] = " + ok + " ? " + src + "[en_cs + en_k] : std::remove_cvref_t<decltype(" + src +
         "[0])>{};");
    close();
    close();
    close();
  }

  void async_copy(const Op& op) {
    line("const int64_t " + name(op.result()) + " = 0;");
    auto body = [&](const std::string& t) {
      std::vector<std::string> a;
      for (ValueId v : op.operands) a.push_back("static_cast<uint64_t>(" + at(v, t) + ")");
      thread_xyz_ = lane_xyz(t);
      if (op.code == OpCode::AsyncCopy1D) {
        checked_copy(op, a[0], a[1], a[2]);
      } else {
        // dst_offset, dst_pitch, src_offset, src_pitch, cols, rows
        open("for (uint64_t en_r = 0; en_r < " + a[5] + "; ++en_r)");
        checked_copy(op, a[0] + " + en_r * " + a[1], a[2] + " + en_r * " + a[3], a[4]);
        close();
      }
      thread_xyz_.clear();
    };
    bool uniform_args = true;
    for (ValueId v : op.operands) uniform_args = uniform_args && plan_.group[v];
    // Every simdgroup issues its own copy; identical copies happen once.
    if (uniform_args && masks_.empty())
      body("0");
    else
      per_simdgroup([&] { body("en_f"); });
  }

 private:
  CpuEmitOptions opt_;
  std::string thread_xyz_;  // set while a group-level op reports on behalf of its first lane
  int temp_ = 0;
  bool coop_ = false;
  CpuPlan plan_;  // cooperative kernels only
  std::vector<const Op*> def_;
  std::vector<Mask> masks_;
  std::vector<bool> flat_;
  const std::map<const Op*, std::string>* fast_ = nullptr;  // accesses the fast x loop addresses by row pointer
  const std::set<const Op*>* proved_ = nullptr;             // accesses the fast x loop proved in bounds per row
  std::string fast_var_ = "en_gx";                          // ... indexed by this loop variable
  ValueId rounds_iv_ = kNoValue;                            // in an interchanged strided loop: its induction variable
  std::string rounds_step_;                                 // ... and its step (the distance between passes)
  std::string sg_var_;                                      // in a simdgroup-blocked thread loop: the simdgroup's index
  std::vector<std::set<std::string>> rowptrs_;
  // Inside a simdgroup K loop: values held in C variables for the
  // simdgroup's first lane, and matrices held in local arrays.
  std::set<ValueId> sg_values_;
  std::map<ValueId, std::string> sg_matrices_;
  bool inline_loads_ = false;
};
}  // namespace

std::string emit_cpu(const Kernel& k, const CpuEmitOptions& options) {
  CpuEmitter e(k, options);
  return e.run();
}

}  // namespace enigma
