"""MSL cannot paste src/semantics/math.h (Metal has its own library), so the
few functions it spells with its own helpers are checked here against the
definitions in math.h: the emitted MSL helper text is compiled on the host
with Metal's half/bfloat and library functions stood in for, and run next to
math.h under the CPU layer. fract of half/bfloat must agree bit for bit on
every 16-bit input; expm1/log1p (Kahan's corrections of exp/log, Metal has
neither) must stay within a few ulp of the correctly defined result."""

import os
import shutil
import subprocess

import pytest

import enigma

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CXX = next((c for c in (os.environ.get("CXX"), "g++", "clang++", "c++") if c and shutil.which(c)), None)
pytestmark = pytest.mark.skipif(CXX is None, reason="needs a host C++ compiler")

# Kahan's formulas lose a few ulp to the rounding of exp/log themselves.
MAX_ULP = 4


def _named(fn, name):
    fn.__name__ = fn.__qualname__ = name
    return enigma.kernel(fn)


def _kernels():
    def fract_h(a: enigma.f16, out: enigma.f16):
        i = enigma.thread_position_in_grid
        out[i] = enigma.fract(a[i])

    def fract_b(a: enigma.bf16, out: enigma.bf16):
        i = enigma.thread_position_in_grid
        out[i] = enigma.fract(a[i])

    def kahan(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = enigma.expm1(a[i]) + enigma.log1p(a[i])

    return [_named(fract_h, "fract_h"), _named(fract_b, "fract_b"), _named(kahan, "kahan")]


def _helpers(msl):
    return msl.split("using namespace metal;", 1)[1].split("kernel void", 1)[0]


HARNESS = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <type_traits>

namespace cpu {
#include "semantics/numbers.h"
#include "semantics/math_cpu.h"
#include "semantics/math.h"
}  // namespace cpu

namespace msl {
// Metal's 16-bit floats: a float rounded on construction.
struct half {
  float f;
  half(float x) : f(cpu::en_rh(x)) {}
  operator float() const { return f; }
};
struct bfloat {
  float f;
  bfloat(float x) : f(cpu::en_rb(x)) {}
  operator float() const { return f; }
};
// Metal's library functions: fract is the one Metal defines (math.h's
// definition of it); exp/log are the host's correctly rounded ones.
namespace metal {
inline float fract(float x) { return cpu::en_fract(x); }
inline float exp(float x) { return std::exp(x); }
inline float log(float x) { return std::log(x); }
inline bool isinf(float x) { return std::isinf(x); }
template <class T>
inline T select(T a, T b, bool c) { return c ? b : a; }
}  // namespace metal
%(helpers)s
}  // namespace msl

static uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
// Distance in ulp between two floats of the same sign; huge otherwise.
static double ulps(float a, float b) {
  if (a == b) return 0;
  if ((a < 0) != (b < 0)) return 1e30;
  return std::fabs((double)(int64_t)(bits(a) & 0x7FFFFFFFu) - (double)(int64_t)(bits(b) & 0x7FFFFFFFu));
}

int main() {
  int bad = 0;
  // Every half and every bfloat value, held in float as kernels hold them.
  for (uint32_t p = 0; p < 65536; ++p) {
    float h = cpu::en_h2f((uint16_t)p), b = cpu::en_b2f((uint16_t)p);
    float got_h = msl::en_fract_h(h), want_h = cpu::en_fract_h(h);
    float got_b = msl::en_fract_b(b), want_b = cpu::en_rb(cpu::en_fract_b(b));
    want_h = cpu::en_rh(want_h);
    if (bits(got_h) != bits(want_h) && !(got_h != got_h && want_h != want_h) && bad++ < 8)
      std::printf("fract half %%a: msl %%a, math.h %%a\n", h, got_h, want_h);
    if (bits(got_b) != bits(want_b) && !(got_b != got_b && want_b != want_b) && bad++ < 8)
      std::printf("fract bfloat %%a: msl %%a, math.h %%a\n", b, got_b, want_b);
  }
  // expm1/log1p over every 4096th float pattern and the edges.
  double worst_e = 0, worst_l = 0;
  auto check = [&](float x) {
    float ge = msl::en_expm1(x), we = cpu::en_expm1(x);
    float gl = msl::en_log1p(x), wl = cpu::en_log1p(x);
    bool nan_e = ge != ge || we != we, nan_l = gl != gl || wl != wl;
    if (nan_e ? (ge == ge || we == we) : ulps(ge, we) > %(max_ulp)d) {
      if (bad++ < 8) std::printf("expm1 %%a: msl %%a, math.h %%a\n", x, ge, we);
    } else if (!nan_e && ulps(ge, we) > worst_e) worst_e = ulps(ge, we);
    if (nan_l ? (gl == gl || wl == wl) : ulps(gl, wl) > %(max_ulp)d) {
      if (bad++ < 8) std::printf("log1p %%a: msl %%a, math.h %%a\n", x, gl, wl);
    } else if (!nan_l && ulps(gl, wl) > worst_l) worst_l = ulps(gl, wl);
  };
  for (uint64_t p = 0; p < (1ull << 32); p += 4096) {
    float x;
    uint32_t b = (uint32_t)p;
    std::memcpy(&x, &b, 4);
    check(x);
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {0.0f, -0.0f, inf, -inf, 1e-30f, -1e-30f, 0x1p-24f, -0x1p-24f, -1.0f, 88.7f, 88.8f, -103.0f})
    check(x);
  std::printf("worst ulp: expm1 %%g, log1p %%g\n%%d mismatches\n", worst_e, worst_l, bad);
  return bad != 0;
}
"""


def test_msl_helpers_match_semantics_math(tmp_path, monkeypatch):
    monkeypatch.setenv("ENIGMA_EMIT_ONLY", "1")
    helpers = "\n".join(_helpers(enigma.compile(k).metal_source) for k in _kernels())
    for name in ("en_fract_h", "en_fract_b", "en_expm1", "en_log1p"):
        assert f" {name}(" in helpers, name
    src = tmp_path / "harness.cpp"
    src.write_text(HARNESS % {"helpers": helpers, "max_ulp": MAX_ULP})
    exe = tmp_path / "harness"
    r = subprocess.run([CXX, "-std=c++20", "-O1", "-I", os.path.join(ROOT, "src"), str(src), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 mismatches" in run.stdout
