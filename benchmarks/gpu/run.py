#!/usr/bin/env python3
"""Enigma on an NVIDIA GPU, side by side with its peers in one process
(torch, Triton, CuPy; each optional: a peer that does not import is
skipped), per shared/spec/PERFORMANCE.md:

  * elementwise c = a + b, f32 and bf16, >= 1 GiB per array: enigma
    (prepare + dispatch_timed, inputs bound from torch without a copy) vs
    torch.add(out=), a Triton masked add and cupy.add(out=); CUDA events,
    interleaved rounds, median; % of the floor = time to move the bytes at the
    measured device-to-device copy bandwidth / measured time;
  * GEMM, bfloat16 inputs, float32 accumulate: enigma (examples/gemm_bf16.py:
    simdgroup matrices on the tensor cores, async-copy pipeline) vs
    torch.matmul (cuBLAS, bf16 output) and a Triton GEMM (f32 output), at
    4096^3, 8192^3 and a ragged size (enigma runs it zero-padded to its tile);
    TFLOP/s of the unpadded problem; checked against torch in float32;
  * attention forward, bfloat16 (examples/attention_fwd.py: online softmax,
    simdgroup matrices on the tensor cores) vs torch SDPA with the flash
    backend and with cuDNN where torch offers it, head dims 64 and 128,
    causal and not, seq 1k-16k; TFLOP/s (causal counts half the products);
    checked against torch in float32 on two heads;
  * host cost of one launch: PreparedKernel.dispatch vs CuPy RawKernel (and
    a Triton launch);
  * compile: trace + emit, a cold NVRTC compile (vs CuPy RawKernel cold), a
    disk-cache hit;
  * row reductions, f32, N in 4096..32768, ~1 GiB of input each: RMSNorm and
    softmax, enigma (examples/rmsnorm_rows.py and softmax_rows.py: one
    threadgroup per row, the row in registers as float4, read once) vs torch
    eager and a one-pass Triton kernel (one program loads the whole row);
    each checked against a float64 numpy reference on a slice of rows.

`--smoke` only checks the enigma reduction kernels on tiny inputs on the
default device (ENIGMA_DEVICE=cpu works without a GPU).

Prints the device, driver and toolchain, then a table (last). Ratio is
enigma's speed relative to the peer's: > 1 means enigma is faster.

    python benchmarks/gpu/run.py [--rounds 30] [--gib 1] [--json FILE] [--smoke]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import enigma

ROWS = []  # (workload, peer, peer value, enigma value, unit, ratio, % of floor, note)


BOUNDS_CHECK_COST = False  # --bounds-check-cost
UNCHECKED = "enigma bounds_check=False"


def row(workload, peer, peer_v, enigma_v, unit, ratio=None, floor=None, note=""):
    ROWS.append((workload, peer, peer_v, enigma_v, unit, ratio, floor, note))


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:.0f}"


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def optional(name):
    try:
        return __import__(name)
    except Exception as e:  # noqa: BLE001 - any import failure means "skip this peer"
        print(f"[peer] {name}: not available ({type(e).__name__}: {e})")
        return None


@enigma.kernel
def add_f32(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


@enigma.kernel
def add_bf16(A: enigma.bf16, B: enigma.bf16, C: enigma.bf16):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


def device_info(rt, torch, triton, cupy):
    caps = rt.device_capabilities()
    info = enigma._core.cuda_info()
    lines = [f"device: {caps.device_name} ({caps.gpu_family}, raw {caps.gpu_family_raw}) as {rt.device}",
             f"driver: CUDA {info['driver_version'] // 1000}.{info['driver_version'] % 1000 // 10}; "
             f"NVRTC {info['nvrtc_version']} ({info['nvrtc_path']})",
             f"enigma {enigma.__version__}; numpy {np.__version__}"
             + (f"; torch {torch.__version__} (CUDA {torch.version.cuda})" if torch else "")
             + (f"; triton {triton.__version__}" if triton else "")
             + (f"; cupy {cupy.__version__}" if cupy else "")]
    try:
        q = "name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,temperature.gpu,power.draw"
        smi = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip()
        lines.append(f"nvidia-smi ({q}): {smi}")
    except Exception as e:  # noqa: BLE001
        lines.append(f"nvidia-smi: {e}")
    return lines


def events_ms(torch, fn):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    e.synchronize()
    return s.elapsed_time(e)


def copy_bandwidth(torch, nbytes, rounds):
    """Device-to-device copy, bytes read + written per second: the floor's rate."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    ms = median([events_ms(torch, lambda: b.copy_(a)) for _ in range(rounds)])
    del a, b
    return 2 * nbytes / (ms * 1e-3)


