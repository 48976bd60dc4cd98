"""The cooperative execution model (SEMANTICS 4): threadgroup memory,
barriers, simd/quad collectives, atomics, simdgroup matrices, async copies
and the tile helpers, each checked against a numpy model on the default
device, with partial threadgroups and partial simdgroups."""
import numpy as np
import pytest

import enigma
from conftest import run_flat as run
from conftest import shared_runtime as rt


# ---- block reductions, scans, reverse ------------------------------------------

@enigma.kernel
def block_sum(A: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    lane = enigma.thread_index_in_simdgroup()
    sg = enigma.simdgroup_index_in_threadgroup()
    partial = enigma.threadgroup_alloc("float", 32)
    s = enigma.simd_sum(enigma.load_if(A, tid, tid < n, 0.0))
    with enigma.if_(lane == 0):
        partial[sg] = s
    enigma.barrier()
    # the classic second stage: only simdgroup 0 reduces (masked simd op)
    with enigma.if_(sg == 0):
        v = enigma.where(0.0, partial[lane], lane < enigma.simdgroups_per_threadgroup())
        t = enigma.simd_sum(v)
        with enigma.if_(lane == 0):
            Out[enigma.threadgroup_position_in_grid()] = t


@pytest.mark.parametrize("n,tg", [(1000, 256), (4096, 1024), (77, 64)])
def test_block_reduction(n, tg):
    a = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    groups = (n + tg - 1) // tg
    out = run(block_sum, [a], np.float32, groups, (n, 1, 1), (tg, 1, 1), scalars=[n])
    ref = [a[g * tg:(g + 1) * tg].astype(np.float64).sum() for g in range(groups)]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@enigma.kernel
def block_scan(A: enigma.i32, Out: enigma.i32):
    # Hillis-Steele inclusive scan through threadgroup memory: barriers inside
    # a uniform loop, and an if_ whose branches both hold barrier-free code.
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    n = enigma.threads_per_threadgroup()
    buf = enigma.threadgroup_alloc("int", 256)
    buf[lid] = A[tid]
    enigma.barrier()
    with enigma.for_range(0, 8, dtype="uint") as k:
        off = enigma.metal_cast(1, "uint") << k
        v = buf[lid]
        add = enigma.where(0, buf[enigma.where(0, lid - off, lid >= off)], lid >= off)
        enigma.barrier()
        buf[lid] = v + add
        enigma.barrier()
    Out[tid] = buf[lid]


def test_prefix_sum_over_threadgroup():
    n, tg = 600, 256  # last group partial (88 threads)
    a = np.random.default_rng(1).integers(-50, 50, n).astype(np.int32)
    out = run(block_scan, [a], np.int32, n, (n, 1, 1), (tg, 1, 1))
    ref = np.concatenate([np.cumsum(a[g:g + tg]) for g in range(0, n, tg)])
    np.testing.assert_array_equal(out, ref)


@enigma.kernel
def reverse3d(A: enigma.f32, Out: enigma.f32):
    x = enigma.thread_position_in_grid_xyz("x")
    y = enigma.thread_position_in_grid_xyz("y")
    z = enigma.thread_position_in_grid_xyz("z")
    W = enigma.threads_per_grid("x")
    H = enigma.threads_per_grid("y")
    lid = enigma.thread_index_in_threadgroup()
    cnt = (enigma.threads_per_threadgroup("x") * enigma.threads_per_threadgroup("y")
           * enigma.threads_per_threadgroup("z"))
    sh = enigma.threadgroup_alloc("float", 512)
    gi = (z * H + y) * W + x
    sh[lid] = A[gi]
    enigma.barrier()
    Out[gi] = sh[cnt - 1 - lid]


@pytest.mark.parametrize("grid,threads", [((100, 1, 1), (64, 1, 1)), ((20, 9, 1), (8, 4, 1)),
                                          ((10, 7, 5), (4, 4, 4))])
def test_reverse_through_threadgroup_memory(grid, threads):
    W, H, D = grid
    a = np.arange(W * H * D, dtype=np.float32)
    out = run(reverse3d, [a], np.float32, a.size, grid, threads).reshape(D, H, W)
    A = a.reshape(D, H, W)
    ref = np.empty_like(A)
    tx, ty, tz = threads
    for gz in range(0, D, tz):
        for gy in range(0, H, ty):
            for gx in range(0, W, tx):
                blk = A[gz:gz + tz, gy:gy + ty, gx:gx + tx]       # partial at the edges
                ref[gz:gz + tz, gy:gy + ty, gx:gx + tx] = blk.reshape(-1)[::-1].reshape(blk.shape)
    np.testing.assert_array_equal(out, ref)


# ---- histogram with atomics ------------------------------------------------------

@enigma.kernel
def histogram(A: enigma.u32, n: enigma.Scalar(enigma.u32), Hd: enigma.u32, Ht: enigma.u32):
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    local = enigma.threadgroup_alloc("uint", 16)
    with enigma.if_(lid < 16):
        local[lid] = 0
    enigma.barrier()
    with enigma.if_(tid < n):
        b = A[tid] % 16
        enigma.atomic_fetch_add(Hd, b, 1)                 # device atomics, all groups
        local.atomic_fetch_add(b, 1)                      # threadgroup atomics (method form)
    enigma.barrier()
    with enigma.if_(lid < 16):
        enigma.atomic_fetch_add(Ht, lid, local[lid], order="acq_rel")


def test_histogram_with_atomics():
    n = 100_000
    a = np.random.default_rng(2).integers(0, 1000, n).astype(np.uint32)
    outs = rt().execute(enigma.compile(histogram), [a], grid=(n + 37, 1, 1), threads=(128, 1, 1), scalars=[n],
                        output_sizes=[64, 64])
    ref = np.bincount(a % 16, minlength=16)
    np.testing.assert_array_equal(np.frombuffer(outs[0], np.uint32), ref)
    np.testing.assert_array_equal(np.frombuffer(outs[1], np.uint32), ref)


@enigma.kernel
def atomics_all(I: enigma.i32, F: enigma.f32, U: enigma.u64, Out: enigma.i32, Fo: enigma.f32, Uo: enigma.u64):
    tid = enigma.thread_position_in_grid
    v = I[tid]
    enigma.atomic_fetch_min(Out, 0, v)
    enigma.atomic_fetch_max(Out, 1, v)
    enigma.atomic_fetch_add(Out, 2, v)
    enigma.atomic_fetch_sub(Out, 3, v)
    enigma.atomic_fetch_or(Out, 4, v & 0xFF)
    enigma.atomic_fetch_xor(Out, 5, v)
    enigma.atomic_fetch_and(Out, 6, v | -256)
    ok = enigma.atomic_compare_exchange_weak(Out, 7, 0, tid + 1)     # exactly one thread wins
    with enigma.if_(ok):
        enigma.atomic_store(Out, 8, 1, order="release")
    old = enigma.atomic_exchange(Out, 9, v)
    enigma.atomic_fetch_add(Out, 10, enigma.where(0, 1, old == old))
    enigma.atomic_fetch_add(Fo, 0, F[tid])
    enigma.atomic_fetch_sub(Fo, 1, F[tid])
    enigma.atomic_fetch_add(Uo, 0, U[tid])
    enigma.atomic_fetch_max(Uo, 1, U[tid])
    enigma.atomic_store(Out, 11 + tid % 2, enigma.atomic_load(Out, 8, order="acquire"))


def test_every_atomic_op():
    n = 4096
    rng = np.random.default_rng(3)
    i = rng.integers(-1000, 1000, n).astype(np.int32)
    f = rng.integers(0, 8, n).astype(np.float32) * 0.5   # exact in any order
    u = rng.integers(0, 2**40, n).astype(np.uint64)
    o, fo, uo = rt().execute(enigma.compile(atomics_all), [i, f, u], grid=(n, 1, 1), threads=(64, 1, 1),
                             output_sizes=[16 * 4, 8, 16])
    o = np.frombuffer(o, np.int32)
    assert o[0] == min(0, i.min()) and o[1] == max(0, i.max())
    assert o[2] == i.sum() and o[3] == -i.sum()
    assert o[4] == np.bitwise_or.reduce(i & 0xFF)
    assert o[5] == np.bitwise_xor.reduce(i)
    assert o[6] == 0 & np.bitwise_and.reduce(i | -256)
    assert 1 <= o[7] <= n and o[8] == 1 and o[10] == n
    assert o[9] in set(i.tolist())
    fo = np.frombuffer(fo, np.float32)
    assert fo[0] == f.sum() and fo[1] == -f.sum()
    uo = np.frombuffer(uo, np.uint64)
    assert uo[0] == u.sum() and uo[1] == u.max()


@enigma.kernel
def tg_atomic_slots(A: enigma.i32, Slot: enigma.u32, Out: enigma.i32):
    # Threadgroup atomics return old values: fetch_add hands out unique slots;
    # min/max/and/or/xor/exchange combine the group's values.
    lid = enigma.thread_index_in_threadgroup()
    g = enigma.threadgroup_position_in_grid("x")
    tid = enigma.thread_position_in_grid
    cnt = enigma.threadgroup_alloc("uint", 1)
    acc = enigma.threadgroup_alloc("int", 8)
    with enigma.if_(lid == 0):
        cnt[0] = 0
        acc[0] = 1 << 30
        acc[1] = -(1 << 30)
        acc[2] = -1
        acc[3] = 0
        acc[4] = 0
        acc[5] = 0
        acc[6] = 0
    enigma.barrier()
    x = A[tid]
    Slot[tid] = enigma.atomic_fetch_add(cnt, 0, 1)
    enigma.atomic_fetch_min(acc, 0, x)
    enigma.atomic_fetch_max(acc, 1, x)
    enigma.atomic_fetch_and(acc, 2, x | 0x100)
    enigma.atomic_fetch_or(acc, 3, x & 0xFF)
    enigma.atomic_fetch_xor(acc, 4, x)
    enigma.atomic_fetch_sub(acc, 5, x)
    enigma.atomic_exchange(acc, 6, 7)
    enigma.barrier()
    with enigma.if_(lid < 7):
        Out[g * 7 + lid] = acc[lid]


def test_threadgroup_atomics_return_and_combine():
    tg, groups = 96, 3
    n = tg * groups - 20                                   # the last group is partial
    a = np.random.default_rng(14).integers(-1000, 1000, n).astype(np.int32)
    slot, out = rt().execute(enigma.compile(tg_atomic_slots), [a], grid=(n, 1, 1), threads=(tg, 1, 1),
                             output_sizes=[n * 4, groups * 7 * 4])
    slot = np.frombuffer(slot, np.uint32)
    out = np.frombuffer(out, np.int32).reshape(groups, 7)
    for g in range(groups):
        s, e = g * tg, min(n, (g + 1) * tg)
        xs = a[s:e]
        assert sorted(slot[s:e].tolist()) == list(range(e - s))
        ref = [xs.min(), xs.max(), np.bitwise_and.reduce(xs | 0x100) & -1, np.bitwise_or.reduce(xs & 0xFF),
               np.bitwise_xor.reduce(xs), -int(xs.sum()), 7]
        np.testing.assert_array_equal(out[g], np.array(ref, np.int64).astype(np.int32))


# ---- simd and quad collectives vs a numpy model -----------------------------------

SIMD_REDUCE = ["sum", "product", "min", "max", "and", "or", "xor"]
SIMD_SCAN = ["prefix_exclusive_sum", "prefix_inclusive_sum", "prefix_exclusive_product",
             "prefix_inclusive_product"]
QUAD_SCAN = ["prefix_exclusive_sum", "prefix_inclusive_sum"]
SHUFFLE = ["shuffle", "shuffle_up", "shuffle_down", "shuffle_xor", "broadcast"]


def op_list(scope, is_int):
    red = SIMD_REDUCE if is_int else SIMD_REDUCE[:4]
    return [f"{scope}_{o}" for o in red + (SIMD_SCAN if scope == "simd" else QUAD_SCAN) + SHUFFLE]


def make_collective_kernel(scope, dtype, is_int):
    ops = op_list(scope, is_int)
    fns = [getattr(enigma, o) for o in ops]

    @enigma.kernel
    def coll(A: dtype, L: enigma.u32, n: enigma.Scalar(enigma.u32), Out: dtype):
        tid = enigma.thread_position_in_grid
        x = A[tid]
        lane = L[tid]
        for k, (name, fn) in enumerate(zip(ops, fns)):
            r = fn(x, lane) if "shuffle" in name or "broadcast" in name else fn(x)
            Out[k * n + tid] = r
    return coll, ops


def model(op, x, lanes, width, tg, n):
    """Reference for one collective over partial threadgroups/simdgroups."""
    out = np.zeros_like(x)
    kind = op.split("_", 1)[1]
    for g0 in range(0, n, tg):
        g1 = min(n, g0 + tg)
        for s0 in range(g0, g1, width):
            s1 = min(g1, s0 + width)
            seg = x[s0:s1]
            for t in range(s0, s1):
                l = t - s0
                d = int(lanes[t])
                if kind in SIMD_REDUCE:
                    f = {"sum": np.add, "product": np.multiply, "min": np.minimum, "max": np.maximum,
                         "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}[kind]
                    out[t] = f.reduce(seg)
                elif kind.startswith("prefix"):
                    f = np.add if kind.endswith("sum") else np.multiply
                    part = seg[:l + 1] if "inclusive" in kind else seg[:l]
                    out[t] = f.reduce(part) if len(part) else (0 if kind.endswith("sum") else 1)
                else:
                    src = {"shuffle": d, "broadcast": d, "shuffle_up": l - d, "shuffle_down": l + d,
                           "shuffle_xor": l ^ d}[kind]
                    ok = 0 <= src < width and s0 + src < s1
                    out[t] = seg[src] if ok else x[t]
    return out


@pytest.mark.parametrize("scope", ["simd", "quad"])
@pytest.mark.parametrize("dt", ["f32", "i32", "u32", "f16", "i16"])
def test_collectives_vs_numpy_on_partial_simdgroups(scope, dt):
    np_dt = {"f32": np.float32, "i32": np.int32, "u32": np.uint32, "f16": np.float16, "i16": np.int16}[dt]
    is_int = dt[0] in "iu"
    width = 32 if scope == "simd" else 4
    n, tg = 230, 80          # groups of 80, 80, 70: simdgroups of 32, 32, 16 and a partial 6-lane one
    rng = np.random.default_rng(4)
    if is_int:
        x = rng.integers(0, 7 if dt[0] == "u" else 7, n).astype(np_dt) - (0 if dt[0] == "u" else np_dt(3))
    else:
        x = (1 + rng.standard_normal(n) * 0.05).astype(np_dt)
    lanes = np.concatenate([rng.integers(0, 40, n - 20), rng.integers(2**31, 2**32, 20)]).astype(np.uint32)
    k, ops = make_collective_kernel(scope, getattr(enigma, dt), is_int)
    out = run(k, [x, lanes], np_dt, n * len(ops), (n, 1, 1), (tg, 1, 1), scalars=[n]).reshape(len(ops), n)
    for row, op in zip(out, ops):
        if is_int:
            with np.errstate(over="ignore"):
                ref = model(op, x, lanes, width, tg, n)
            np.testing.assert_array_equal(row, ref, err_msg=op)
        else:
            ref = model(op, x.astype(np.float64), lanes, width, tg, n).astype(np_dt)
            np.testing.assert_allclose(row.astype(np.float64), ref.astype(np.float64),
                                       rtol=1e-2 if dt == "f16" else 1e-5, err_msg=op)


def make_order_kernel(dt):
    @enigma.kernel
    def red_order(A: dt, u: enigma.Scalar(dt), n: enigma.Scalar(enigma.u32), Out: dt):
        tid = enigma.thread_position_in_grid
        x = A[tid]
        for k, fn in enumerate((enigma.simd_sum, enigma.simd_product, enigma.simd_min, enigma.simd_max,
                                enigma.quad_sum, enigma.quad_product)):
            Out[k * n + tid] = fn(x)
        Out[6 * n + tid] = enigma.simd_sum(u)          # a uniform value
        Out[7 * n + tid] = enigma.simd_product(u)
        Out[8 * n + tid] = x
        with enigma.if_(x > 0.0):                      # divergent: some simdgroups fully active
            Out[8 * n + tid] = enigma.simd_sum(x)
    return red_order


def butterfly(vals, op):
    p = list(vals)
    while len(p) > 1:
        h = len(p) // 2
        p = [op(p[i], p[i + h]) for i in range(h)]
    return p[0]


def lane_by_lane(vals, op, ident):
    acc = np.float32(ident)
    for v in vals:
        acc = op(acc, v)
    return acc


@pytest.mark.parametrize("dt", ["f32", "f16"])
def test_float_reduction_order_is_the_xor_butterfly(dt):
    # Values over many binades, so every association order rounds differently:
    # the result pins the order (docs/cooperative.md), not just the value.
    np_dt = np.float16 if dt == "f16" else np.float32
    n, tg = 230, 80          # simdgroups of 32, 32, 16 per group; the last group 70 threads
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(n) * 4.0 ** rng.integers(-3, 4, n)).astype(np_dt)
    x[:64] = np.abs(x[:64]) + np_dt(0.5)          # two fully active simdgroups under the if
    prod_x = (1 + rng.standard_normal(n) * 0.3).astype(np_dt)
    u = np_dt(1.2345)
    k = make_order_kernel(getattr(enigma, dt))
    out = run(k, [x], np_dt, 9 * n, (n, 1, 1), (tg, 1, 1), scalars=[u, n]).reshape(9, n)
    outp = run(k, [prod_x], np_dt, 9 * n, (n, 1, 1), (tg, 1, 1), scalars=[u, n]).reshape(9, n)
    x32, p32, u32 = x.astype(np.float32), prod_x.astype(np.float32), np.float32(u)
    add, mul = np.add, np.multiply
    ops = [(0, x32, add, 0, 32), (1, p32, mul, 1, 32), (2, x32, np.fmin, np.inf, 32), (3, x32, np.fmax, -np.inf, 32),
           (4, x32, add, 0, 4), (5, p32, mul, 1, 4)]
    for row, vals, op, ident, width in ops:
        got = (outp if vals is p32 else out)[row]
        for g0 in range(0, n, tg):
            g1 = min(n, g0 + tg)
            for s0 in range(g0, g1, width):
                s1 = min(g1, s0 + width)
                seg = vals[s0:s1]
                ref = butterfly(seg, op) if s1 - s0 == width else lane_by_lane(seg, op, ident)
                np.testing.assert_array_equal(got[s0:s1], np.full(s1 - s0, ref.astype(np_dt)),
                                              err_msg=f"row {row}, lanes {s0}..{s1}")
    for g0 in range(0, n, tg):
        for s0 in range(g0, min(n, g0 + tg), 32):
            s1 = min(n, g0 + tg, s0 + 32)
            lanes = s1 - s0
            want_sum = butterfly([u32] * 32, add) if lanes == 32 else lane_by_lane([u32] * lanes, add, 0)
            want_product = butterfly([u32] * 32, mul) if lanes == 32 else lane_by_lane([u32] * lanes, mul, 1)
            assert out[6, s0] == want_sum.astype(np_dt)
            assert out[7, s0] == want_product.astype(np_dt)
            act = x32[s0:s1] > 0
            ref = butterfly(x32[s0:s1], add) if act.all() and lanes == 32 else lane_by_lane(x32[s0:s1][act], add, 0)
            np.testing.assert_array_equal(out[8, s0:s1], np.where(act, ref.astype(np_dt), x[s0:s1]),
                                          err_msg=f"masked sum, lanes {s0}..{s1}")


# ---- thread-strided loops (`for i in range(lid + off, n, step)`) in cooperative kernels ----
# The CPU runs them as passes over the group's threads (the thread loop inside
# the strided one); every thread must still see its own iterations in order.

def make_strided_kernel(dt):
    @enigma.kernel
    def strided(X: dt, n: enigma.Scalar(enigma.u32), step: enigma.Scalar(enigma.u32),
                off: enigma.Scalar(enigma.u32), Out: dt, Cnt: enigma.u32, Y: dt):
        lid = enigma.thread_index_in_threadgroup()
        g = enigma.threadgroup_position_in_grid("x")
        tid = enigma.thread_position_in_grid
        enigma.barrier()
        zero = enigma.metal_cast(0.0, dt)
        with enigma.for_range(lid + off, n, step, dtype="uint", init=[zero, enigma.metal_cast(0, "uint")]) as (i, acc):
            acc[0] = acc[0] * 0.5 + X[g * n + i]          # order-sensitive: pins each thread's order
            acc[1] = acc[1] + 1
        Out[tid] = acc[0]
        Cnt[tid] = acc[1]
        enigma.barrier()
        with enigma.for_range(lid, n, step, dtype="uint") as i:
            Y[g * n + i] = X[g * n + i] * 2.0
    return strided


def strided_model(x, n, step, off, tg, grid, np_dt):
    groups = (grid + tg - 1) // tg
    out = np.zeros(grid, np_dt)
    cnt = np.zeros(grid, np.uint32)
    y = np.zeros(groups * n, np_dt)
    for g in range(groups):
        for t in range(min(tg, grid - g * tg)):
            acc = np_dt(0)
            i, c = t + off, 0
            while step and i < n:
                acc = np_dt(np.float32(acc) * np.float32(0.5) + np.float32(x[g * n + i]))
                i, c = i + step, c + 1
            out[g * tg + t], cnt[g * tg + t] = acc, c
            i = t
            while step and i < n:
                y[g * n + i] = np_dt(np.float32(x[g * n + i]) * np.float32(2.0))
                i += step
    return out, cnt, y


@pytest.mark.parametrize("dt", ["f32", "f16"])
@pytest.mark.parametrize("step,off", [(80, 0), (37, 5), (200, 3), (0, 0)])
def test_thread_strided_loops_in_passes(dt, step, off):
    np_dt = np.float16 if dt == "f16" else np.float32
    n, tg = 1000, 80
    grid = 2 * tg + 50                                   # the last group is partial
    groups = 3
    x = np.random.default_rng(12).standard_normal(groups * n).astype(np_dt)
    k = make_strided_kernel(getattr(enigma, dt))
    ck = enigma.compile(k)
    assert ck.source("cpu").count("en_base <") == 2     # both loops in the passes form
    size = np.dtype(np_dt).itemsize
    outs = rt().execute(ck, [x], grid=(grid, 1, 1), threads=(tg, 1, 1), scalars=[n, step, off],
                        output_sizes=[grid * size, grid * 4, groups * n * size])
    out, cnt, y = (np.frombuffer(o, d) for o, d in zip(outs, (np_dt, np.uint32, np_dt)))
    ref_out, ref_cnt, ref_y = strided_model(x, n, step, off, tg, grid, np_dt)
    np.testing.assert_array_equal(cnt, ref_cnt)
    np.testing.assert_array_equal(out, ref_out)          # bit for bit: the same per-thread order
    covered = np.zeros(groups * n, bool)                 # rows of partial groups: only their threads' columns
    for g in range(groups):
        th = min(tg, grid - g * tg)
        for t in range(th):
            if step:
                covered[g * n + t:(g + 1) * n:step] = True
    np.testing.assert_array_equal(y[covered], ref_y[covered])


@enigma.kernel
def strided_under_divergence(X: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    # A varying if around a simd op (a masked region) holding a strided loop,
    # then a barrier and a strided loop reading what other threads wrote.
    lid = enigma.thread_index_in_threadgroup()
    nth = enigma.threads_per_threadgroup("x")
    g = enigma.threadgroup_position_in_grid("x")
    sh = enigma.threadgroup_alloc("float", 256)
    with enigma.for_range(lid, 256, nth, dtype="uint") as i:
        sh[i] = 0.0
    enigma.barrier()
    with enigma.if_(lid % 3 != 0):
        s = enigma.simd_sum(X[g * n + lid])
        with enigma.for_range(lid, 256, nth, dtype="uint", init=[s]) as (i, acc):
            acc[0] = acc[0] + X[g * n + i]
        sh[lid] = acc[0]
    enigma.barrier()
    with enigma.for_range(lid, 256, nth, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc2):
        acc2[0] = acc2[0] + sh[(i * 7) % 256]
    Out[g * nth + lid] = acc2[0]


def test_strided_loops_around_barriers_and_divergence():
    n, tg, groups = 300, 64, 2
    x = np.random.default_rng(13).integers(-8, 8, groups * n).astype(np.float32)   # exact sums
    out = run(strided_under_divergence, [x], np.float32, groups * tg, (groups * tg, 1, 1), (tg, 1, 1), scalars=[n])
    ref = np.zeros(groups * tg)
    for g in range(groups):
        xs = x[g * n:(g + 1) * n].astype(np.float64)
        sh = np.zeros(256)
        for sg0 in range(0, tg, 32):
            lanes = [t for t in range(sg0, sg0 + 32) if t % 3 != 0]
            s = sum(xs[t] for t in lanes)
            for t in lanes:
                sh[t] = s + sum(xs[i] for i in range(t, 256, tg))
        for t in range(tg):
            ref[g * tg + t] = sum(sh[(i * 7) % 256] for i in range(t, 256, tg))
    np.testing.assert_array_equal(out, ref)


@enigma.kernel
def order_probe(A: enigma.f32, Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    x = A[tid]
    n = enigma.threads_per_grid("x")
    Out[tid] = enigma.simd_sum(x)
    Out[n + tid] = enigma.simd_product(x)
    Out[2 * n + tid] = enigma.quad_sum(x)


def butterfly_model(seg, op):
    """The defined order of a full simdgroup (quad): x[l] = op(x[l], x[l ^ o])
    for o = width/2 .. 1, in float32; every lane ends with the same bits."""
    x = seg.copy()
    o = len(x) // 2
    while o:
        x = op(x, x[np.arange(len(x)) ^ o]).astype(np.float32)
        o //= 2
    assert len(set(x.view(np.uint32))) == 1
    return x[0]


def sequential_model(seg, op):
    acc = seg[0]
    for v in seg[1:]:
        acc = np.float32(op(acc, v))
    return acc


def test_float_reduction_order_bit_for_bit_probe():
    """Bit for bit: full simdgroups and quads reduce in the butterfly order,
    the partial last simdgroup (quad) lane by lane; values of very different
    magnitudes make every order give different bits."""
    n, tg = 100, 100          # simdgroups of 32, 32, 32 and a partial 4-lane one; quads all full
    rng = np.random.default_rng(11)
    a = (rng.standard_normal(n) * 10.0 ** rng.integers(-4, 5, n)).astype(np.float32)
    a[::7] = rng.uniform(0.9, 1.1, len(a[::7])).astype(np.float32)
    out = run(order_probe, [a], np.float32, 3 * n, (n, 1, 1), (tg, 1, 1)).reshape(3, n)
    for k, width, op in ((0, 32, np.add), (1, 32, np.multiply), (2, 4, np.add)):
        want = np.empty(n, np.float32)
        for s0 in range(0, n, width):
            seg = a[s0:s0 + width]
            want[s0:s0 + width] = butterfly_model(seg, op) if len(seg) == width else sequential_model(seg, op)
        np.testing.assert_array_equal(out[k].view(np.uint32), want.view(np.uint32), err_msg=f"{width} {op.__name__}")
    # the probe really tells the orders apart
    seg = a[:32]
    assert butterfly_model(seg, np.add) != sequential_model(seg, np.add)


# ---- simdgroup matrices and gemm ---------------------------------------------------

@enigma.kernel
def mma8(A: enigma.f32, B: enigma.f32, C: enigma.f32, Out: enigma.f32):
    a = enigma.simdgroup_matrix_load(A, 8)
    b = enigma.simdgroup_matrix_load(B, 8, transpose=True)
    c = enigma.simdgroup_matrix_load(C, 8)
    d = enigma.simdgroup_multiply_accumulate(a, b, c)
    enigma.simdgroup_matrix_store(d, Out, 8)


def test_simdgroup_matrix_8x8():
    rng = np.random.default_rng(5)
    A, B, C = (rng.standard_normal((8, 8)).astype(np.float32) for _ in range(3))
    out = run(mma8, [A, B, C], np.float32, 64, (32, 1, 1), (32, 1, 1)).reshape(8, 8)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B.T + C, rtol=1e-5, atol=1e-5)


def fma32(a, b, c):
    """The float32 fused multiply-add a * b + c, rounded once (numpy has no
    fma): the product is exact in float64, the float64 sum's error is exact
    (two-sum), and only a float64 sum exactly halfway between two floats
    needs that error to round the right way."""
    a, b, c = np.broadcast_arrays(*(np.asarray(x, np.float32) for x in (a, b, c)))
    p = a.astype(np.float64) * b.astype(np.float64)
    s = p + c.astype(np.float64)
    bp = s - p
    err = (p - (s - bp)) + (c.astype(np.float64) - bp)
    r = s.astype(np.float32)
    r64 = r.astype(np.float64)
    other = np.nextafter(r, np.where(s > r64, np.float32(np.inf), np.float32(-np.inf)))
    halfway = (s != r64) & (s == (r64 + other.astype(np.float64)) / 2)
    toward_other = np.sign(err) == np.sign(other.astype(np.float64) - r64)
    return np.where(halfway & (err != 0) & toward_other, other, r).astype(np.float32)


def test_fma32_model():
    """The test model itself: against exact rational arithmetic."""
    from fractions import Fraction
    rng = np.random.default_rng(3)
    a, b, c = (rng.standard_normal(2000).astype(np.float32) for _ in range(3))
    a[:4], b[:4], c[:4] = 1 + 2.0 ** -12, 1 + 2.0 ** -12, -(1 + 2.0 ** -11)   # exact result 2^-24
    got = fma32(a, b, c)
    for x, y, z, g in zip(a, b, c, got):
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        lo = np.float32(float(exact))
        cands = [lo, np.nextafter(lo, np.float32(np.inf)), np.nextafter(lo, np.float32(-np.inf))]
        best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact), int(np.float32(v).view(np.uint32)) & 1))
        assert g == best, (x, y, z, g, best)


