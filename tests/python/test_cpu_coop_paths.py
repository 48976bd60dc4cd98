"""The CPU backend's fast paths for cooperative kernels (docs/cooperative.md,
"CPU code generation"), each checked bit for bit against an exact model of
the defined order: values read from threadgroup memory at a uniform index
computed once per group, simd reductions and scans fused with the thread
loop that computes their operand, thread loops indexing by simdgroup run one
simdgroup at a time, masks of `if simdgroup == g` written around their
simdgroups, prefetched grid-strided loops, and the branch-free exp. Partial
threadgroups and simdgroups, 2-D groups (which take the general paths),
divergent control flow around barriers, and f16/bf16."""
import numpy as np
import pytest

import enigma
from conftest import as_f64, np_dtype, round_to, to_bf16  # noqa: F401
from conftest import shared_runtime as rt
from test_cooperative import butterfly, lane_by_lane


def simd_reduce(vals, op, ident):
    """The defined order: the xor butterfly for 32 lanes, lane by lane otherwise."""
    return butterfly(vals, op) if len(vals) == 32 else lane_by_lane(vals, op, ident)


def to_buffer(x, short):
    return to_bf16(x) if short == "bf16" else np.asarray(x, dtype=np_dtype(short))


def from_buffer(raw, short):
    return as_f64(np.frombuffer(raw, np_dtype(short))).astype(np.float32)


# ---- rows: strided passes, a two-stage group sum, a uniform read of the total ----

def make_rows(short):
    d = getattr(enigma, short)

    @enigma.kernel
    def rows(X: d, n: enigma.Scalar(enigma.u32), step: enigma.Scalar(enigma.u32), Y: d, Tot: enigma.f32):
        red = enigma.threadgroup_alloc("float", 32)
        row, lid = enigma.threadgroup_position_in_grid("x"), enigma.thread_index_in_threadgroup()
        lane, sg = enigma.thread_index_in_simdgroup(), enigma.simdgroup_index_in_threadgroup()
        with enigma.for_range(lid, n, step, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc):
            v = enigma.metal_cast(X[row * n + i], "float")
            acc[0] = v * v + acc[0]
        s = enigma.simd_sum(acc[0])
        with enigma.if_(lane == 0):
            red[sg] = s
        enigma.barrier()
        with enigma.if_(sg == 0):
            t = enigma.simd_sum(enigma.where(0.0, red[lane], lane < enigma.simdgroups_per_threadgroup()))
            with enigma.if_(lane == 0):
                red[0] = t
        enigma.barrier()
        tot = red[0]                      # the same for every thread: read once per group
        scale = 1.0 / (tot + 1.0)
        Tot[enigma.thread_position_in_grid] = tot
        with enigma.for_range(lid, n, step, dtype="uint") as i:
            Y[row * n + i] = enigma.metal_cast(enigma.metal_cast(X[row * n + i], "float") * scale, short)
    return rows


def rows_model(x32, n, step, tg, grid, short):
    groups = (grid + tg - 1) // tg
    y = np.zeros(groups * n, np.float32)
    tot_out = np.zeros(grid, np.float32)
    f = np.float32
    for g in range(groups):
        nt = min(tg, grid - g * tg)
        acc = []
        for t in range(nt):
            a = f(0)
            for i in range(t, n, step):
                a = f(a + f(x32[g * n + i] * x32[g * n + i]))
            acc.append(a)
        sgs = [acc[s:s + 32] for s in range(0, nt, 32)]
        red = [simd_reduce(v, np.add, 0) for v in sgs]
        first = [red[lane] if lane < len(red) else f(0) for lane in range(len(sgs[0]))]
        tot = simd_reduce(first, np.add, 0)
        scale = f(f(1.0) / f(tot + f(1.0)))
        tot_out[g * tg:g * tg + nt] = tot
        for t in range(nt):
            for i in range(t, n, step):
                y[g * n + i] = round_to(short, x32[g * n + i] * scale)
    return y, tot_out


