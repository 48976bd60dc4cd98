"""metal_cast between every pair of the 12 dtypes (scalars and 2/3/4-vectors)
and as_type between every pair of equal size (e.g. half4 <-> uint2, float2 <->
ulong), one kernel per source dtype; forbidden pairs are errors."""
import math
from fractions import Fraction

import numpy as np
import pytest

import enigma
from ._harness import (
    ANNOTATION, FLOAT_DTYPES, INT_DTYPES, INT_INFO, Report, float_edges, fmt, int_edges, int_range, itemsize,
    round_fraction, round_to, run, to_device, wrap,
)

ALL = list(FLOAT_DTYPES) + list(INT_DTYPES) + ["bool"]
WIDTH = {d: 8 * itemsize(d) for d in ALL}


def source_values(dtype):
    if dtype == "bool":
        return [False, True, True, False]
    if dtype in FLOAT_DTYPES:
        extra = [2.0 ** 31, 2.0 ** 31 - 128, -2.0 ** 31, 2.0 ** 32, 2.0 ** 63, -2.0 ** 63, 2.0 ** 64, 255.5, 256.0,
                 -129.0, 127.9, -128.5, 65535.5, 65536.0, 32767.5, -32769.0, 1e20, -0.99, 0.99]
        v = np.concatenate([float_edges(dtype), round_to(np.array(extra), dtype)])
        return list(v)
    return int_edges(dtype) + [int_range(dtype)[0], int_range(dtype)[1]]


def convert_ref(x, src, dst):
    """metal_cast of one value (SEMANTICS 3 / docs/semantics.md)."""
    if dst == "bool":
        return bool(x != 0) if not (isinstance(x, float) and math.isnan(x)) else True
    if src == "bool":
        x = int(x)
    if src in FLOAT_DTYPES and dst in INT_INFO:
        lo, hi = int_range(dst)
        if math.isnan(x):
            return 0
        if x >= hi + 1:
            return hi
        if x <= lo:
            return lo
        return int(math.trunc(x))
    if dst in INT_INFO:
        bits, signed, _ = INT_INFO[dst]
        return wrap(int(x), bits, signed)
    # to a float type: integers round to float first, then to the 16-bit type
    if src in INT_INFO or src == "bool":
        f = round_fraction(Fraction(int(x)), "float")
        return float(round_to(f, dst))
    return float(round_to(x, dst))


def as_type_targets(src):
    """(src lanes, dst dtype, dst lanes) of equal total size (3-vectors only with 3-vectors)."""
    out = []
    for n in (1, 2, 3, 4):
        bits = WIDTH[src] * n
        for d in ALL:
            if d == "bool" or bits % WIDTH[d]:
                continue
            m = bits // WIDTH[d]
            if m not in (1, 2, 3, 4) or (n == 3) != (m == 3) or (d == src and m == n):
                continue
            out.append((n, d, m))
    return out


def spell(dtype, lanes):
    return dtype if lanes == 1 else f"vec<{lanes},{dtype}>"


def raw_bytes(values, dtype):
    return to_device(values, dtype).tobytes() if dtype != "bool" else bytes(values)


def make_kernel(src, n, plan):
    T = ANNOTATION[src]
    outs = {d: ANNOTATION[d] for d in ALL}
    params = ", ".join(f"O_{d}: outs['{d}']" for d in ALL)
    def kernel_fn(X, *O):
        i = enigma.thread_position_in_grid
        by_name = dict(zip(ALL, O))
        for kind, n_src, d, m, block in plan:
            v = X[i] if n_src == 1 else enigma.make_vec(*[X[(i * n_src + k) % n] for k in range(n_src)])
            r = enigma.metal_cast(v, spell(d, m)) if kind == "cast" else enigma.as_type(v, spell(d, m))
            for lane in range(m):
                by_name[d][block * 4 * n + i * m + lane] = r if m == 1 else r[lane]
    src_code = f"def conv(X: T, {params}):\n    kernel_fn(X, {', '.join('O_' + d for d in ALL)})\n"
    scope = {"T": T, "outs": outs, "kernel_fn": kernel_fn}
    exec(compile(src_code, f"<casts from {src}>", "exec"), scope)  # a kernel with one output per dtype
    return enigma.kernel(scope["conv"])