def make_mma_probe(elem, through_threadgroup):
    """Each simdgroup: D = A @ B^T + C on its own 8x8 tiles (A staged
    through threadgroup memory or read from the buffer)."""
    dt = {"float": enigma.f32, "half": enigma.f16, "bfloat": enigma.bf16}[elem]

    @enigma.kernel
    def mma_probe(A: dt, B: dt, C: enigma.f32, Out: enigma.f32):
        sg = enigma.simdgroup_index_in_threadgroup()
        tile = (enigma.threadgroup_position_in_grid("x") * enigma.simdgroups_per_threadgroup() + sg) * 64
        if through_threadgroup:
            sh = enigma.threadgroup_alloc(elem, 64 * 4)
            lane = enigma.thread_index_in_simdgroup()
            sh[sg * 64 + lane] = A[tile + lane]
            sh[sg * 64 + lane + 32] = A[tile + lane + 32]
            enigma.barrier()
            a = enigma.simdgroup_matrix_load(sh, 8, origin=sg * 64)
        else:
            a = enigma.simdgroup_matrix_load(A, 8, origin=tile)
        b = enigma.simdgroup_matrix_load(B, 8, origin=tile, transpose=True)
        c = enigma.simdgroup_matrix_load(C, 8, origin=tile)
        enigma.simdgroup_matrix_store(enigma.simdgroup_multiply_accumulate(a, b, c), Out, 8, origin=tile)
    return mma_probe


