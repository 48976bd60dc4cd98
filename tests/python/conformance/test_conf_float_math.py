"""Float math (29 unary, 7 binary, 4 ternary functions, 5 predicates) on
float, half and bfloat, scalars and 2-, 3- and 4-lane vectors: one kernel per
dtype evaluates every op on every input."""

from fractions import Fraction

import numpy as np
import pytest

import enigma
from ._harness import (
    ANNOTATION, FORMATS, below_one, float_edges, float_ok, fmt, min_normal, msl_call, Report, round_fraction,
    round_to, run, to_device, tolerance,
)

UNARY = ["sqrt", "abs", "ceil", "floor", "round", "trunc", "sign", "saturate", "fract", "rsqrt", "exp", "exp2",
         "log", "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
         "asinh", "acosh", "atanh", "expm1", "log1p"]
BINARY = ["fmin", "fmax", "pow", "fmod", "atan2", "step", "copysign"]
TERNARY = ["clamp", "fma", "mix", "smoothstep"]
PREDICATES = ["isnan", "isinf", "isfinite", "signbit", "isnormal"]
SHAPES = (1, 2, 3, 4)


# ---- references: float64 math, the documented definition of each op --------------------------

def _fract(x, dtype):
    with np.errstate(invalid="ignore"):
        r = np.minimum(round_to(x - np.floor(x), dtype), below_one(dtype))
    r = np.where((x == 0) | np.isinf(x), np.copysign(0.0, x), r)
    return np.where(np.isnan(x), x, r)


def _sign(x):
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, np.where(x == 0, x, 0.0)))


def _round_away(x):
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def _clamp(x, lo, hi):
    return np.fmin(np.fmax(x, lo), hi)


UNARY_REF = {
    "sqrt": np.sqrt, "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "round": _round_away, "trunc": np.trunc,
    "sign": _sign, "saturate": lambda x: _clamp(x, 0.0, 1.0), "rsqrt": lambda x: 1.0 / np.sqrt(x), "exp": np.exp,
    "exp2": np.exp2, "log": np.log, "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "expm1": np.expm1,
    "log1p": np.log1p,
}
BINARY_REF = {
    "fmin": np.fmin, "fmax": np.fmax, "pow": np.power, "fmod": np.fmod, "atan2": np.arctan2,
    "step": lambda e, x: np.where(x < e, 0.0, 1.0), "copysign": np.copysign,
}


def _f32(x):
    return np.asarray(x, np.float64).astype(np.float32)


def _fma_exact(a, b, c, dtype):
    out = np.empty(a.shape)
    for k in range(a.size):
        x, y, z = float(a.flat[k]), float(b.flat[k]), float(c.flat[k])
        exact = Fraction(x) * Fraction(y) + Fraction(z) if all(np.isfinite([x, y, z])) else None
        if exact:  # a zero result takes its sign from IEEE addition
            out.flat[k] = round_fraction(exact, "float")
        else:
            out.flat[k] = x * y + z
    return out if dtype == "float" else round_to(out, dtype)


def ternary_ref(op, a, b, c, dtype):
    """(exact float64, formula as computed in float then rounded, scale)."""
    with np.errstate(all="ignore"):
        if op == "clamp":
            return _clamp(a, b, c), None, None
        if op == "fma":
            return _fma_exact(a, b, c, dtype), None, None
        if op == "mix":
            exact = a + (b - a) * c
            f = _f32(a) + (_f32(b) - _f32(a)) * _f32(c)
            return exact, round_to(f, dtype), np.abs(a) + np.abs((b - a) * c)
        t = _clamp((c - a) / (b - a), 0.0, 1.0)
        exact = t * t * (3.0 - 2.0 * t)
        a32, b32, c32 = _f32(a), _f32(b), _f32(c)
        t32 = np.fmin(np.fmax((c32 - a32) / (b32 - a32), np.float32(0)), np.float32(1))
        f = t32 * t32 * (np.float32(3) - np.float32(2) * t32)
        return exact, round_to(f, dtype), np.ones_like(exact)


def predicate_ref(op, x, dtype):
    with np.errstate(invalid="ignore"):
        if op == "isnan":
            return np.isnan(x)
        if op == "isinf":
            return np.isinf(x)
        if op == "isfinite":
            return np.isfinite(x)
        if op == "signbit":
            return np.signbit(x)
        return np.isfinite(x) & (np.abs(x) >= min_normal(dtype))


# ---- inputs ----------------------------------------------------------------------------------

