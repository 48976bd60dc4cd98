"""Every bad value gets a clear error before anything runs (docs/runtime.md,
"Limits"): byte order, group-count overflow, integers beyond 64 bits, float
indices, buffers beyond available memory, nesting deeper than the limit."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import enigma
from conftest import subprocess_env


@enigma.kernel
def scaled_add(a: enigma.f32, b: enigma.i32, s: enigma.Scalar(enigma.u64), out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i] + enigma.metal_cast(b[i], "float") + enigma.metal_cast(s & 7, "float")


@pytest.fixture(scope="module")
def ck():
    return enigma.compile(scaled_add)


def run(runtime, ck, a=None, b=None, size=None, grid=(8, 1, 1), threads=(8, 1, 1), s=1):
    a = np.arange(8, dtype=np.float32) if a is None else a
    b = np.arange(8, dtype=np.int32) if b is None else b
    return runtime.execute(ck, [a, b], size or a.size * 4, grid, threads, scalars=[s])


def test_big_endian_inputs_are_converted(runtime, ck):
    a = np.linspace(-3, 5, 8).astype(np.float32)
    b = np.array([1, -2, 3, 70000, -5, 6, 7, 1 << 20], np.int32)
    want = np.frombuffer(run(runtime, ck, a, b), np.float32)
    assert np.array_equal(want, a + b.astype(np.float32) + 1)
    got = np.frombuffer(run(runtime, ck, a.astype(">f4"), b.astype(">i4")), np.float32)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("grid, threads", [((2**32 - 1,) * 3, (1, 1, 1)), ((2**32 - 1, 2**32 - 1, 2), (1, 1, 1))])
def test_threadgroup_count_overflow(runtime, ck, grid, threads):
    with pytest.raises(RuntimeError, match=r"kernel 'scaled_add'.*more than 9223372036854775807 threadgroups"):
        run(runtime, ck, grid=grid, threads=threads)


@pytest.mark.parametrize("what, value", [("grid", 2**64), ("grid", 2**63), ("grid", 2**100), ("threads", 2**64)])
def test_dimensions_beyond_64_bits(runtime, ck, what, value):
    dims = {"grid": (8, 1, 1), "threads": (8, 1, 1)}
    dims[what] = (1, value, 1)
    with pytest.raises(RuntimeError, match=rf"kernel 'scaled_add'.*{what} \(1, {value}, 1\) is too large"):
        run(runtime, ck, **dims)
    prepared = runtime.prepare(ck, [np.zeros(8, np.float32), np.zeros(8, np.int32)], 32, scalars=[0])
    with pytest.raises(RuntimeError, match=rf"{what} \(1, {value}, 1\) is too large"):
        prepared.dispatch(dims["grid"], dims["threads"])
    prepared.release()


@pytest.mark.parametrize("size", [2**63, 2**64, 2**70])
def test_output_sizes_beyond_the_device(runtime, ck, size):
    with pytest.raises(RuntimeError, match=rf"kernel 'scaled_add' output_size is {size} bytes, more than the device"):
        run(runtime, ck, size=size)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 2**80])
def test_scalars_beyond_64_bits(runtime, ck, value):
    with pytest.raises(RuntimeError, match=rf"Scalar parameter 's' \(ulong\) cannot hold {value} \(out of range\)"):
        run(runtime, ck, s=value)
    assert np.frombuffer(run(runtime, ck, s=2**64 - 1), np.float32)[1] == 1 + 1 + 7  # the largest u64 fits


def test_function_constants_beyond_64_bits(runtime):
    @enigma.kernel
    def with_constant(a: enigma.f32, out: enigma.f32):
        c = enigma.function_constant(enigma.u64, 0)
        out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid] + enigma.metal_cast(c & 3, "float")
    ck = enigma.compile(with_constant, emit_only=True)
    a = np.zeros(4, np.float32)
    got = runtime.execute(ck, [a], 16, (4, 1, 1), (4, 1, 1), constants={0: ("ulong", 2**64 - 1)})
    assert np.array_equal(np.frombuffer(got, np.float32), np.full(4, 3, np.float32))
    for value in (2**64, -(2**70)):
        with pytest.raises(RuntimeError, match=rf"constants\[0\]: kernel 'with_constant' cannot hold {value}"):
            runtime.execute(ck, [a], 16, (4, 1, 1), (4, 1, 1), constants={0: ("ulong", value)})


def test_a_float_index_is_an_error_at_the_users_line():
    def k(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = a[1.5]
    line = k.__code__.co_firstlineno + 2
    with pytest.raises(enigma.EnigmaError, match=rf"test_safety_values.py:{line}: .*index must be an integer, got 1.5"):
        enigma.compile(enigma.kernel(k), emit_only=True)

    def k2(a: enigma.f32, out: enigma.f32):
        out[np.float32(2.0)] = a[0]
    with pytest.raises(enigma.EnigmaError, match="index must be an integer"):
        enigma.compile(enigma.kernel(k2), emit_only=True)


def test_buffers_beyond_available_memory_are_refused(runtime, ck, is_cpu):
    if not is_cpu:
        pytest.skip("available memory is measured on the CPU device (GPUs report their allocation failures)")
    caps = runtime._device.capabilities()
    big = int(caps["max_buffer_bytes"]) // 8 * 8  # one buffer the size of the device's memory
    with pytest.raises(RuntimeError, match=r"kernel 'scaled_add' needs \d+ bytes of memory for its buffers"):
        run(runtime, ck, size=big)


@pytest.mark.skipif(sys.platform != "linux", reason="reads the child's peak memory from Linux's rusage")
def test_large_outputs_are_not_touched_up_front(tmp_path):
    """A 1 GiB output buffer costs no memory until written: prepare() and a
    dispatch that writes 8 elements leave the peak resident size far below it."""
    script = tmp_path / "big.py"
    script.write_text(textwrap.dedent("""\
        import resource
        import numpy as np
        import enigma

        @enigma.kernel
        def head(a: enigma.f32, out: enigma.f32):
            out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid]

        rt = enigma.MetalRuntime()
        ck = enigma.compile(head)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p = rt.prepare(ck, [np.ones(8, np.float32)], 1 << 30)
        p.dispatch((8, 1, 1), (8, 1, 1))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p.release()
        print((after - before) // 1024)  # MiB
    """))
    r = subprocess.run([sys.executable, str(script)], env=subprocess_env(ENIGMA_DEVICE="cpu"), capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0 and "available now" in r.stderr:
        pytest.skip("less than 2 GiB of memory available")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) < 256, r.stdout


def nested_loops(depth):
    def k(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        loops = [enigma.for_range(0, 1) for _ in range(depth)]
        for loop in loops:
            loop.__enter__()  # as deep as no Python source could nest
        out[i] = a[i] * 2.0
        for loop in reversed(loops):
            loop.__exit__(None, None, None)
    return enigma.kernel(k)


def test_nesting_deeper_than_the_limit_is_an_error():
    with pytest.raises(enigma.EnigmaError, match=r"test_safety_values.py:\d+: .*nested more than 200 levels"):
        enigma.compile(nested_loops(10_000), emit_only=True)
    with pytest.raises(enigma.EnigmaError, match="nested more than 200 levels"):
        enigma.compile(nested_loops(201), emit_only=True)


def test_nesting_up_to_the_limit_compiles(runtime):
    ck = enigma.compile(nested_loops(200), emit_only=True)
    for backend in ("cpu", "cuda", "metal"):
        assert ck.source(backend)
    ck = enigma.compile(nested_loops(12))
    a = np.arange(4, dtype=np.float32)
    assert np.array_equal(np.frombuffer(runtime.execute(ck, [a], 16, (4, 1, 1), (4, 1, 1)), np.float32), a * 2)