@pytest.mark.parametrize("elem", ["float", "half", "bfloat"])
@pytest.mark.parametrize("through_threadgroup", [False, True])
def test_simdgroup_mma_full_simdgroups(elem, through_threadgroup):
    """Full simdgroups (the CUDA device's tensor-core variant): f32 exactly
    in the defined order (c, then fma(a[r][k], b[k][c], .) for k = 0..7, in float);
    half/bfloat within the accumulation tolerance of docs/cooperative.md."""
    import ml_dtypes
    np_dt = {"float": np.float32, "half": np.float16, "bfloat": ml_dtypes.bfloat16}[elem]
    tiles, tg = 8, 128                       # 2 threadgroups of 4 full simdgroups
    rng = np.random.default_rng(12)
    A, B = (rng.standard_normal((tiles, 8, 8)).astype(np_dt) for _ in range(2))
    C = rng.standard_normal((tiles, 8, 8)).astype(np.float32)
    out = run(make_mma_probe(elem, through_threadgroup), [A, B, C], np.float32, tiles * 64, (tiles * 32, 1, 1),
              (tg, 1, 1)).reshape(tiles, 8, 8)
    a32, b32 = A.astype(np.float32), B.astype(np.float32)
    if elem == "float":
        want = C.copy()
        for k in range(8):
            want = fma32(a32[:, :, k:k + 1], b32[:, :, k][:, None, :], want)
        np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    else:
        ref = a32.astype(np.float64) @ b32.astype(np.float64).transpose(0, 2, 1) + C
        scale = np.abs(a32).astype(np.float64) @ np.abs(b32).astype(np.float64).transpose(0, 2, 1) + np.abs(C)
        assert np.all(np.abs(out - ref) <= 2.0 ** -18 * scale), np.max(np.abs(out - ref) / scale)


