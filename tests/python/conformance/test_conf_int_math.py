"""Integer math and bit ops (and abs) on every integer width, signed and
unsigned, scalars and vectors, against exact Python-integer references;
plus the quantization helpers of reference 17.2."""
import numpy as np
import pytest

import enigma
from ._harness import ANNOTATION, INT_DTYPES, INT_INFO, int_edges, int_range, msl_call, Report, run, to_device, wrap

UNARY = ["abs", "abs_diff_unary", "popcount", "clz", "ctz", "reverse_bits"]
BINARY = ["imin", "imax", "abs_diff", "add_sat", "sub_sat", "mul_hi", "rotate"]
TERNARY = ["iclamp", "mad_sat"]
SHAPES = (1, 2, 3, 4)


def bit_ranges(bits):
    return [(0, 0), (0, 1), (0, bits), (bits - 1, 1), (1, bits - 1), (bits // 2, bits // 4), (3, 5), (bits - 4, 4)]


def reference(op, dtype, *a, rng=None):
    bits, signed, _ = INT_INFO[dtype]
    lo, hi = int_range(dtype)
    w = lambda v: wrap(v, bits, signed)  # noqa: E731
    u = lambda v: v & ((1 << bits) - 1)  # noqa: E731
    sat = lambda v: max(lo, min(hi, v))  # noqa: E731
    if op == "abs" or op == "abs_diff_unary":
        return w(abs(a[0]))
    if op == "popcount":
        return bin(u(a[0])).count("1")
    if op == "clz":
        return bits - u(a[0]).bit_length()
    if op == "ctz":
        x = u(a[0])
        return bits if x == 0 else (x & -x).bit_length() - 1
    if op == "reverse_bits":
        return w(int(format(u(a[0]), f"0{bits}b")[::-1], 2))
    if op == "imin":
        return min(a)
    if op == "imax":
        return max(a)
    if op == "abs_diff":
        return w(abs(a[0] - a[1]))
    if op == "add_sat":
        return sat(a[0] + a[1])
    if op == "sub_sat":
        return sat(a[0] - a[1])
    if op == "mul_hi":
        return w((a[0] * a[1]) >> bits)
    if op == "rotate":
        x, s = u(a[0]), a[1] & (bits - 1)
        return w(((x << s) | (x >> (bits - s))) & ((1 << bits) - 1))
    if op == "iclamp":
        return min(max(a[0], a[1]), a[2])
    if op == "mad_sat":
        return sat(a[0] * a[1] + a[2])
    raise KeyError(op)


def extract_ref(x, off, n, bits, signed):
    if n == 0:
        return 0
    f = (x & ((1 << bits) - 1)) >> off & ((1 << n) - 1)
    return f - (1 << n) if signed and f >= 1 << (n - 1) else f


def insert_ref(base, ins, off, n, bits, signed):
    mask = ((1 << n) - 1) << off
    r = ((base & ~mask) | ((ins << off) & mask)) & ((1 << bits) - 1)
    return wrap(r, bits, signed)


def inputs(dtype):
    e = int_edges(dtype)
    pairs = [(a, b) for a in e for b in e]
    rng = np.random.default_rng(11)
    trip = [(e[i], e[j], e[k]) for i, j, k in rng.integers(0, len(e), (400, 3))]
    trip += [(x, lo, hi) for x in e[:8] for lo, hi in ((e[11], e[9]), (e[9], e[11]), (e[0], e[1]))]
    n = max(len(e), len(pairs), len(trip))
    n += -n % 12
    pad = lambda v: list(v) + [0] * (n - len(v))  # noqa: E731
    cols = [pad(e), pad([p[0] for p in pairs]), pad([p[1] for p in pairs]),
            pad([t[0] for t in trip]), pad([t[1] for t in trip]), pad([t[2] for t in trip])]
    return cols, (len(e), len(pairs), len(trip)), n


def make_kernel(dtype, n):
    T = ANNOTATION[dtype]
    bits = INT_INFO[dtype][0]
    ranges = bit_ranges(bits)

    @enigma.kernel
    def int_math(X: T, BX: T, BY: T, CX: T, CY: T, CZ: T, Out: T):
        i = enigma.thread_position_in_grid
        slot = 0
        for N in SHAPES:
            def load(buf):
                return buf[i] if N == 1 else enigma.make_vec(*[buf[(i * N + lane) % n] for lane in range(N)])
            x, bx, by, cx, cy, cz = load(X), load(BX), load(BY), load(CX), load(CY), load(CZ)
            results = [getattr(enigma, op)(x) for op in UNARY]
            results += [getattr(enigma, op)(bx, by) for op in BINARY]
            results += [getattr(enigma, op)(cx, cy, cz) for op in TERNARY]
            results += [enigma.extract_bits(x, off, nb) for off, nb in ranges]
            results += [enigma.insert_bits(bx, by, off, nb) for off, nb in ranges]
            for r in results:
                for lane in range(N):
                    Out[slot * 4 * n + i * N + lane] = r if N == 1 else r[lane]
                slot += 1
    return int_math, len(UNARY) + len(BINARY) + len(TERNARY) + 2 * len(ranges)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_int_math(dtype):
    bits, signed, npt = INT_INFO[dtype]
    cols, (n1, n2, n3), n = inputs(dtype)
    kernel, per_shape = make_kernel(dtype, n)
    ck, (out,) = run(kernel, [to_device(c, dtype) for c in cols], [(dtype, per_shape * len(SHAPES) * 4 * n)], n)
    x, bx, by, cx, cy, cz = cols
    rep = Report("integer math")
    slot = 0
    ranges = bit_ranges(bits)
    for N in SHAPES:
        name = dtype if N == 1 else f"{dtype}{N}"
        checks = [(op, n1, lambda k, op=op: reference(op, dtype, x[k]), lambda k: (x[k],)) for op in UNARY]
        checks += [(op, n2, lambda k, op=op: reference(op, dtype, bx[k], by[k]), lambda k: (bx[k], by[k]))
                   for op in BINARY]
        checks += [(op, n3, lambda k, op=op: reference(op, dtype, cx[k], cy[k], cz[k]), lambda k: (cx[k], cy[k], cz[k]))
                   for op in TERNARY]
        checks += [(f"extract_bits[{o},{b}]", n1, lambda k, o=o, b=b: extract_ref(x[k], o, b, bits, signed),
                    lambda k: (x[k],)) for o, b in ranges]
        checks += [(f"insert_bits[{o},{b}]", n2, lambda k, o=o, b=b: insert_ref(bx[k], by[k], o, b, bits, signed),
                    lambda k: (bx[k], by[k])) for o, b in ranges]
        for op, count, ref, args in checks:
            got = out[slot * 4 * n:][:count]
            want = [ref(k) for k in range(count)]
            ok = [int(g) == w for g, w in zip(got, want)]
            rep.add(op.split("[")[0], name, ok, lambda k, got=got, want=want, op=op, args=args:
                    f"{op}{args(k)} = {int(got[k])}, expected {want[k]}")
            slot += 1
    msl = ck.metal_source
    for op in UNARY + BINARY + TERNARY + ["extract_bits", "insert_bits"]:
        assert msl_call(op) in msl, op
    rep.finish()


def test_quantization_helpers():
    vals = [0, 1, 7, 8, 15, 127, 128, 255, 256, 0x1234, 0xFFFFFFFF, 0x80, 0x7F]
    n = len(vals)

    @enigma.kernel
    def quant(A: enigma.u32, Q: enigma.i8, Out: enigma.u32, OutI: enigma.i32, OutF: enigma.f32):
        i = enigma.thread_position_in_grid
        a = A[i]
        Out[i] = enigma.pack_uint8x4(a, A[(i + 1) % n], A[(i + 2) % n], A[(i + 3) % n])
        b = enigma.unpack_uint8x4(a)
        for k in range(4):
            Out[n * (1 + k) + i] = b[k]
        Out[5 * n + i] = enigma.pack_int4x2(a, A[(i + 1) % n])
        lo, hi = enigma.unpack_int4x2(a)
        OutI[i] = lo
        OutI[n + i] = hi
        OutF[i] = enigma.dequantize_int8(Q[i], 0.5, 3)
        OutF[n + i] = enigma.dequantize_int8(Q[i], enigma.metal_cast(A[i], "float"))

    qs = [(v % 256) - 128 for v in vals]
    _, (out, outi, outf) = run(quant, [np.array(vals, np.uint32), np.array(qs, np.int8)],
                               [("uint", 6 * n), ("int", 2 * n), ("float", 2 * n)], n)
    rep = Report("quantization")
    byte = lambda v, k: (v >> (8 * k)) & 0xFF  # noqa: E731
    want = [byte(vals[i], 0) | byte(vals[(i + 1) % n], 0) << 8 | byte(vals[(i + 2) % n], 0) << 16 |
            byte(vals[(i + 3) % n], 0) << 24 for i in range(n)]
    rep.add("pack_uint8x4", "uint", out[:n] == want, lambda k: f"{out[k]} != {want[k]}")
    for k in range(4):
        w = [byte(v, k) for v in vals]
        rep.add("unpack_uint8x4", "uint", out[n * (1 + k):n * (2 + k)] == w, lambda j: f"{vals[j]}")
    w = [(vals[i] & 0xF) | (vals[(i + 1) % n] & 0xF) << 4 for i in range(n)]
    rep.add("pack_int4x2", "uint", out[5 * n:] == w, lambda j: f"{vals[j]}")
    sx = lambda v: v - 16 if v >= 8 else v  # noqa: E731
    rep.add("unpack_int4x2", "int", outi[:n] == [sx(v & 0xF) for v in vals], lambda j: f"{vals[j]}")
    rep.add("unpack_int4x2", "int", outi[n:] == [sx((v >> 4) & 0xF) for v in vals], lambda j: f"{vals[j]}")
    rep.add("dequantize_int8", "float", outf[:n] == [(q - 3) * 0.5 for q in qs], lambda j: f"{qs[j]}")
    w = np.array([q * np.float32(v) for q, v in zip(qs, vals)], np.float32)
    rep.add("dequantize_int8", "float", outf[n:] == w, lambda j: f"{qs[j]} * {vals[j]}")
    rep.finish()
