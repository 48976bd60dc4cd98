"""The MSL check (scripts/check-msl-sources.py against tests/msl/metal_stdlib):
representative kernels covering every op category and every dtype emit MSL
that type-checks with the host C++ compiler, and the checker rejects broken
MSL. Needs no Mac: kernels are compiled emit-only."""

import glob
import os
import shutil
import subprocess
import sys

import pytest

import enigma

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKER = os.path.join(ROOT, "scripts", "check-msl-sources.py")

pytestmark = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX") or "", "clang++", "g++", "c++") if c),
    reason="the MSL check needs a host C++ compiler")

DTYPES = ["f32", "f16", "bf16", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "b1"]
FLOATS = ["f32", "f16", "bf16"]
INTS = ["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"]
SAME_SIZE = [("f32", "i32"), ("f32", "u32"), ("i32", "u32"), ("f16", "u16"), ("f16", "i16"), ("bf16", "u16"),
             ("bf16", "f16"), ("i64", "u64"), ("i8", "u8")]


def T(short):
    return getattr(enigma, short)


def named(fn, name):
    fn.__name__ = name
    fn.__qualname__ = name
    return enigma.kernel(fn)


# ---- kernels ------------------------------------------------------------------

def arithmetic(t):
    def k(a: T(t), b: T(t), out: T(t), flags: enigma.b1):
        i = enigma.thread_position_in_grid
        x, y = a[i], b[i]
        out[i] = (x + y) * (x - y) / y + x // y + x % y - (-x)
        flags[i] = enigma.where(x < y, x <= y, x > y) & (x >= y) | (x == y) ^ (x != y)
        flags[i + 1] = enigma.cmp_ult(x, y) | enigma.cmp_ule(x, y) | enigma.cmp_ugt(x, y) | enigma.cmp_uge(x, y)
    return named(k, f"arith_{t}")


def integer_bits(t):
    def k(a: T(t), b: T(t), out: T(t)):
        i = enigma.thread_position_in_grid
        x, y = a[i], b[i]
        out[i] = ((x & y) | (x ^ ~y)) + (x << y) + (x >> y) + (x << 3) + (1 << y)
    return named(k, f"bits_{t}")


def booleans():
    def k(a: enigma.b1, b: enigma.b1, out: enigma.b1):
        i = enigma.thread_position_in_grid
        x, y = a[i], b[i]
        out[i] = enigma.where((x & y) | (x ^ y), ~x, (x == y) != (x != y))
    return named(k, "bools")


def conversions(src):
    names = [f"o_{d}" for d in DTYPES]
    params = ", ".join(f"{n}: T('{d}')" for n, d in zip(names, DTYPES))
    body = "\n".join(f"    {n}[i] = enigma.metal_cast(x, '{d}')" for n, d in zip(names, DTYPES) if d != src)
    ns = {"enigma": enigma, "T": T}
    exec(f"def k(a: T('{src}'), {params}):\n    i = enigma.thread_position_in_grid\n    x = a[i]\n{body}\n", ns)
    return named(ns["k"], f"convert_{src}")


def bitcasts():
    names = []
    lines = []
    for n, (x, y) in enumerate(SAME_SIZE):
        names += [f"a{n}: T('{x}')", f"b{n}: T('{y}')"]
        lines.append(f"    b{n}[i] = enigma.as_type(a{n}[i], '{y}')")
        lines.append(f"    a{n}[i + 1] = enigma.as_type(b{n}[i + 1], '{x}')")
    ns = {"enigma": enigma, "T": T}
    exec(f"def k({', '.join(names)}):\n    i = enigma.thread_position_in_grid\n" + "\n".join(lines) + "\n", ns)
    return named(ns["k"], "bitcasts")


