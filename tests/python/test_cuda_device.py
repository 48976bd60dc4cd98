"""The CUDA device: capabilities, the cubin cache, error texts, launch limits,
interop with torch/CuPy arrays, and bit-identical results to the CPU backend
for every op and dtype. Skipped where no CUDA device is available (the tests
of the unavailable device run there instead)."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import enigma
from conftest import BF16, bits_equal, np_dtype, subprocess_env
from cuda_zoo import zoo, zoo_queries

HAVE_CUDA = enigma.testing.is_cuda_available()
needs_cuda = pytest.mark.skipif(not HAVE_CUDA, reason="no CUDA device")


@pytest.fixture(scope="module")
def cuda():
    return enigma.MetalRuntime(device="cuda")


@pytest.fixture(scope="module")
def cpu():
    return enigma.MetalRuntime(device="cpu")


@enigma.kernel
def add(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


@enigma.kernel
def bump(A: enigma.f32, C: enigma.f32):
    # Writes its input: execute() must not change the caller's array.
    i = enigma.thread_position_in_grid
    A[i] = A[i] + 1.0
    C[i] = A[i]


@enigma.kernel
def poke(n: enigma.Scalar(enigma.u64), C: enigma.f32):
    C[n] = 1.0


# ---- without a device ------------------------------------------------------------

@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA device is available")
def test_unavailable_device_says_why():
    with pytest.raises(RuntimeError, match=r"device 'cuda' is not available on this machine: .+"):
        enigma.MetalRuntime(device="cuda")
    info = enigma._core.cuda_info()
    assert info["unavailable_reason"]
    assert "cuda" not in enigma._core.available_backends()


def test_cuda_info_reports_what_was_found():
    info = enigma._core.cuda_info()
    for key in ("driver_loaded", "driver_version", "device_count", "nvrtc_path", "nvrtc_version", "nvrtc_options"):
        assert key in info
    assert info["nvrtc_path"] or "NVRTC" in info["nvrtc_error"]


# ---- on a CUDA device -------------------------------------------------------------

@needs_cuda
def test_capabilities_mapping(cuda):
    c = cuda.device_capabilities()
    raw = c.gpu_family_raw
    assert c.backend == "cuda"
    assert c.gpu_family == f"cuda-sm{raw - 10000}" and 10000 < raw < 20000
    assert c.simdgroup_size == 32
    assert c.max_threads_per_threadgroup == 1024
    assert c.max_threadgroup_memory >= 48 * 1024
    # Async copy and simdgroup matrices are implemented on CUDA: M3-class.
    assert c.is_m3_or_newer and c.supports_async_copy and c.supports_simdgroup_matrix
    assert c.device_name
    c.require_m3("simdgroup matrices")  # does not raise
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        assert raw == 10000 + major * 10 + minor
        assert c.device_name == torch.cuda.get_device_name(0)


@needs_cuda
def test_add_runs_and_times(cuda, rng):
    n = (1 << 20) + 3  # a partial last threadgroup
    a = rng.standard_normal(n, dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)
    ck = enigma.compile(add)
    out = np.frombuffer(cuda.execute(ck, [a, b], n * 4, (n, 1, 1), (256, 1, 1)), np.float32)
    assert np.array_equal(out, a + b)
    with cuda.prepare(ck, [a, b], n * 4) as pk:
        for _ in range(3):
            pk.dispatch((n, 1, 1), (256, 1, 1))  # asynchronous
        ms = pk.dispatch_timed((n, 1, 1), (256, 1, 1))
        assert 0.0 < ms < 1000.0
        assert np.array_equal(np.frombuffer(pk.read_output(), np.float32), a + b)


@needs_cuda
def test_partial_groups_and_queries_match_cpu(cuda, cpu):
    ck = enigma.compile(zoo_queries)
    for grid, threads in [((37, 5, 3), (8, 4, 2)), ((100, 1, 1), (64, 1, 1)), ((33, 33, 1), (32, 32, 1)),
                          ((5, 7, 9), (1, 1, 64))]:
        size = grid[0] * grid[1] * grid[2] * 20 * 4
        got = cuda.execute(ck, [], size, grid, threads)
        want = cpu.execute(ck, [], size, grid, threads)
        assert got == want, (grid, threads)


def _special(short, n, rng):
    dt = np_dtype(short)
    if short == "b1":
        return rng.integers(0, 2, n).astype(bool)
    if short in ("f32", "f16", "bf16"):
        specials = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, 3.0, np.inf, -np.inf, np.nan, 65504.0, 65520.0,
                             1e-8, -1e-8, 6e-5, 3e38, -3e38, 1e-45, 127.5, -128.5, 255.5, 4294967296.0,
                             -2147483648.0, 9.3e18, -9.3e18, 1.9e19], dtype=np.float32)
        vals = np.concatenate([specials, (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 6, n)).astype(np.float32)])
        vals = vals[:n] if len(vals) >= n else np.resize(vals, n)
        if short == "f32":
            return vals
        with np.errstate(over="ignore"):
            if short == "f16":
                return vals.astype(np.float16)
            return vals.astype(BF16) if BF16 is not None else (vals.view(np.uint32) >> 16).astype(np.uint16)
    info = np.iinfo(dt)
    small = [0, 1, 2, 3, 7, 8, 31, 32, 33, 63, 64, int(info.max), int(info.max) - 1]
    if info.min < 0:
        small += [-1, -2, -3, -8, -33, -64, int(info.min), int(info.min) + 1]
    specials = np.array(small, dtype=object).astype(dt)
    rand = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    return np.concatenate([specials, rand])[:n]


@needs_cuda
@pytest.mark.parametrize("entry", [z for z in zoo() if z[2]], ids=lambda z: z[0].name)
def test_bit_identical_to_cpu(cuda, cpu, entry, rng):
    kernel, inputs, outputs = entry
    n = 4096
    arrays = [_special(t, n, rng) for t in inputs]
    # Pair every special value with every other in binary kernels.
    if len(arrays) == 2:
        arrays[1] = np.roll(arrays[1], 7)
        arrays[1][:n // 2] = np.repeat(arrays[1][:64], n // 128)[: n // 2]
    ck = enigma.compile(kernel, emit_only=True)
    sizes = [np_dtype(t).itemsize * per * n for t, per in outputs]
    scalars = [5, 0.375, True] if kernel.name == "zoo_control" else None
    got = cuda.execute(ck, arrays, grid=(n, 1, 1), threads=(128, 1, 1), output_sizes=sizes, scalars=scalars)
    want = cpu.execute(ck, arrays, grid=(n, 1, 1), threads=(128, 1, 1), output_sizes=sizes, scalars=scalars)
    for j, (g, w) in enumerate(zip(got, want)):
        if g == w:
            continue
        dt = np_dtype(outputs[j][0])
        # Only NaN payloads may differ (GPUs return a canonical NaN from arithmetic).
        with np.errstate(invalid="ignore"):
            bits_equal(np.frombuffer(g, dt), np.frombuffer(w, dt))
        assert outputs[j][0] in ("f32", "f16", "bf16"), f"output {j} ({outputs[j][0]}) differs"


@needs_cuda
def test_cubins_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("ENIGMA_CACHE_DIR", str(tmp_path))

    @enigma.kernel
    def cached_kernel(A: enigma.i32, B: enigma.i32):
        i = enigma.thread_position_in_grid
        B[i] = A[i] * 3 + 12345

    rt = enigma.MetalRuntime(device="cuda")
    a = np.arange(100, dtype=np.int32)
    out = np.frombuffer(rt.execute(enigma.compile(cached_kernel), [a], 400, (100, 1, 1), (32, 1, 1)), np.int32)
    assert np.array_equal(out, a * 3 + 12345)
    cubins = glob.glob(str(tmp_path / "**" / "kernel.cubin"), recursive=True)
    assert len(cubins) == 1
    # A corrupt entry is rebuilt, never trusted (a fresh CompiledKernel misses the in-memory copy).
    with open(cubins[0], "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)
    import gc
    gc.collect()
    out = np.frombuffer(rt.execute(enigma.compile(cached_kernel), [a], 400, (100, 1, 1), (32, 1, 1)), np.int32)
    assert np.array_equal(out, a * 3 + 12345)


@needs_cuda
def test_launch_limits_are_refused_before_launch(cuda):
    ck = enigma.compile(add)
    a = np.zeros(16, np.float32)
    with cuda.prepare(ck, [a, a], 64) as pk:
        with pytest.raises(RuntimeError, match=r"threads.z = 128 exceeds this GPU's limit of 64"):
            pk.dispatch((1, 1, 128), (1, 1, 128))
        with pytest.raises(RuntimeError, match=r"grid.y / threads.y needs 70000 threadgroups"):
            pk.dispatch((1, 70000, 1), (1, 1, 1))
        with pytest.raises(RuntimeError, match=r"at most 1024"):
            pk.dispatch((2048, 1, 1), (2048, 1, 1))
        pk.dispatch((16, 1, 1), (16, 1, 1))  # still usable
        assert np.frombuffer(pk.read_output(), np.float32).shape == (16,)


@needs_cuda
def test_debug_mode_reports_out_of_bounds(cuda):
    ck = enigma.compile(poke, debug=True)
    with pytest.raises(RuntimeError, match=r"out-of-bounds store to buffer 'C' at index 1000 \(it holds 16 float"):
        cuda.execute(ck, [], 64, (1, 1, 1), (1, 1, 1), scalars=[1000])
    out = np.frombuffer(cuda.execute(ck, [], 64, (1, 1, 1), (1, 1, 1), scalars=[3]), np.float32)
    assert out[3] == 1.0 and out.sum() == 1.0


@needs_cuda
def test_sticky_error_is_reported_plainly():
    # An illegal address poisons the CUDA context: run it in a child process.
    # Only an unchecked kernel can reach one (checked memory drops the store).
    code = textwrap.dedent("""
        import numpy as np, enigma
        from test_cuda_device import poke
        rt = enigma.MetalRuntime(device="cuda")
        ck = enigma.compile(poke, bounds_check=False)
        try:
            rt.execute(ck, [], 64, (1, 1, 1), (1, 1, 1), scalars=[1 << 44])
        except RuntimeError as e:
            print("FIRST:", e)
        try:
            rt.execute(ck, [], 64, (1, 1, 1), (1, 1, 1), scalars=[0])
        except RuntimeError as e:
            print("SECOND:", e)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=subprocess_env(ENIGMA_DEVICE="cuda"), cwd=os.path.dirname(__file__))
    assert "FIRST:" in r.stdout, r.stdout + r.stderr
    first = r.stdout.split("FIRST:")[1].split("SECOND:")[0]
    assert "kernel: poke" in first and "CUDA_ERROR_ILLEGAL_ADDRESS" in first
    assert "the CUDA context is unusable after CUDA_ERROR_ILLEGAL_ADDRESS; restart the process" in first
    assert "the CUDA context is unusable after CUDA_ERROR_ILLEGAL_ADDRESS" in r.stdout.split("SECOND:")[1]