@pytest.mark.parametrize("elem", ["half", "bfloat"])
def test_simdgroup_products_sharing_b(elem):
    """Two products with the same B side by side (one tensor-core instruction
    on CUDA serves both), and a third that reads the second's result."""
    import ml_dtypes
    dt = {"half": enigma.f16, "bfloat": enigma.bf16}[elem]
    np_dt = {"half": np.float16, "bfloat": ml_dtypes.bfloat16}[elem]

    @enigma.kernel
    def shared_b(A: dt, B: dt, C: enigma.f32, Out: enigma.f32):
        b = enigma.simdgroup_matrix_load(B, 8)
        a0 = enigma.simdgroup_matrix_load(A, 8)
        a1 = enigma.simdgroup_matrix_load(A, 8, origin=64)
        c0 = enigma.simdgroup_matrix_load(C, 8)
        c1 = enigma.simdgroup_matrix_load(C, 8, origin=64)
        d0 = enigma.simdgroup_multiply_accumulate(a0, b, c0)
        d1 = enigma.simdgroup_multiply_accumulate(a1, b, c1)
        d2 = enigma.simdgroup_multiply_accumulate(a0, b, d1)
        for k, d in enumerate((d0, d1, d2)):
            enigma.simdgroup_matrix_store(d, Out, 8, origin=64 * k)

    rng = np.random.default_rng(13)
    A = rng.standard_normal((2, 8, 8)).astype(np_dt)
    B = rng.standard_normal((8, 8)).astype(np_dt)
    C = rng.standard_normal((2, 8, 8)).astype(np.float32)
    src = enigma.compile(shared_b, emit_only=True)._core.source("cuda", matrix_fragments=True)
    assert src.count("en_mma2_") == 3 and src.count("(en_d, ") == 2   # two helpers; d0 with d1, d2 alone
    out = run(shared_b, [A, B, C], np.float32, 3 * 64, (32, 1, 1), (32, 1, 1)).reshape(3, 8, 8)
    a, b = A.astype(np.float64), B.astype(np.float64)
    refs = [a[0] @ b + C[0], a[1] @ b + C[1], a[0] @ b + a[1] @ b + C[1]]
    scales = [np.abs(a[0]) @ np.abs(b) + np.abs(C[0]), np.abs(a[1]) @ np.abs(b) + np.abs(C[1]),
              np.abs(a[0]) @ np.abs(b) + np.abs(a[1]) @ np.abs(b) + np.abs(C[1])]
    for got, ref, scale in zip(out, refs, scales):
        assert np.all(np.abs(got - ref) <= 2.0 ** -17 * scale), np.max(np.abs(got - ref) / scale)