def constants(t):
    if t in FLOATS:
        values = [float("nan"), float("inf"), float("-inf"), -0.0, 1.5, -2.25, 1e-40, 3.0e38 if t != "f16" else 65504.0]
    elif t == "b1":
        values = [True, False]
    else:
        info = {"i8": (-128, 127), "u8": (0, 255), "i16": (-32768, 32767), "u16": (0, 65535),
                "i32": (-2**31, 2**31 - 1), "u32": (0, 2**32 - 1), "i64": (-2**63, 2**63 - 1), "u64": (0, 2**64 - 1)}
        lo, hi = info[t]
        values = [lo, hi, 0, 1, lo + 1]

    def k(out: T(t)):
        i = enigma.thread_position_in_grid
        for n, v in enumerate(values):
            out[i + n] = v
    return named(k, f"constants_{t}")


def control_flow(t):
    def k(a: T(t), n: enigma.Scalar(enigma.i32), step: enigma.Scalar(enigma.i32), out: T(t)):
        i = enigma.thread_position_in_grid
        with enigma.for_range(0, n, 1, init=[a[i]]) as (j, acc):
            acc[0] = enigma.where(acc[0], a[j], j > 2)
        with enigma.for_range(n, 0, -2, dtype="int") as j:
            out[j] = acc[0]
        with enigma.for_range(0, n, step, dtype="long") as j:
            out[j] = a[j]
        with enigma.for_range(0, 10, 3, dtype="uint", init=[0]) as (j, c):
            c[0] = c[0] + j
        with enigma.if_(c[0] > 5) as (then_, else_):
            with then_:
                out[i] = acc[0]
            with else_:
                out[i] = a[i]
        with enigma.if_(n > 1):
            out[i + 1] = a[i + 1]
        with enigma.while_(lambda w: w[0] < n, init=[0]) as w:
            out[w[0]] = a[w[0]]
            w[0] = w[0] + 1
    return named(k, f"control_{t}")


def queries():
    def k(out: enigma.u32):
        e = enigma
        i = e.thread_position_in_grid
        total = i
        for dim in ("x", "y", "z"):
            total = (total + e.thread_position_in_grid_xyz(dim) + e.thread_position_in_threadgroup(dim)
                     + e.threadgroup_position_in_grid(dim) + e.threads_per_threadgroup(dim)
                     + e.threads_per_grid(dim) + e.threadgroups_per_grid(dim) + e.grid_size(dim))
        total = (total + e.thread_index_in_threadgroup() + e.thread_index_in_simdgroup()
                 + e.simdgroup_index_in_threadgroup() + e.threads_per_simdgroup() + e.simdgroups_per_threadgroup())
        out[i] = total
    return named(k, "queries")


def scalars():
    params = ", ".join(f"s_{d}: enigma.Scalar(T('{d}'))" for d in DTYPES)
    body = "\n".join(f"    out[i + {n}] = enigma.metal_cast(s_{d}, 'f32')" for n, d in enumerate(DTYPES))
    ns = {"enigma": enigma, "T": T}
    exec(f"def k({params}, out: enigma.f32):\n    i = enigma.thread_position_in_grid\n{body}\n", ns)
    return named(ns["k"], "scalars")


def awkward_names():
    # Parameter names that are MSL library or type names must not hide them.
    def k(floor: enigma.f16, fmod: enigma.f16, isnan: enigma.f32, as_type: enigma.u32, float4: enigma.i32,
          INFINITY: enigma.f32, select: enigma.i32, device: enigma.f32):
        i = enigma.thread_position_in_grid
        fmod[i] = floor[i] // fmod[i] + floor[i] % fmod[i]
        device[i] = enigma.as_type(as_type[i], "float") + INFINITY[i] + float("inf") + isnan[i]
        float4[i] = enigma.metal_cast(isnan[i], "int") + enigma.where(select[i], 1, float4[i] > 0)
    return named(k, "half")  # a kernel named like an MSL type


KERNELS = ([arithmetic(t) for t in DTYPES if t != "b1"] + [integer_bits(t) for t in INTS] + [booleans()]
           + [conversions(t) for t in DTYPES] + [bitcasts()] + [constants(t) for t in DTYPES]
           + [control_flow(t) for t in ("f32", "bf16", "i8", "u64")] + [queries(), scalars(), awkward_names()])


