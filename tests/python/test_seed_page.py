"""The runtime page (MetalRuntime.txt) is the contract: its code blocks run
here VERBATIM (as text, exec'd) on the default device, and its signatures are
called with the parameter names it documents."""
import os
import pathlib
import textwrap

import numpy as np
import pytest

import enigma
from enigma import CompiledKernel, DeviceCapabilities, PreparedKernel  # names the page's annotations use

SEED_PAGE = "/work/shared/seed/MetalRuntime.txt"

# ---- the page's code blocks, copied character for character ------------------

BLOCK_EXECUTE = """\
raw = rt.execute(compiled, [a, b], n * 4, (n, 1, 1), (256, 1, 1))
out = np.frombuffer(raw, dtype=np.float32)
"""

BLOCK_CAPS = """\
caps: DeviceCapabilities = rt.device_capabilities()
"""

BLOCK_BENCHMARK = """\
prepared = rt.prepare(compiled, [a, b], output_size=n * 4)

# Warm up
prepared.dispatch(grid=(n, 1, 1), threads=(256, 1, 1))

# Timed runs
times = [prepared.dispatch_timed(grid=(n, 1, 1), threads=(256, 1, 1)) for _ in range(10)]
print(f"mean: {sum(times)/len(times):.3f} ms")

result = np.frombuffer(prepared.read_output(), dtype=np.float32)
"""

BLOCK_READ_OUTPUT = """\
raw: bytes = prepared.read_output()
"""

BLOCK_REQUIRE_M3 = """\
caps.require_m3("async copy operations require M3 or newer")
"""


def example_block(example, first, last):
    """The lines of examples/<example> from the one that is ``first`` to the
    one that is ``last`` (stripped), dedented: a block of the page that an
    example runs as it stands, so the page's text is checked there too."""
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / example
    lines = path.read_text(encoding="utf-8").splitlines()
    stripped = [line.strip() for line in lines]
    start = stripped.index(first)
    return textwrap.dedent("\n".join(lines[start:stripped.index(last, start) + 1])) + "\n"


BLOCK_GATED = example_block("capability_gated.py", "caps = rt.device_capabilities()",
                            "compiled = enigma.compile(fallback_gemm)")

ALL_BLOCKS = [BLOCK_EXECUTE, BLOCK_CAPS, BLOCK_BENCHMARK, BLOCK_READ_OUTPUT, BLOCK_REQUIRE_M3, BLOCK_GATED]


@enigma.kernel
def vadd(a: enigma.f32, b: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i] + b[i]


M = K = N = 16


