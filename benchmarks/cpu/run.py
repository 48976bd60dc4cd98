"""CPU benchmarks: Enigma's CPU backend side by side with a hand-written
OpenMP loop, numba (parallel), warp and taichi on the CPU (when installed)
and numpy, in one process, interleaved rounds, medians and ratios.

    python benchmarks/cpu/run.py [--rounds N] [--quick] [--plot out.png] [--out table.md]
                                 [--only softmax,gemm] [--warm-cache]

The cooperative workloads (rows, histogram, scan, GEMMs) are the kernels of
coop_kernels.py, each against an OpenMP peer of the same algorithm
(peers_omp.cpp). Enigma rows note the cold compile time (empty kernel cache,
wall and CPU seconds) and the cached one. Results: benchmarks/results/.

Ratios are peer_time / enigma_time (above 1: Enigma is faster). Targets
(docs/PERFORMANCE, CPU): elementwise >= 0.90x OpenMP; compute-bound >= 1.5x
numba; barrier / threadgroup-memory kernels >= 1.0x numba.
"""

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

# Idle OpenMP workers must sleep, not spin, or they steal the cores the next
# implementation in the round is measured on.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("ENIGMA_DEVICE", "cpu")

import numpy as np  # noqa: E402

import enigma  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import coop_kernels as ck  # noqa: E402


# ---- optional peers ------------------------------------------------------------------

def load_omp():
    out = os.path.join(tempfile.gettempdir(), f"enigma_bench_omp_{os.getpid()}.so")
    cxx = os.environ.get("CXX", "g++")
    # -ffp-contract=off as Enigma's kernels: same float results (no FMA contraction).
    cmd = [cxx, "-O3", "-march=native", "-ffp-contract=off", "-fopenmp", "-shared", "-fPIC", "-o", out,
           os.path.join(HERE, "peers_omp.cpp")]
    try:
        subprocess.run(cmd, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"[skip] OpenMP peer: cannot build ({e})")
        return None
    lib = ctypes.CDLL(out)
    P, I64, F, I32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int32
    sigs = {"vadd": [P, P, P, I64], "saxpy": [F, P, P, P, I64],
            "mandelbrot": [F, F, F, F, I64, I64, I32, P], "block_sum": [P, P, I64, I64],
            "rmsnorm": [P, P, P, I64, I64], "stencil": [P, P, I64], "matmul": [P, P, P, I64],
            "softmax": [P, P, I64, I64], "layernorm": [P, P, P, P, I64, I64], "histogram": [P, I64, P],
            "block_scan": [P, P, I64, I64]}
    for name, args in sigs.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = None
    return lib


def try_import(name):
    try:
        return __import__(name)
    except Exception as e:  # noqa: BLE001 - optional peer
        print(f"[skip] {name}: not installed ({type(e).__name__}: {e})")
        return None


def optional_peers(name, make_peers):
    """make_peers(module) for the optional package `name`, or None (with a
    [skip] line) when it is missing or cannot build its peers."""
    module = try_import(name)
    if not module:
        return None
    try:
        return make_peers(module)
    except Exception as e:  # noqa: BLE001 - optional peer
        print(f"[skip] {name}: {e}")
        return None


def ptr(a):
    return a.ctypes.data_as(ctypes.c_void_p)


# ---- Enigma kernels ------------------------------------------------------------------