def vector_kernels():
    """Vectors reach memory only through as_type today; the CPU backend has no
    vectors yet, so these are emitted as MSL only."""
    def k(a: enigma.f32, h: enigma.f16, n: enigma.i32, out64: enigma.u64, out32: enigma.u32):
        i = enigma.thread_position_in_grid
        v = enigma.metal_cast(a[i], "vec<2,float>")
        w = v * v + v / v - v // v + v % v
        c = (v < w) & (w != v) | ~(v >= w)
        out64[i] = enigma.as_type(enigma.where(v, w, c), "ulong")
        vi = enigma.metal_cast(w, "vec<2,int>")
        vn = enigma.metal_cast(n[i], "vec<2,int>")
        q = vi / vn + vi // vn + vi % vn + (vi << vn) + (vi >> vn) + (-vi) * vn
        out64[i + 1] = enigma.as_type(q, "ulong")
        hv = enigma.metal_cast(h[i], "vec<4,half>")
        hb = enigma.metal_cast(hv / hv, "vec<4,bfloat>")
        out64[i + 2] = enigma.as_type(enigma.metal_cast(hb + hb, "vec<4,half>"), "ulong")
        bytes4 = enigma.metal_cast(enigma.metal_cast(hv, "vec<4,bool>"), "vec<4,uchar>")
        out32[i] = enigma.as_type(bytes4 * bytes4, "uint")
    return [named(k, "vectors")]


# ---- helpers --------------------------------------------------------------------