def _torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


@needs_cuda
def test_torch_tensors_are_bound_without_copy(cuda):
    torch = _torch()
    n = 1 << 16
    a = torch.randn(n, device="cuda")
    b = torch.randn(n, device="cuda")
    ck = enigma.compile(add)
    out = np.frombuffer(cuda.execute(ck, [a, b], n * 4, (n, 1, 1), (256, 1, 1)), np.float32)
    assert np.array_equal(out, (a + b).cpu().numpy())
    with cuda.prepare(ck, [a, b], n * 4) as pk:
        a.fill_(2.0)  # the prepared kernel sees the tensor's memory itself
        pk.dispatch((n, 1, 1), (256, 1, 1))
        out = np.frombuffer(pk.read_output(), np.float32)
        assert np.array_equal(out, (b + 2.0).cpu().numpy())


@needs_cuda
def test_written_torch_input_is_left_unchanged(cuda):
    torch = _torch()
    a = torch.arange(256, device="cuda", dtype=torch.float32)
    before = a.clone()
    out = np.frombuffer(cuda.execute(enigma.compile(bump), [a], 1024, (256, 1, 1), (64, 1, 1)), np.float32)
    assert np.array_equal(out, before.cpu().numpy() + 1)
    assert torch.equal(a, before)


@needs_cuda
def test_torch_bf16_and_cupy_inputs(cuda):
    torch = _torch()

    @enigma.kernel
    def add_bf16(A: enigma.bf16, B: enigma.bf16, C: enigma.bf16):
        i = enigma.thread_position_in_grid
        C[i] = A[i] + B[i]

    n = 4096
    a = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    got = np.frombuffer(cuda.execute(enigma.compile(add_bf16), [a, b], n * 2, (n, 1, 1), (128, 1, 1)), np.uint16)
    want = (a + b).view(torch.int16).cpu().numpy().view(np.uint16)
    assert np.array_equal(got, want)
    with pytest.raises(RuntimeError, match="must hold float elements"):
        cuda.execute(enigma.compile(add), [a, b], n * 4, (n, 1, 1), (128, 1, 1))
    cupy = pytest.importorskip("cupy")
    x = cupy.arange(n, dtype=cupy.float32)
    y = cupy.ones(n, dtype=cupy.float32)
    got = np.frombuffer(cuda.execute(enigma.compile(add), [x, y], n * 4, (n, 1, 1), (128, 1, 1)), np.float32)
    assert np.array_equal(got, np.arange(n, dtype=np.float32) + 1)