@enigma.kernel
def fast_gemm(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    # one thread per output element, the K loop unrolled 4-wide at trace time
    row = enigma.thread_position_in_grid_xyz("y")
    col = enigma.thread_position_in_grid_xyz("x")
    with enigma.for_range(0, K, 4, init=[0.0]) as (k, acc):
        for u in enigma.range_constexpr(4):
            acc[0] = acc[0] + A[row * K + k + u] * B[(k + u) * N + col]
    C[row * N + col] = acc[0]


@enigma.kernel
def fallback_gemm(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    row = enigma.thread_position_in_grid_xyz("y")
    col = enigma.thread_position_in_grid_xyz("x")
    with enigma.for_range(0, K, init=[0.0]) as (k, acc):
        acc[0] = acc[0] + A[row * K + k] * B[k * N + col]
    C[row * N + col] = acc[0]


def run_block(block, ns):
    exec(compile(block, "<MetalRuntime.txt>", "exec"), ns)  # noqa: S102 - the page's code, verbatim
    return ns


@pytest.fixture
def page_ns(runtime):
    n = 1 << 16
    rng = np.random.default_rng(7)
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    return {"enigma": enigma, "np": np, "rt": runtime, "compiled": enigma.compile(vadd), "a": a, "b": b, "n": n,
            "fast_gemm": fast_gemm, "fallback_gemm": fallback_gemm, "DeviceCapabilities": DeviceCapabilities,
            "PreparedKernel": PreparedKernel, "CompiledKernel": CompiledKernel}


def test_blocks_are_the_pages_text():
    if not os.path.exists(SEED_PAGE):
        pytest.skip("the runtime page is not in this checkout")
    page = open(SEED_PAGE, encoding="utf-8").read()
    for block in ALL_BLOCKS:
        for line in block.splitlines():
            assert line.strip() == "" or line in page, line


def test_constructor():
    rt = enigma.MetalRuntime()
    assert isinstance(rt, enigma.MetalRuntime)
    rt2 = enigma.MetalRuntime(dylib_path=None)      # "Leave it None in almost all cases."
    assert rt2.device == rt.device


def test_execute_and_frombuffer(page_ns):
    ns = run_block(BLOCK_EXECUTE, page_ns)
    assert isinstance(ns["raw"], bytes)
    assert len(ns["raw"]) == ns["n"] * 4
    assert np.array_equal(ns["out"], ns["a"] + ns["b"])


def test_execute_signature_names(page_ns):
    ns = page_ns
    rt, a, b, n = ns["rt"], ns["a"], ns["b"], ns["n"]
    raw = rt.execute(compiled=ns["compiled"], inputs=[a, b], output_size=n * 4, grid=(n, 1, 1),
                     threads=(256, 1, 1))
    assert np.array_equal(np.frombuffer(raw, dtype=np.float32), a + b)


def test_prepare_dispatch_read_output(page_ns):
    ns = page_ns
    rt, a, b, n = ns["rt"], ns["a"], ns["b"], ns["n"]
    prepared: PreparedKernel = rt.prepare(compiled=ns["compiled"], inputs=[a, b], output_size=n * 4)
    assert isinstance(prepared, PreparedKernel)
    assert prepared.dispatch(grid=(n, 1, 1), threads=(256, 1, 1)) is None   # "Does not return output"
    elapsed_ms: float = prepared.dispatch_timed(grid=(n, 1, 1), threads=(256, 1, 1))
    assert isinstance(elapsed_ms, float) and elapsed_ms > 0
    ns["prepared"] = prepared
    run_block(BLOCK_READ_OUTPUT, ns)
    assert isinstance(ns["raw"], bytes)
    assert np.array_equal(np.frombuffer(ns["raw"], dtype=np.float32), a + b)
    prepared.release()


def test_benchmarking_loop(page_ns, capsys):
    ns = run_block(BLOCK_BENCHMARK, page_ns)
    times = ns["times"]
    assert len(times) == 10
    assert all(isinstance(t, float) and t > 0 for t in times)
    out = capsys.readouterr().out
    assert out.startswith("mean: ") and out.rstrip().endswith(" ms")
    assert np.array_equal(ns["result"], ns["a"] + ns["b"])
    ns["prepared"].release()


def test_device_capabilities(page_ns):
    ns = run_block(BLOCK_CAPS, page_ns)
    caps = ns["caps"]
    assert isinstance(caps, DeviceCapabilities)
    assert isinstance(caps.gpu_family, str) and caps.gpu_family
    assert isinstance(caps.gpu_family_raw, int)
    assert isinstance(caps.is_m3_or_newer, bool)
    assert isinstance(caps.supports_async_copy, bool)
    assert isinstance(caps.supports_simdgroup_matrix, bool)
    assert isinstance(caps.simdgroup_size, int) and caps.simdgroup_size == 32
    assert isinstance(caps.max_threadgroup_memory, int) and caps.max_threadgroup_memory > 0
    assert isinstance(caps.max_threads_per_threadgroup, int) and caps.max_threads_per_threadgroup >= 256
    # SEMANTICS 2: plus device_name and backend; M3-class means both M3 features
    assert isinstance(caps.device_name, str) and caps.device_name
    assert caps.backend in ("metal", "cuda", "cpu")
    assert caps.is_m3_or_newer == (caps.supports_async_copy and caps.supports_simdgroup_matrix)


def test_require_m3(page_ns):
    ns = run_block(BLOCK_CAPS, page_ns)
    caps = ns["caps"]
    if caps.is_m3_or_newer:
        assert run_block(BLOCK_REQUIRE_M3, ns) is ns           # returns None, raises nothing
        assert caps.require_m3(feature_description="x") is None
    else:
        with pytest.raises(RuntimeError) as e:
            run_block(BLOCK_REQUIRE_M3, ns)
        assert "async copy operations require M3 or newer" in str(e.value)
        assert caps.gpu_family in str(e.value)
        with pytest.raises(RuntimeError, match="my feature"):
            caps.require_m3(feature_description="my feature")
    # a device that is not M3-class always raises (the rule, independent of this machine)
    old = DeviceCapabilities("apple8", 1008, False, True, 32, 32768, 1024, "Apple M2", "metal")
    assert not old.is_m3_or_newer
    with pytest.raises(RuntimeError, match="requires Apple GPU family 9 \\(M3/A17\\) or newer.*Apple M2"):
        old.require_m3("simdgroup async copies")
    new = DeviceCapabilities("apple9", 1009, True, True, 32, 32768, 1024, "Apple M3", "metal")
    assert new.is_m3_or_newer and new.require_m3("x") is None


def test_capability_gated_compile(page_ns, capsys):
    ns = run_block(BLOCK_GATED, page_ns)
    caps = ns["caps"]
    printed = capsys.readouterr().out
    assert printed == f"GPU: {caps.gpu_family}, SIMD size: {caps.simdgroup_size}\n"
    compiled = ns["compiled"]
    assert compiled.kernel_name == ("fast_gemm" if caps.supports_simdgroup_matrix else "fallback_gemm")
    rng = np.random.default_rng(3)
    A = rng.standard_normal((M, K)).astype(np.float32)
    B = rng.standard_normal((K, N)).astype(np.float32)
    rt = ns["rt"]
    for ck in (compiled, enigma.compile(fast_gemm), enigma.compile(fallback_gemm)):
        raw = rt.execute(ck, [A, B], M * N * 4, (N, M, 1), (8, 8, 1))
        C = np.frombuffer(raw, dtype=np.float32).reshape(M, N)
        assert np.allclose(C, A.astype(np.float64) @ B.astype(np.float64), rtol=1e-5, atol=1e-5)


@enigma.kernel
def oob_kernel(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i + 100]            # reads past the end of `a` for most threads


def test_dispatch_error_contents(runtime):
    """A real dispatch failure (debug-mode bounds check) raises RuntimeError with
    the kernel name, grid, threads and the error code and description."""
    ck = enigma.compile(oob_kernel, debug=True)
    a = np.zeros(64, np.float32)
    with pytest.raises(RuntimeError) as e:
        runtime.execute(ck, [a], 64 * 4, (64, 1, 1), (32, 1, 1))
    msg = str(e.value)
    assert "oob_kernel" in msg
    assert "(64, 1, 1)" in msg and "(32, 1, 1)" in msg
    assert "grid" in msg and "threads" in msg
    assert "dispatch failed" in msg
    assert "out-of-bounds" in msg and "'a'" in msg      # description: which buffer
    assert "error: " in msg                              # the code line
    # the same failure through a PreparedKernel; it stays usable afterwards
    a200 = np.arange(200, dtype=np.float32)
    p = runtime.prepare(ck, [a200], 128 * 4)
    with pytest.raises(RuntimeError, match="oob_kernel"):
        p.dispatch((128, 1, 1), (32, 1, 1))           # thread 100 reads a[200]
    p.dispatch((64, 1, 1), (32, 1, 1))                # in bounds
    assert np.array_equal(np.frombuffer(p.read_output(), np.float32)[:64], a200[100:164])
    p.release()
    good = runtime.execute(enigma.compile(vadd), [a + 1, a], 64 * 4, (64, 1, 1), (32, 1, 1))
    assert np.frombuffer(good, np.float32).tolist() == [1.0] * 64


def test_debug_mode_in_bounds_runs(runtime):
    """Debug mode does not change correct kernels' results."""
    ck = enigma.compile(vadd, debug=True)
    a = np.arange(100, dtype=np.float32)
    raw = runtime.execute(ck, [a, a], 400, (100, 1, 1), (32, 1, 1))
    assert np.array_equal(np.frombuffer(raw, np.float32), a + a)


def test_debug_mode_from_environment(runtime, monkeypatch):
    monkeypatch.setenv("ENIGMA_DEBUG", "1")
    ck = enigma.compile(oob_kernel)
    with pytest.raises(RuntimeError, match="out-of-bounds"):
        runtime.execute(ck, [np.zeros(64, np.float32)], 256, (64, 1, 1), (32, 1, 1))
    monkeypatch.setenv("ENIGMA_DEBUG", "0")
    ck = enigma.compile(oob_kernel)
    assert ck.source("cpu") == enigma.compile(oob_kernel, debug=False).source("cpu")



# ---- what execute()/prepare() promise beyond the page (SEMANTICS 4, 5) ---------

@enigma.kernel
def bump(a: enigma.i32, out: enigma.i32):
    i = enigma.thread_position_in_grid
    a[i] = a[i] + 1000                 # a write to an input: never returned to the caller
    out[i] = out[i] + a[i]             # reads the (zeroed, then persistent) output


def test_outputs_start_zeroed_and_inputs_are_copied(runtime):
    ck = enigma.compile(bump)
    a = np.arange(8, dtype=np.int32)
    before = a.copy()
    got = np.frombuffer(runtime.execute(ck, [a], 32, (8, 1, 1), (8, 1, 1)), np.int32)
    assert got.tolist() == (before + 1000).tolist()
    assert np.array_equal(a, before)                     # the caller's array is untouched
    # a PreparedKernel keeps its buffers: inputs and outputs persist across dispatches
    p = runtime.prepare(ck, [a], 32)
    for _ in range(3):
        p.dispatch((8, 1, 1), (8, 1, 1))
    # dispatch k adds a + 1000k to out: total 3a + 6000
    assert np.frombuffer(p.read_output(), np.int32).tolist() == (3 * before + 6000).tolist()
    assert np.array_equal(a, before)
    p.release()


def test_inputs_through_the_buffer_protocol(runtime):
    import array
    ck = enigma.compile(vadd)
    x = np.arange(20, dtype=np.float32)
    strided = x[::2]                                     # not contiguous: copied in order
    mv = memoryview(np.ones(10, np.float32))
    arr = array.array("f", [0.5] * 10)
    raw = runtime.execute(ck, [strided, mv], 40, (10, 1, 1), (10, 1, 1))
    assert np.frombuffer(raw, np.float32).tolist() == (strided + 1).tolist()
    raw = runtime.execute(ck, [arr, strided.reshape(2, 5)], 40, (10, 1, 1), (10, 1, 1))
    assert np.frombuffer(raw, np.float32).tolist() == (strided + 0.5).tolist()
