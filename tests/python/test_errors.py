"""Every validation of SEMANTICS section 5: each error names the kernel and
says what was expected and what was given, and the runtime stays usable."""
import os

import numpy as np
import pytest

import enigma
from conftest import saxpy


@enigma.kernel
def twice(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i] * 2.0


@enigma.kernel
def narrow(a: enigma.i8, s: enigma.Scalar(enigma.i8), b: enigma.Scalar(enigma.b1), out: enigma.i8):
    out[0] = a[0] + s


N = 64
X = np.arange(N, dtype=np.float32)
Y = np.ones(N, dtype=np.float32)


@pytest.fixture(scope="module")
def ck_axpy():
    return enigma.compile(saxpy)


@pytest.fixture(scope="module")
def ck_twice():
    return enigma.compile(twice)


def still_works(rt, ck_twice):
    """After an error, the same runtime runs a good kernel."""
    raw = rt.execute(ck_twice, [X], N * 4, (N, 1, 1), (32, 1, 1))
    assert np.array_equal(np.frombuffer(raw, np.float32), X * 2)


def expect_error(rt, ck_twice, fn, *words, exc=RuntimeError):
    with pytest.raises(exc) as e:
        fn()
    msg = str(e.value)
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    still_works(rt, ck_twice)
    return msg


def test_wrong_number_of_inputs(runtime, ck_axpy, ck_twice):
    msg = expect_error(runtime, ck_twice,
                       lambda: runtime.execute(ck_axpy, [X], N * 4, (N, 1, 1), (32, 1, 1), scalars=[1.0, N]),
                       "saxpy", "5 parameter(s)", "1 input(s)", "2 scalar(s)", "1 output buffer(s)")
    assert "[x, y, alpha, n, out]" in msg
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [X, X], N * 4, (N, 1, 1), (32, 1, 1)),
                 "twice", "2 parameter(s)", "2 input(s)", "[a, out]")
    expect_error(runtime, ck_twice, lambda: runtime.prepare(ck_twice, [], N * 4), "twice", "[a, out]")
    # too many outputs
    expect_error(runtime, ck_twice,
                 lambda: runtime.execute(ck_twice, [X], grid=(N, 1, 1), threads=(32, 1, 1), output_sizes=[8, 8]),
                 "twice", "2 output buffer(s)", "[a, out]")


def test_wrong_number_of_scalars(runtime, ck_axpy, ck_twice):
    expect_error(runtime, ck_twice,
                 lambda: runtime.execute(ck_axpy, [X, Y], N * 4, (N, 1, 1), (32, 1, 1), scalars=[1.0]),
                 "saxpy", "2 scalar(s)", "[alpha, n]", "got 1")
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_axpy, [X, Y], N * 4, (N, 1, 1), (32, 1, 1)),
                 "saxpy", "2 scalar(s)", "got 0")
    expect_error(runtime, ck_twice, lambda: runtime.prepare(ck_axpy, [X, Y], N * 4, scalars=[1.0, 2, 3]),
                 "saxpy", "got 3")


def test_scalars_to_kernel_without_scalar_params(runtime, ck_twice):
    expect_error(runtime, ck_twice,
                 lambda: runtime.execute(ck_twice, [X], N * 4, (N, 1, 1), (32, 1, 1), scalars=[1.0]),
                 "twice", "no Scalar parameters", "1 scalar")


def test_input_dtype_mismatch(runtime, ck_axpy, ck_twice):
    msg = expect_error(runtime, ck_twice,
                       lambda: runtime.execute(ck_twice, [X.astype(np.float64)], N * 4, (N, 1, 1), (32, 1, 1)),
                       "twice", "'a'", "float64", "float32")
    assert "(64,)" in msg
    expect_error(runtime, ck_twice,
                 lambda: runtime.execute(ck_axpy, [X, Y.astype(np.int32)], N * 4, (N, 1, 1), (32, 1, 1),
                                         scalars=[1.0, N]),
                 "saxpy", "'y'", "int32", "float32")
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [3.0], N * 4, (N, 1, 1), (32, 1, 1)),
                 "twice", "float", "scalars")
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, X, N * 4, (N, 1, 1), (32, 1, 1)),
                 "twice", "list")