def make_triton_add(triton):
    import triton.language as tl

    @triton.jit
    def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
        pid = tl.program_id(0)
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) + tl.load(y_ptr + offs, mask=mask), mask=mask)

    return add_kernel


def bench_elementwise(rt, torch, triton, cupy, dtype_name, gib, rounds, bw, threads):
    tdt = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    esize = 4 if dtype_name == "f32" else 2
    n = int(gib * (1 << 30)) // esize
    kernel = add_f32 if dtype_name == "f32" else add_bf16
    a = torch.randn(n, device="cuda", dtype=tdt)
    b = torch.randn(n, device="cuda", dtype=tdt)
    c = torch.full((n,), float("nan"), device="cuda", dtype=tdt)
    traffic = 3 * n * esize
    floor_ms = traffic / bw * 1e3
    ck = enigma.compile(kernel)
    pk = rt.prepare(ck, [a, b], n * esize)  # torch tensors bound without a copy
    grid, tg = (n, 1, 1), (threads, 1, 1)
    peers = {"torch.add(out=)": lambda: torch.add(a, b, out=c)}
    if BOUNDS_CHECK_COST:  # the same kernel unchecked: the peer/enigma ratio is the checks' cost
        pku = rt.prepare(enigma.compile(kernel, bounds_check=False), [a, b], n * esize)
        peers[UNCHECKED] = lambda: pku.dispatch(grid, tg)
    if triton is not None:
        tri = make_triton_add(triton)
        peers["triton masked add"] = lambda: tri[(triton.cdiv(n, 1024),)](a, b, c, n, BLOCK=1024)
    if cupy is not None and dtype_name == "f32":  # CuPy has no bfloat16
        ca, cb, cc = cupy.from_dlpack(a), cupy.from_dlpack(b), cupy.from_dlpack(c)
        peers["cupy.add(out=)"] = lambda: cupy.add(ca, cb, out=cc)
    # Warm up everything (compiles, module loads), then check enigma's result.
    for _ in range(3):
        pk.dispatch_timed(grid, tg)
        for f in peers.values():
            f()
    torch.cuda.synchronize()
    want = (a + b).view(torch.int16 if esize == 2 else torch.int32)
    got = torch.from_numpy(np.frombuffer(pk.read_output(), np.int16 if esize == 2 else np.int32).copy())
    ok = torch.equal(got, want.cpu())
    times = {"enigma": [], **{p: [] for p in peers}}
    for _ in range(rounds):  # interleaved
        times["enigma"].append(pk.dispatch_timed(grid, tg))
        for p, f in peers.items():
            times[p].append(events_ms(torch, f))
    pk.release()
    e_ms = median(times["enigma"])
    e_bw = traffic / (e_ms * 1e-3) / 1e12
    wl = f"add {dtype_name}, {n * esize / (1 << 30):.2f} GiB/array"
    print(f"[elementwise {dtype_name}] n={n} traffic={traffic / 1e9:.2f} GB floor={floor_ms:.3f} ms; "
          f"enigma {e_ms:.3f} ms ({e_bw:.3f} TB/s, {'correct' if ok else 'WRONG RESULT'}), threads={threads}")
    for p in peers:
        p_ms = median(times[p])
        print(f"  {p}: {p_ms:.3f} ms ({traffic / (p_ms * 1e-3) / 1e12:.3f} TB/s)")
        row(wl, p, traffic / (p_ms * 1e-3) / 1e12, e_bw, "TB/s", p_ms / e_ms, 100 * floor_ms / e_ms,
            "" if ok else "ENIGMA RESULT WRONG")
    if not peers:
        row(wl, "-", None, e_bw, "TB/s", None, 100 * floor_ms / e_ms, "" if ok else "ENIGMA RESULT WRONG")
    del a, b, c
    gc.collect()
    torch.cuda.empty_cache()


# ---- row reductions ----------------------------------------------------------

RED_N = (4096, 8192, 16384, 32768)
EPS = 1e-6
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
import rmsnorm_rows as _rmsnorm_example  # noqa: E402 - the showcase kernels are the examples'
import softmax_rows as _softmax_example  # noqa: E402


def ref_rmsnorm(x, w):
    xd = np.asarray(x, np.float64)
    return xd / np.sqrt((xd ** 2).mean(1, keepdims=True) + EPS) * np.asarray(w, np.float64)