@pytest.mark.parametrize("short", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("tg,grid", [(96, 3 * 96), (80, 2 * 80 + 50), (64, 64 + 7)])
def test_rows_with_group_sums_and_uniform_reads(short, tg, grid):
    n, step = 300, tg
    groups = (grid + tg - 1) // tg
    rng = np.random.default_rng(tg + grid)
    x = to_buffer(rng.standard_normal(groups * n), short)
    x32 = from_buffer(x.tobytes(), short)
    ck = enigma.compile(make_rows(short))
    if rt().device_capabilities().gpu_family.startswith("cpu"):
        assert "en_butterfly32<0>" in ck.source("cpu")          # the vector butterfly
    y, tot = rt().execute(ck, [x], grid=(grid, 1, 1), threads=(tg, 1, 1), scalars=[n, step],
                          output_sizes=[groups * n * x.itemsize, grid * 4])
    ref_y, ref_tot = rows_model(x32, n, step, tg, grid, short)
    np.testing.assert_array_equal(np.frombuffer(tot, np.float32), ref_tot)
    covered = np.zeros(groups * n, bool)
    for g in range(groups):
        covered[g * n:g * n + n] = min(tg, grid - g * tg) == step   # partial groups leave columns unvisited
    np.testing.assert_array_equal(from_buffer(y, short)[covered], ref_y[covered])
    full = [g for g in range(groups) if min(tg, grid - g * tg) == step]     # the model against float64 sums
    np.testing.assert_allclose(ref_tot[[g * tg for g in full]],
                               [(x32[g * n:(g + 1) * n].astype(np.float64) ** 2).sum() for g in full], rtol=1e-5)


# ---- scans fused with their operand's loop, reads indexed by simdgroup ----

def make_scan(short):
    d = getattr(enigma, short)

    @enigma.kernel
    def scan(X: d, Y: d, E: d):
        tid = enigma.thread_position_in_grid
        lane = enigma.thread_index_in_simdgroup()
        sg = enigma.simdgroup_index_in_threadgroup()
        part = enigma.threadgroup_alloc({"f32": "float", "f16": "half", "bf16": "bfloat"}[short], 32)
        x = X[tid] * 2.0
        s = enigma.simd_prefix_inclusive_sum(x)
        e = enigma.simd_prefix_exclusive_sum(x)
        with enigma.if_(lane == enigma.threads_per_simdgroup() - 1):
            part[sg] = s
        enigma.barrier()
        with enigma.if_(sg == 0):
            part[lane] = enigma.simd_prefix_exclusive_sum(part[lane])
        enigma.barrier()
        Y[tid] = s + part[sg]
        E[tid] = e + part[sg]
    return scan


def scan_model(x32, tg, threads, short):
    """x32: the inputs as float32; threads: the group's shape (tg threads in all)."""
    f = np.float32
    rd = (lambda v: round_to(short, v)[()]) if short != "f32" else f
    grid = x32.size
    y, e = np.zeros(grid, np.float32), np.zeros(grid, np.float32)
    for g0 in range(0, grid, tg):
        nt = min(tg, grid - g0)
        xs = [rd(f(x32[g0 + t] * f(2.0))) for t in range(nt)]
        inc, exc, part = [], [], [rd(f(0))] * 32
        for s0 in range(0, nt, 32):
            acc = f(0)
            for t in range(s0, min(nt, s0 + 32)):
                exc.append(acc)
                acc = rd(f(acc + xs[t]))
                inc.append(acc)
            if min(nt, s0 + 32) - s0 == 32:
                part[s0 // 32] = acc
        acc, pe = f(0), []
        for lane in range(min(32, nt)):
            pe.append(acc)
            acc = rd(f(acc + part[lane]))
        for t in range(nt):
            y[g0 + t] = rd(f(inc[t] + pe[t // 32]))
            e[g0 + t] = rd(f(exc[t] + pe[t // 32]))
    return y, e


@pytest.mark.parametrize("short", ["f32", "f16"])                   # no bfloat scans (Metal has none)
@pytest.mark.parametrize("grid,threads", [(4096, (1024, 1, 1)), (330, (96, 1, 1)), (2 * 1024 - 30, (1024, 1, 1))])
def test_scans_fused_with_their_loop(short, grid, threads):
    tg = threads[0] * threads[1] * threads[2]
    rng = np.random.default_rng(grid)
    # Small integers: every partial sum is exact in the dtype, so the result
    # does not depend on rounding, only on which lanes are summed.
    x = to_buffer(rng.integers(-4, 5, grid).astype(np.float32), short)
    ck = enigma.compile(make_scan(short))
    if rt().device_capabilities().gpu_family.startswith("cpu"):   # fused scans, part[sg] per simdgroup
        assert ck.source("cpu").count("for (uint32_t en_sg = 0; en_sg * 32u < en_n; ++en_sg)") >= 2
    y, e = rt().execute(ck, [x], grid=(grid, 1, 1), threads=threads, output_sizes=[grid * x.itemsize] * 2)
    ref_y, ref_e = scan_model(from_buffer(x.tobytes(), short), tg, threads, short)
    np.testing.assert_array_equal(from_buffer(y, short), ref_y)
    np.testing.assert_array_equal(from_buffer(e, short), ref_e)


@enigma.kernel
def scan2d(X: enigma.f32, Y: enigma.f32):
    # A 2-D group: the simdgroup-at-a-time paths fall back to the general loops.
    x0 = enigma.thread_position_in_grid_xyz("x")
    y0 = enigma.thread_position_in_grid_xyz("y")
    w = enigma.threads_per_grid("x")
    sg = enigma.simdgroup_index_in_threadgroup()
    part = enigma.threadgroup_alloc("float", 32)
    s = enigma.simd_sum(X[y0 * w + x0])
    with enigma.if_(enigma.thread_index_in_simdgroup() == 0):
        part[sg] = s
    enigma.barrier()
    Y[y0 * w + x0] = s + part[sg] + part[0]


def test_simd_sums_in_2d_groups():
    w, h, threads = 48, 10, (16, 4, 1)
    x = np.random.default_rng(3).integers(-8, 9, w * h).astype(np.float32)
    out = np.frombuffer(rt().execute(enigma.compile(scan2d), [x], w * h * 4, (w, h, 1), threads), np.float32)
    ref = np.zeros(w * h, np.float32)
    for gy in range(0, h, 4):
        for gx in range(0, w, 16):
            ids = [(gy + ly) * w + gx + lx for ly in range(min(4, h - gy)) for lx in range(16)]
            sums = [x[ids[s:s + 32]].sum() for s in range(0, len(ids), 32)]
            for k, i in enumerate(ids):
                ref[i] = sums[k // 32] * 2 + sums[0]
    np.testing.assert_array_equal(out, ref)


# ---- masks of `if simdgroup == g` around nested divergent ifs and barriers ----

@enigma.kernel
def nested_masks(A: enigma.i32, Out: enigma.i32):
    sh = enigma.threadgroup_alloc("int", 1024)
    tid, lid = enigma.thread_position_in_grid, enigma.thread_index_in_threadgroup()
    lane, sg = enigma.thread_index_in_simdgroup(), enigma.simdgroup_index_in_threadgroup()
    x = A[tid]
    sh[lid] = x
    enigma.barrier()
    Out[tid] = -1
    with enigma.if_(sg == 1):                        # one simdgroup: a known range
        with enigma.if_(x > 0):                      # divergent inside it
            Out[tid] = enigma.simd_sum(x) + sh[lid ^ 1]
        with enigma.if_(lane == 3):
            Out[tid] = enigma.simd_max(x) * 100
    enigma.barrier()
    with enigma.if_(lid == 40):                      # one thread
        sh[0] = enigma.simd_sum(x)
    enigma.barrier()
    Out[tid] = Out[tid] + sh[0] * 1000


def nested_masks_model(a, tg):
    out = np.full(a.size, -1, np.int64)
    for g0 in range(0, a.size, tg):
        nt = min(tg, a.size - g0)
        x = a[g0:g0 + nt].astype(np.int64)
        o = out[g0:g0 + nt]
        if nt > 32:
            s1 = slice(32, min(nt, 64))
            xs = x[s1]
            act = xs > 0
            if act.any():
                o[s1] = np.where(act, xs[act].sum() + np.array([x[(32 + k) ^ 1] if ((32 + k) ^ 1) < nt else 0
                                                                for k in range(xs.size)]), o[s1])
            if nt > 35:
                o[35] = x[35] * 100                  # the only active lane
        sh0 = x[40] if nt > 40 else x[0]
        o[:] = o + sh0 * 1000
    return out


@pytest.mark.parametrize("n,tg", [(256, 128), (200, 96), (50, 64)])
def test_range_masks_around_divergent_ifs_and_barriers(n, tg):
    a = np.random.default_rng(n).integers(-50, 50, n).astype(np.int32)
    out = np.frombuffer(rt().execute(enigma.compile(nested_masks), [a], n * 4, (n, 1, 1), (tg, 1, 1)), np.int32)
    ref = nested_masks_model(a, tg)
    # sh[lid ^ 1] of the last thread of a partial group reads past the group's
    # threads: not part of the model
    ok = np.ones(n, bool)
    for g0 in range(0, n, tg):
        nt = min(tg, n - g0)
        if nt % 2 and nt > 32:
            ok[g0 + nt - 1] = False
    np.testing.assert_array_equal(out[ok], ref[ok])


# ---- grid-strided loops (prefetched passes) ----

def make_grid_stride(short):
    d = getattr(enigma, short)

    @enigma.kernel
    def grid_stride(X: d, n: enigma.Scalar(enigma.u32), H: enigma.u32, S: enigma.f32):
        # Each thread walks every (threads in the grid)-th element from its
        # position: the CPU runs passes of the group's threads, far apart.
        lid, nth = enigma.thread_index_in_threadgroup(), enigma.threads_per_threadgroup("x")
        first = enigma.threadgroup_position_in_grid("x") * nth + lid
        loc = enigma.threadgroup_alloc("uint", 16)
        with enigma.if_(lid < 16):
            loc[lid] = 0
        enigma.barrier()
        all_threads = nth * enigma.threadgroups_per_grid("x")
        with enigma.for_range(first, n, all_threads, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc):
            v = X[i]
            enigma.atomic_fetch_add(loc, enigma.metal_cast(v, "uint") & 15, 1)
            acc[0] = acc[0] * 0.5 + v
        S[first] = acc[0]
        enigma.barrier()
        with enigma.if_(lid < 16):
            enigma.atomic_fetch_add(H, lid, loc[lid])
    return grid_stride


@pytest.mark.parametrize("short", ["f32", "f16"])
def test_grid_strided_loops(short):
    n, tg, groups = 20000 + 37, 64, 6
    x = to_buffer(np.random.default_rng(5).integers(0, 200, n).astype(np.float32), short)
    x32 = from_buffer(x.tobytes(), short)
    ck = enigma.compile(make_grid_stride(short))
    h, s = rt().execute(ck, [x], grid=(groups * tg, 1, 1), threads=(tg, 1, 1), scalars=[n],
                        output_sizes=[16 * 4, groups * tg * 4])
    np.testing.assert_array_equal(np.frombuffer(h, np.uint32), np.bincount(x32.astype(np.int64) & 15, minlength=16))
    ref = np.zeros(groups * tg, np.float32)
    for t in range(groups * tg):
        acc = np.float32(0)
        for i in range(t, n, groups * tg):
            acc = np.float32(np.float32(acc * np.float32(0.5)) + x32[i])
        ref[t] = acc
    np.testing.assert_array_equal(np.frombuffer(s, np.float32), ref)


# ---- exp: branch-free on the CPU, folded constants agree with run-time values ----

@enigma.kernel
def exps(X: enigma.f32, Out: enigma.f32):
    i = enigma.thread_position_in_grid
    Out[i] = enigma.exp(X[i])


@enigma.kernel
def exp_folded(Out: enigma.f32):
    Out[0] = enigma.exp(0.37)
    Out[1] = enigma.exp(-87.5)
    Out[2] = enigma.exp(88.5)
    Out[3] = enigma.exp(-100.25)


def test_exp_is_within_its_bound_and_folds_to_the_same_bits():
    """The CPU's exp (on the CPU device whatever the default device is): 1.5
    ulp, tighter than the 3 ulp every backend promises, and the constant
    folder's bits."""
    cpu = enigma.MetalRuntime(device="cpu")
    rng = np.random.default_rng(9)
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.7229, -103.97, -104.0, 1e-30]
    x = np.concatenate([rng.uniform(-110, 95, 200000), rng.standard_normal(50000) * 1e-3, edges]).astype(np.float32)
    with np.errstate(over="ignore"):
        raw = cpu.execute(enigma.compile(exps), [x], x.size * 4, (x.size, 1, 1), (256, 1, 1))
        got = np.frombuffer(raw, np.float32)
        ref = np.exp(x.astype(np.float64))
        ref32 = ref.astype(np.float32)
    fin = np.isfinite(ref32) & np.isfinite(got)
    ulp = np.spacing(np.abs(ref32[fin]).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[fin] - ref[fin]) / ulp) <= 1.5      # docs/ops.md promises 3 ulp
    assert np.array_equal(np.isinf(got), np.isinf(ref32))
    assert np.isnan(got[np.isnan(x)]).all()
    assert got[x == -np.inf][0] == 0.0 and got[x == 0][0] == 1.0
    assert "en_expf_cpu(" in enigma.compile(exps).source("cpu")
    folded = np.frombuffer(cpu.execute(enigma.compile(exp_folded), [], 16, (1, 1, 1), (1, 1, 1)), np.float32)
    args = np.array([0.37, -87.5, 88.5, -100.25], np.float32)
    run_time = np.frombuffer(cpu.execute(enigma.compile(exps), [args], 16, (4, 1, 1), (4, 1, 1)), np.float32)
    np.testing.assert_array_equal(folded.view(np.uint32), run_time.view(np.uint32))


# ---- 16-bit elementwise loops (row-pointer copies, checked or not) ----

@enigma.kernel
def mixed_halves(A: enigma.f16, B: enigma.bf16, C: enigma.f16):
    i = enigma.thread_position_in_grid
    C[i] = A[i] * enigma.metal_cast(B[i], "half") + A[i]


@pytest.mark.parametrize("bounds_check", [True, False])
def test_half_and_bfloat_elementwise(bounds_check):
    n = 1000 + 13
    rng = np.random.default_rng(4)
    a = rng.standard_normal(n).astype(np.float16)
    b = to_bf16(rng.standard_normal(n))
    ck = enigma.compile(mixed_halves, bounds_check=bounds_check)
    out = np.frombuffer(rt().execute(ck, [a, b], n * 2, (n, 1, 1), (128, 1, 1)), np.float16)
    a32, b_h = a.astype(np.float32), round_to("f16", as_f64(b))
    ref = round_to("f16", round_to("f16", a32 * b_h) + a32)
    np.testing.assert_array_equal(out.astype(np.float32), ref)