@pytest.mark.parametrize("size,words", [
    (0, ["positive", "0"]),
    (-4, ["positive", "-4"]),
    (6, ["6 bytes", "float", "4 bytes"]),
    (1 << 62, [str(1 << 62), "bytes"]),
    (4.0, ["positive integers", "4.0"]),
])
def test_bad_output_size(runtime, ck_twice, size, words):
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [X], size, (N, 1, 1), (32, 1, 1)),
                 "twice", *words)
    expect_error(runtime, ck_twice, lambda: runtime.prepare(ck_twice, [X], size), "twice", *words)


def test_missing_output_size(runtime, ck_twice):
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [X], grid=(N, 1, 1), threads=(32, 1, 1)),
                 "twice", "output_size")


BAD_DIMS = [(0, 1, 1), (N, 0, 1), (-1, 1, 1), (N, 1), (N, 1, 1, 1), ("64", 1, 1), (N, 1.0, 1), "abc", None,
            (True, 1, 1)]


@pytest.mark.parametrize("bad", BAD_DIMS, ids=[repr(b) for b in BAD_DIMS])
def test_bad_grid_and_threads(runtime, ck_twice, bad):
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [X], N * 4, bad, (32, 1, 1)),
                 "twice", "grid", "3 positive integers", repr(bad))
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [X], N * 4, (N, 1, 1), bad),
                 "twice", "threads", "3 positive integers", repr(bad))
    p = runtime.prepare(ck_twice, [X], N * 4)
    expect_error(runtime, ck_twice, lambda: p.dispatch(bad, (32, 1, 1)), "twice", "grid", repr(bad))
    expect_error(runtime, ck_twice, lambda: p.dispatch_timed((N, 1, 1), bad), "twice", "threads", repr(bad))
    p.dispatch((N, 1, 1), (32, 1, 1))                 # the prepared kernel still works too
    assert np.array_equal(np.frombuffer(p.read_output(), np.float32), X * 2)
    p.release()


def test_threadgroup_too_large(runtime, caps, ck_twice):
    limit = caps.max_threads_per_threadgroup
    for threads in [(limit + 1, 1, 1), (limit, 2, 1), (1, 1, limit + 1), (64, 64, 64)]:
        expect_error(runtime, ck_twice, lambda: runtime.execute(ck_twice, [X], N * 4, (N, 1, 1), threads),
                     "twice", str(threads), str(limit))
    # exactly the limit is fine
    raw = runtime.execute(ck_twice, [X], N * 4, (N, 1, 1), (limit, 1, 1))
    assert np.array_equal(np.frombuffer(raw, np.float32), X * 2)


def test_scalar_value_out_of_range(runtime, ck_axpy, ck_twice):
    for bad in (-1, 1 << 32, 2.5):
        expect_error(runtime, ck_twice,
                     lambda: runtime.execute(ck_axpy, [X, Y], N * 4, (N, 1, 1), (32, 1, 1), scalars=[1.0, bad]),
                     "saxpy", "'n'", "uint", repr(bad))
    ck = enigma.compile(narrow)
    a = np.array([1], np.int8)
    for s, b in ((128, True), (-129, False), (0, 2)):
        expect_error(runtime, ck_twice, lambda: runtime.execute(ck, [a], 1, (1, 1, 1), (1, 1, 1), scalars=[s, b]),
                     "narrow")
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_axpy, [X, Y], N * 4, (N, 1, 1), (32, 1, 1),
                                                            scalars=["1.0", 3]),
                 "saxpy", "scalars[0]", "number", "'1.0'", exc=TypeError)
    expect_error(runtime, ck_twice, lambda: runtime.execute(ck_axpy, [X, Y], N * 4, (N, 1, 1), (32, 1, 1),
                                                            scalars=[1.0, np.int64(-5)]),
                 "saxpy", "'n'", "-5")
    # in range: the extremes are accepted
    out = runtime.execute(ck, [np.array([-1], np.int8)], 1, (1, 1, 1), (1, 1, 1), scalars=[-128, True])
    assert np.frombuffer(out, np.int8).tolist() == [127]


