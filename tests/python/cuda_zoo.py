"""Kernels that together use every op, dtype, conversion, bitcast and thread
query of the IR, for the CUDA backend's tests: test_cuda_codegen.py compiles
their CUDA source with NVRTC (no GPU needed), test_cuda_device.py runs them on
the GPU and on the CPU and compares the bytes.

Each kernel is (name, KernelDef, [input dtypes], [(output dtype, elements per thread)])."""
from __future__ import annotations

import enigma

NUMERIC = ["f32", "f16", "bf16", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"]
INTS = ["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"]
PREDICATES = ["eq", "ne", "lt", "le", "gt", "ge", "ult", "ule", "ugt", "uge"]
BITCASTS = [("f32", "i32"), ("f32", "u32"), ("i32", "f32"), ("u32", "f32"), ("f16", "i16"), ("f16", "u16"),
            ("bf16", "u16"), ("f16", "bf16"), ("bf16", "f16"), ("i16", "f16"), ("u16", "bf16"), ("i64", "u64"),
            ("i8", "u8"), ("u32", "i32")]


def _kernel(name, fn, ann):
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__annotations__ = {k: getattr(enigma, v) if isinstance(v, str) else v for k, v in ann.items()}
    return enigma.kernel(fn)


def _binary(name, t, results, out=None):
    """C[i * len(results) + j] = results[j](A[i], B[i]), in order."""
    out = out or t
    n = len(results)

    def k(A, B, C):
        i = enigma.thread_position_in_grid
        a = A[i]
        b = B[i]
        for j, f in enumerate(results):
            C[i * n + j] = f(a, b)
    return _kernel(name, k, {"A": t, "B": t, "C": out}), [t, t], [(out, n)]


def _arith(t):
    return _binary(f"zoo_arith_{t}", t, [
        lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b, lambda a, b: a // b,
        lambda a, b: a % b, lambda a, b: -a, lambda a, b: enigma.where(a, b, a < b)])


def _bits(t):
    return _binary(f"zoo_bits_{t}", t, [
        lambda a, b: a & b, lambda a, b: a | b, lambda a, b: a ^ b, lambda a, b: a << b, lambda a, b: a >> b,
        lambda a, b: ~a])


def _compare(t):
    return _binary(f"zoo_cmp_{t}", t, [getattr(enigma, "cmp_" + p) for p in PREDICATES], out="b1")


def _convert(t):
    targets = NUMERIC + ["b1"]

    def k(A, *outs):
        i = enigma.thread_position_in_grid
        for o, u in zip(outs, targets):
            o[i] = enigma.metal_cast(A[i], u)
    # *outs cannot carry annotations: spell the parameters out.
    params = ", ".join(f"O{j}" for j in range(len(targets)))
    src = f"def k(A, {params}):\n    _body(A, {params})\n"
    scope = {"_body": k}
    exec(src, scope)  # noqa: S102 - builds a signature with one parameter per target dtype
    fn = scope["k"]
    ann = {"A": t, **{f"O{j}": u for j, u in enumerate(targets)}}
    return _kernel(f"zoo_cvt_{t}", fn, ann), [t], [(u, 1) for u in targets]


def _bitcast(a, b):
    def k(A, B):
        i = enigma.thread_position_in_grid
        B[i] = enigma.as_type(A[i], b)
    return _kernel(f"zoo_bitcast_{a}_{b}", k, {"A": a, "B": b}), [a], [(b, 1)]


@enigma.kernel
def zoo_queries(O: enigma.u32):
    x = enigma.thread_position_in_grid_xyz("x")
    y = enigma.thread_position_in_grid_xyz("y")
    z = enigma.thread_position_in_grid_xyz("z")
    base = ((z * enigma.grid_size("y") + y) * enigma.grid_size("x") + x) * 20
    vals = [x, y, z,
            enigma.thread_position_in_threadgroup("x"), enigma.thread_position_in_threadgroup("y"),
            enigma.thread_position_in_threadgroup("z"),
            enigma.threadgroup_position_in_grid("x"), enigma.threadgroup_position_in_grid("y"),
            enigma.threadgroup_position_in_grid("z"),
            enigma.threads_per_threadgroup("x"), enigma.threads_per_threadgroup("y"),
            enigma.threads_per_threadgroup("z"),
            enigma.threads_per_grid("x"), enigma.threadgroups_per_grid("x"), enigma.threadgroups_per_grid("y"),
            enigma.thread_index_in_threadgroup(), enigma.thread_index_in_simdgroup(),
            enigma.simdgroup_index_in_threadgroup(), enigma.threads_per_simdgroup(),
            enigma.simdgroups_per_threadgroup()]
    for j, v in enumerate(vals):
        O[base + j] = v


@enigma.kernel
def zoo_control(A: enigma.f32, n: enigma.Scalar(enigma.i32), s: enigma.Scalar(enigma.f16),
                flag: enigma.Scalar(enigma.b1), B: enigma.f32):
    i = enigma.thread_position_in_grid
    with enigma.for_range(0, n, 1, init=[0.0]) as (j, c):
        c[0] = c[0] + A[i] * enigma.metal_cast(j, "f32")
    with enigma.for_range(n, 0, -2, init=[c[0]]) as (j, d):
        d[0] = d[0] - s
    with enigma.if_(flag) as (then_, else_):
        with then_:
            B[i * 2] = d[0]
        with else_:
            B[i * 2] = 1.5
    with enigma.while_(lambda cc: cc[0] < 100, init=[enigma.metal_cast(i, "i32")]) as w:
        w[0] = w[0] * 2 + 1
    B[i * 2 + 1] = enigma.metal_cast(w[0], "f32")


@enigma.kernel
def zoo_constants(F: enigma.f32, H: enigma.f16, L: enigma.i64, U: enigma.u64):
    i = enigma.thread_position_in_grid
    F[i] = F[i] + float("inf") - float("nan") * 1e30
    H[i] = H[i] * enigma.metal_cast(0.1, "f16")
    L[i] = L[i] + (-9223372036854775807 - 1)
    U[i] = U[i] * 18446744073709551615


def zoo():
    out = []
    for t in NUMERIC:
        out.append(_arith(t))
        out.append(_convert(t))
    for t in INTS:
        out.append(_bits(t))
        out.append(_compare(t))
    out.append(_compare("f32"))
    for a, b in BITCASTS:
        out.append(_bitcast(a, b))
    out.append((zoo_control, ["f32"], [("f32", 2)]))
    out.append((zoo_constants, ["f32", "f16", "i64", "u64"], []))  # in-place: checked through its source only
    return out
