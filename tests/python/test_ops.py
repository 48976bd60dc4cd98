"""Every operator, comparison, select and cast of the foundation, against
numpy / Python-integer references, on the default device.

Each dtype gets ONE kernel that evaluates every operator on a cross product of
edge-case operands (out[i * K + j] = op_j(a[i], b[i])), so the whole file costs
a handful of C++ compiles."""

import itertools

import numpy as np
import pytest

import enigma
from conftest import (BF16, FLOAT_TYPES, INT_TYPES, as_f64, bf16_to_f32, bits_equal, dt, np_dtype, round_to,
                      run, to_bf16)

# --------------------------------------------------------------------------
# integer model (Python ints)

BITS = {"i8": 8, "u8": 8, "i16": 16, "u16": 16, "i32": 32, "u32": 32, "i64": 64, "u64": 64}


def signed(short):
    return short.startswith("i")


def lo_hi(short):
    w = BITS[short]
    return (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed(short) else (0, (1 << w) - 1)


def wrap(v, short):
    w = BITS[short]
    v &= (1 << w) - 1
    if signed(short) and v >= 1 << (w - 1):
        v -= 1 << w
    return v


def as_signed(v, short):
    return wrap(v, "i" + short[1:])


def as_unsigned(v, short):
    return wrap(v, "u" + short[1:])


def tdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def idiv(a, b, s):
    return 0 if b == 0 else wrap(tdiv(a, b), s)


def irem(a, b, s):
    return a if b == 0 else wrap(a - b * tdiv(a, b), s)


def ifloordiv(a, b, s):
    return 0 if b == 0 else wrap(a // b, s)


def shl(a, b, s):
    return wrap(a << (b % BITS[s]), s)


def shr(a, b, s):
    return wrap(a >> (b % BITS[s]), s)


def int_values(short):
    """Edge-case operands: extremes, small values, and shift counts around the width."""
    lo, hi = lo_hi(short)
    w = BITS[short]
    vals = {lo, lo + 1, hi, hi - 1, 0, 1, 2, 3, 7, w - 1, w, w + 1, 2 * w + 3, hi // 3}
    if signed(short):
        vals |= {-1, -2, -3, -7, lo // 3}
    return sorted(v for v in vals if lo <= v <= hi)


def cmp_model(pred, a, b, s):
    if pred in ("eq", "ne"):
        return (a == b) if pred == "eq" else (a != b)
    if pred.startswith("u"):
        x, y, p = as_unsigned(a, s), as_unsigned(b, s), pred[1:]
    else:
        x, y, p = as_signed(a, s), as_signed(b, s), pred
    return {"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y}[p]


# (name, traced op, Python-int model)
INT_OPS = [
    ("add", lambda x, y: x + y, lambda a, b, s: wrap(a + b, s)),
    ("sub", lambda x, y: x - y, lambda a, b, s: wrap(a - b, s)),
    ("mul", lambda x, y: x * y, lambda a, b, s: wrap(a * b, s)),
    ("div", lambda x, y: x / y, idiv),
    ("floordiv", lambda x, y: x // y, ifloordiv),
    ("rem", lambda x, y: x % y, irem),
    ("and", lambda x, y: x & y, lambda a, b, s: wrap(a & b, s)),
    ("or", lambda x, y: x | y, lambda a, b, s: wrap(a | b, s)),
    ("xor", lambda x, y: x ^ y, lambda a, b, s: wrap(a ^ b, s)),
    ("shl", lambda x, y: x << y, shl),
    ("shr", lambda x, y: x >> y, shr),
    ("neg", lambda x, y: -x, lambda a, b, s: wrap(-a, s)),
    ("invert", lambda x, y: ~x, lambda a, b, s: wrap(~a, s)),
    # reflected forms: the literal takes the other operand's dtype
    ("radd", lambda x, y: 5 + x, lambda a, b, s: wrap(5 + a, s)),
    ("rsub", lambda x, y: 2 - x, lambda a, b, s: wrap(2 - a, s)),
    ("rmul", lambda x, y: 3 * x, lambda a, b, s: wrap(3 * a, s)),
    ("rdiv", lambda x, y: 100 / y, lambda a, b, s: idiv(100, b, s)),
    ("rfloordiv", lambda x, y: 100 // y, lambda a, b, s: ifloordiv(100, b, s)),
    ("rmod", lambda x, y: 100 % y, lambda a, b, s: irem(100, b, s)),
    ("rand", lambda x, y: 6 & x, lambda a, b, s: wrap(6 & a, s)),
    ("ror", lambda x, y: 6 | x, lambda a, b, s: wrap(6 | a, s)),
    ("rxor", lambda x, y: 6 ^ x, lambda a, b, s: wrap(6 ^ a, s)),
    ("rshl", lambda x, y: 1 << y, lambda a, b, s: shl(1, b, s)),
    ("rshr", lambda x, y: 64 >> y, lambda a, b, s: shr(64, b, s)),
    ("shl_lit", lambda x, y: x << 3, lambda a, b, s: shl(a, 3, s)),
    ("shr_lit", lambda x, y: x >> 2, lambda a, b, s: shr(a, 2, s)),
    ("sub_lit", lambda x, y: x - 1, lambda a, b, s: wrap(a - 1, s)),
    ("div_lit", lambda x, y: x / 7, lambda a, b, s: idiv(a, 7, s)),
    ("floordiv_lit", lambda x, y: x // 7, lambda a, b, s: ifloordiv(a, 7, s)),
    ("rem_lit", lambda x, y: x % 7, lambda a, b, s: irem(a, 7, s)),
]

PY_CMPS = [
    ("py_lt", lambda x, y: x < y, "lt"), ("py_le", lambda x, y: x <= y, "le"),
    ("py_gt", lambda x, y: x > y, "gt"), ("py_ge", lambda x, y: x >= y, "ge"),
    ("py_eq", lambda x, y: x == y, "eq"), ("py_ne", lambda x, y: x != y, "ne"),
]
CMP_PREDS = ["eq", "ne", "lt", "le", "gt", "ge", "ult", "ule", "ugt", "uge"]
CMPS = [(f"cmp_{p}", getattr(enigma, f"cmp_{p}"), p) for p in CMP_PREDS] + PY_CMPS


def make_operator_kernel(short, ops, false_val, true_val):
    """A kernel that writes, for the pair (a[i], b[i]), each op of ``ops`` and
    then each comparison of CMPS (as ``true_val``/``false_val``) to row i of
    ``out``; ``seen`` gets each result's dtype while it is traced."""
    T = dt(short)
    K = len(ops) + len(CMPS)
    seen = {}

    @enigma.kernel
    def operators(a: T, b: T, out: T):
        i = enigma.thread_position_in_grid
        x = a[i]
        y = b[i]
        j = 0
        for name, f, _ in ops:
            v = f(x, y)
            seen[name] = v.dtype
            out[i * K + j] = v
            j += 1
        for name, f, _ in CMPS:
            c = f(x, y)
            seen[name] = c.dtype
            out[i * K + j] = enigma.where(false_val, true_val, c)
            j += 1

    return operators, K, seen


def make_int_kernel(short):
    return make_operator_kernel(short, INT_OPS, 0, 1)


@pytest.mark.parametrize("short", INT_TYPES)
def test_integer_operators(runtime, short):
    kern, K, seen = make_int_kernel(short)
    vals = int_values(short)
    pairs = list(itertools.product(vals, vals))
    a = np.array([p[0] for p in pairs], dtype=np_dtype(short))
    b = np.array([p[1] for p in pairs], dtype=np_dtype(short))
    n = len(pairs)
    got = run(runtime, kern, [a, b], (short, n * K), n).reshape(n, K)
    tname = getattr(enigma, short).metal_name
    # every arithmetic result keeps the operands' dtype, comparisons are bool
    for name, _, _ in INT_OPS:
        assert seen[name] == tname, (name, seen[name])
    for name, _, _ in CMPS:
        assert seen[name] == "bool", (name, seen[name])
    failures = []
    for col, (name, _, model) in enumerate(INT_OPS):
        want = [model(x, y, short) for x, y in pairs]
        g = [int(v) for v in got[:, col]]
        bad = [(pairs[k], g[k], want[k]) for k in range(n) if g[k] != want[k]]
        if bad:
            failures.append(f"{short} {name}: {len(bad)} wrong, e.g. (a, b), got, want = {bad[:4]}")
    for col, (name, _, pred) in enumerate(CMPS, start=len(INT_OPS)):
        want = [int(cmp_model(pred, x, y, short)) for x, y in pairs]
        g = [int(v) for v in got[:, col]]
        bad = [(pairs[k], g[k], want[k]) for k in range(n) if g[k] != want[k]]
        if bad:
            failures.append(f"{short} {name}: {len(bad)} wrong, e.g. {bad[:4]}")
    assert not failures, "\n".join(failures)


def test_integer_defined_results_spelled_out(runtime):
    """The documented results of Metal's undefined integer cases, stated literally (i32)."""
    kern, K, _ = make_int_kernel("i32")
    names = [n for n, _, _ in INT_OPS]
    imin = -(1 << 31)
    cases = [(17, 0), (-17, 0), (imin, -1), (-7, 2), (7, -2), (1, 32), (1, 33), (-8, 35), (5, -1)]
    a = np.array([c[0] for c in cases], np.int32)
    b = np.array([c[1] for c in cases], np.int32)
    got = run(runtime, kern, [a, b], ("i32", len(cases) * K), len(cases)).reshape(len(cases), K)
    col = {n: names.index(n) for n in names}
    r = lambda k, op: int(got[k, col[op]])  # noqa: E731
    assert (r(0, "div"), r(0, "floordiv"), r(0, "rem")) == (0, 0, 17)       # x/0 == 0, x//0 == 0, x%0 == x
    assert (r(1, "div"), r(1, "rem")) == (0, -17)
    assert (r(2, "div"), r(2, "floordiv"), r(2, "rem")) == (imin, imin, 0)  # INT_MIN / -1, INT_MIN % -1
    assert (r(3, "div"), r(3, "floordiv"), r(3, "rem")) == (-3, -4, -1)     # / truncates, // floors, % has a's sign
    assert (r(4, "div"), r(4, "floordiv"), r(4, "rem")) == (-3, -4, 1)
    assert (r(5, "shl"), r(6, "shl")) == (1, 2)                              # count mod 32
    assert r(7, "shr") == -1                                                 # -8 >> (35 % 32): arithmetic
    assert r(8, "shl") == imin                                               # 5 << 31 (count -1 -> 31)


# --------------------------------------------------------------------------
# floats

FLOAT_OPS = [
    ("add", lambda x, y: x + y, lambda a, b: a + b),
    ("sub", lambda x, y: x - y, lambda a, b: a - b),
    ("mul", lambda x, y: x * y, lambda a, b: a * b),
    ("div", lambda x, y: x / y, lambda a, b: a / b),
    ("floordiv", lambda x, y: x // y, lambda a, b: np.floor(a / b)),
    ("rem", lambda x, y: x % y, np.fmod),
    ("neg", lambda x, y: -x, lambda a, b: -a),
    ("radd", lambda x, y: 2.5 + x, lambda a, b: np.float32(2.5) + a),
    ("rsub", lambda x, y: 2.0 - x, lambda a, b: np.float32(2.0) - a),
    ("rmul", lambda x, y: 0.5 * y, lambda a, b: np.float32(0.5) * b),
    ("rdiv", lambda x, y: 1.0 / y, lambda a, b: np.float32(1.0) / b),
    ("rfloordiv", lambda x, y: 7.0 // y, lambda a, b: np.floor(np.float32(7.0) / b)),
    ("rmod", lambda x, y: 5.5 % y, lambda a, b: np.fmod(np.float32(5.5), b)),
    # int literals with a float operand take the float dtype
    ("mul_int", lambda x, y: x * 2, lambda a, b: a * np.float32(2)),
    ("rsub_int", lambda x, y: 3 - x, lambda a, b: np.float32(3) - a),
    ("rdiv_int", lambda x, y: 1 / y, lambda a, b: np.float32(1) / b),
]


def float_values(short):
    big = {"f32": 3.0e38, "f16": 60000.0, "bf16": 3.0e38}[short]
    tiny = {"f32": 1e-40, "f16": 1e-7, "bf16": 1e-40}[short]  # subnormals
    specials = [0.0, -0.0, 1.0, -1.0, 1.5, -2.25, 3.0, 0.1, -7.75, 1e-3, 123.456, big, -big, tiny,
                np.inf, -np.inf, np.nan]
    return np.array(specials, dtype=np.float32)


def make_float_kernel(short):
    return make_operator_kernel(short, FLOAT_OPS, 0.0, 1.0)


def to_buffer(short, values):
    values = np.asarray(values, np.float32)
    if short == "f32":
        return values.astype(np.float32)
    if short == "f16":
        with np.errstate(over="ignore"):
            return values.astype(np.float16)
    return to_bf16(values)


def from_buffer_f32(short, arr):
    if short == "bf16":
        return bf16_to_f32(arr)
    return arr.astype(np.float32)


def float_cmp_model(pred, a, b):
    p = pred[1:] if pred.startswith("u") else pred
    with np.errstate(invalid="ignore"):
        return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[p]


@pytest.mark.parametrize("short", FLOAT_TYPES)
def test_float_operators(runtime, short, rng):
    kern, K, seen = make_float_kernel(short)
    vals = float_values(short)
    pairs = list(itertools.product(range(len(vals)), repeat=2))
    a_vals = np.concatenate([vals[[p[0] for p in pairs]], rng.standard_normal(300).astype(np.float32) * 50])
    b_vals = np.concatenate([vals[[p[1] for p in pairs]], rng.standard_normal(300).astype(np.float32) * 3])
    a = to_buffer(short, a_vals)
    b = to_buffer(short, b_vals)
    n = a.size
    got = run(runtime, kern, [a, b], (short, n * K), n).reshape(n, K)
    got32 = from_buffer_f32(short, got.reshape(-1)).reshape(n, K)
    # the operands as the kernel sees them (already rounded to the dtype)
    x = from_buffer_f32(short, a)
    y = from_buffer_f32(short, b)
    tname = getattr(enigma, short).metal_name
    failures = []
    for col, (name, _, model) in enumerate(FLOAT_OPS):
        assert seen[name] == tname, (name, seen[name])
        with np.errstate(all="ignore"):
            want = round_to(short, model(x, y).astype(np.float32))
        try:
            bits_equal(got32[:, col], want)
        except AssertionError as e:
            failures.append(f"{short} {name}: {e}")
    for col, (name, _, pred) in enumerate(CMPS, start=len(FLOAT_OPS)):
        assert seen[name] == "bool", (name, seen[name])
        want = float_cmp_model(pred, x, y).astype(np.float32)
        if not np.array_equal(got32[:, col], want):
            bad = np.flatnonzero(got32[:, col] != want)[:5]
            failures.append(f"{short} {name}: wrong for (a, b) = {list(zip(x[bad].tolist(), y[bad].tolist()))}")
    assert not failures, "\n".join(failures)


def test_nan_comparison_rules(runtime):
    """cmp_ne is true when either side is NaN; every other predicate (u* included) is false."""
    kern, K, _ = make_float_kernel("f32")
    a = np.array([np.nan, 1.0, np.nan], np.float32)
    b = np.array([1.0, np.nan, np.nan], np.float32)
    got = run(runtime, kern, [a, b], ("f32", 3 * K), 3).reshape(3, K)
    cmps = got[:, len(FLOAT_OPS):]
    for col, (name, _, pred) in enumerate(CMPS):
        expected = 1.0 if pred == "ne" else 0.0
        assert np.all(cmps[:, col] == expected), (name, cmps[:, col])


# --------------------------------------------------------------------------
# typing rules (SEMANTICS 3); traced with emit_only, so nothing is built

ALL_SHORTS = INT_TYPES + FLOAT_TYPES


def expected_promotion(s, t):
    if s == t:
        return s
    fs, ft = s in FLOAT_TYPES, t in FLOAT_TYPES
    if fs and ft:
        return "f32" if {s, t} <= {"f16", "bf16"} else ("f32" if "f32" in (s, t) else None)
    if fs != ft:
        return s if fs else t
    ws, wt = BITS[s], BITS[t]
    if ws != wt:
        return s if ws > wt else t
    return s if s.startswith("u") else t


def test_promotion_table():
    results = {}

    @enigma.kernel
    def promote_all(i8b: enigma.i8, u8b: enigma.u8, i16b: enigma.i16, u16b: enigma.u16, i32b: enigma.i32,
                    u32b: enigma.u32, i64b: enigma.i64, u64b: enigma.u64, f32b: enigma.f32, f16b: enigma.f16,
                    bf16b: enigma.bf16, out: enigma.f32):
        loaded = {"i8": i8b[0], "u8": u8b[0], "i16": i16b[0], "u16": u16b[0], "i32": i32b[0], "u32": u32b[0],
                  "i64": i64b[0], "u64": u64b[0], "f32": f32b[0], "f16": f16b[0], "bf16": bf16b[0]}
        k = 0
        for s in ALL_SHORTS:
            for t in ALL_SHORTS:
                for opname, f in (("+", lambda p, q: p + q), ("*", lambda p, q: p * q), ("<", lambda p, q: p < q)):
                    v = f(loaded[s], loaded[t])
                    results[(s, t, opname)] = v.dtype
                    out[k] = enigma.metal_cast(v, "float")
                    k += 1

    enigma.compile(promote_all, emit_only=True)
    name = {s: getattr(enigma, s).metal_name for s in ALL_SHORTS}
    for s in ALL_SHORTS:
        for t in ALL_SHORTS:
            want = name[expected_promotion(s, t)]
            assert results[(s, t, "+")] == want, (s, t, results[(s, t, "+")], want)
            assert results[(s, t, "*")] == want, (s, t)
            assert results[(s, t, "<")] == "bool"
    # spot checks of the promotion table (docs/semantics.md)
    assert results[("i32", "u32", "+")] == "uint"
    assert results[("i8", "i8", "+")] == "char"
    assert results[("f16", "bf16", "+")] == "float"
    assert results[("i64", "u32", "+")] == "long"
    assert results[("f16", "i64", "+")] == "half"


def test_literal_typing_rules():
    seen = {}

    @enigma.kernel
    def literal_types(n: enigma.i32, h: enigma.f16, u: enigma.u8, out: enigma.f32):
        x = n[0]
        seen["int*float_lit"] = (x * 2.5).dtype
        seen["float_lit+int"] = (1.5 + x).dtype
        seen["int+int_lit"] = (x + 1).dtype
        seen["half*int_lit"] = (h[0] * 2).dtype
        seen["half*float_lit"] = (h[0] * 2.0).dtype
        seen["u8+255"] = (u[0] + 255).dtype
        seen["u8/2.0"] = (u[0] / 2.0).dtype
        seen["where_lits"] = enigma.where(3, 5, x > 0).dtype
        seen["where_float_lits"] = enigma.where(0.0, 1.0, x > 0).dtype
        seen["cast_lit"] = enigma.metal_cast(7, "short").dtype
        with enigma.for_range(0, 1, init=[0, 0.0, True, -1]) as (i, c):
            seen["alone"] = [c[0].dtype, c[1].dtype, c[2].dtype, c[3].dtype]
            seen["iv"] = i.dtype
        out[0] = 0.0

    enigma.compile(literal_types, emit_only=True)
    assert seen["int*float_lit"] == "float"
    assert seen["float_lit+int"] == "float"
    assert seen["int+int_lit"] == "int"
    assert seen["half*int_lit"] == "half"
    assert seen["half*float_lit"] == "half"
    assert seen["u8+255"] == "uchar"
    assert seen["u8/2.0"] == "float"
    assert seen["where_lits"] == "uint"           # int literal alone -> uint
    assert seen["where_float_lits"] == "float"
    assert seen["cast_lit"] == "short"
    assert seen["alone"] == ["uint", "float", "bool", "int"]
    assert seen["iv"] == "int"


def test_typing_errors_name_op_dtypes_and_line():
    import inspect

    def body_line(fn, text):
        lines, start = inspect.getsourcelines(fn)
        return start + next(k for k, ln in enumerate(lines) if text in ln)

    @enigma.kernel
    def bad_bool_arith(a: enigma.b1, out: enigma.b1):
        out[0] = a[0] + a[1]  # BAD-ARITH

    @enigma.kernel
    def bad_float_bitwise(a: enigma.f32, out: enigma.f32):
        out[0] = a[0] & a[1]  # BAD-BITWISE

    @enigma.kernel
    def bad_as_type(a: enigma.f32, out: enigma.f32):
        out[0] = enigma.metal_cast(enigma.as_type(a[0], "ushort"), "float")  # BAD-ASTYPE

    @enigma.kernel
    def bad_dtype(a: enigma.f32, out: enigma.f32):
        out[0] = enigma.metal_cast(a[0], "double")  # BAD-DTYPE

    @enigma.kernel
    def bad_literal(a: enigma.u8, out: enigma.u8):
        out[0] = a[0] + 300  # BAD-LIT

    @enigma.kernel
    def bad_shift(a: enigma.f32, out: enigma.f32):
        out[0] = a[0] << 1  # BAD-SHIFT

    cases = [(bad_bool_arith, "BAD-ARITH", ["add", "bool"]),
             (bad_float_bitwise, "BAD-BITWISE", ["and", "float"]),
             (bad_as_type, "BAD-ASTYPE", ["as_type", "float", "ushort"]),
             (bad_dtype, "BAD-DTYPE", ["metal_cast", "double"]),
             (bad_literal, "BAD-LIT", ["300", "uchar"]),
             (bad_shift, "BAD-SHIFT", ["shl", "float"])]
    for k, marker, words in cases:
        with pytest.raises(enigma.EnigmaError) as e:
            enigma.compile(k, emit_only=True)
        msg = str(e.value)
        assert f"test_ops.py:{body_line(k.fn, marker)}" in msg, msg
        assert k.name in msg, msg
        for w in words:
            assert w in msg, (w, msg)


def test_mixed_dtype_values(runtime):
    """Promotion happens with explicit conversions: check the computed values."""

    @enigma.kernel
    def mixed(i8a: enigma.i8, i32a: enigma.i32, u32a: enigma.u32, f16a: enigma.f16, bf16a: enigma.bf16,
              u16a: enigma.u16, out_u32: enigma.u32, out_i8: enigma.i8, out_f32: enigma.f32, out_u16: enigma.u16,
              out_f16: enigma.f16):
        t = enigma.thread_position_in_grid
        out_u32[t] = i32a[t] + u32a[t]           # i32 + u32 -> u32 (wraps)
        out_i8[t] = i8a[t] + i8a[t]              # i8 + i8 stays i8 (wraps)
        out_f32[t * 3] = f16a[t] + bf16a[t]      # f16 + bf16 -> f32
        out_f32[t * 3 + 1] = i32a[t] * 2.5       # int * float literal -> f32
        out_f32[t * 3 + 2] = i32a[t] / 2.0       # true division in f32
        out_u16[t] = i8a[t] + u16a[t]            # i8 + u16 -> u16 (sign-extends, wraps)
        out_f16[t] = f16a[t] * 3 - 1             # int literals take half

    i8a = np.array([100, -100, 127, -1], np.int8)
    i32a = np.array([-1, 5, -7, 2147483647], np.int32)
    u32a = np.array([1, 4294967295, 3, 1], np.uint32)
    f16a = np.array([0.1, 1000.5, -3.0, 65504.0], np.float16)
    bf16v = np.array([0.1, 3.0e10, 0.00390625, -65504.0], np.float32)
    bf16a = to_bf16(bf16v)
    u16a = np.array([0, 1, 65535, 5], np.uint16)
    n = 4
    o_u32, o_i8, o_f32, o_u16, o_f16 = run(
        runtime, mixed, [i8a, i32a, u32a, f16a, bf16a, u16a],
        [(np.uint32, n), (np.int8, n), (np.float32, 3 * n), (np.uint16, n), (np.float16, n)], n)
    assert o_u32.tolist() == [(int(x) + int(y)) & 0xFFFFFFFF for x, y in zip(i32a, u32a)]
    assert o_i8.tolist() == [wrap(2 * int(x), "i8") for x in i8a]
    f32 = o_f32.reshape(n, 3)
    bits_equal(f32[:, 0], f16a.astype(np.float32) + bf16_to_f32(bf16a))
    bits_equal(f32[:, 1], i32a.astype(np.float32) * np.float32(2.5))
    bits_equal(f32[:, 2], i32a.astype(np.float32) / np.float32(2.0))
    assert o_u16.tolist() == [(int(x) + int(y)) & 0xFFFF for x, y in zip(i8a, u16a)]
    with np.errstate(over="ignore"):
        bits_equal(o_f16, (f16a * np.float16(3)) - np.float16(1))


def test_store_converts_to_buffer_dtype(runtime):
    @enigma.kernel
    def store_convert(a: enigma.f32, o_i32: enigma.i32, o_u8: enigma.u8, o_f16: enigma.f16, o_b1: enigma.b1):
        t = enigma.thread_position_in_grid
        o_i32[t] = a[t]              # float -> int (C assignment, saturating)
        o_u8[t] = 300 * 0 + 7        # literal arithmetic, then stored as uchar
        o_f16[t] = a[t]
        o_b1[t] = a[t]               # != 0

    a = np.array([1.75, -2.5, 0.0, 1e10], np.float32)
    o_i32, o_u8, o_f16, o_b1 = run(runtime, store_convert, [a],
                                    [(np.int32, 4), (np.uint8, 4), (np.float16, 4), (np.bool_, 4)], 4)
    assert o_i32.tolist() == [1, -2, 0, 2147483647]
    assert o_u8.tolist() == [7] * 4
    with np.errstate(over="ignore"):
        bits_equal(o_f16, a.astype(np.float16))
    assert o_b1.tolist() == [True, True, False, True]


def test_where_selects_true_value_second(runtime):
    seen = {}

    @enigma.kernel
    def where_k(a: enigma.f32, b: enigma.i16, out: enigma.f32, out_i: enigma.i16):
        t = enigma.thread_position_in_grid
        c = enigma.cmp_gt(a[t], 0.0)
        v = enigma.where(-1.0, a[t], c)            # where(false_val, true_val, cond)
        seen["f"] = v.dtype
        out[t] = v
        w = enigma.where(b[t], b[t] * 2, enigma.cmp_lt(b[t], 0))
        seen["i"] = w.dtype
        out_i[t] = w

    a = np.array([3.0, -2.0, 0.0, np.nan], np.float32)
    b = np.array([-5, 5, 0, -32768], np.int16)
    o, oi = run(runtime, where_k, [a, b], [(np.float32, 4), (np.int16, 4)], 4)
    assert seen == {"f": "float", "i": "short"}
    assert o.tolist() == [3.0, -1.0, -1.0, -1.0]
    assert oi.tolist() == [-10, 5, 0, 0]


# --------------------------------------------------------------------------
# metal_cast

CAST_TARGETS = ["f32", "f16", "bf16", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "b1"]
CAST_SOURCES = ["f32", "f16", "bf16", "i8", "u16", "i32", "u32", "i64", "u64", "b1"]


def make_cast_kernel(src):
    S = dt(src)
    seen = []

    @enigma.kernel
    def casts(a: S, o_f32: enigma.f32, o_f16: enigma.f16, o_bf16: enigma.bf16, o_i8: enigma.i8, o_u8: enigma.u8,
              o_i16: enigma.i16, o_u16: enigma.u16, o_i32: enigma.i32, o_u32: enigma.u32, o_i64: enigma.i64,
              o_u64: enigma.u64, o_b1: enigma.b1):
        t = enigma.thread_position_in_grid
        x = a[t]
        outs = [o_f32, o_f16, o_bf16, o_i8, o_u8, o_i16, o_u16, o_i32, o_u32, o_i64, o_u64, o_b1]
        for target, o in zip(CAST_TARGETS, outs):
            v = enigma.metal_cast(x, getattr(enigma, target).metal_name)
            seen.append(v.dtype)
            o[t] = v

    return casts, seen


def cast_source_values(src):
    if src in FLOAT_TYPES:
        v = [0.0, -0.0, 0.5, -0.5, 1.99, -1.99, 127.5, 128.0, -128.5, -129.0, 255.9, 256.0, 32767.0, 32768.5,
             -32769.0, 65535.0, 65536.0, 2.0 ** 31, -(2.0 ** 31) - 512, 2.0 ** 32, 1e10, -1e10, 2.0 ** 63,
             2.0 ** 64, 1e30, -1e30, 3.0e38, np.inf, -np.inf, np.nan, 1e-3, 0.1, 1000.7, 70000.0]
        return to_buffer(src, np.array(v, np.float32))
    if src == "b1":
        return np.array([False, True, True, False], np.bool_)
    lo, hi = lo_hi(src)
    v = {lo, hi, 0, 1, 2, 100, 127, 128, 255, 256, 1000, 32767, 32768, 65535, 65536, 1 << 20, (1 << 24) - 1,
         (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 40, -1, -2, -128, -129, -32768, -32769, -(1 << 31),
         -(1 << 40), 0x1234567890ABCDEF, -0x1234567890ABCDEF}
    return np.array(sorted(x for x in v if lo <= x <= hi), dtype=np_dtype(src))


def cast_model(src, target, arr):
    """Reference results of metal_cast(src -> target) as a numpy array of the target's buffer dtype."""
    if src in FLOAT_TYPES:
        vals = as_f64(arr) if src == "bf16" else arr.astype(np.float64)
    else:
        vals = [int(v) for v in arr]
    if target == "b1":
        return np.array([bool(v != 0) if not (isinstance(v, float) and np.isnan(v)) else True for v in vals])
    if target in FLOAT_TYPES:
        if src in FLOAT_TYPES:
            f32 = np.asarray(vals, np.float64).astype(np.float32)
        else:
            f32 = np.array([np.float32(v) for v in vals], np.float32)  # int -> float rounds once (C)
        return to_buffer(target, f32)
    # -> integer
    lo, hi = lo_hi(target)
    out = []
    for v in vals:
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                out.append(0)
            elif v <= lo:
                out.append(lo)
            elif v >= hi + 1:
                out.append(hi)
            else:
                out.append(int(np.trunc(v)))
        else:
            out.append(wrap(int(v), target))
    return np.array(out, dtype=np_dtype(target))


@pytest.mark.parametrize("src", CAST_SOURCES)
def test_metal_cast(runtime, src):
    kern, seen = make_cast_kernel(src)
    a = cast_source_values(src)
    n = a.size
    outs = run(runtime, kern, [a], [(np_dtype(t), n) for t in CAST_TARGETS], n)
    assert seen == [getattr(enigma, t).metal_name for t in CAST_TARGETS]
    failures = []
    for target, got in zip(CAST_TARGETS, outs):
        want = cast_model(src, target, a)
        try:
            if target in FLOAT_TYPES:
                bits_equal(got, want)
            else:
                assert got.tolist() == want.tolist(), (
                    [(a[k], got[k], want[k]) for k in np.flatnonzero(got != want)[:5]])
        except AssertionError as e:
            failures.append(f"{src} -> {target}: {e}")
    assert not failures, "\n".join(failures)


def test_metal_cast_saturation_spelled_out(runtime):
    kern, _ = make_cast_kernel("f32")
    a = np.array([np.nan, 1e10, -1e10, 300.0, -300.0, -0.9, 2.0 ** 64], np.float32)
    outs = dict(zip(CAST_TARGETS, run(runtime, kern, [a], [(np_dtype(t), 7) for t in CAST_TARGETS], 7)))
    assert outs["i32"].tolist() == [0, 2147483647, -2147483648, 300, -300, 0, 2147483647]
    assert outs["u8"].tolist() == [0, 255, 0, 255, 0, 0, 255]
    assert outs["i8"].tolist() == [0, 127, -128, 127, -128, 0, 127]
    assert outs["u64"].tolist() == [0, 10000000000, 0, 300, 0, 0, 2 ** 64 - 1]
    assert outs["b1"].tolist() == [True, True, True, True, True, True, True]


def test_metal_cast_of_literals(runtime):
    @enigma.kernel
    def cast_lits(out_i: enigma.i32, out_f: enigma.f32, out_u8: enigma.u8, out_b: enigma.b1):
        out_i[0] = enigma.metal_cast(3.99, "int")
        out_i[1] = enigma.metal_cast(-3.99, "int")
        out_i[2] = enigma.metal_cast(1e20, "int")
        out_f[0] = enigma.metal_cast(7, "float")
        out_f[1] = enigma.metal_cast(True, "float")
        out_u8[0] = enigma.metal_cast(257, "int") + 0  # int stays 257, stored as uchar -> 1
        out_b[0] = enigma.metal_cast(2, "bool")

    oi, of, ou, ob = run(runtime, cast_lits, [], [(np.int32, 3), (np.float32, 2), (np.uint8, 1), (np.bool_, 1)], 1)
    assert oi.tolist() == [3, -3, 2147483647]
    assert of.tolist() == [7.0, 1.0]
    assert ou.tolist() == [1]
    assert ob.tolist() == [True]


# --------------------------------------------------------------------------
# as_type

def test_as_type_bits(runtime, rng):
    seen = {}

    @enigma.kernel
    def bitcasts(f: enigma.f32, u: enigma.u32, h: enigma.f16, hb: enigma.u16, bf: enigma.bf16,
                 o_u32: enigma.u32, o_i32: enigma.i32, o_f32: enigma.f32, o_u16: enigma.u16, o_f16: enigma.f16,
                 o_bfu: enigma.u16, o_i16: enigma.i16):
        t = enigma.thread_position_in_grid
        a = enigma.as_type(f[t], "uint")
        seen["f32->u32"] = a.dtype
        o_u32[t] = a
        o_i32[t] = enigma.as_type(f[t], enigma.i32)
        o_f32[t] = enigma.as_type(u[t], "float")
        o_u16[t] = enigma.as_type(h[t], "ushort")
        x = enigma.as_type(hb[t], "half")
        seen["u16->f16"] = x.dtype
        o_f16[t] = x
        o_bfu[t] = enigma.as_type(bf[t], "ushort")
        o_i16[t] = enigma.as_type(enigma.as_type(hb[t], "bfloat"), "short")

    n = 1 << 16
    # every f16 / bf16 bit pattern except signaling NaNs (see the report: the CPU
    # backend holds half values in float registers, which quiets them)
    pats = np.arange(n, dtype=np.uint32).astype(np.uint16)
    exp_all_ones = (pats & 0x7C00) == 0x7C00
    snan16 = exp_all_ones & ((pats & 0x3FF) != 0) & ((pats & 0x200) == 0)
    bexp = (pats & 0x7F80) == 0x7F80
    snan_b = bexp & ((pats & 0x7F) != 0) & ((pats & 0x40) == 0)
    keep = ~snan16 & ~snan_b
    hb = pats[keep]
    m = hb.size
    fbits = rng.integers(0, 1 << 32, size=m, dtype=np.uint64).astype(np.uint32)
    fbits[:8] = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x3F800000, 0x00000001, 0x7F7FFFFF]
    f = fbits.view(np.float32)
    u = fbits.copy()
    h = hb.view(np.float16)
    bf = hb.view(BF16) if BF16 is not None else hb.copy()
    o_u32, o_i32, o_f32, o_u16, o_f16, o_bfu, o_i16 = run(
        runtime, bitcasts, [f, u, h, hb, bf],
        [(np.uint32, m), (np.int32, m), (np.float32, m), (np.uint16, m), (np.float16, m), (np.uint16, m),
         (np.int16, m)], m, threads=256)
    assert seen == {"f32->u32": "uint", "u16->f16": "half"}
    # finite floats and quiet NaNs keep every bit (signaling f32 NaNs may be quieted by a GPU: skip them)
    f_snan = ((fbits & 0x7F800000) == 0x7F800000) & ((fbits & 0x7FFFFF) != 0) & ((fbits & 0x400000) == 0)
    ok = ~f_snan
    assert np.array_equal(o_u32[ok], fbits[ok])
    assert np.array_equal(o_i32[ok], fbits[ok].view(np.int32))
    assert np.array_equal(o_f32.view(np.uint32)[ok], fbits[ok])
    assert np.array_equal(o_u16, hb)
    assert np.array_equal(o_f16.view(np.uint16), hb)
    assert np.array_equal(o_bfu, hb)
    assert np.array_equal(o_i16, hb.view(np.int16))


# --------------------------------------------------------------------------
# misc tracing behaviour

def test_tracing_of_python_values_is_checked():
    @enigma.kernel
    def bad_str(a: enigma.f32, out: enigma.f32):
        out[0] = a[0] + "x"

    with pytest.raises(TypeError, match="Cannot convert str to IRValue"):
        enigma.compile(bad_str, emit_only=True)

    @enigma.kernel
    def np_scalars(a: enigma.f32, out: enigma.f32):
        out[0] = a[0] * np.float32(2.0) + np.int64(1)

    ck = enigma.compile(np_scalars, emit_only=True)  # numpy scalars act as Python numbers
    assert "mul" in ck.ir_source


def test_ops_outside_a_kernel_raise():
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        enigma.cmp_lt(1, 2)
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        enigma.metal_cast(1, "float")
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        enigma.where(1, 2, True)
    with pytest.raises(RuntimeError, match="thread_position_in_grid"):
        enigma.thread_position_in_grid  # noqa: B018