def make_tiled_gemm(T, half):
    dt = enigma.f16 if half else enigma.f32

    @enigma.kernel
    def gemm_k(A: dt, B: dt, n: enigma.Scalar(enigma.u32), Cout: enigma.f32):
        # Cout = A @ B: T x T output tile per threadgroup, K loop through
        # threadgroup memory, simdgroup-matrix gemm accumulating into a
        # threadgroup C tile.
        gx = enigma.threadgroup_position_in_grid("x")
        gy = enigma.threadgroup_position_in_grid("y")
        lid = enigma.thread_index_in_threadgroup()
        nth = enigma.threads_per_threadgroup("x") * enigma.threads_per_threadgroup("y")
        As = enigma.threadgroup_alloc(dt, T * 8)
        Bs = enigma.threadgroup_alloc(dt, 8 * T)
        Cs = enigma.threadgroup_alloc("float", T * T)
        Ah = enigma.threadgroup_alloc("float", T * 8) if half else None
        with enigma.for_range(lid, T * T, nth, dtype="uint") as i:
            Cs[i] = 0.0
        with enigma.for_range(0, n, 8, dtype="uint") as k0:
            enigma.barrier()
            with enigma.for_range(lid, T * 8, nth, dtype="uint") as i:
                As[i] = A[(gy * T + i // 8) * n + k0 + i % 8]
                Bs[i] = B[(k0 + i // T) * n + gx * T + i % T]
            enigma.gemm(As, Bs, Cs, M=T, N=T, K=8)
        enigma.barrier()
        with enigma.for_range(lid, T * T, nth, dtype="uint") as i:
            Cout[(gy * T + i // T) * n + gx * T + i % T] = Cs[i]
    return gemm_k


@pytest.mark.parametrize("T,half", [(8, False), (16, False), (16, True)])
def test_tiled_simdgroup_gemm(T, half):
    n = 48
    rng = np.random.default_rng(6)
    np_dt = np.float16 if half else np.float32
    A = rng.standard_normal((n, n)).astype(np_dt)
    B = rng.standard_normal((n, n)).astype(np_dt)
    out = run(make_tiled_gemm(T, half), [A, B], np.float32, n * n, (n // T * 64, n // T, 1), (64, 1, 1),
              scalars=[n]).reshape(n, n)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B.astype(np.float64), rtol=2e-3 if half else 1e-4,
                               atol=2e-2 if half else 1e-4)


class Regs:
    """A minimal per-thread register tile for gemm's scalar path."""
    def __init__(self, M, N):
        self.shape = (M, N)
        self.v = {(m, n): 0.0 for m in range(M) for n in range(N)}

    def __getitem__(self, k):
        return self.v[k]

    def __setitem__(self, k, x):
        self.v[k] = x


@enigma.kernel
def gemm_scalar(A: enigma.f32, B: enigma.f32, Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    C = Regs(2, 3)
    enigma.gemm(A, B, C, M=2, N=3, K=4, a_offset=tid * 0, use_simdgroup=False)
    enigma.gemm(A, B, C, M=2, N=3, K=4, use_simdgroup=False)          # accumulates
    for m in range(2):
        for n in range(3):
            Out[tid * 6 + m * 3 + n] = C[m, n]


def test_gemm_scalar_path_accumulates():
    A = np.arange(8, dtype=np.float32).reshape(2, 4)
    B = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = run(gemm_scalar, [A, B], np.float32, 12, (2, 1, 1), (2, 1, 1)).reshape(2, 2, 3)
    np.testing.assert_array_equal(out[0], 2 * A @ B)
    np.testing.assert_array_equal(out[1], 2 * A @ B)


# ---- RMSNorm ------------------------------------------------------------------------

@enigma.kernel
def rmsnorm(X: enigma.f32, W: enigma.f32, n: enigma.Scalar(enigma.u32), Y: enigma.f32):
    row = enigma.threadgroup_position_in_grid("x")
    lid = enigma.thread_index_in_threadgroup()
    nth = enigma.threads_per_threadgroup("x")
    lane = enigma.thread_index_in_simdgroup()
    sg = enigma.simdgroup_index_in_threadgroup()
    red = enigma.threadgroup_alloc("float", 32)
    total = enigma.threadgroup_alloc("float", 1)
    ss = 0.0
    for i in enigma.range_constexpr(1):
        pass
    with enigma.for_range(lid, n, nth, dtype="uint", init=[0.0]) as (i, acc):
        x = X[row * n + i]
        acc[0] = acc[0] + x * x
    ss = enigma.simd_sum(acc[0])
    with enigma.if_(lane == 0):
        red[sg] = ss
    enigma.barrier()
    with enigma.if_(lid == 0):
        with enigma.for_range(0, enigma.simdgroups_per_threadgroup(), dtype="uint", init=[0.0]) as (j, t):
            t[0] = t[0] + red[j]
        total[0] = t[0]
    enigma.barrier()
    scale = 1.0 / enigma.metal_cast(n, "float")
    inv = 1.0 / enigma_sqrt(total[0] * scale + 1e-6)
    with enigma.for_range(lid, n, nth, dtype="uint") as i:
        Y[row * n + i] = X[row * n + i] * inv * W[i]


def enigma_sqrt(x):
    # sqrt lives in the math catalogue of another change; Newton steps keep
    # this test independent of it.
    y = x
    r = enigma.where(1.0, x, x > 1.0)
    with enigma.for_range(0, 30, init=[r]) as (k, c):
        c[0] = 0.5 * (c[0] + y / c[0])
    return c[0]


def test_rmsnorm():
    rows, n = 7, 1000
    rng = np.random.default_rng(7)
    X = rng.standard_normal((rows, n)).astype(np.float32)
    W = rng.standard_normal(n).astype(np.float32)
    out = run(rmsnorm, [X, W], np.float32, rows * n, (rows * 128, 1, 1), (128, 1, 1), scalars=[n]).reshape(rows, n)
    Xd = X.astype(np.float64)
    ref = Xd / np.sqrt((Xd ** 2).mean(1, keepdims=True) + 1e-6) * W
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# ---- async copies ------------------------------------------------------------------

@enigma.kernel
def async_tiles(A: enigma.f32, Out: enigma.f32):
    g = enigma.threadgroup_position_in_grid("x")
    lid = enigma.thread_index_in_threadgroup()
    t1 = enigma.threadgroup_alloc("float", 64)
    t2 = enigma.threadgroup_alloc("float", 32)
    e1 = enigma.async_copy_1d_d2t(t1, 0, A, g * 64, 64)
    e2 = enigma.async_copy_2d_d2t(t2, 0, 8, A, g * 64 + 2, 16, 8, 4)   # a 4x8 tile with pitch 16
    enigma.async_copy_wait([e1, e2])
    enigma.barrier()
    t1[lid] = t1[lid] * 2.0
    enigma.barrier()
    e3 = enigma.async_copy_1d_t2d(Out, g * 96, t1, 0, 64)
    e4 = enigma.async_copy_2d_t2d(Out, g * 96 + 64, 8, t2, 0, 8, 8, 4)
    enigma.async_copy_wait(e3, e4)


def test_async_copies_1d_and_2d():
    a = np.arange(3 * 64, dtype=np.float32)
    out = run(async_tiles, [a], np.float32, 3 * 96, (3 * 64, 1, 1), (64, 1, 1)).reshape(3, 96)
    for g in range(3):
        blk = a[g * 64:(g + 1) * 64]
        np.testing.assert_array_equal(out[g, :64], blk * 2)
        np.testing.assert_array_equal(out[g, 64:], blk[2:].reshape(-1)[: 4 * 16].reshape(4, 16)[:, :8].ravel()
                                      if False else np.concatenate([blk[2 + 16 * r: 2 + 16 * r + 8] for r in range(4)]))


def test_async_copy_legacy_aliases_and_no_device_query():
    @enigma.kernel
    def legacy(A: enigma.f32, Out: enigma.f32):
        lid = enigma.thread_index_in_threadgroup()
        t = enigma.threadgroup_alloc("float", 32)
        tok = enigma.async_copy_to_threadgroup("A", t, 32, src_offset=0)   # source first, names accepted
        assert enigma.async_copy_commit(tok) is None
        enigma.async_copy_wait(tok)
        enigma.barrier()
        Out[lid] = t[31 - lid]
    a = np.arange(32, dtype=np.float32)
    np.testing.assert_array_equal(run(legacy, [a], np.float32, 32, (32, 1, 1), (32, 1, 1)), a[::-1])
    with pytest.raises(enigma.EnigmaError, match="Tensor/buffer-name"):
        @enigma.kernel
        def bad(A: enigma.f32, Out: enigma.f32):
            enigma.async_copy_1d_d2t(3, 0, A, 0, 4)
        enigma.compile(bad, emit_only=True)


# ---- tile helpers: copy, pipeline ----------------------------------------------------

@enigma.kernel
def copy_helpers(A: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    with enigma.if_(tid == 0):
        enigma.copy(A, Out, 16, coalesced_width=4)
        enigma.copy(A, Out, 40, src_offset=16, dst_offset=16, mask_fn=lambda i: i + 16 < n)


def test_copy_helpers_masked_loads_stay_in_bounds():
    n = 30
    a = np.arange(n, dtype=np.float32) + 1
    out = run(copy_helpers, [a], np.float32, 64, (1, 1, 1), (1, 1, 1), scalars=[n], debug=True)
    np.testing.assert_array_equal(out[:n], a)
    assert not out[n:].any()
    with pytest.raises(enigma.EnigmaError, match="coalesced_width"):
        @enigma.kernel
        def bad(A: enigma.f32, Out: enigma.f32):
            enigma.copy(A, Out, 4, coalesced_width=3)
        enigma.compile(bad, emit_only=True)


def test_pipeline_rotation_is_trace_time():
    @enigma.kernel
    def pipe(A: enigma.f32, Out: enigma.f32):
        lid = enigma.thread_index_in_threadgroup()
        p = enigma.pipeline("float", 32, stages=3)
        for s in range(3):                       # Python loop: rotates per stage
            p.back()[lid] = A[lid] + s
            p.advance()
        enigma.barrier()
        Out[lid] = p.stage(0)[lid] * 100 + p.stage(1)[lid] * 10 + p.stage(2)[lid]
    a = np.zeros(32, np.float32)
    out = run(pipe, [a], np.float32, 32, (32, 1, 1), (32, 1, 1))
    assert out[0] == 1 * 100 + 2 * 10 + 0   # stage k = buffer (phase + k) % 3, written at stage 2
    with pytest.raises(enigma.EnigmaError, match="swap"):
        @enigma.kernel
        def bad(Out: enigma.f32):
            enigma.pipeline("float", 4, stages=3).swap()
        enigma.compile(bad, emit_only=True)


# ---- uniformity: compile-time and run-time errors ----------------------------------

def test_barrier_under_divergent_if_is_a_compile_error_with_location():
    @enigma.kernel
    def bad(A: enigma.f32, Out: enigma.f32):
        tid = enigma.thread_position_in_grid
        with enigma.if_(tid < 5):
            enigma.barrier()
        Out[tid] = A[tid]
    with pytest.raises(enigma.EnigmaError, match=r"test_cooperative\.py:\d+: kernel 'bad': barrier:.*differs"):
        enigma.compile(bad, emit_only=True)


def test_barrier_in_loop_with_divergent_bounds_is_a_compile_error():
    @enigma.kernel
    def bad(A: enigma.u32, Out: enigma.f32):
        tid = enigma.thread_position_in_grid
        with enigma.for_range(0, A[tid], dtype="uint") as i:
            enigma.barrier()
        Out[tid] = A[tid]
    with pytest.raises(enigma.EnigmaError, match=r"test_cooperative\.py:\d+.*barrier.*for_range bounds"):
        enigma.compile(bad, emit_only=True)


@enigma.kernel
def racy_bound(N: enigma.u32, Out: enigma.f32):
    # The bound is read at a uniform index, so it passes the compile-time
    # analysis; but thread 0 updates it without a barrier (a race), so the
    # threads disagree at run time: the dispatch must fail cleanly, not hang.
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    k = N[0]
    with enigma.if_(lid == 0):
        N[0] = k + N[1]
    with enigma.for_range(0, k, dtype="uint") as i:
        enigma.barrier()
    Out[tid] = 1.0


def test_divergent_loop_bounds_fail_the_dispatch(is_cpu):
    if not is_cpu:
        pytest.skip("the run-time agreement check of barrier loop bounds is a CPU-backend feature; "
                    "on a GPU such a race deadlocks as in Metal (docs/cooperative.md)")
    ck = enigma.compile(racy_bound)
    out = np.frombuffer(rt().execute(ck, [np.array([3, 0], np.uint32)], 64 * 4, (64, 1, 1), (64, 1, 1)), np.float32)
    assert (out == 1.0).all()       # no disagreement: runs
    with pytest.raises(RuntimeError,
                       match=r"(?s)test_cooperative\.py:\d+: the bounds.*differ between the threads.*racy_bound"):
        rt().execute(ck, [np.array([3, 1], np.uint32)], 64 * 4, (64, 1, 1), (64, 1, 1))
    out = np.frombuffer(rt().execute(ck, [np.array([2, 0], np.uint32)], 64 * 4, (64, 1, 1), (64, 1, 1)), np.float32)
    assert (out == 1.0).all()       # the runtime stays usable


def test_barrier_reached_by_some_threads_fails_at_run_time():
    @enigma.kernel
    def sneaky(F: enigma.u32, Out: enigma.u32):
        tid = enigma.thread_position_in_grid
        flag = enigma.atomic_load(F, tid % 2)   # varying: masked branch
        with enigma.if_(flag == 1):
            s = enigma.simd_sum(flag)           # fine: active lanes only
            Out[tid] = s
        with enigma.if_(F[0] == 1):             # uniform by analysis
            enigma.barrier()
            Out[tid] = 7
    ck = enigma.compile(sneaky)
    out = np.frombuffer(rt().execute(ck, [np.array([1, 1], np.uint32)], 64 * 4, (64, 1, 1), (64, 1, 1)), np.uint32)
    assert (out == 7).all()
    out = np.frombuffer(rt().execute(ck, [np.array([0, 1], np.uint32)], 64 * 4, (64, 1, 1), (64, 1, 1)), np.uint32)
    np.testing.assert_array_equal(out, np.where(np.arange(64) % 2 == 1, 32 // 2, 0))


def test_unknown_mem_flags_and_orders_are_errors():
    @enigma.kernel
    def bad(Out: enigma.f32):
        enigma.barrier("mem_everything")
    with pytest.raises(enigma.EnigmaError, match="mem_flags"):
        enigma.compile(bad, emit_only=True)

    @enigma.kernel
    def bad2(Out: enigma.u32):
        enigma.atomic_fetch_add(Out, 0, 1, order="sometimes")
    with pytest.raises(enigma.EnigmaError, match="memory order"):
        enigma.compile(bad2, emit_only=True)

    @enigma.kernel
    def bad3(Out: enigma.f32):
        enigma.atomic_fetch_max(Out, 0, 1.0)
    with pytest.raises(enigma.EnigmaError, match="atomics need"):
        enigma.compile(bad3, emit_only=True)

    @enigma.kernel
    def bad4(Out: enigma.f32):
        enigma.simd_and(Out[0])
    with pytest.raises(enigma.EnigmaError, match="simd_and"):
        enigma.compile(bad4, emit_only=True)


def test_threadgroup_memory_limit_is_validated():
    @enigma.kernel
    def big(Out: enigma.f32):
        t = enigma.threadgroup_alloc("float", 1 << 20)
        t[0] = 1.0
        Out[0] = t[0]
    ck = enigma.compile(big, emit_only=True)
    with pytest.raises(RuntimeError, match=r"big.*4194304 bytes of threadgroup memory.*allows \(\d+"):
        rt().execute(ck, [], 4, (1, 1, 1), (1, 1, 1))


def test_capabilities_report_m3_features():
    caps = rt().device_capabilities()
    assert caps.supports_async_copy and caps.supports_simdgroup_matrix and caps.is_m3_or_newer
    caps.require_m3("async copy")


# ---- the MSL contract ------------------------------------------------------------------

def test_msl_spellings():
    msl = enigma.compile(block_sum, emit_only=True).metal_source
    body = msl[msl.index("kernel void"):]
    assert body.index("threadgroup float _shared0[32];") < body.index("simd_sum(")   # hoisted to kernel scope
    assert "threadgroup_barrier(mem_flags::mem_threadgroup);" in msl
    assert "air.simdgroup_async_copy_1d" not in msl
    msl = enigma.compile(async_tiles, emit_only=True).metal_source
    for name in ("air.simdgroup_async_copy_1d.p3i8.p1i8", "air.simdgroup_async_copy_1d.p1i8.p3i8",
                 "air.simdgroup_async_copy_2d.p3i8.p1i8", "air.simdgroup_async_copy_2d.p1i8.p3i8",
                 "air.wait_simdgroup_events", "struct _enigma_async_event_t"):
        assert msl.index(name) < msl.index("kernel void")
    ck = enigma.compile(mma8, emit_only=True)
    for s in ("enigma.simdgroup_matrix_load", "enigma.simdgroup_matrix_store", "enigma.simdgroup_multiply_accumulate",
              "vector<8x8xf32>"):
        assert s in ck.ir_source
    assert "simdgroup_multiply_accumulate(" in ck.metal_source
    msl = enigma.compile(histogram, emit_only=True).metal_source
    assert "atomic_fetch_add_explicit(reinterpret_cast<threadgroup atomic_uint*>" in msl
    assert "atomic_fetch_add_explicit(reinterpret_cast<device atomic_uint*>" in msl


@enigma.kernel
def masked_patterns(A: enigma.f32, Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    sg = enigma.simdgroup_index_in_threadgroup()
    lane = enigma.thread_index_in_simdgroup()
    x = A[tid]
    with enigma.if_(sg == 1):              # one simdgroup: a known range of threads
        s = enigma.simd_sum(x)
        with enigma.if_(lane == 3):        # strided: every 32nd thread
            Out[tid] = s
    with enigma.if_(lid == 5):             # a single thread: its simdgroup has one active lane
        Out[tid] = enigma.simd_sum(x) + 1000.0
    with enigma.if_(x > 0.5):              # data-dependent mask, nested known range
        with enigma.if_(sg == 0):
            Out[tid] = enigma.simd_max(x) + 2000.0


def test_masked_regions_combine_active_lanes_only():
    n, tg = 200, 80
    x = np.random.default_rng(9).random(n).astype(np.float32)
    out = run(masked_patterns, [x], np.float32, n, (n, 1, 1), (tg, 1, 1))
    ref = np.zeros(n)
    for g0 in range(0, n, tg):
        g1 = min(n, g0 + tg)
        for t in range(g0, g1):
            l = t - g0
            sg, lane = l // 32, l % 32
            if sg == 1 and lane == 3:
                ref[t] = x[g0 + 32:min(g1, g0 + 64)].astype(np.float64).sum()
            if l == 5:
                ref[t] = x[t] + 1000.0
            if x[t] > 0.5 and sg == 0:
                seg = x[g0:min(g1, g0 + 32)]
                ref[t] = seg[seg > 0.5].max() + 2000.0
    np.testing.assert_allclose(out, ref, rtol=1e-5)


# ---- simdgroup-matrix K loops (the CPU runs them per simdgroup, register-blocked) ----

def fma_gemm_model(A, B, C0, sg_k=8):
    """C0 + A @ B in the defined order: for each element, one float32 fused
    multiply-add per k, k ascending (A, B float32 arrays)."""
    want = C0.astype(np.float32).copy()
    for k in range(A.shape[1]):
        want = fma32(A[:, k:k + 1], B[k:k + 1, :], want)
    return want


def make_kloop_gemm(elem, acc_elem, MI, NJ, guard):
    """Each simdgroup accumulates an (8 MI) x (8 NJ) block of C = A @ B over
    K in steps of 8 straight from device memory; simdgroups side by side
    along N, threadgroups tile M. `guard`: a simdgroup whose block starts
    past M or N skips the loop (control flow that splits the threadgroup)."""
    dt = {"float": enigma.f32, "half": enigma.f16, "bfloat": enigma.bf16}[elem]
    cdt = {"float": enigma.f32, "half": enigma.f16}[acc_elem]

    @enigma.kernel
    def kloop(A: dt, B: dt, M: enigma.Scalar(enigma.u32), N: enigma.Scalar(enigma.u32),
              K: enigma.Scalar(enigma.u32), C: cdt):
        sg = enigma.simdgroup_index_in_threadgroup()
        r0 = enigma.threadgroup_position_in_grid("y") * (8 * MI)
        c0 = (enigma.threadgroup_position_in_grid("x") * enigma.simdgroups_per_threadgroup() + sg) * (8 * NJ)
        z = enigma.make_filled_simdgroup_matrix(0.0, elem=acc_elem)

        def body():
            with enigma.for_range(0, K, 8, dtype="uint", init=[z] * (MI * NJ)) as (k, acc):
                a = [enigma.simdgroup_matrix_load(A, K, origin=(r0 + 8 * i) * K + k) for i in range(MI)]
                b = [enigma.simdgroup_matrix_load(B, N, origin=k * N + c0 + 8 * j) for j in range(NJ)]
                for i in range(MI):
                    for j in range(NJ):
                        acc[i * NJ + j] = enigma.simdgroup_multiply_accumulate(a[i], b[j], acc[i * NJ + j])
            for i in range(MI):
                for j in range(NJ):
                    enigma.simdgroup_matrix_store(acc[i * NJ + j], C, N, origin=(r0 + 8 * i) * N + c0 + 8 * j)

        if guard:
            with enigma.if_((r0 < M) & (c0 < N)):
                body()
        else:
            body()
    return kloop


@pytest.mark.parametrize("MI,NJ,debug", [(1, 1, None), (2, 2, None), (3, 2, None), (2, 3, None), (1, 2, None),
                                         (2, 2, True)])
def test_simdgroup_kloop_gemm_exact(MI, NJ, debug):
    """f32: bit for bit the defined order (fma per k, k ascending through
    the whole K loop), whatever the grid of products per simdgroup (and in
    debug mode, where every access is checked and reported)."""
    M, N, K = 8 * MI * 2, 8 * NJ * 3, 72
    rng = np.random.default_rng(21)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    kern = make_kloop_gemm("float", "float", MI, NJ, False)
    assert "en_mblk_mma(" in enigma.compile(kern).source("cpu")     # the CPU's register blocks
    out = run(kern, [A, B], np.float32, M * N, (3 * 32, 2, 1), (3 * 32, 1, 1), scalars=[M, N, K],
              debug=debug).reshape(M, N)
    want = fma_gemm_model(A, B, np.zeros((M, N), np.float32))
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    np.testing.assert_allclose(out, A.astype(np.float64) @ B, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("elem", ["half", "bfloat"])
def test_simdgroup_kloop_gemm_16bit(elem):
    """16-bit tiles accumulated in float: exact products, so the fused order
    equals multiply-then-add; within the documented tolerance of a float64
    reference (tensor cores on CUDA)."""
    import ml_dtypes
    np_dt = {"half": np.float16, "bfloat": ml_dtypes.bfloat16}[elem]
    M, N, K = 32, 32, 64
    rng = np.random.default_rng(22)
    A = rng.standard_normal((M, K)).astype(np_dt)
    B = rng.standard_normal((K, N)).astype(np_dt)
    out = run(make_kloop_gemm(elem, "float", 2, 2, False), [A, B], np.float32, M * N, (2 * 32, 2, 1), (2 * 32, 1, 1),
              scalars=[M, N, K]).reshape(M, N)
    a, b = A.astype(np.float64), B.astype(np.float64)
    scale = np.abs(a) @ np.abs(b)
    assert np.all(np.abs(out - a @ b) <= 2.0 ** -17 * scale * (K // 8)), np.max(np.abs(out - a @ b) / scale)


def test_simdgroup_kloop_half_accumulator():
    """A half accumulator: each product rounds to half (no register block)."""
    M, N, K = 16, 16, 32
    rng = np.random.default_rng(23)
    A = (rng.standard_normal((M, K)) / 4).astype(np.float16)
    B = (rng.standard_normal((K, N)) / 4).astype(np.float16)
    out = run(make_kloop_gemm("half", "half", 2, 2, False), [A, B], np.float16, M * N, (32, 1, 1), (32, 1, 1),
              scalars=[M, N, K]).reshape(M, N).astype(np.float32)
    want = np.zeros((M, N), np.float16)
    a32, b32 = A.astype(np.float32), B.astype(np.float32)
    for k0 in range(0, K, 8):   # per product: float accumulation of 8 exact products, one rounding to half
        acc = want.astype(np.float32)
        for k in range(k0, k0 + 8):
            acc = fma32(a32[:, k:k + 1], b32[k:k + 1, :], acc)
        want = acc.astype(np.float16)
    np.testing.assert_allclose(out, want.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_simdgroup_kloop_ragged_partial_groups():
    """Ragged M and N (not multiples of a block), a guard that skips the
    simdgroups past them, and partial threadgroups (96 threads, the edge
    group smaller): the blocks that exist are exact; the rest stays zero."""
    MI, NJ = 2, 2
    M, N, K = 48, 40, 40                     # 3 block rows, 2.5 block columns
    rng = np.random.default_rng(24)
    A = rng.standard_normal((M + 16, K)).astype(np.float32)     # rows past M exist (the guard is per block)
    B = rng.standard_normal((K, N + 16)).astype(np.float32)
    Npad = N + 16
    out = run(make_kloop_gemm("float", "float", MI, NJ, True), [A, B], np.float32, (M + 16) * Npad,
              (80, 3, 1), (96, 1, 1), scalars=[M, Npad, K]).reshape(M + 16, Npad)
    # Threadgroup x = 0 has 3 simdgroups (columns 0-47), x = 1 is the 80 - 96 edge... (grid 80 threads: one group,
    # 80 threads: simdgroups 0, 1 full and 2 partial (16 lanes)): columns 0..47.
    want = fma_gemm_model(A[:M], B[:, :48], np.zeros((M, 48), np.float32))
    np.testing.assert_array_equal(out[:M, :48].view(np.uint32), want.view(np.uint32))
    assert not out[:, 48:].any() and not out[M:].any()


def test_simdgroup_kloop_chain_and_swap():
    """Two products into one accumulator per iteration, and carried matrices
    that swap each iteration: no register block, same defined order."""
    @enigma.kernel
    def chain(A: enigma.f32, B: enigma.f32, K: enigma.Scalar(enigma.u32), C: enigma.f32):
        z = enigma.make_filled_simdgroup_matrix(0.0)
        with enigma.for_range(0, K, 16, dtype="uint", init=[z, z]) as (k, acc):
            a0 = enigma.simdgroup_matrix_load(A, K, origin=k)
            a1 = enigma.simdgroup_matrix_load(A, K, origin=k + 8)
            b0 = enigma.simdgroup_matrix_load(B, 8, origin=k * 8)
            b1 = enigma.simdgroup_matrix_load(B, 8, origin=(k + 8) * 8)
            s = enigma.simdgroup_multiply_accumulate(a1, b1, enigma.simdgroup_multiply_accumulate(a0, b0, acc[0]))
            acc[0] = acc[1]
            acc[1] = s
        enigma.simdgroup_matrix_store(acc[0], C, 8)
        enigma.simdgroup_matrix_store(acc[1], C, 8, origin=64)

    src = enigma.compile(chain).source("cpu")
    assert "en_mblk" not in src.split("enigma_kernel")[1] and "en_mat_mma<0>(" in src
    K = 64
    rng = np.random.default_rng(25)
    A = rng.standard_normal((8, K)).astype(np.float32)
    B = rng.standard_normal((K, 8)).astype(np.float32)
    out = run(chain, [A, B], np.float32, 128, (32, 1, 1), (32, 1, 1), scalars=[K]).reshape(2, 8, 8)
    accs = [np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32)]
    for k0 in range(0, K, 16):
        s = fma_gemm_model(A[:, k0:k0 + 16], B[k0:k0 + 16], accs[0])
        accs = [accs[1], s]
    for got, want in zip(out, accs):
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_simdgroup_kloop_with_barriers():
    """A K loop that stages tiles through threadgroup memory with barriers
    (the group-level path): exact against the model too."""
    @enigma.kernel
    def staged(A: enigma.f32, B: enigma.f32, K: enigma.Scalar(enigma.u32), C: enigma.f32):
        lid = enigma.thread_index_in_threadgroup()
        sg = enigma.simdgroup_index_in_threadgroup()
        As = enigma.threadgroup_alloc("float", 16 * 8)
        Bs = enigma.threadgroup_alloc("float", 8 * 16)
        z = enigma.make_filled_simdgroup_matrix(0.0)
        with enigma.for_range(0, K, 8, dtype="uint", init=[z]) as (k, acc):
            enigma.barrier()
            with enigma.for_range(lid, 128, 64, dtype="uint") as i:
                As[i] = A[(i // 8) * K + k + i % 8]
                Bs[i] = B[(k + i // 16) * 16 + i % 16]
            enigma.barrier()
            a = enigma.simdgroup_matrix_load(As, 8, origin=(sg // 2) * 64)
            b = enigma.simdgroup_matrix_load(Bs, 16, origin=(sg % 2) * 8)
            acc[0] = enigma.simdgroup_multiply_accumulate(a, b, acc[0])
        enigma.simdgroup_matrix_store(acc[0], C, 16, origin=(sg // 2) * 128 + (sg % 2) * 8)

    K = 48
    rng = np.random.default_rng(26)
    A = rng.standard_normal((8, K)).astype(np.float32)
    B = rng.standard_normal((K, 16)).astype(np.float32)
    out = run(staged, [A, B], np.float32, 8 * 16, (64, 1, 1), (64, 1, 1), scalars=[K]).reshape(8, 16)
    want = fma_gemm_model(A, B, np.zeros((8, 16), np.float32))
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("M,N,K,ta,tb", [(32, 32, 32, False, False), (40, 32, 24, True, False),
                                         (24, 40, 16, False, True), (16, 32, 8, True, True), (8, 16, 40, False, False)])
def test_gemm_simdgroup_blocks_exact(M, N, K, ta, tb):
    """enigma.gemm's simdgroup path (blocks of up to 2x2 tiles per
    simdgroup, a loop over K, ragged block edges), called twice: every
    element is C's fused multiply-adds in k order, bit for bit."""
    @enigma.kernel
    def gemm2(A: enigma.f32, B: enigma.f32, Out: enigma.f32):
        for _ in range(2):
            enigma.gemm(A, B, Out, M=M, N=N, K=K, transpose_A=ta, transpose_B=tb)

    rng = np.random.default_rng(27)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    out = run(gemm2, [np.ascontiguousarray(A.T) if ta else A, np.ascontiguousarray(B.T) if tb else B], np.float32,
              M * N, (96, 1, 1), (96, 1, 1)).reshape(M, N)
    want = fma_gemm_model(A, B, fma_gemm_model(A, B, np.zeros((M, N), np.float32)))
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))


def test_simdgroup_kloop_partly_out_of_bounds():
    """A tile of the K loop partly past the end of its buffer (checked
    memory): those elements read 0, the rest keeps the defined order."""
    M, N, K = 16, 16, 32
    rng = np.random.default_rng(28)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    short = A.ravel()[:-5]                      # the last tile's last row misses 5 elements
    out = run(make_kloop_gemm("float", "float", 2, 2, False), [short, B], np.float32, M * N, (32, 1, 1), (32, 1, 1),
              scalars=[M, N, K]).reshape(M, N)
    A0 = A.copy()
    A0.ravel()[-5:] = 0
    want = fma_gemm_model(A0, B, np.zeros((M, N), np.float32))
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