@pytest.mark.parametrize("src", ALL)
def test_casts(src):
    vals = source_values(src)
    n = len(vals) + (-len(vals) % 12)
    vals = vals + [vals[0]] * (n - len(vals))
    plan, blocks = [], {d: 0 for d in ALL}
    for d in ALL:
        for m in (1, 2, 3, 4):
            plan.append(("cast", m, d, m, blocks[d]))
            blocks[d] += m
    if src != "bool":
        for n_src, d, m in as_type_targets(src):
            plan.append(("bits", n_src, d, m, blocks[d]))
            blocks[d] += m
    kernel = make_kernel(src, n, plan)
    _, outs = run(kernel, [to_device(vals, src)], [(d, max(1, blocks[d]) * 4 * n) for d in ALL], n)
    out = dict(zip(ALL, outs))
    rep = Report("casts")
    src_raw = raw_bytes(vals, src)
    size = itemsize(src)
    for kind, n_src, d, m, block in plan:
        got = out[d][block * 4 * n:][:n * m]
        name = f"{spell(src, n_src)}->{spell(d, m)}"
        if kind == "cast":
            want = [convert_ref(vals[k], src, d) for k in range(n)]
            g = got[:n]
            if d in FLOAT_DTYPES:
                ok = [(a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))
                      for a, b in zip(g, want)]
            else:
                ok = [bool(a == b) for a, b in zip(g, want)]
            rep.add("metal_cast", name, ok,
                    lambda k, g=g, want=want: f"{fmt(vals[k])} -> {fmt(g[k])}, want {fmt(want[k])}")
        else:
            whole = n // n_src  # threads whose lanes did not wrap around
            want = _decode(src_raw[:whole * n_src * size], d)
            g = got[:whole * m]
            if d in FLOAT_DTYPES:  # a NaN pattern is some NaN (payloads may be quieted)
                same = [(a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))
                        for a, b in zip(g, want)]
            else:
                same = [int(a) == int(b) for a, b in zip(g, want)]
            ok = [all(same[k * m:(k + 1) * m]) for k in range(whole)]
            rep.add("as_type", name, ok, lambda k: f"lanes {vals[k * n_src:(k + 1) * n_src]}")
    rep.finish()


def _decode(raw, dtype):
    """Little-endian bytes as values of dtype (floats as float64)."""
    with np.errstate(invalid="ignore"):
        return _decode_raw(raw, dtype)


def _decode_raw(raw, dtype):
    if dtype == "float":
        return np.frombuffer(raw, np.float32).astype(np.float64)
    if dtype == "half":
        return np.frombuffer(raw, np.float16).astype(np.float64)
    if dtype == "bfloat":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return np.frombuffer(raw, INT_INFO[dtype][2])


def test_forbidden_casts_are_errors():
    @enigma.kernel
    def bad(A: enigma.f32, B: enigma.u8, Out: enigma.f32):
        i = enigma.thread_position_in_grid
        v = enigma.make_float3(A[i], A[i], A[i])
        with pytest.raises(enigma.EnigmaError, match=r"test_conf_casts.py:\d+.*as_type.*same size"):
            enigma.as_type(A[i], "half")
        with pytest.raises(enigma.EnigmaError, match="as_type"):
            enigma.as_type(v, "vec<4,float>")  # 96 bits vs 128
        with pytest.raises(enigma.EnigmaError, match="as_type"):
            enigma.as_type(B[i] != 0, "uchar")  # bool has no bit pattern
        with pytest.raises(enigma.EnigmaError, match="metal_cast"):
            enigma.metal_cast(v, "float")  # vector to scalar
        with pytest.raises(enigma.EnigmaError, match="metal_cast"):
            enigma.metal_cast(v, "vec<4,float>")  # lanes must match
        with pytest.raises(enigma.EnigmaError, match="unknown dtype"):
            enigma.metal_cast(A[i], "double")
        Out[i] = A[i]
    enigma.compile(bad, emit_only=True)
