"""Shared machinery of the conformance suite.

Each test file builds FEW kernels (one per op group and dtype, every op of the
group applied to every input and to vectors of 2, 3 and 4 lanes), runs them
on the default device (ENIGMA_DEVICE selects it, so the same suite runs on
the CPU, CUDA and Metal), and compares every result with a float64 / exact
Python reference under the tolerance the op table declares (ops.def's
"tolerance" column: the ONE table of tolerances, also printed in
docs/ops.md). Every (op, dtype, input) comparison is counted.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from fractions import Fraction

import numpy as np

import enigma
from conftest import shared_runtime as runtime  # noqa: F401 - also used by the test modules

CHECKS: Counter = Counter()  # (file group) -> number of (op, dtype, input) checks

# ---- float formats ---------------------------------------------------------------------
# precision (significand bits), smallest normal exponent, largest exponent
FORMATS = {"float": (24, -126, 127), "half": (11, -14, 15), "bfloat": (8, -126, 127)}
FLOAT_DTYPES = ("float", "half", "bfloat")
INT_DTYPES = ("char", "uchar", "short", "ushort", "int", "uint", "long", "ulong")
INT_INFO = {  # bits, signed, numpy dtype
    "char": (8, True, np.int8), "uchar": (8, False, np.uint8), "short": (16, True, np.int16),
    "ushort": (16, False, np.uint16), "int": (32, True, np.int32), "uint": (32, False, np.uint32),
    "long": (64, True, np.int64), "ulong": (64, False, np.uint64),
}
ANNOTATION = {
    "float": enigma.f32, "half": enigma.f16, "bfloat": enigma.bf16, "char": enigma.i8, "uchar": enigma.u8,
    "short": enigma.i16, "ushort": enigma.u16, "int": enigma.i32, "uint": enigma.u32, "long": enigma.i64,
    "ulong": enigma.u64, "bool": enigma.b1,
}


def max_finite(dtype: str) -> float:
    p, _, emax = FORMATS[dtype]
    return (2.0 - 2.0 ** (1 - p)) * 2.0 ** emax


def min_normal(dtype: str) -> float:
    return 2.0 ** FORMATS[dtype][1]


def min_subnormal(dtype: str) -> float:
    p, emin, _ = FORMATS[dtype]
    return 2.0 ** (emin - p + 1)


def below_one(dtype: str) -> float:
    return 1.0 - 2.0 ** -FORMATS[dtype][0]


def ulp(x, dtype: str):
    """The spacing of `dtype` at |x| (subnormal spacing near 0), as float64."""
    p, emin, _ = FORMATS[dtype]
    ax = np.abs(np.asarray(x, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log2(np.where(ax > 0, ax, 1.0)))
    e = np.maximum(np.where(ax > 0, e, emin), emin)
    return np.where(np.isfinite(ax), np.exp2(e - p + 1), np.inf)


def round_to(x, dtype: str):
    """float64 values rounded (to nearest even) to `dtype`, as float64."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "float":
        with np.errstate(over="ignore"):
            return x.astype(np.float32).astype(np.float64)
    if dtype == "half":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float64)
    q = ulp(x, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.where(np.isfinite(x), np.round(x / q) * q, x)
        r = np.where(np.isfinite(x) & (np.abs(r) > max_finite(dtype)), np.copysign(np.inf, x), r)
    return np.where(x == 0, x, r)


def round_fraction(f: Fraction, dtype: str) -> float:
    """An exact rational rounded to nearest even in `dtype`."""
    if f == 0:
        return 0.0
    d = float(f)  # correctly rounded to float64
    r = float(round_to(d, dtype))
    if r == d or math.isinf(d):
        return r
    # d may sit exactly on a tie of `dtype` after its own rounding: decide on f.
    q = float(ulp(d, dtype))
    lo = math.floor(d / q) * q
    hi = lo + q
    if d - lo == hi - d:
        exact = Fraction(lo) + Fraction(q) / 2
        if f > exact:
            return float(round_to(hi, dtype))
        if f < exact:
            return float(round_to(lo, dtype))
    return r


def to_device(values, dtype: str) -> np.ndarray:
    """A host array holding `values` in `dtype` (bfloat as uint16 bit patterns)."""
    if dtype in INT_INFO:  # exact Python ints (numpy would turn big ones into float64)
        bits, signed, npt = INT_INFO[dtype]
        return np.array([wrap(int(x), bits, signed) for x in values], dtype=npt)
    v = np.asarray(values)
    if dtype == "float":
        with np.errstate(invalid="ignore", over="ignore"):
            return v.astype(np.float32)
    if dtype == "half":
        with np.errstate(invalid="ignore", over="ignore"):
            return v.astype(np.float64).astype(np.float16)
    if dtype == "bfloat":
        r = round_to(v.astype(np.float64), "bfloat").astype(np.float32)
        return (r.view(np.uint32) >> 16).astype(np.uint16)
    return v.astype(np.bool_)


def from_device(raw: bytes, dtype: str):
    """Device bytes as float64 (floats) or Python-int-friendly numpy arrays."""
    with np.errstate(invalid="ignore"):  # signaling NaN patterns
        return _from_device(raw, dtype)


def _from_device(raw: bytes, dtype: str):
    if dtype == "float":
        return np.frombuffer(raw, np.float32).astype(np.float64)
    if dtype == "half":
        return np.frombuffer(raw, np.float16).astype(np.float64)
    if dtype == "bfloat":
        bits = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    if dtype == "bool":
        return np.frombuffer(raw, np.bool_)
    return np.frombuffer(raw, INT_INFO[dtype][2])


def itemsize(dtype: str) -> int:
    if dtype in ("half", "bfloat"):
        return 2
    if dtype == "float":
        return 4
    if dtype == "bool":
        return 1
    return INT_INFO[dtype][0] // 8


def wrap(v: int, bits: int, signed: bool) -> int:
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def int_range(dtype: str):
    bits, signed, _ = INT_INFO[dtype]
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


# ---- inputs --------------------------------------------------------------------------------

def float_edges(dtype: str, seed: int = 1) -> np.ndarray:
    """Edge inputs of a float dtype (0, -0, subnormals, +-inf, NaN, extremes,
    ties of rounding, overflow points) plus random values of every magnitude."""
    vals = [0.0, -0.0, min_subnormal(dtype), -min_subnormal(dtype), min_normal(dtype) - min_subnormal(dtype),
            min_normal(dtype), -min_normal(dtype), 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997,
            below_one(dtype), 3.0, -3.75, 7.5, 10.0, 100.0, -100.0, 1e-3, 0.1, -0.7, 0.99, math.pi / 2, math.pi,
            -math.pi, 2 * math.pi, 88.5, -104.0, 11.1, -17.5, 65504.0, 1e6, -1e10, 3e38, max_finite(dtype),
            -max_finite(dtype), math.inf, -math.inf, math.nan, -math.nan]
    rng = np.random.default_rng(seed)
    mags = np.exp2(rng.uniform(-30, 30, 24)) * rng.choice([-1.0, 1.0], 24)
    vals += list(mags) + list(rng.uniform(-1, 1, 8))
    r = round_to(np.array(vals), dtype)
    # Distinct values (NaN kept once per sign).
    out, seen = [], set()
    for v in r:
        key = ("nan", math.copysign(1, v)) if math.isnan(v) else (v, math.copysign(1, v))
        if key not in seen:
            seen.add(key)
            out.append(v)
    return np.array(out)


def int_edges(dtype: str, seed: int = 2) -> list[int]:
    bits, signed, _ = INT_INFO[dtype]
    lo, hi = int_range(dtype)
    vals = [0, 1, 2, 3, 5, 7, bits - 1, bits, bits + 1, hi, hi - 1, lo, lo + 1, hi // 2, hi // 2 + 1,
            int("01" * (bits // 2), 2), int("10" * (bits // 2), 2), 1 << (bits - 1), (1 << (bits - 2)) + 1]
    if signed:
        vals += [-1, -2, -3, -bits, -(bits - 1)]
    rng = np.random.default_rng(seed + bits)
    vals += [int(x) for x in rng.integers(0, 1 << 62, 12, dtype=np.int64)]
    out, seen = [], set()
    for v in vals:
        w = wrap(v, bits, signed)
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


# ---- tolerances (from the op table) ------------------------------------------------------------

def tolerance(op: str, dtype: str):
    """(kind, n, zero_sign_free) for op on dtype: kind is exact, ulp, scaled or step."""
    text = enigma.LANGUAGE_TABLE[op]["tolerance"]
    main, _, narrow = text.partition(";")
    main, narrow = main.strip(), narrow.strip()
    part = main
    if dtype in ("half", "bfloat"):
        if narrow:
            part = narrow
        elif not main.startswith("exact"):
            part = "1 " + main.split(" ", 1)[1]  # any other bound: 1 ulp (scaled stays scaled)
    zero_free = "±0" in part
    if part.startswith("exact"):
        return ("exact", 0, zero_free)
    n, unit = part.split(" ", 1)
    kind = "scaled" if unit == "ulp scaled" else "ulp" if unit == "ulp" else "step"
    return (kind, float(n), zero_free)


def float_ok(got, exact, dtype, tol, formula=None, scale=None):
    """Boolean array: which results are within `tol` (see tolerance()).
    `exact` is the float64 reference (rounded to dtype for exact checks),
    `formula` the documented formula evaluated as the backends do (bit-equal
    results always pass), `scale` the magnitude for scaled ulps."""
    kind, n, zero_free = tol
    got = np.asarray(got, np.float64)
    exact = np.asarray(exact, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        both_nan = np.isnan(got) & np.isnan(exact)
        if kind == "exact":
            ref = round_to(exact, dtype) if formula is None else np.asarray(formula, np.float64)
            same = (got == ref) & ((np.signbit(got) == np.signbit(ref)) | (ref != 0) | zero_free)
            return same | (np.isnan(got) & np.isnan(ref))
        s = np.abs(exact) if scale is None else np.maximum(np.abs(exact), np.abs(np.asarray(scale, np.float64)))
        bound = n * ulp(s, dtype)
        finite = np.isfinite(got) & np.isfinite(exact)
        near = finite & (np.abs(got - exact) <= bound)
        inf_same = np.isinf(exact) & (got == exact)
        # Results beyond the largest finite value may overflow to infinity.
        overflow = np.isfinite(exact) & (np.abs(exact) >= max_finite(dtype)) & np.isinf(got) & \
            (np.sign(got) == np.sign(exact))
        ok = both_nan | near | inf_same | overflow
        if formula is not None:
            f = np.asarray(formula, np.float64)
            ok |= (got == f) | (np.isnan(got) & np.isnan(f))
        return ok


class Report:
    """Collects the failures of one test; every check is counted."""

    def __init__(self, group: str):
        self.group = group
        self.failures: list[str] = []

    def add(self, op: str, dtype: str, ok, describe) -> None:
        ok = np.asarray(ok, dtype=bool).ravel()
        CHECKS[self.group] += ok.size
        for k in np.flatnonzero(~ok)[:4]:
            self.failures.append(f"{op} [{dtype}] {describe(int(k))}")

    def finish(self) -> None:
        assert not self.failures, f"{len(self.failures)} failing checks, e.g.:\n  " + "\n  ".join(self.failures[:30])


# ---- running kernels ------------------------------------------------------------------------

def run(kernel, inputs, outputs, n_threads, constants=None):
    """Compiles and runs `kernel` over n_threads threads; outputs is a list of
    (dtype, count); returns the decoded output arrays."""
    ck = enigma.compile(kernel)
    sizes = [max(1, count) * itemsize(dt) for dt, count in outputs]
    raws = runtime().execute(ck, inputs, grid=(n_threads, 1, 1), threads=(min(n_threads, 64), 1, 1),
                             output_sizes=sizes, constants=constants)
    return ck, [from_device(r, dt) for r, (dt, _) in zip(raws, outputs)]


def msl_call(op: str) -> str:
    """The Metal library call an op is spelled with (from the op table), e.g. "metal::sqrt("."""
    m = re.search(r"(?:metal::|en_)\w+\(", enigma.LANGUAGE_TABLE[op]["msl"])
    return m.group(0) if m else ""


def fmt(v) -> str:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else repr(v)