@needs_cuda
def test_cuda_arrays_on_the_cpu_device_are_copied(cpu):
    torch = _torch()
    a = torch.ones(64, device="cuda")
    out = np.frombuffer(cpu.execute(enigma.compile(add), [a, a], 256, (64, 1, 1), (64, 1, 1)), np.float32)
    assert np.all(out == 2.0)


@needs_cuda
def test_grouped_blocks_match_cpu():
    # Large grids run several threadgroups per CUDA block; force it on small
    # ones (with partial groups at every edge) and compare with the CPU.
    code = textwrap.dedent("""
        import numpy as np, enigma
        from conftest import np_dtype
        from cuda_zoo import zoo, zoo_queries
        cuda, cpu = enigma.MetalRuntime(device="cuda"), enigma.MetalRuntime(device="cpu")
        ck = enigma.compile(zoo_queries, emit_only=True)
        assert ck._core.cuda_groups_per_block == 4
        for grid, threads in [((37, 5, 3), (8, 4, 2)), ((100, 1, 1), (16, 1, 1)), ((1000, 3, 1), (32, 2, 1)),
                              ((4096, 1, 1), (256, 1, 1)), ((7, 1, 1), (64, 1, 1))]:
            size = grid[0] * grid[1] * grid[2] * 20 * 4
            assert cuda.execute(ck, [], size, grid, threads) == cpu.execute(ck, [], size, grid, threads), grid
        rng = np.random.default_rng(1)
        for kernel, inputs, outputs in zoo():
            if not kernel.name.startswith(("zoo_arith_f16", "zoo_arith_i32", "zoo_cvt_f32", "zoo_control")):
                continue
            n = 3000
            arrays = [(rng.standard_normal(n) * 100).astype(np_dtype(t)) for t in inputs]
            k = enigma.compile(kernel, emit_only=True)
            sizes = [np_dtype(t).itemsize * p * n for t, p in outputs]
            sc = [5, 0.375, True] if kernel.name == "zoo_control" else None
            a = cuda.execute(k, arrays, grid=(n, 1, 1), threads=(64, 1, 1), output_sizes=sizes, scalars=sc)
            b = cpu.execute(k, arrays, grid=(n, 1, 1), threads=(64, 1, 1), output_sizes=sizes, scalars=sc)
            for x, y, (t, _) in zip(a, b, outputs):
                dt = np_dtype(t)
                xa, ya = np.frombuffer(x, dt), np.frombuffer(y, dt)
                same = (xa == ya) | (np.isnan(xa.astype(np.float64)) & np.isnan(ya.astype(np.float64)))
                assert same.all(), (kernel.name, t)
        print("GROUPED OK")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=subprocess_env(ENIGMA_DEVICE="cuda", ENIGMA_CUDA_GROUPED_MIN_THREADS=1),
                       cwd=os.path.dirname(__file__))
    assert "GROUPED OK" in r.stdout, r.stdout + r.stderr