def inputs(dtype):
    """X, Y, Z (float64, already representable in dtype) and the slices each arity checks."""
    e = float_edges(dtype)
    pair_vals = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.5, 3.0, 10.0, -7.25, 1e-3, np.inf, -np.inf, np.nan,
                          min_normal(dtype) / 4, 1e30])
    pv = round_to(pair_vals, dtype)
    px, py = np.meshgrid(pv, pv, indexing="ij")
    rng = np.random.default_rng(7)
    rx = round_to(rng.uniform(-20, 20, 48), dtype)
    ry = round_to(rng.uniform(-4, 4, 48), dtype)
    bx = np.concatenate([px.ravel(), rx, np.abs(rx)])
    by = np.concatenate([py.ravel(), ry, ry])
    # triples: clamp bounds in and out of order, NaN bounds, mix/smoothstep/fma arguments
    tv = round_to(np.array([-2.0, -0.5, 0.0, -0.0, 0.25, 0.5, 1.0, 3.0, np.nan, np.inf, -np.inf]), dtype)
    tx, ty, tz = (g.ravel() for g in np.meshgrid(tv, tv[:8], tv, indexing="ij"))
    r3 = [round_to(rng.uniform(-8, 8, 64), dtype) for _ in range(3)]
    cx, cy, cz = np.concatenate([tx, r3[0]]), np.concatenate([ty, r3[1]]), np.concatenate([tz, r3[2]])
    n = max(len(e), len(bx), len(cx))
    n += -n % 12  # every shape reads whole vectors

    def pad(v):
        return np.concatenate([v, np.ones(n - len(v))])
    return (pad(e), pad(np.roll(e, 1)), pad(np.roll(e, 2))), (pad(bx), pad(by)), (pad(cx), pad(cy), pad(cz)), \
        (len(e), len(bx), len(cx)), n


def make_kernel(dtype, n):
    ops = [(op, 1) for op in UNARY] + [(op, 2) for op in BINARY] + [(op, 3) for op in TERNARY]
    T = ANNOTATION[dtype]

    @enigma.kernel
    def float_math(X: T, Y: T, Z: T, BX: T, BY: T, CX: T, CY: T, CZ: T, Out: T, OutB: enigma.b1):
        i = enigma.thread_position_in_grid
        for si, N in enumerate(SHAPES):
            def load(buf):
                if N == 1:
                    return buf[i]
                return enigma.make_vec(*[buf[(i * N + lane) % n] for lane in range(N)])
            args = {1: [load(X)], 2: [load(BX), load(BY)], 3: [load(CX), load(CY), load(CZ)]}
            for j, (op, arity) in enumerate(ops):
                r = getattr(enigma, op)(*args[arity])
                base = (j * len(SHAPES) + si) * 4 * n
                for lane in range(N):
                    Out[base + i * N + lane] = r if N == 1 else r[lane]
            for j, op in enumerate(PREDICATES):
                r = getattr(enigma, op)(args[1][0])
                base = (j * len(SHAPES) + si) * 4 * n
                for lane in range(N):
                    OutB[base + i * N + lane] = r if N == 1 else r[lane]
    return float_math, len(ops)


@pytest.mark.parametrize("dtype", ["float", "half", "bfloat"])
def test_float_math(dtype):
    (x, y, z), (bx, by), (cx, cy, cz), (n1, n2, n3), n = inputs(dtype)
    kernel, nops = make_kernel(dtype, n)
    bufs = [to_device(v, dtype) for v in (x, y, z, bx, by, cx, cy, cz)]
    block = 4 * n
    ck, (out, outb) = run(kernel, bufs, [(dtype, nops * len(SHAPES) * block),
                                         ("bool", len(PREDICATES) * len(SHAPES) * block)], n)
    rep = Report("float math")

    def results(j, si, count, buf=out):
        return buf[(j * len(SHAPES) + si) * block:][:count]

    with np.errstate(all="ignore"):
        for j, op in enumerate(UNARY + BINARY + TERNARY):
            if op in UNARY:
                args, count = (x,), n1
                exact, formula, scale = UNARY_REF[op](x) if op != "fract" else _fract(x, dtype), None, None
            elif op in BINARY:
                args, count = (bx, by), n2
                exact, formula, scale = BINARY_REF[op](bx, by), None, None
            else:
                args, count = (cx, cy, cz), n3
                exact, formula, scale = ternary_ref(op, cx, cy, cz, dtype)
            tol = tolerance(op, dtype)
            for si, N in enumerate(SHAPES):
                got = results(j, si, count)
                sl = slice(0, count)
                ok = float_ok(got, exact[sl], dtype, tol, None if formula is None else formula[sl],
                              None if scale is None else scale[sl])
                name = dtype if N == 1 else f"{dtype}{N}"
                rep.add(op, name, ok, lambda k, got=got, exact=exact: (
                    f"{op}({', '.join(fmt(a[k]) for a in args)}) = {fmt(got[k])}, expected {fmt(exact[k])}"))
        for j, op in enumerate(PREDICATES):
            want = predicate_ref(op, x, dtype)[:n1]
            for si, N in enumerate(SHAPES):
                got = results(j, si, n1, outb)
                rep.add(op, dtype if N == 1 else f"{dtype}{N}", got == want,
                        lambda k, got=got, want=want: f"{op}({fmt(x[k])}) = {got[k]}, expected {want[k]}")
    # Every op is spelled in the MSL (16-bit floats compute in float there).
    msl = ck.metal_source
    for op in UNARY + BINARY + TERNARY + PREDICATES:
        assert msl_call(op) in msl, op
    rep.finish()


def test_tolerances_come_from_the_op_table():
    assert tolerance("sin", "float") == ("ulp", 4.0, False)
    assert tolerance("sin", "half") == ("ulp", 1.0, False)
    assert tolerance("fma", "float") == ("exact", 0, False)
    assert tolerance("fma", "bfloat") == ("ulp", 1.0, False)
    assert tolerance("fmin", "float") == ("exact", 0, True)
    assert tolerance("mix", "half") == ("scaled", 1.0, False)
    assert FORMATS["half"][0] == 11