def test_unknown_device(runtime, ck_twice):
    for bad in ("tpu", "cuda:x", "cpu:1", "cuda:-1"):
        with pytest.raises(RuntimeError) as e:
            enigma.MetalRuntime(device=bad)
        assert bad in str(e.value)
    with pytest.raises(RuntimeError, match="unknown device 'tpu'; expected one of: metal, cuda, cuda:N, cpu"):
        enigma.MetalRuntime(device="tpu")
    still_works(runtime, ck_twice)


def test_dylib_path_to_missing_file(tmp_path, runtime, ck_twice):
    missing = str(tmp_path / "no_such_runtime.so")
    with pytest.raises(RuntimeError) as e:
        enigma.MetalRuntime(dylib_path=missing)
    assert missing in str(e.value)
    not_a_lib = tmp_path / "garbage.so"
    not_a_lib.write_bytes(b"not a shared library")
    with pytest.raises(RuntimeError, match="garbage.so"):
        enigma.MetalRuntime(dylib_path=str(not_a_lib))
    still_works(runtime, ck_twice)


def test_use_after_release(runtime, ck_twice):
    p = runtime.prepare(ck_twice, [X], N * 4)
    p.dispatch((N, 1, 1), (32, 1, 1))
    p.release()
    expect_error(runtime, ck_twice, lambda: p.dispatch((N, 1, 1), (32, 1, 1)), "twice", "released")
    expect_error(runtime, ck_twice, lambda: p.dispatch_timed((N, 1, 1), (32, 1, 1)), "twice", "released")
    expect_error(runtime, ck_twice, p.read_output, "twice", "released")
    p.release()  # releasing twice is harmless


def test_kernel_without_ir(runtime, ck_twice):
    hand_made = enigma.CompiledKernel("hand_made", "/nowhere/k.metallib", None, "kernel void hand_made() {}")
    expect_error(runtime, ck_twice, lambda: runtime.execute(hand_made, [X], N * 4, (N, 1, 1), (32, 1, 1)),
                 "hand_made")


def test_errors_leave_runtime_usable_in_prepared_kernels(runtime, ck_axpy, ck_twice):
    """A PreparedKernel made before errors keeps its buffers and works after them."""
    p = runtime.prepare(ck_axpy, [X, Y], N * 4, scalars=[3.0, N])
    for bad in ([X], [X, Y, Y]):
        with pytest.raises(RuntimeError):
            runtime.execute(ck_axpy, bad, N * 4, (N, 1, 1), (32, 1, 1), scalars=[1.0, N])
    p.dispatch((N, 1, 1), (32, 1, 1))
    assert np.array_equal(np.frombuffer(p.read_output(), np.float32), 3 * X + Y)
    p.release()


def test_bf16_inputs_accept_raw_uint16(runtime):
    @enigma.kernel
    def bf_copy(a: enigma.bf16, out: enigma.bf16):
        i = enigma.thread_position_in_grid
        out[i] = a[i]

    ck = enigma.compile(bf_copy)
    bits = np.array([0x3F80, 0xC000, 0x7F80], np.uint16)           # 1.0, -2.0, inf
    raw = runtime.execute(ck, [bits], 6, (3, 1, 1), (3, 1, 1))
    assert np.frombuffer(raw, np.uint16).tolist() == bits.tolist()
    with pytest.raises(RuntimeError, match="bf_copy.*bfloat"):
        runtime.execute(ck, [bits.astype(np.float32)], 6, (3, 1, 1), (3, 1, 1))


def test_environment_errors_are_clear(tmp_path):
    """ENIGMA_DEVICE naming an unknown device fails with the same message (checked in a child)."""
    import subprocess
    import sys

    from conftest import subprocess_env
    code = "import enigma\ntry:\n    enigma.MetalRuntime()\nexcept RuntimeError as e:\n    print('ERR', e)\n"
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(ENIGMA_DEVICE="tpu"),
                       capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert "ERR unknown device 'tpu'" in r.stdout, r.stdout + r.stderr