@enigma.kernel
def e_vadd(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


@enigma.kernel
def e_saxpy(X: enigma.f32, Y: enigma.f32, alpha: enigma.Scalar(enigma.f32), Out: enigma.f32):
    i = enigma.thread_position_in_grid
    Out[i] = alpha * X[i] + Y[i]


@enigma.kernel
def e_mandelbrot(p: enigma.f32, iters: enigma.Scalar(enigma.u32), Out: enigma.u32):
    x = enigma.thread_position_in_grid_xyz("x")
    y = enigma.thread_position_in_grid_xyz("y")
    w = enigma.threads_per_grid("x")
    cx = p[0] + enigma.metal_cast(x, "float") * p[2]
    cy = p[1] + enigma.metal_cast(y, "float") * p[3]
    zero = enigma.metal_cast(0.0, "float")
    with enigma.for_range(0, iters, dtype="uint", init=[zero, zero, enigma.metal_cast(0, "uint")]) as (k, c):
        zr, zi = c[0], c[1]
        zr2, zi2 = zr * zr, zi * zi
        inside = zr2 + zi2 <= 4.0
        c[0] = enigma.where(zr, zr2 - zi2 + cx, inside)
        c[1] = enigma.where(zi, 2.0 * zr * zi + cy, inside)
        c[2] = c[2] + enigma.where(0, 1, inside)
    Out[y * w + x] = c[2]


@enigma.kernel
def e_stencil(A: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    # One Jacobi step on the interior of an n x n grid (the grid is (n-2)^2).
    x = enigma.thread_position_in_grid_xyz("x") + 1
    y = enigma.thread_position_in_grid_xyz("y") + 1
    c = y * n + x
    Out[c] = 0.25 * (A[c - n] + A[c + n] + A[c - 1] + A[c + 1])


TILE = 16


@enigma.kernel
def e_matmul(A: enigma.f32, B: enigma.f32, n: enigma.Scalar(enigma.u32), C: enigma.f32):
    tx = enigma.thread_position_in_threadgroup("x")
    ty = enigma.thread_position_in_threadgroup("y")
    col = enigma.thread_position_in_grid_xyz("x")
    row = enigma.thread_position_in_grid_xyz("y")
    As = enigma.threadgroup_alloc("float", TILE * TILE)
    Bs = enigma.threadgroup_alloc("float", TILE * TILE)
    with enigma.for_range(0, n, TILE, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (k0, acc):
        As[ty * TILE + tx] = A[row * n + k0 + tx]
        Bs[ty * TILE + tx] = B[(k0 + ty) * n + col]
        enigma.barrier()
        s = acc[0]
        for kk in range(TILE):
            s = s + As[ty * TILE + kk] * Bs[kk * TILE + tx]
        acc[0] = s
        enigma.barrier()
    C[row * n + col] = acc[0]


# ---- numba / warp / taichi peers ---------------------------------------------------------

def numba_peers(numba):
    from numba import njit, prange

    @njit(parallel=True, fastmath=False, cache=False)
    def vadd(a, b, c):
        for i in prange(a.size):
            c[i] = a[i] + b[i]

    @njit(parallel=True)
    def saxpy(alpha, x, y, out):
        for i in prange(x.size):
            out[i] = alpha * x[i] + y[i]

    @njit(parallel=True)
    def mandelbrot(x0, y0, dx, dy, w, h, iters, out):
        for y in prange(h):
            for x in range(w):
                cx = np.float32(x0 + x * dx)
                cy = np.float32(y0 + y * dy)
                zr = np.float32(0.0)
                zi = np.float32(0.0)
                cnt = 0
                for _ in range(iters):
                    zr2 = zr * zr
                    zi2 = zi * zi
                    if zr2 + zi2 <= 4.0:
                        nzr = zr2 - zi2 + cx
                        zi = np.float32(2.0) * zr * zi + cy
                        zr = nzr
                        cnt += 1
                out[y * w + x] = cnt

    @njit(parallel=True)
    def block_sum(a, out, block):
        for g in prange(out.size):
            s = np.float32(0.0)
            for i in range(block):
                s += a[g * block + i]
            out[g] = s

    @njit(parallel=True)
    def rmsnorm(x, w, y, rows, n):
        for r in prange(rows):
            ss = np.float32(0.0)
            for i in range(n):
                v = x[r * n + i]
                ss += v * v
            inv = np.float32(1.0) / np.sqrt(ss / n + np.float32(1e-6))
            for i in range(n):
                y[r * n + i] = x[r * n + i] * inv * w[i]

    @njit(parallel=True)
    def stencil(a, out, n):
        for y in prange(1, n - 1):
            for x in range(1, n - 1):
                c = y * n + x
                out[c] = np.float32(0.25) * (a[c - n] + a[c + n] + a[c - 1] + a[c + 1])

    @njit(parallel=True)
    def matmul(a, b, c, n):
        for i in prange(n):
            for j in range(n):
                c[i * n + j] = 0.0
            for k in range(n):
                aik = a[i * n + k]
                for j in range(n):
                    c[i * n + j] += aik * b[k * n + j]

    return dict(vadd=vadd, saxpy=saxpy, mandelbrot=mandelbrot, block_sum=block_sum, rmsnorm=rmsnorm,
                stencil=stencil, matmul=matmul)


def warp_peers(wp):
    wp.config.quiet = True
    wp.init()

    @wp.kernel
    def vadd(a: wp.array(dtype=float), b: wp.array(dtype=float), c: wp.array(dtype=float)):
        i = wp.tid()
        c[i] = a[i] + b[i]

    @wp.kernel
    def saxpy(alpha: float, x: wp.array(dtype=float), y: wp.array(dtype=float), out: wp.array(dtype=float)):
        i = wp.tid()
        out[i] = alpha * x[i] + y[i]

    @wp.kernel
    def mandelbrot(x0: float, y0: float, dx: float, dy: float, w: int, iters: int, out: wp.array(dtype=wp.uint32)):
        x, y = wp.tid()
        cx = x0 + float(x) * dx
        cy = y0 + float(y) * dy
        zr = float(0.0)
        zi = float(0.0)
        cnt = wp.uint32(0)
        for k in range(iters):
            zr2 = zr * zr
            zi2 = zi * zi
            if zr2 + zi2 <= 4.0:
                nzr = zr2 - zi2 + cx
                zi = 2.0 * zr * zi + cy
                zr = nzr
                cnt = cnt + wp.uint32(1)
        out[y * w + x] = cnt

    @wp.kernel
    def stencil(a: wp.array(dtype=float), out: wp.array(dtype=float), n: int):
        x, y = wp.tid()
        c = (y + 1) * n + x + 1
        out[c] = 0.25 * (a[c - n] + a[c + n] + a[c - 1] + a[c + 1])

    return wp, dict(vadd=vadd, saxpy=saxpy, mandelbrot=mandelbrot, stencil=stencil)


def taichi_peers(ti):
    ti.init(arch=ti.cpu, log_level=ti.ERROR)

    @ti.kernel
    def vadd(a: ti.types.ndarray(), b: ti.types.ndarray(), c: ti.types.ndarray()):
        for i in range(a.shape[0]):
            c[i] = a[i] + b[i]

    @ti.kernel
    def saxpy(alpha: ti.f32, x: ti.types.ndarray(), y: ti.types.ndarray(), out: ti.types.ndarray()):
        for i in range(x.shape[0]):
            out[i] = alpha * x[i] + y[i]

    @ti.kernel
    def mandelbrot(x0: ti.f32, y0: ti.f32, dx: ti.f32, dy: ti.f32, w: ti.i32, h: ti.i32, iters: ti.i32,
                   out: ti.types.ndarray()):
        for y, x in ti.ndrange(h, w):
            cx = x0 + x * dx
            cy = y0 + y * dy
            zr = 0.0
            zi = 0.0
            cnt = 0
            for k in range(iters):
                zr2, zi2 = zr * zr, zi * zi
                if zr2 + zi2 <= 4.0:
                    zr, zi = zr2 - zi2 + cx, 2.0 * zr * zi + cy   # both from the old zr, zi
                    cnt += 1
            out[y * w + x] = cnt

    @ti.kernel
    def stencil(a: ti.types.ndarray(), out: ti.types.ndarray(), n: ti.i32):
        for y, x in ti.ndrange((1, n - 1), (1, n - 1)):
            c = y * n + x
            out[c] = 0.25 * (a[c - n] + a[c + n] + a[c - 1] + a[c + 1])

    return dict(vadd=vadd, saxpy=saxpy, mandelbrot=mandelbrot, stencil=stencil)


# ---- workloads ------------------------------------------------------------------------------

class Workload:
    def __init__(self, name, kind, floor_bytes=0.0, flops=0.0):
        self.name, self.kind = name, kind
        self.floor_bytes, self.flops = floor_bytes, flops
        self.impls = {}   # name -> (callable, result getter)
        self.ref = None
        self.tol = 1e-5

    def add(self, impl, fn, get):
        self.impls[impl] = (fn, get)
        if hasattr(fn, "compile_s"):
            self.compile_s = fn.compile_s
        if hasattr(fn, "unchecked"):   # --bounds-check-cost: the same kernel without checks
            self.impls["enigma-unchecked"] = fn.unchecked


COMPARE_UNCHECKED = False  # --bounds-check-cost


def enigma_prepared(rt, kernel, inputs, out_bytes, grid, threads, scalars=None, dtype=np.float32,
                    bounds_check=True):
    # Cold: the first compile in this process with an empty kernel cache
    # (trace, optimise, emit, C++ compile, load); cached: the same kernel
    # traced, optimised and emitted again, the work done before the cache
    # finds the compiled kernel.
    # CPU seconds too (this process and the compiler it ran): on a shared
    # machine the wall time mostly measures the other load.
    c0, t0 = os.times(), time.perf_counter()
    compiled = enigma.compile(kernel, bounds_check=bounds_check)
    p = rt.prepare(compiled, inputs, out_bytes, scalars=scalars)
    cold, c1 = time.perf_counter() - t0, os.times()
    cold_cpu = sum(b - a for a, b in zip(c0[:4], c1[:4]))
    t0 = time.perf_counter()
    enigma.compile(kernel, bounds_check=bounds_check).source("cpu")
    cached = time.perf_counter() - t0

    def fn():
        p.dispatch(grid, threads)
    fn.compile_s = (cold, cached, cold_cpu)
    if COMPARE_UNCHECKED and bounds_check:
        fn.unchecked = enigma_prepared(rt, kernel, inputs, out_bytes, grid, threads, scalars, dtype, False)
    return fn, (lambda: np.frombuffer(p.read_output(), dtype=dtype))


def build(args, omp, nb, wpx, tix):
    rng = np.random.default_rng(0)
    rt = enigma.MetalRuntime(device="cpu")
    W = []
    q = args.quick

    # elementwise: 3 x 64 MiB (>= 64 MB each array)
    n = (1 << 20) if q else (1 << 24)
    a = rng.random(n, dtype=np.float32)
    b = rng.random(n, dtype=np.float32)
    w = Workload("vector add", "elementwise", floor_bytes=12.0 * n)
    w.ref = a.astype(np.float64) + b
    w.add("enigma", *enigma_prepared(rt, e_vadd, [a, b], 4 * n, (n, 1, 1), (1024, 1, 1)))
    c = np.empty_like(a)
    if omp:
        w.add("openmp", lambda: omp.vadd(ptr(a), ptr(b), ptr(c), n), lambda: c)
    if nb:
        c2 = np.empty_like(a)
        w.add("numba", lambda: nb["vadd"](a, b, c2), lambda: c2)
    if wpx:
        wp, k = wpx
        va, vb, vc = (wp.array(v, dtype=float, device="cpu") for v in (a, b, np.zeros_like(a)))
        w.add("warp", lambda: (wp.launch(k["vadd"], dim=n, inputs=[va, vb, vc], device="cpu"), wp.synchronize()),
              lambda: vc.numpy())
    if tix:
        c3 = np.empty_like(a)
        w.add("taichi", lambda: (tix["vadd"](a, b, c3), __import__("taichi").sync()), lambda: c3)
    c4 = np.empty_like(a)
    w.add("numpy", lambda: np.add(a, b, out=c4), lambda: c4)
    W.append(w)

    alpha = np.float32(1.7)
    w = Workload("saxpy", "elementwise", floor_bytes=12.0 * n)
    w.ref = alpha * a.astype(np.float64) + b
    w.tol = 1e-6
    w.add("enigma", *enigma_prepared(rt, e_saxpy, [a, b], 4 * n, (n, 1, 1), (1024, 1, 1), scalars=[float(alpha)]))
    s1 = np.empty_like(a)
    if omp:
        w.add("openmp", lambda: omp.saxpy(ctypes.c_float(alpha), ptr(a), ptr(b), ptr(s1), n), lambda: s1)
    if nb:
        s2 = np.empty_like(a)
        w.add("numba", lambda: nb["saxpy"](alpha, a, b, s2), lambda: s2)
    if wpx:
        wp, k = wpx
        sa, sb, so = (wp.array(v, dtype=float, device="cpu") for v in (a, b, np.zeros_like(a)))
        w.add("warp", lambda: (wp.launch(k["saxpy"], dim=n, inputs=[float(alpha), sa, sb, so], device="cpu"),
                               wp.synchronize()), lambda: so.numpy())
    if tix:
        s3 = np.empty_like(a)
        w.add("taichi", lambda: (tix["saxpy"](float(alpha), a, b, s3), __import__("taichi").sync()), lambda: s3)
    s4 = np.empty_like(a)
    w.add("numpy", lambda: np.add(np.multiply(alpha, a, out=s4), b, out=s4), lambda: s4)
    W.append(w)

    # compute-bound: Mandelbrot, fixed iteration count (same algorithm everywhere)
    mw, mh, iters = (256, 128, 64) if q else (1024, 512, 256)
    x0, y0, dx, dy = np.float32(-2.0), np.float32(-1.0), np.float32(3.0 / mw), np.float32(2.0 / mh)
    params = np.array([x0, y0, dx, dy], np.float32)
    w = Workload("mandelbrot", "compute", flops=mw * mh * iters * 10.0)
    w.add("enigma", *enigma_prepared(rt, e_mandelbrot, [params], 4 * mw * mh, (mw, mh, 1), (64, 4, 1),
                                     scalars=[iters], dtype=np.uint32))
    m1 = np.empty(mw * mh, np.uint32)
    if omp:
        w.add("openmp", lambda: omp.mandelbrot(x0, y0, dx, dy, mw, mh, iters, ptr(m1)), lambda: m1)
    if nb:
        m2 = np.empty(mw * mh, np.uint32)
        w.add("numba", lambda: nb["mandelbrot"](x0, y0, dx, dy, mw, mh, iters, m2), lambda: m2)
    if wpx:
        wp, k = wpx
        wm = wp.zeros(mw * mh, dtype=wp.uint32, device="cpu")
        w.add("warp", lambda: (wp.launch(k["mandelbrot"], dim=(mw, mh),
                                         inputs=[float(x0), float(y0), float(dx), float(dy), mw, iters, wm],
                                         device="cpu"), wp.synchronize()), lambda: wm.numpy())
    if tix:
        m3 = np.empty(mw * mh, np.int32)
        w.add("taichi", lambda: (tix["mandelbrot"](float(x0), float(y0), float(dx), float(dy), mw, mh, iters, m3),
                                 __import__("taichi").sync()), lambda: m3)
    w.ref = None  # checked against OpenMP (same float32 algorithm), allowing a few boundary pixels
    W.append(w)

    # barrier / threadgroup-memory kernels
    nb_ = (1 << 20) if q else (1 << 24)
    block = 1024
    x = rng.standard_normal(nb_).astype(np.float32)
    w = Workload("block reduction", "barrier", floor_bytes=4.0 * nb_)
    w.ref = x.reshape(-1, block).astype(np.float64).sum(1)
    w.tol = 1e-4
    w.add("enigma", *enigma_prepared(rt, ck.e_block_sum, [x], 4 * (nb_ // block), (nb_, 1, 1), (block, 1, 1)))
    r1 = np.empty(nb_ // block, np.float32)
    if omp:
        w.add("openmp", lambda: omp.block_sum(ptr(x), ptr(r1), nb_ // block, block), lambda: r1)
    if nb:
        r2 = np.empty(nb_ // block, np.float32)
        w.add("numba", lambda: nb["block_sum"](x, r2, block), lambda: r2)
    w.add("numpy", lambda: x.reshape(-1, block).sum(1), None)
    W.append(w)

    rows, cols = (256, 1024) if q else (4096, 4096)
    X = rng.standard_normal(rows * cols).astype(np.float32)
    Wt = rng.standard_normal(cols).astype(np.float32)
    w = Workload("rmsnorm rows", "barrier", floor_bytes=8.0 * rows * cols)
    Xd = X.reshape(rows, cols).astype(np.float64)
    w.ref = (Xd / np.sqrt((Xd ** 2).mean(1, keepdims=True) + 1e-6) * Wt).ravel()
    w.tol = 1e-4
    w.add("enigma", *enigma_prepared(rt, ck.e_rmsnorm, [X, Wt], 4 * rows * cols, (rows * 256, 1, 1), (256, 1, 1),
                                     scalars=[cols]))
    y1 = np.empty_like(X)
    if omp:
        w.add("openmp", lambda: omp.rmsnorm(ptr(X), ptr(Wt), ptr(y1), rows, cols), lambda: y1)
    if nb:
        y2 = np.empty_like(X)
        w.add("numba", lambda: nb["rmsnorm"](X, Wt, y2, rows, cols), lambda: y2)
    X2 = X.reshape(rows, cols)
    w.add("numpy", lambda: X2 / np.sqrt((X2 * X2).mean(1, keepdims=True) + 1e-6) * Wt, None)
    W.append(w)

    sn = 1024 if q else 4096
    A = rng.random(sn * sn, dtype=np.float32)
    w = Workload("stencil 5-point", "stencil", floor_bytes=8.0 * sn * sn)
    A2 = A.reshape(sn, sn).astype(np.float64)
    ref = np.zeros((sn, sn))
    ref[1:-1, 1:-1] = 0.25 * (A2[:-2, 1:-1] + A2[2:, 1:-1] + A2[1:-1, :-2] + A2[1:-1, 2:])
    w.ref = ref.ravel()
    w.add("enigma", *enigma_prepared(rt, e_stencil, [A], 4 * sn * sn, (sn - 2, sn - 2, 1), (256, 1, 1),
                                     scalars=[sn]))
    o1 = np.zeros_like(A)
    if omp:
        w.add("openmp", lambda: omp.stencil(ptr(A), ptr(o1), sn), lambda: o1)
    if nb:
        o2 = np.zeros_like(A)
        w.add("numba", lambda: nb["stencil"](A, o2, sn), lambda: o2)
    if wpx:
        wp, k = wpx
        ta, wo = wp.array(A, dtype=float, device="cpu"), wp.zeros(sn * sn, dtype=float, device="cpu")
        w.add("warp", lambda: (wp.launch(k["stencil"], dim=(sn - 2, sn - 2), inputs=[ta, wo, sn], device="cpu"),
                               wp.synchronize()), lambda: wo.numpy())
    if tix:
        o3 = np.zeros_like(A)
        w.add("taichi", lambda: (tix["stencil"](A, o3, sn), __import__("taichi").sync()), lambda: o3)
    A3 = A.reshape(sn, sn)
    o4 = np.zeros((sn, sn), np.float32)

    def np_stencil():
        o4[1:-1, 1:-1] = 0.25 * (A3[:-2, 1:-1] + A3[2:, 1:-1] + A3[1:-1, :-2] + A3[1:-1, 2:])
        return o4
    w.add("numpy", np_stencil, None)
    W.append(w)

    mn = 256 if q else 512
    Am = rng.standard_normal(mn * mn).astype(np.float32)
    Bm = rng.standard_normal(mn * mn).astype(np.float32)
    w = Workload("tiled matmul", "barrier", flops=2.0 * mn ** 3)
    w.ref = (Am.reshape(mn, mn).astype(np.float64) @ Bm.reshape(mn, mn)).ravel()
    w.tol = 1e-4
    w.add("enigma", *enigma_prepared(rt, e_matmul, [Am, Bm], 4 * mn * mn, (mn, mn, 1), (TILE, TILE, 1),
                                     scalars=[mn]))
    c1 = np.empty_like(Am)
    if omp:
        w.add("openmp", lambda: omp.matmul(ptr(Am), ptr(Bm), ptr(c1), mn), lambda: c1)
    if nb:
        c2m = np.empty_like(Am)
        w.add("numba", lambda: nb["matmul"](Am, Bm, c2m, mn), lambda: c2m)
    A2m, B2m = Am.reshape(mn, mn), Bm.reshape(mn, mn)
    w.add("numpy (BLAS)", lambda: A2m @ B2m, None)
    W.append(w)
    W += build_cooperative(rt, rng, omp, nb, q)
    return W


def build_cooperative(rt, rng, omp, nb, q):
    """Rows, atomics, scans and GEMMs as users write them (coop_kernels.py)."""
    W = []
    rows, cols = (256, 1024) if q else (4096, 4096)
    X = rng.standard_normal(rows * cols).astype(np.float32)
    Xd = X.reshape(rows, cols).astype(np.float64)
    X2 = X.reshape(rows, cols)

    w = Workload("softmax rows", "coop", floor_bytes=8.0 * rows * cols)
    e = np.exp(Xd - Xd.max(1, keepdims=True))
    w.ref = (e / e.sum(1, keepdims=True)).ravel()
    w.add("enigma", *enigma_prepared(rt, ck.e_softmax, [X], 4 * rows * cols, (rows * 256, 1, 1), (256, 1, 1),
                                     scalars=[cols]))
    if omp:
        ys = np.empty_like(X)
        w.add("openmp", lambda: omp.softmax(ptr(X), ptr(ys), rows, cols), lambda: ys)

    def np_softmax():
        t = np.exp(X2 - X2.max(1, keepdims=True))
        return t / t.sum(1, keepdims=True)
    w.add("numpy", np_softmax, None)
    W.append(w)

    G = rng.standard_normal(cols).astype(np.float32)
    Bb = rng.standard_normal(cols).astype(np.float32)
    w = Workload("layernorm rows", "coop", floor_bytes=8.0 * rows * cols)
    m = Xd.mean(1, keepdims=True)
    w.ref = ((Xd - m) / np.sqrt(((Xd - m) ** 2).mean(1, keepdims=True) + 1e-5) * G + Bb).ravel()
    w.tol = 1e-4
    w.add("enigma", *enigma_prepared(rt, ck.e_layernorm, [X, G, Bb], 4 * rows * cols, (rows * 256, 1, 1),
                                     (256, 1, 1), scalars=[cols]))
    if omp:
        yl = np.empty_like(X)
        w.add("openmp", lambda: omp.layernorm(ptr(X), ptr(G), ptr(Bb), ptr(yl), rows, cols), lambda: yl)

    def np_layernorm():
        mu = X2.mean(1, keepdims=True)
        return (X2 - mu) / np.sqrt(X2.var(1, keepdims=True) + 1e-5) * G + Bb
    w.add("numpy", np_layernorm, None)
    W.append(w)

    hn = (1 << 20) if q else (1 << 24)
    hx = rng.integers(0, 2**32, hn, dtype=np.uint64).astype(np.uint32)
    w = Workload("histogram 256", "coop", floor_bytes=4.0 * hn)
    w.ref = np.bincount(hx & 255, minlength=256).astype(np.float64)
    w.tol = 0.0
    groups = 64
    fn, _ = enigma_prepared(rt, ck.e_histogram, [hx], 256 * 4, (groups * 256, 1, 1), (256, 1, 1), scalars=[hn],
                            dtype=np.uint32)
    # The kernel accumulates into its output: the check reads one dispatch.
    hist_fn = fn
    w.add("enigma", hist_fn, None)
    w.check_enigma = (ck.e_histogram, [hx], (groups * 256, 1, 1), [hn])
    if omp:
        h1 = np.empty(256, np.uint32)
        w.add("openmp", lambda: omp.histogram(ptr(hx), hn, ptr(h1)), lambda: h1)
    w.add("numpy", lambda: np.bincount(hx & 255, minlength=256), lambda: np.bincount(hx & 255, minlength=256))
    W.append(w)

    sn = (1 << 20) if q else (1 << 24)
    sx = rng.standard_normal(sn).astype(np.float32)
    w = Workload("block scan 1024", "coop", floor_bytes=8.0 * sn)
    w.ref = np.cumsum(sx.reshape(-1, 1024).astype(np.float64), 1).ravel()
    w.tol = 1e-5
    w.add("enigma", *enigma_prepared(rt, ck.e_scan, [sx], 4 * sn, (sn, 1, 1), (1024, 1, 1)))
    if omp:
        so = np.empty_like(sx)
        w.add("openmp", lambda: omp.block_scan(ptr(sx), ptr(so), sn // 1024, 1024), lambda: so)
    sx2 = sx.reshape(-1, 1024)
    w.add("numpy", lambda: np.cumsum(sx2, axis=1), None)
    W.append(w)

    sizes = [256] if q else [512, 1024]
    for mn in sizes:
        Am = rng.standard_normal(mn * mn).astype(np.float32)
        Bm = rng.standard_normal(mn * mn).astype(np.float32)
        ref = (Am.reshape(mn, mn).astype(np.float64) @ Bm.reshape(mn, mn)).ravel()
        A2m, B2m = Am.reshape(mn, mn), Bm.reshape(mn, mn)
        c1 = np.empty_like(Am)
        gemms = [("simdgroup 8x8", ck.e_sgmm8, (mn // 8 * 32, mn // 8, 1), (32, 1, 1)),
                 ("simdgroup tiled", ck.e_sgmm_tiled, (mn // ck.SG_T * 128, mn // ck.SG_T, 1), (128, 1, 1)),
                 ("enigma.gemm", ck.e_tile_gemm, (mn // ck.GEMM_T * 128, mn // ck.GEMM_T, 1), (128, 1, 1))]
        for label, kern, grid, threads in gemms:
            if mn > 512 and label == "simdgroup 8x8":
                continue
            w = Workload(f"{label} {mn}^3", "gemm", flops=2.0 * mn ** 3)
            w.ref = ref
            w.tol = 1e-4
            w.add("enigma", *enigma_prepared(rt, kern, [Am, Bm], 4 * mn * mn, grid, threads, scalars=[mn]))
            if omp:
                w.add("openmp", lambda Am=Am, Bm=Bm, c1=c1, mn=mn: omp.matmul(ptr(Am), ptr(Bm), ptr(c1), mn),
                      lambda c1=c1: c1)
            w.add("numpy (BLAS)", lambda A2m=A2m, B2m=B2m: A2m @ B2m, None)
            W.append(w)
    return W


TARGETS = {"elementwise": ("openmp", 0.90), "compute": ("numba", 1.5), "barrier": ("numba", 1.0),
           "stencil": ("numba", 1.0), "coop": ("openmp", 0.90), "gemm": ("openmp", 0.90)}


def check(w):
    ref = w.ref
    if ref is None and "openmp" in w.impls:
        w.impls["openmp"][0]()
        ref = w.impls["openmp"][1]().astype(np.float64)
    if hasattr(w, "check_enigma"):
        kern, inputs, grid, scalars = w.check_enigma
        raw = enigma.MetalRuntime(device="cpu").execute(enigma.compile(kern), inputs, 256 * 4, grid, (256, 1, 1),
                                                        scalars=scalars)
        if not np.array_equal(np.frombuffer(raw, np.uint32), ref):
            print(f"  WRONG: {w.name} / enigma")
            w.wrong = getattr(w, "wrong", set()) | {"enigma"}
    for impl, (fn, get) in w.impls.items():
        if get is None:
            continue
        fn()
        out = np.asarray(get(), dtype=np.float64).ravel()
        if ref is None:
            continue
        if w.name == "mandelbrot":
            bad = np.count_nonzero(out != ref)
            ok = bad <= max(8, ref.size // 1000)   # float rounding may flip boundary pixels
            err = bad / ref.size
        else:
            err = np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30)
            ok = err <= w.tol
        if not ok:
            print(f"  WRONG: {w.name} / {impl}: relative error {err:.3g}")
            w.wrong = getattr(w, "wrong", set()) | {impl}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--plot", default=os.path.join(HERE, "cpu_benchmarks.png"))
    ap.add_argument("--no-warp", action="store_true")
    ap.add_argument("--no-taichi", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated substrings of the workloads to run")
    ap.add_argument("--out", default="", help="also write the table as markdown to this file")
    ap.add_argument("--warm-cache", action="store_true",
                    help="keep the kernel cache (cold compile times are then cache hits)")
    ap.add_argument("--bounds-check-cost", action="store_true",
                    help="also run every Enigma kernel compiled with bounds_check=False (row enigma-unchecked)")
    args = ap.parse_args()
    global COMPARE_UNCHECKED
    COMPARE_UNCHECKED = args.bounds_check_cost
    if not args.warm_cache:   # cold compile times: an empty kernel cache
        os.environ["ENIGMA_CACHE_DIR"] = tempfile.mkdtemp(prefix="enigma_bench_cache_")

    omp = load_omp()
    numba = try_import("numba")
    nb = numba_peers(numba) if numba else None
    wpx = None if args.no_warp else optional_peers("warp", warp_peers)
    tix = None if args.no_taichi else optional_peers("taichi", taichi_peers)

    caps = enigma.MetalRuntime(device="cpu").device_capabilities()
    print(f"device: {caps.device_name} ({caps.gpu_family}); python {sys.version.split()[0]}; numpy {np.__version__}"
          + (f"; numba {numba.__version__}" if numba else ""))
    work = build(args, omp, nb, wpx, tix)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        work = [w for w in work if any(k in w.name for k in keys)]
    for w in work:
        check(w)
        for fn, _ in w.impls.values():   # warm-up (JIT compiles, page faults)
            fn()

    times = {(w.name, impl): [] for w in work for impl in w.impls}
    for r in range(args.rounds):
        for w in work:
            for impl, (fn, _) in w.impls.items():   # interleaved: every impl once per round
                t0 = time.perf_counter()
                fn()
                times[(w.name, impl)].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{args.rounds} done", flush=True)

    rows = []
    for w in work:
        e = statistics.median(times[(w.name, "enigma")])
        peer, target = TARGETS[w.kind]
        for impl in w.impls:
            t = statistics.median(times[(w.name, impl)])
            ratio = t / e
            note = ""
            if impl == peer:
                note = f"target >= {target:.2f}: {'MET' if ratio >= target else 'MISSED'}"
            if impl in getattr(w, "wrong", set()):
                note += " (WRONG RESULT)"
            extra = ""
            if w.floor_bytes:
                extra = f"{w.floor_bytes / t / 1e9:7.2f} GB/s"
            elif w.flops:
                extra = f"{w.flops / t / 1e9:7.2f} GFLOP/s"
            if impl == "enigma" and hasattr(w, "compile_s"):
                note = (f"compile {w.compile_s[0]:.2f} s cold ({w.compile_s[2]:.2f} s CPU), "
                        f"{w.compile_s[1] * 1e3:.0f} ms cached")
            rows.append((w.name, impl, t * 1e3, ratio, extra, note))

    print()
    print(f"{'workload':<21} {'impl':<13} {'median ms':>10} {'peer/enigma':>12} {'throughput':>14}  note")
    print("-" * 100)
    last = None
    for name, impl, ms, ratio, extra, note in rows:
        print(f"{(name if name != last else ''):<21} {impl:<13} {ms:10.3f} {ratio:11.2f}x {extra:>14}  {note}")
        last = name
    omp_ratios = [r[3] for r in rows if r[1] == "openmp"]
    if omp_ratios:
        geo = statistics.geometric_mean(omp_ratios)
        print(f"\ngeomean openmp/enigma over {len(omp_ratios)} workloads: {geo:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"device: {caps.device_name} ({caps.gpu_family}); python {sys.version.split()[0]}; "
                    f"numpy {np.__version__}; rounds {args.rounds} (medians); load average before the run "
                    f"{os.getloadavg()[0]:.2f}\n\n")
            f.write("| workload | impl | median ms | peer/enigma | throughput | note |\n|---|---|---:|---:|---:|---|\n")
            for name, impl, ms, ratio, extra, note in rows:
                f.write(f"| {name} | {impl} | {ms:.3f} | {ratio:.2f}x | {extra.strip()} | {note} |\n")
            if omp_ratios:
                f.write(f"\ngeomean openmp/enigma over {len(omp_ratios)} workloads: {geo:.2f}x\n")
        print(f"table: {args.out}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        print(f"\n[skip] plot: matplotlib not available ({e})")
        return
    names = [w.name for w in work]
    impls = sorted({impl for w in work for impl in w.impls if impl != "enigma"})
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(1, len(impls))
    for j, impl in enumerate(impls):
        vals = [next((r[3] for r in rows if r[0] == n and r[1] == impl), 0.0) for n in names]
        ax.bar([i + j * width for i in range(len(names))], vals, width, label=impl)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    ax.set_xticklabels(names, rotation=15)
    ax.set_ylabel("peer time / enigma time (>1: enigma faster)")
    ax.set_title(f"Enigma CPU backend vs peers ({caps.device_name})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