def run_checker(directory):
    return subprocess.run([sys.executable, CHECKER, str(directory)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    """Every kernel above compiled emit-only, its sources in one directory."""
    out = tmp_path_factory.mktemp("msl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENIGMA_EMIT_ONLY", "1")
        mp.setenv("ENIGMA_SOURCE_DUMP_DIR", str(out))
        compiled = [enigma.compile(k) for k in KERNELS]
        mp.delenv("ENIGMA_SOURCE_DUMP_DIR")  # the other backends have no vectors yet
        for k in vector_kernels():
            (out / f"{k.name}.metal").write_text(enigma.compile(k).metal_source)
    return out, compiled


# ---- tests ----------------------------------------------------------------------

def test_every_dumped_kernel_compiles(dumped):
    out, compiled = dumped
    files = glob.glob(str(out / "*.metal"))
    assert len(files) == len(KERNELS) + 1
    r = run_checker(out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(files)} passed, 0 failed" in r.stdout


def test_language_version_line(dumped):
    _, compiled = dumped
    for ck in compiled:
        uses_bfloat = "bfloat" in ck.metal_source.split("using namespace metal;")[1]
        needs = "3.1 (bfloat)" if uses_bfloat else "3.0."
        assert f"// Needs Metal Shading Language {needs}" in ck.metal_source, ck.kernel_name


def test_reference_spellings(dumped):
    _, compiled = dumped
    src = {ck.kernel_name: ck.metal_source for ck in compiled}
    a = src["arith_f32"]
    assert "#include <metal_stdlib>" in a and "kernel void arith_f32(" in a
    assert "const device float* a [[buffer(0)]]" in a and "[[thread_position_in_grid]]" in a
    assert "device bfloat* o_bf16" in src["convert_f32"] and "device long* o_i64" in src["convert_f32"]
    # A kernel named like an MSL type gets an entry name that is not one.
    assert "kernel void p_half(" in src["half"]


def _broken_copy(dumped, tmp_path, edit):
    out, _ = dumped
    src = open(glob.glob(str(out / "arith_f16-*.metal"))[0], encoding="utf-8").read()
    broken = edit(src)
    assert broken != src
    (tmp_path / "broken.metal").write_text(broken)
    return run_checker(tmp_path)


def _in_body(line):
    return lambda src: src[: src.rindex("}")] + f"  {line}\n}}\n"


@pytest.mark.parametrize("edit, expect", [
    (_in_body("const float bad = metal::flor(1.0f);"), "flor"),
    (_in_body("const float bad = undeclared_helper(1.0f);"), "undeclared_helper"),
    (_in_body("const half bad = 1.0f;"), "bad"),
    (_in_body("const half bad = a[0] + 1.0f;"), "bad"),
    (_in_body("const uint bad = as_type<uint>(a[0]);"), "same size"),
    (_in_body("const float bad = metal::floor(1);"), "floor"),
    (_in_body("const float2 bad = float2(1.0f) * 2.0f;"), "bad"),
    (_in_body("const bfloat bad = bfloat(1.0f) + bfloat(2.0f);"), "bad"),
    (_in_body("const bfloat bad = static_cast<bfloat>(3);"), "bad"),
    (lambda s: s.replace("[[thread_position_in_grid]]", "[[thread_position_in_grd]]"), "thread_position_in_grd"),
    (lambda s: s.replace("[[buffer(1)]]", "[[buffer(0)]]"), "bound twice"),
    (lambda s: s.replace("uint3 en_tpig", "float3 en_tpig"), "thread_position_in_grid"),
    (lambda s: s.replace("// Needs Metal Shading Language 3.0.", "// Needs Metal Shading Language 3.0.\n"
                         "typedef bfloat unused_bf;"), "bfloat needs 3.1"),
    (lambda s: s.replace("// Needs Metal Shading Language 3.0.\n", ""), "Needs Metal Shading Language"),
])
def test_checker_rejects_broken_msl(dumped, tmp_path, edit, expect):
    r = _broken_copy(dumped, tmp_path, edit)
    assert r.returncode != 0, r.stdout
    assert "1 failed" in r.stdout and expect in r.stdout, r.stdout


def test_checker_needs_files(tmp_path):
    r = run_checker(tmp_path)
    assert r.returncode == 0 and "nothing to check" in r.stdout


# ---- the helpers' defined results equal the CPU backend's ------------------------

HARNESS = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace cpu {
#include "numbers.h"
}

// The emitted MSL helpers, with just enough of Metal to run them on the host.
namespace msl {
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
namespace metal {
inline bool isnan(float x) { return x != x; }
}
%(helpers)s
}  // namespace msl

static int failures = 0;

template <class T>
std::vector<T> int_inputs() {
  using L = std::numeric_limits<T>;
  std::vector<long long> base = {0, 1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 255, 256,
                                 -1, -2, -3, -7, -8, -31, -32, -33, -63, -64, -100, -128};
  std::vector<T> v;
  for (long long b : base) v.push_back(static_cast<T>(b));
  for (T x : {L::min(), static_cast<T>(L::min() + 1), L::max(), static_cast<T>(L::max() - 1),
              static_cast<T>(L::max() / 2), static_cast<T>(L::min() / 2)})
    v.push_back(x);
  if (sizeof(T) == 1) {
    v.clear();
    for (int i = 0; i < 256; ++i) v.push_back(static_cast<T>(i));
  }
  return v;
}

template <class T>
void report(const char* op, T a, T b, T got, T want) {
  if (++failures <= 20)
    std::printf("%%s(%%lld, %%lld): MSL %%lld, CPU %%lld (%%zu-byte %%s)\n", op, (long long)a, (long long)b,
                (long long)got, (long long)want, sizeof(T), std::is_signed_v<T> ? "signed" : "unsigned");
}

template <class T>
void check_integer_ops() {
  for (T a : int_inputs<T>()) {
    for (T b : int_inputs<T>()) {
      if (msl::en_div(a, b) != cpu::en_div<T>(a, b)) report("en_div", a, b, msl::en_div(a, b), cpu::en_div<T>(a, b));
      if (msl::en_rem(a, b) != cpu::en_rem<T>(a, b)) report("en_rem", a, b, msl::en_rem(a, b), cpu::en_rem<T>(a, b));
      if (msl::en_floordiv(a, b) != cpu::en_floordiv<T>(a, b))
        report("en_floordiv", a, b, msl::en_floordiv(a, b), cpu::en_floordiv<T>(a, b));
      if (msl::en_shl(a, b) != cpu::en_shl<T, T>(a, b))
        report("en_shl", a, b, msl::en_shl(a, b), cpu::en_shl<T, T>(a, b));
      if (msl::en_shr(a, b) != cpu::en_shr<T, T>(a, b))
        report("en_shr", a, b, msl::en_shr(a, b), cpu::en_shr<T, T>(a, b));
    }
  }
}

std::vector<float> float_inputs() {
  std::vector<float> v = {0.0f, -0.0f, 0.4f, -0.4f, 0.5f, -0.5f, 0.99f, -0.99f, 1.0f, -1.0f, 1.5f, -1.5f,
                          std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN()};
  for (int k = 0; k <= 65; ++k) {
    float p = std::ldexp(1.0f, k);
    for (float x : {p, std::nextafter(p, 0.0f), std::nextafter(p, 2 * p), p - 1.0f, p + 1.0f}) {
      v.push_back(x);
      v.push_back(-x);
    }
  }
  uint32_t s = 12345;
  for (int i = 0; i < 20000; ++i) {
    s = s * 1664525u + 1013904223u;
    float f;
    std::memcpy(&f, &s, 4);
    v.push_back(f);
  }
  return v;
}

template <class T>
void check_saturation(T (*msl_fn)(float), const char* name) {
  for (float x : float_inputs()) {
    T got = msl_fn(x), want = cpu::en_cvt<T, float>(x);
    if (got != want && ++failures <= 20)
      std::printf("%%s(%%a): MSL %%lld, CPU %%lld\n", name, (double)x, (long long)got, (long long)want);
  }
}

int main() {
  check_integer_ops<char>();  // MSL's char: signed (-fsigned-char)
  check_integer_ops<unsigned char>();
  check_integer_ops<short>();
  check_integer_ops<unsigned short>();
  check_integer_ops<int>();
  check_integer_ops<unsigned int>();
  check_integer_ops<long>();
  check_integer_ops<unsigned long>();
  check_saturation<char>(&msl::en_sat_char, "en_sat_char");
  check_saturation<unsigned char>(&msl::en_sat_uchar, "en_sat_uchar");
  check_saturation<short>(&msl::en_sat_short, "en_sat_short");
  check_saturation<unsigned short>(&msl::en_sat_ushort, "en_sat_ushort");
  check_saturation<int>(&msl::en_sat_int, "en_sat_int");
  check_saturation<unsigned int>(&msl::en_sat_uint, "en_sat_uint");
  check_saturation<long>(&msl::en_sat_long, "en_sat_long");
  check_saturation<unsigned long>(&msl::en_sat_ulong, "en_sat_ulong");
  std::printf("%%d mismatches\n", failures);
  return failures != 0;
}
"""


def _helpers(path):
    src = open(path, encoding="utf-8").read()
    return src.split("using namespace metal;", 1)[1].split("kernel void", 1)[0]


def test_helpers_match_semantics_numbers(dumped, tmp_path):
    """Runs the emitted MSL helpers (integer division, remainder, floor
    division, shifts, saturating conversions) on the host against the CPU
    backend's prelude, on edge inputs, under UBSan where available."""
    out, _ = dumped
    files = [glob.glob(str(out / f"arith_{t}-*.metal"))[0] for t in INTS]
    files += [glob.glob(str(out / f"bits_{t}-*.metal"))[0] for t in INTS]
    files += glob.glob(str(out / "convert_f32-*.metal"))
    helpers = "\n".join(_helpers(f) for f in files)
    for name in ("en_div", "en_rem", "en_floordiv", "en_shl", "en_shr", "en_sat_char", "en_sat_ulong"):
        assert f" {name}(" in helpers, name
    src = tmp_path / "harness.cpp"
    src.write_text(HARNESS % {"helpers": helpers})
    cxx = next(c for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c and shutil.which(c))
    exe = tmp_path / "harness"
    base = [cxx, "-std=c++20", "-O1", "-fsigned-char", "-I", os.path.join(ROOT, "src", "semantics"), str(src), "-o",
            str(exe)]
    r = subprocess.run(base[:1] + ["-fsanitize=undefined", "-fno-sanitize-recover=all"] + base[1:],
                       capture_output=True, text=True)
    if r.returncode != 0:  # no UBSan runtime: check the values only
        r = subprocess.run(base, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 mismatches" in run.stdout
