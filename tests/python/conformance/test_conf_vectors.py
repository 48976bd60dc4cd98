"""Vectors of every dtype and 2, 3, 4 lanes: arithmetic, bitwise ops, shifts,
comparisons and select lane by lane, with scalar operands splatted; vector
construction (make_vec, make_<type>N, mixed literals) and .x/.y/.z/.w."""
import math

import numpy as np
import pytest

import enigma
from ._harness import (
    ANNOTATION, FLOAT_DTYPES, INT_DTYPES, INT_INFO, Report, float_edges, int_edges, round_to, run, to_device, wrap,
)

ALL = list(FLOAT_DTYPES) + list(INT_DTYPES) + ["bool"]


def int_ops(bits, signed):
    w = lambda v: wrap(v, bits, signed)  # noqa: E731
    mask = bits - 1

    def div(a, b):
        if b == 0:
            return 0
        return w(int(abs(a) // abs(b)) * (1 if (a < 0) == (b < 0) else -1))

    def floordiv(a, b):
        return 0 if b == 0 else w(a // b)

    def rem(a, b):
        if b == 0:
            return a
        return w(a - int(abs(a) // abs(b)) * (1 if (a < 0) == (b < 0) else -1) * b)
    return {
        "add": (lambda a, b: a + b, lambda a, b: w(a + b)), "sub": (lambda a, b: a - b, lambda a, b: w(a - b)),
        "mul": (lambda a, b: a * b, lambda a, b: w(a * b)), "div": (lambda a, b: a / b, div),
        "floordiv": (lambda a, b: a // b, floordiv), "rem": (lambda a, b: a % b, rem),
        "and": (lambda a, b: a & b, lambda a, b: w(a & b)), "or": (lambda a, b: a | b, lambda a, b: w(a | b)),
        "xor": (lambda a, b: a ^ b, lambda a, b: w(a ^ b)),
        "shl": (lambda a, b: a << b, lambda a, b: w(a << (b & mask))),
        "shr": (lambda a, b: a >> b, lambda a, b: w(a >> (b & mask)) if signed else (a >> (b & mask))),
    }


def float_ops(dtype):
    r = lambda v: float(round_to(v, dtype))  # noqa: E731

    def floordiv(a, b):
        with np.errstate(all="ignore"):
            return r(np.floor(np.float32(a) / np.float32(b)))
    return {
        "add": (lambda a, b: a + b, lambda a, b: r(np.float64(a) + b)),
        "sub": (lambda a, b: a - b, lambda a, b: r(np.float64(a) - b)),
        "mul": (lambda a, b: a * b, lambda a, b: r(np.float64(a) * b)),
        "div": (lambda a, b: a / b, lambda a, b: r(np.divide(np.float64(a), b))),
        "floordiv": (lambda a, b: a // b, floordiv),
        "rem": (lambda a, b: a % b, lambda a, b: r(np.fmod(np.float64(a), b))),
    }


CMPS = {
    "lt": (lambda a, b: a < b, lambda a, b: a < b), "le": (lambda a, b: a <= b, lambda a, b: a <= b),
    "gt": (lambda a, b: a > b, lambda a, b: a > b), "ge": (lambda a, b: a >= b, lambda a, b: a >= b),
    "eq": (lambda a, b: a == b, lambda a, b: a == b), "ne": (lambda a, b: a != b, lambda a, b: not (a == b)),
}


def values(dtype):
    if dtype == "bool":
        return [False, True, True, False, True, False]
    if dtype in FLOAT_DTYPES:
        return list(float_edges(dtype))
    return int_edges(dtype)


def ops_of(dtype):
    if dtype == "bool":
        return {"and": (lambda a, b: a & b, lambda a, b: a and b), "or": (lambda a, b: a | b, lambda a, b: a or b),
                "xor": (lambda a, b: a ^ b, lambda a, b: a != b)}
    if dtype in FLOAT_DTYPES:
        return float_ops(dtype)
    return int_ops(*INT_INFO[dtype][:2])


def cmps_of(dtype):
    if dtype == "bool":
        return {k: CMPS[k] for k in ("eq", "ne")}
    if dtype in FLOAT_DTYPES:
        return CMPS
    bits, signed, _ = INT_INFO[dtype]
    s = lambda v: wrap(v, bits, True)  # noqa: E731  signed predicates compare as signed of the width
    out = {k: (f, lambda a, b, g=g: g(s(a), s(b))) for k, (f, g) in CMPS.items()}
    u = lambda v: v & ((1 << bits) - 1)  # noqa: E731
    out["ult"] = (enigma.cmp_ult, lambda a, b: u(a) < u(b))
    out["uge"] = (enigma.cmp_uge, lambda a, b: u(a) >= u(b))
    return out


def same(got, want, dtype):
    if dtype in FLOAT_DTYPES:
        g, w = float(got), float(want)
        return (math.isnan(g) and math.isnan(w)) or (g == w and math.copysign(1, g) == math.copysign(1, w))
    return bool(got == want)


@pytest.mark.parametrize("dtype", ALL)
def test_vector_ops(dtype):
    with np.errstate(all="ignore"):
        _vector_ops(dtype)


def _vector_ops(dtype):
    v = values(dtype)
    pairs = [(a, b) for a in v for b in v[:12]]
    n = len(pairs) + (-len(pairs) % 12)
    pairs += [pairs[0]] * (n - len(pairs))
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    ops, cmps = ops_of(dtype), cmps_of(dtype)
    unary = {} if dtype == "bool" else {"neg": (lambda a: -a, None)}
    if dtype in INT_INFO:
        unary["not"] = (lambda a: ~a, None)
    T = ANNOTATION[dtype]
    shapes = (2, 3, 4)

    @enigma.kernel
    def vector_ops(X: T, Y: T, Out: T, OutB: enigma.b1):
        i = enigma.thread_position_in_grid
        slot, bslot = 0, 0
        for N in shapes:
            a = enigma.make_vec(*[X[(i * N + k) % n] for k in range(N)])
            b = enigma.make_vec(*[Y[(i * N + k) % n] for k in range(N)])
            s = Y[i]
            results = []
            for name, (f, _) in ops.items():
                results += [f(a, b), f(a, s)]          # vector op vector, vector op splatted scalar
            for name, (f, _) in unary.items():
                results.append(f(a))
            results.append(enigma.where(b, a, cmps["eq"][0](a, b)))  # select: a where equal, else b
            for r in results:
                for k in range(N):
                    Out[slot * 4 * n + i * N + k] = r[k]
                slot += 1
            for name, (f, _) in cmps.items():
                r = f(a, b)
                for k in range(N):
                    OutB[bslot * 4 * n + i * N + k] = r[k]
                bslot += 1
    nres = 2 * len(ops) + len(unary) + 1
    ck, (out, outb) = run(vector_ops, [to_device(xs, dtype), to_device(ys, dtype)],
                          [(dtype, 3 * nres * 4 * n), ("bool", 3 * len(cmps) * 4 * n)], n)
    rep = Report("vector ops")
    slot, bslot = 0, 0
    wrapv = (lambda x: wrap(int(x), *INT_INFO[dtype][:2])) if dtype in INT_INFO else (lambda x: x)
    for N in shapes:
        name = f"{dtype}{N}"
        idx = list(range(n))           # element m = i * N + k reads X[m] (m < n)
        splat = [ys[m // N] for m in idx]
        checks = []
        for op, (_, ref) in ops.items():
            checks.append((op, [ref(xs[m], ys[m]) for m in idx]))
            checks.append((op + " splat", [ref(xs[m], splat[m]) for m in idx]))
        for op, (f, _) in unary.items():
            if op == "neg":
                want = [wrapv(-x) if dtype in INT_INFO else float(round_to(-np.float64(x), dtype)) for x in xs]
            else:
                want = [wrapv(~int(x)) for x in xs]
            checks.append((op, want))
        checks.append(("where", [xs[m] if cmps["eq"][1](xs[m], ys[m]) else ys[m] for m in idx]))
        for op, want in checks:
            got = out[slot * 4 * n:][:n]
            ok = [same(g, w, dtype) for g, w in zip(got, want)]
            rep.add(op, name, ok,
                    lambda m, got=got, want=want, op=op: f"{op}({xs[m]}, {ys[m]}) = {got[m]}, want {want[m]}")
            slot += 1
        for op, (_, ref) in cmps.items():
            got = outb[bslot * 4 * n:][:n]
            want = [bool(ref(xs[m], ys[m])) for m in idx]
            rep.add("cmp_" + op, name, [bool(g) == w for g, w in zip(got, want)],
                    lambda m, got=got, op=op: f"{op}({xs[m]}, {ys[m]}) = {got[m]}")
            bslot += 1
    rep.finish()


def test_construction_and_lanes():
    @enigma.kernel
    def build(A: enigma.f32, N: enigma.i32, Out: enigma.f32, OutI: enigma.i32, OutH: enigma.f16):
        i = enigma.thread_position_in_grid
        x, n = A[i], N[i]
        v = enigma.make_vec(x, 2.0, 3)                 # literals take the float's dtype
        w = enigma.make_vec(n, 7)                      # int vector, literal int
        u = enigma.make_vec(n, x)                      # int promotes to float
        f = enigma.make_float4(n, 1, x, True)          # converted to float
        h = enigma.make_half3(x, 0.5, n)
        Out[i * 12 + 0], Out[i * 12 + 1], Out[i * 12 + 2] = v.x, v.y, v.z
        Out[i * 12 + 3], Out[i * 12 + 4] = u.x, u.y
        for k, lane in enumerate(f):
            Out[i * 12 + 5 + k] = lane
        Out[i * 12 + 9] = enigma.vec_extract(v, 2) + v[0]
        OutI[i * 2], OutI[i * 2 + 1] = w.x, w[1]
        OutH[i * 3], OutH[i * 3 + 1], OutH[i * 3 + 2] = h.x, h.y, h.z
    a = np.array([1.5, -2.25, 100.0], np.float32)
    nn = np.array([3, -4, 65536], np.int32)
    ck, (out, outi, outh) = run(build, [a, nn], [("float", 36), ("int", 6), ("half", 9)], 3)
    rep = Report("vector construction")
    for i in range(3):
        want = [a[i], 2.0, 3.0, nn[i], a[i], nn[i], 1.0, a[i], 1.0, 3.0 + a[i]]
        rep.add("make_vec", "float", out[i * 12:i * 12 + 10] == np.array(want, np.float32), lambda k: f"{k}")
        rep.add("make_vec", "int", outi[i * 2:i * 2 + 2] == [nn[i], 7], lambda k: f"{k}")
        with np.errstate(over="ignore"):
            want_h = np.array([a[i], 0.5, nn[i]], np.float64).astype(np.float16)
        rep.add("make_half3", "half", outh[i * 3:i * 3 + 3] == want_h, lambda k: f"{k}")
    rep.finish()
    assert "metal" in ck.metal_source


def test_vector_errors():
    @enigma.kernel
    def bad(A: enigma.f32, Out: enigma.f32):
        i = enigma.thread_position_in_grid
        v2, v3 = enigma.make_float2(A[i], A[i]), enigma.make_float3(A[i], A[i], A[i])
        with pytest.raises(enigma.EnigmaError, match=r"test_conf_vectors.py:\d+.*vector sizes differ"):
            v2 + v3
        with pytest.raises(enigma.EnigmaError, match="make_vec.*2, 3 or 4"):
            enigma.make_vec(A[i], A[i], A[i], A[i], A[i])
        with pytest.raises(enigma.EnigmaError, match="make_float2.*expects 2"):
            enigma.make_float2(A[i])
        with pytest.raises(enigma.EnigmaError, match="make_vec.*scalar"):
            enigma.make_vec(v2, A[i])
        with pytest.raises(enigma.EnigmaError, match="vec_extract.*out of range"):
            enigma.vec_extract(v2, 2)
        with pytest.raises(enigma.EnigmaError, match="vec_extract.*vector"):
            A[i].x
        with pytest.raises(enigma.EnigmaError, match="Python int"):
            enigma.vec_extract(v2, i)
        with pytest.raises(enigma.EnigmaError, match="store.*vec<2,float>"):
            Out[i] = v2
        with pytest.raises(enigma.EnigmaError, match="where"):
            enigma.where(v2, v3, enigma.cmp_lt(v2, v2))
        Out[i] = v2.y
    enigma.compile(bad, emit_only=True)