def ref_softmax(x):
    xd = np.asarray(x, np.float64)
    e = np.exp(xd - xd.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def close(got, want):
    got = np.asarray(got, np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=1e-4, atol=1e-6))


def enigma_rows(rt, kind, x, w, n, rows, threads=None, bounds_check=True):
    """A PreparedKernel and its launch shape; x (and w) bound without a copy."""
    if kind == "rmsnorm":
        ck, t = _rmsnorm_example.compile_rmsnorm(n, threads)
        if not bounds_check:  # --bounds-check-cost: the same kernel unchecked
            ck = enigma.compile(_rmsnorm_example.make_rmsnorm(n, t), vec_width=4, bounds_check=False)
        pk = rt.prepare(ck, [x, w], rows * n * 4)
    else:
        ck, t = _softmax_example.compile_softmax(n, threads)
        if not bounds_check:
            ck = enigma.compile(_softmax_example.make_softmax(n, t), vec_width=4, bounds_check=False)
        pk = rt.prepare(ck, [x], rows * n * 4)
    return pk, (rows * t, 1, 1), (t, 1, 1)


def smoke(rt) -> int:
    """Correctness only, tiny inputs, default device."""
    rng = np.random.default_rng(3)
    bad = 0
    for rows, n, threads in ((3, 1000, 128), (2, 4096, None), (2, 1500, None)):
        x = rng.standard_normal((rows, n)).astype(np.float32) * 3
        w = rng.standard_normal(n).astype(np.float32)
        for kind in ("rmsnorm", "softmax"):
            pk, grid, tg = enigma_rows(rt, kind, x, w, n, rows, threads)
            try:
                pk.dispatch(grid, tg)
                got = np.frombuffer(pk.read_output(), np.float32).reshape(rows, n)
            finally:
                pk.release()
            want = ref_rmsnorm(x, w) if kind == "rmsnorm" else ref_softmax(x)
            ok = close(got, want)
            bad += not ok
            err = float(np.abs(got - want).max())
            print(f"[smoke] {kind} rows={rows} n={n} threads={tg[0]} on {rt.device}: "
                  f"{'correct' if ok else 'WRONG RESULT'} (max abs err {err:.2e})")
    print("[smoke] " + ("all correct" if not bad else f"{bad} WRONG"))
    return 1 if bad else 0


def make_triton_rows(triton):
    import triton.language as tl

    @triton.jit
    def rmsnorm_kernel(x_ptr, w_ptr, y_ptr, n, eps, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + row * n + offs, mask=mask, other=0.0)
        inv = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / n + eps)
        w = tl.load(w_ptr + offs, mask=mask, other=0.0)
        tl.store(y_ptr + row * n + offs, x * inv * w, mask=mask)

    @triton.jit
    def softmax_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + row * n + offs, mask=mask, other=-float("inf"))
        e = tl.exp(x - tl.max(x, axis=0))
        tl.store(y_ptr + row * n + offs, e / tl.sum(e, axis=0), mask=mask)

    return rmsnorm_kernel, softmax_kernel


def _triton_warps(block):
    # enough warps that a whole row stays in registers (<= 32 floats a thread)
    return 32 if block >= 32768 else 16 if block >= 16384 else 8


def bench_rows(rt, torch, triton, kind, n, gib, rounds, bw, threads, check_rows=64):
    rows = max(1, int(gib * (1 << 30)) // (4 * n))
    x = torch.randn(rows, n, device="cuda", dtype=torch.float32)
    w = torch.randn(n, device="cuda", dtype=torch.float32)
    traffic = (2 * rows * n + (n if kind == "rmsnorm" else 0)) * 4  # read x once, write y once
    floor_ms = traffic / bw * 1e3
    outs = {}  # peers that write into a preallocated output
    peers = {}  # each returns its output tensor (torch eager allocates one), or None
    if kind == "rmsnorm":
        F = torch.nn.functional
        if hasattr(F, "rms_norm"):
            peers["torch F.rms_norm"] = lambda: F.rms_norm(x, (n,), w, EPS)
        else:
            peers["torch eager x*rsqrt(mean(x^2)+eps)*w"] = \
                lambda: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w
    else:
        peers["torch.softmax"] = lambda: torch.softmax(x, -1)
    if triton is not None:
        tri_rms, tri_sm = make_triton_rows(triton)
        block = triton.next_power_of_2(n)
        nw = _triton_warps(block)
        y_tri = torch.empty_like(x)
        name = f"triton one-pass (BLOCK={block}, {nw} warps)"
        outs[name] = y_tri
        if kind == "rmsnorm":
            peers[name] = lambda: tri_rms[(rows,)](x, w, y_tri, n, EPS, BLOCK=block, num_warps=nw)
        else:
            peers[name] = lambda: tri_sm[(rows,)](x, y_tri, n, BLOCK=block, num_warps=nw)
    pk, grid, tg = enigma_rows(rt, kind, x, w, n, rows, threads)
    if BOUNDS_CHECK_COST:  # the same kernel unchecked: the peer/enigma ratio is the checks' cost
        pku = enigma_rows(rt, kind, x, w, n, rows, threads, bounds_check=False)[0]
        peers[UNCHECKED] = lambda: pku.dispatch(grid, tg)
        outs[UNCHECKED] = None
    results = {}
    try:
        for _ in range(3):  # warm-up: compiles, module loads
            pk.dispatch_timed(grid, tg)
            for p, f in peers.items():
                r = f()
                if p not in outs:
                    results[p] = r
        torch.cuda.synchronize()
        k = min(rows, check_rows)
        xs, ws = x[:k].cpu().numpy(), w.cpu().numpy()
        want = ref_rmsnorm(xs, ws) if kind == "rmsnorm" else ref_softmax(xs)
        got = np.frombuffer(pk.read_output(), np.float32, count=k * n).reshape(k, n)
        ok = close(got, want)
        peer_ok = {}
        for p in peers:
            if p == UNCHECKED:
                peer_ok[p] = close(np.frombuffer(pku.read_output(), np.float32, count=k * n).reshape(k, n), want)
                continue
            y = outs.get(p, results.get(p))
            peer_ok[p] = y is not None and close(y[:k].cpu().numpy(), want)
        results.clear()
        times = {"enigma": [], **{p: [] for p in peers}}
        for _ in range(rounds):  # interleaved
            times["enigma"].append(pk.dispatch_timed(grid, tg))
            for p, f in peers.items():
                times[p].append(events_ms(torch, f))
    finally:
        pk.release()
    e_ms = median(times["enigma"])
    e_bw = traffic / (e_ms * 1e-3) / 1e9
    wl = f"{kind} f32, N={n}, {rows} rows"
    print(f"[{kind}] N={n} rows={rows} traffic={traffic / 1e9:.2f} GB floor={floor_ms:.3f} ms; enigma {e_ms:.3f} ms "
          f"({e_bw:.0f} GB/s, {100 * floor_ms / e_ms:.0f}% of floor, {'correct' if ok else 'WRONG RESULT'}), "
          f"threads={tg[0]}")
    note_e = "" if ok else "ENIGMA RESULT WRONG"
    for p in peers:
        p_ms = median(times[p])
        p_bw = traffic / (p_ms * 1e-3) / 1e9
        print(f"  {p}: {p_ms:.3f} ms ({p_bw:.0f} GB/s, {100 * floor_ms / p_ms:.0f}% of floor, "
              f"{'correct' if peer_ok[p] else 'WRONG RESULT'})")
        note = "; ".join(t for t in (note_e, "" if peer_ok[p] else "PEER RESULT WRONG") if t)
        row(wl, p, p_bw, e_bw, "GB/s", p_ms / e_ms, 100 * floor_ms / e_ms, note)
    if not peers:
        row(wl, "-", None, e_bw, "GB/s", None, 100 * floor_ms / e_ms, note_e)
    del x, w, outs, peers
    gc.collect()
    torch.cuda.empty_cache()


# ---- GEMM ------------------------------------------------------------------------

import gemm_bf16 as _gemm_example  # noqa: E402 - examples/ is on the path (above)

GEMM_SIZES = ((4096, 4096, 4096), (8192, 8192, 8192), (4000, 4000, 4000))


def make_triton_gemm(triton):
    import triton.language as tl

    @triton.jit
    def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                      GROUP: tl.constexpr):
        pid = tl.program_id(0)
        grid_n = tl.cdiv(N, BN)
        width = GROUP * grid_n
        first_m = (pid // width) * GROUP
        rows = min(tl.cdiv(M, BM) - first_m, GROUP)
        pid_m = first_m + (pid % width) % rows
        pid_n = (pid % width) // rows
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        rk = tl.arange(0, BK)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            a = tl.load(a_ptr + rm[:, None] * K + (k0 + rk)[None, :],
                        mask=(rm[:, None] < M) & ((k0 + rk)[None, :] < K), other=0.0)
            b = tl.load(b_ptr + (k0 + rk)[:, None] * N + rn[None, :],
                        mask=((k0 + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
            acc = tl.dot(a, b, acc)
        tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))

    return matmul_kernel


def time_rounds(torch, pk, grid, tg, peers, rounds):
    """Median-ready times (ms) of the prepared enigma kernel and each peer, interleaved."""
    times = {"enigma": [], **{p: [] for p in peers}}
    for _ in range(rounds):
        times["enigma"].append(pk.dispatch_timed(grid, tg))
        for p, f in peers.items():
            times[p].append(events_ms(torch, f))
    return times


def report_tflops(section, workload, flops, times, check, ok):
    """Prints and records one TFLOP/s row per peer; `check`: what the result was checked to."""
    e_ms = median(times["enigma"])
    e_tf = flops / (e_ms * 1e-3) / 1e12
    print(f"[{section}] {workload}: enigma {e_ms:.3f} ms ({e_tf:.1f} TFLOP/s, {check}, "
          f"{'correct' if ok else 'WRONG RESULT'})")
    for p, ts in times.items():
        if p == "enigma":
            continue
        p_ms = median(ts)
        p_tf = flops / (p_ms * 1e-3) / 1e12
        print(f"  {p}: {p_ms:.3f} ms ({p_tf:.1f} TFLOP/s)")
        row(workload, p, p_tf, e_tf, "TFLOP/s", p_ms / e_ms, None, "" if ok else "ENIGMA RESULT WRONG")


def bench_gemm(rt, torch, triton, m, n, k, rounds):
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(k, n, device="cuda", dtype=torch.bfloat16)
    flops = 2.0 * m * n * k
    BM, BN, BK = _gemm_example.BM, _gemm_example.BN, _gemm_example.BK
    mp, np_, kp = -(-m // BM) * BM, -(-n // BN) * BN, -(-k // BK) * BK
    padded = (mp, np_, kp) != (m, n, k)
    if padded:  # zero padding changes nothing in the product
        ap = torch.zeros(mp, kp, device="cuda", dtype=torch.bfloat16)
        bp = torch.zeros(kp, np_, device="cuda", dtype=torch.bfloat16)
        ap[:m, :k] = a
        bp[:k, :n] = b
    else:
        ap, bp = a, b
    pk = rt.prepare(enigma.compile(_gemm_example.gemm_bf16), [ap, bp], mp * np_ * 4, scalars=[mp, np_, kp])
    grid, tg = _gemm_example.launch_shape(mp, np_)
    peers = {"torch.matmul (cuBLAS, bf16 out)": lambda: torch.matmul(a, b)}
    unchecked = []
    if BOUNDS_CHECK_COST:  # the same kernel unchecked: the peer/enigma ratio is the checks' cost
        unchecked.append(rt.prepare(enigma.compile(_gemm_example.gemm_bf16, bounds_check=False), [ap, bp],
                                    mp * np_ * 4, scalars=[mp, np_, kp]))
        peers[UNCHECKED] = lambda: unchecked[0].dispatch(grid, tg)
    if triton is not None:
        tri = make_triton_gemm(triton)
        c_tri = torch.empty(m, n, device="cuda", dtype=torch.float32)
        cfg = dict(BM=128, BN=128, BK=64, GROUP=8, num_warps=8, num_stages=3)
        grid_t = (triton.cdiv(m, 128) * triton.cdiv(n, 128),)
        peers["triton GEMM (128x128x64, f32 out)"] = lambda: tri[grid_t](a, b, c_tri, m, n, k, **cfg)
    try:
        for _ in range(2):
            pk.dispatch_timed(grid, tg)
            for f in peers.values():
                f()
        torch.cuda.synchronize()
        got = torch.frombuffer(bytearray(pk.read_output()), dtype=torch.float32).view(mp, np_)[:m, :n]
        rows = slice(0, min(m, 256))
        want = (a[rows].float() @ b.float()).cpu()
        rel = float((got[rows] - want).norm() / want.norm())
        times = time_rounds(torch, pk, grid, tg, peers, rounds)
    finally:
        for p in [pk, *unchecked]:
            p.release()
    wl = f"gemm bf16->f32 {m}x{n}x{k}" + (" (enigma padded)" if padded else "")
    report_tflops("gemm", wl, flops, times, f"rel err {rel:.1e}", rel < 1e-4)
    del a, b, ap, bp
    gc.collect()
    torch.cuda.empty_cache()


import attention_fwd as _attention_example  # noqa: E402 - examples/ is on the path (above)

ATTN_SHAPES = ((8, 16, 4096, 64), (8, 16, 4096, 128), (2, 16, 16384, 128), (16, 16, 1024, 128))  # batch, heads, seq, D


def sdpa_peers(torch, q, k, v, causal):
    """torch SDPA forward with each backend torch offers for these inputs."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    peers = {}
    for name, backend in (("torch SDPA flash", SDPBackend.FLASH_ATTENTION),
                          ("torch SDPA cuDNN", getattr(SDPBackend, "CUDNN_ATTENTION", None))):
        if backend is None:
            continue
        def f(backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        try:
            f()
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - a backend this build or card lacks is skipped
            print(f"  [{name}] not available: {type(e).__name__}: {str(e)[:80]}")
            continue
        peers[name] = f
    return peers


def bench_attention(rt, torch, batch, heads, seq, d, causal, rounds):
    q, k, v = (torch.randn(batch, heads, seq, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    flops = 4.0 * batch * heads * seq * seq * d * (0.5 if causal else 1.0)
    kernel = _attention_example.make_attention(d, causal)
    scalars = [seq, 1.0 / d ** 0.5]
    pk = rt.prepare(enigma.compile(kernel), [q, k, v], q.numel() * 2, scalars=scalars)
    grid, tg = _attention_example.launch_shape(batch * heads, seq)
    peers = sdpa_peers(torch, q, k, v, causal)
    unchecked = []
    if BOUNDS_CHECK_COST:  # the same kernel unchecked: the peer/enigma ratio is the checks' cost
        unchecked.append(rt.prepare(enigma.compile(kernel, bounds_check=False), [q, k, v], q.numel() * 2,
                                    scalars=scalars))
        peers[UNCHECKED] = lambda: unchecked[0].dispatch(grid, tg)
    try:
        pk.dispatch_timed(grid, tg)
        torch.cuda.synchronize()
        got = torch.frombuffer(bytearray(pk.read_output()), dtype=torch.bfloat16).view(batch, heads, seq, d)
        import torch.nn.functional as F
        want = F.scaled_dot_product_attention(q[:1, :2].float(), k[:1, :2].float(), v[:1, :2].float(),
                                              is_causal=causal).cpu()
        err = float((got[:1, :2].float() - want).abs().max())
        times = time_rounds(torch, pk, grid, tg, peers, rounds)
    finally:
        for p in [pk, *unchecked]:
            p.release()
    wl = f"attention fwd bf16 b{batch} h{heads} s{seq} d{d}{' causal' if causal else ''}"
    report_tflops("attention", wl, flops, times, f"max abs err {err:.1e}", err < 2e-2)
    del q, k, v
    gc.collect()
    torch.cuda.empty_cache()


CUPY_ADD = r"""
extern "C" __global__ void add(const float* a, const float* b, float* c, unsigned n) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
"""


def per_call_us(launch, sync, calls=2000, rounds=7):
    out = []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            launch()
        t1 = time.perf_counter_ns()
        sync()
        out.append((t1 - t0) / calls / 1e3)
    return median(out)


def bench_launch(rt, torch, triton, cupy):
    n = 1024
    a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    ck = enigma.compile(add_f32)
    pk = rt.prepare(ck, [a, a], n * 4)
    grid, tg = (n, 1, 1), (256, 1, 1)
    pk.dispatch_timed(grid, tg)
    sync = (lambda: torch.cuda.synchronize()) if torch else (lambda: pk.dispatch_timed(grid, tg))
    e_us = per_call_us(lambda: pk.dispatch(grid, tg), sync)
    print(f"[launch] enigma PreparedKernel.dispatch: {e_us:.2f} us/call")
    if cupy is not None:
        k = cupy.RawKernel(CUPY_ADD, "add")
        x = cupy.asarray(a)
        y = cupy.empty_like(x)
        args = (x, x, y, np.uint32(n))
        k((n // 256,), (256,), args)
        c_us = per_call_us(lambda: k((n // 256,), (256,), args), cupy.cuda.Device().synchronize)
        print(f"  cupy RawKernel: {c_us:.2f} us/call")
        row("launch, 4 args (host us/call)", "cupy RawKernel", c_us, e_us, "us", c_us / e_us)
    if triton is not None and torch is not None:
        tri = make_triton_add(triton)
        x = torch.from_numpy(a).cuda()
        y = torch.empty_like(x)
        tri[(n // 1024,)](x, x, y, n, BLOCK=1024)
        t_us = per_call_us(lambda: tri[(n // 1024,)](x, x, y, n, BLOCK=1024), torch.cuda.synchronize)
        print(f"  triton launch: {t_us:.2f} us/call")
        row("launch, 4 args (host us/call)", "triton", t_us, e_us, "us", t_us / e_us)
    if cupy is None and triton is None:
        row("launch, 4 args (host us/call)", "-", None, e_us, "us")
    pk.release()


def _unique_kernel(tag):
    # A distinct constant gives a distinct source, so nothing is cached.
    ns = {"enigma": enigma}
    exec(f"""
@enigma.kernel
def scale_{tag}(A: enigma.f32, B: enigma.f32):
    i = enigma.thread_position_in_grid
    B[i] = A[i] * {tag}.0 + 1.0
""", ns)  # noqa: S102 - benchmark-only kernel factory
    return ns[f"scale_{tag}"]


def bench_compile(rt, cupy):
    device = rt._device
    # trace + emit (emit_only: no backend compile)
    ts = []
    for i in range(20):
        k = _unique_kernel(1000 + i)
        t0 = time.perf_counter()
        ck = enigma.compile(k, emit_only=True)
        ck.source("cuda")
        ts.append((time.perf_counter() - t0) * 1e3)
    trace_ms = median(ts)
    print(f"[compile] trace + emit: {trace_ms:.2f} ms")
    row("compile: trace + emit (ms)", "target 5 ms", 5.0, trace_ms, "ms", 5.0 / trace_ms)
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("ENIGMA_CACHE_DIR")
        os.environ["ENIGMA_CACHE_DIR"] = tmp
        try:
            def precompile_ms(i):
                ck = enigma.compile(_unique_kernel(2000 + i), emit_only=True)
                t0 = time.perf_counter()
                ck._core.precompile(device)
                ms = (time.perf_counter() - t0) * 1e3
                del ck
                gc.collect()
                return ms
            cold = [precompile_ms(i) for i in range(6)]
            hit = [precompile_ms(i) for i in range(6)]  # same sources again: disk cache (modules were unloaded)
        finally:
            if old is None:
                del os.environ["ENIGMA_CACHE_DIR"]
            else:
                os.environ["ENIGMA_CACHE_DIR"] = old
    cold_ms, hit_ms = median(cold[1:]), median(hit)
    print(f"  cold NVRTC: first {cold[0]:.1f} ms, then median {cold_ms:.1f} ms; disk-cache hit {hit_ms:.2f} ms")
    if cupy is not None:
        with tempfile.TemporaryDirectory() as tmp:
            cupy_cold = []
            old = os.environ.get("CUPY_CACHE_DIR")
            os.environ["CUPY_CACHE_DIR"] = tmp
            try:
                for i in range(6):
                    src = CUPY_ADD.replace("a[i] + b[i]", f"a[i] * {3000 + i}.0f + b[i]")
                    t0 = time.perf_counter()
                    cupy.RawKernel(src, "add").compile()
                    cupy_cold.append((time.perf_counter() - t0) * 1e3)
            finally:
                if old is None:
                    del os.environ["CUPY_CACHE_DIR"]
                else:
                    os.environ["CUPY_CACHE_DIR"] = old
        c_ms = median(cupy_cold[1:])
        print(f"  cupy RawKernel cold compile: first {cupy_cold[0]:.1f} ms, then median {c_ms:.1f} ms")
        row("compile: cold NVRTC (ms)", "cupy RawKernel", c_ms, cold_ms, "ms", c_ms / cold_ms)
    else:
        row("compile: cold NVRTC (ms)", "-", None, cold_ms, "ms")
    row("compile: disk-cache hit (ms)", "target 1 ms", 1.0, hit_ms, "ms", 1.0 / hit_ms)


def print_table(header_lines):
    print()
    print("=" * 100)
    for line in header_lines:
        print(line)
    print("ratio = enigma speed / peer speed (> 1: enigma faster); % floor = bytes at copy bandwidth / time")
    cols = ["workload", "peer", "peer", "enigma", "unit", "ratio", "% floor", "note"]
    table = [cols] + [[w, p, fmt(pv), fmt(ev), u, fmt(r), fmt(f, 3) if f is not None else "-", nt]
                      for w, p, pv, ev, u, r, f, nt in ROWS]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(cols))]
    for i, r in enumerate(table):
        print("  ".join(str(c).ljust(widths[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--gib", type=float, default=1.0, help="size of each elementwise array in GiB")
    ap.add_argument("--threads", type=int, default=256, help="threadgroup size of the elementwise kernels")
    ap.add_argument("--red-gib", type=float, default=1.0, help="input size of each RMSNorm/softmax workload in GiB")
    ap.add_argument("--red-threads", type=int, default=None,
                    help="threadgroup size of the row reductions (default: the examples' choice for N)")
    ap.add_argument("--no-gemm", action="store_true", help="skip the GEMM rows")
    ap.add_argument("--only", help="comma-separated sections to run: elementwise, rows, gemm, attention, launch, "
                                   "compile")
    ap.add_argument("--attention-shapes",
                    help="semicolon-separated batch,heads,seq,D (default: " +
                         ";".join(",".join(map(str, a)) for a in ATTN_SHAPES) + ")")
    ap.add_argument("--gemm-sizes", help="comma-separated MxNxK (default: 4096^3, 8192^3, 4000^3)")
    ap.add_argument("--smoke", action="store_true",
                    help="only check the enigma row-reduction kernels on tiny inputs on the default device")
    ap.add_argument("--json", help="write the rows here (default: $OUT/gpu-bench.json when OUT is set)")
    ap.add_argument("--bounds-check-cost", action="store_true",
                    help=f"add a row '{UNCHECKED}' per Enigma workload: the cost of checked memory")
    args = ap.parse_args(argv)
    global BOUNDS_CHECK_COST
    BOUNDS_CHECK_COST = args.bounds_check_cost

    if args.smoke:
        return smoke(enigma.MetalRuntime())
    if not enigma.testing.is_cuda_available():
        print(f"benchmarks/gpu/run.py: SKIPPED: no CUDA device ({enigma._core.cuda_info()['unavailable_reason']})")
        return 0
    rt = enigma.MetalRuntime(device="cuda")
    torch = optional("torch")
    if torch is not None and not torch.cuda.is_available():
        print("[peer] torch: no CUDA")
        torch = None
    triton = optional("triton") if torch is not None else None
    cupy = optional("cupy")
    header = device_info(rt, torch, triton, cupy)
    for line in header:
        print(line)

    only = set(args.only.split(",")) if args.only else {"elementwise", "rows", "gemm", "attention", "launch", "compile"}
    gemm_sizes = GEMM_SIZES if not args.gemm_sizes else \
        tuple(tuple(int(v) for v in g.split("x")) for g in args.gemm_sizes.split(","))
    sections = []
    if torch is not None:
        bw = copy_bandwidth(torch, int(args.gib * (1 << 30)), args.rounds)
        header.append(f"measured device-to-device copy bandwidth: {bw / 1e12:.3f} TB/s (the floor's rate)")
        print(header[-1])
        if "elementwise" in only:
            sections += [lambda: bench_elementwise(rt, torch, triton, cupy, "f32", args.gib, args.rounds, bw,
                                                   args.threads),
                         lambda: bench_elementwise(rt, torch, triton, cupy, "bf16", args.gib, args.rounds, bw,
                                                   args.threads)]
        for kind in ("rmsnorm", "softmax") if "rows" in only else ():
            for n in RED_N:
                sections.append(lambda kind=kind, n=n: bench_rows(rt, torch, triton, kind, n, args.red_gib,
                                                                  args.rounds, bw, args.red_threads))
    else:
        print("[elementwise, rmsnorm, softmax] skipped: need torch for inputs, events and the floor")
    if torch is not None and not args.no_gemm and "gemm" in only:
        for m, n, k in gemm_sizes:
            sections.append(lambda m=m, n=n, k=k: bench_gemm(rt, torch, triton, m, n, k, max(5, args.rounds // 3)))
    if torch is not None and "attention" in only:
        shapes = ATTN_SHAPES if not args.attention_shapes else \
            tuple(tuple(int(v) for v in a.split(",")) for a in args.attention_shapes.split(";"))
        for b, h, sq, d in shapes:
            for causal in (False, True):
                sections.append(lambda b=b, h=h, sq=sq, d=d, causal=causal:
                                bench_attention(rt, torch, b, h, sq, d, causal, max(5, args.rounds // 3)))
    if "launch" in only:
        sections.append(lambda: bench_launch(rt, torch, triton, cupy))
    if "compile" in only:
        sections.append(lambda: bench_compile(rt, cupy))
    for s in sections:
        try:
            s()
        except Exception as e:  # noqa: BLE001 - one failing section must not hide the others
            import traceback
            traceback.print_exc()
            row(getattr(s, "__name__", "section"), "-", None, None, "-", note=f"FAILED: {type(e).__name__}: {e}"[:80])

    out = args.json or (os.path.join(os.environ["OUT"], "gpu-bench.json") if os.environ.get("OUT") else None)
    if out:
        with open(out, "w") as f:
            json.dump({"header": header, "rows": ROWS}, f, indent=1)
    print_table(header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
