"""Errors that fit Python: validation errors are EnigmaError subclasses that
are also TypeError / ValueError; messages name the kernel, the launch (grid
and threads) and give specific hints for common mistakes."""
import math

import numpy as np
import pytest

import enigma


@enigma.kernel
def vadd(a: enigma.f32, b: enigma.f32, c: enigma.f32):
    i = enigma.thread_position_in_grid
    c[i] = a[i] + b[i]


def test_classes():
    assert issubclass(enigma.EnigmaTypeError, enigma.EnigmaError)
    assert issubclass(enigma.EnigmaTypeError, TypeError)
    assert issubclass(enigma.EnigmaValueError, enigma.EnigmaError)
    assert issubclass(enigma.EnigmaValueError, ValueError)


def test_geometry_error_names_kernel_grid_and_threads(runtime):
    ck = enigma.compile(vadd)
    a = np.zeros(4096, np.float32)
    with pytest.raises(enigma.EnigmaValueError) as e:
        runtime.execute(ck, [a, a], a.nbytes, (4096, 1, 1), (2048, 1, 1))
    msg = str(e.value)
    assert "kernel 'vadd'" in msg and "grid (4096, 1, 1)" in msg and "threads (2048, 1, 1)" in msg, msg
    if runtime.device_capabilities().backend == "cpu":
        assert "GPU" not in msg, msg


def test_wrong_dtype_is_a_type_error_and_bad_size_a_value_error(runtime):
    ck = enigma.compile(vadd)
    a = np.zeros(64, np.float32)
    with pytest.raises(enigma.EnigmaTypeError, match="must hold float"):
        runtime.execute(ck, [a, a.astype(np.int32)], a.nbytes, (64, 1, 1), (64, 1, 1))
    with pytest.raises(enigma.EnigmaValueError, match="output_size"):
        runtime.execute(ck, [a, a], 6, (64, 1, 1), (64, 1, 1))
    with pytest.raises(enigma.EnigmaTypeError, match="3 positive integers"):
        runtime.execute(ck, [a, a], a.nbytes, (64.0, 1, 1), (64, 1, 1))
    with pytest.raises(enigma.EnigmaValueError, match="parameter"):
        runtime.execute(ck, [a], a.nbytes, (64, 1, 1), (64, 1, 1))
    if runtime.device_capabilities().backend == "cpu":
        with pytest.raises(enigma.EnigmaValueError) as e:
            runtime.execute(ck, [a], a.nbytes, (64, 1, 1), (64, 1, 1))
        assert "GPU" not in str(e.value)


def test_python_math_on_a_traced_value_hints_the_enigma_function():
    @enigma.kernel
    def uses_math(a: enigma.f32):
        i = enigma.thread_position_in_grid
        a[i] = math.exp(a[i])

    @enigma.kernel
    def uses_numpy(a: enigma.f32):
        i = enigma.thread_position_in_grid
        a[i] = np.exp(a[i])

    hint = r"\(x\) cannot compute on a traced value.*enigma\.exp\(x\)"
    for kernel, spelling in ((uses_math, r"math\.exp"), (uses_numpy, r"np\.exp")):
        with pytest.raises(enigma.EnigmaError, match=spelling + hint):
            enigma.compile(kernel, emit_only=True)


def test_two_indices_on_a_flat_buffer_hint_the_flat_index():
    @enigma.kernel
    def two_d(a: enigma.f32, n: enigma.Scalar(enigma.u32)):
        r = enigma.thread_position_in_grid
        a[r, 0] = 1.0

    with pytest.raises(enigma.EnigmaTypeError, match=r"kernel 'two_d': .*flat buffer parameter.*a\[r \* ncols \+ c\]"):
        enigma.compile(two_d, emit_only=True)


def test_metal_device_on_a_machine_without_metal(runtime):
    if runtime.device_capabilities().backend == "metal":
        pytest.skip("this machine has Metal")
    with pytest.raises(RuntimeError, match="Metal needs macOS.*ENIGMA_DEVICE"):
        enigma.MetalRuntime(device="metal")


@enigma.kernel
def shuffle_sum(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    x = a[i]
    for k in (16, 8, 4, 2, 1):
        x = x + enigma.simd_shuffle_down(x, k)
    if enigma.thread_index_in_simdgroup == 0:
        out[i // 32] = x


def test_partial_simdgroup_shuffle_reduction_warns_in_debug_mode(runtime):
    a = np.ones(40, np.float32)
    ck = enigma.compile(shuffle_sum, debug=True)
    with pytest.warns(RuntimeWarning, match=r"simd_shuffle_down.*threads \(40, 1, 1\).*8 active lane\(s\) of 32"):
        out = np.frombuffer(runtime.execute(ck, [a], 8, (40, 1, 1), (40, 1, 1)), np.float32)
    assert out[1] != 8.0  # the documented pitfall: inactive lanes return the reader's own value
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runtime.execute(ck, [np.ones(64, np.float32)], 8, (64, 1, 1), (64, 1, 1))
        runtime.execute(enigma.compile(shuffle_sum), [a], 8, (40, 1, 1), (40, 1, 1))  # not a debug build


def test_numpy_scalars_still_combine_with_traced_values(runtime):
    two = np.float32(2.0)

    @enigma.kernel
    def scaled(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = two * a[i] + np.float32(1.0)

    a = np.arange(8, dtype=np.float32)
    out = np.frombuffer(runtime.execute(enigma.compile(scaled), [a], a.nbytes, (8, 1, 1), (8, 1, 1)), np.float32)
    assert np.array_equal(out, 2 * a + 1)


@enigma.kernel
def reads_past_the_end(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i + 100]


def test_dispatch_failure_stays_a_runtime_error_with_the_launch(runtime):
    ck = enigma.compile(reads_past_the_end, debug=True)
    a = np.zeros(64, np.float32)
    with pytest.raises(RuntimeError) as e:
        runtime.execute(ck, [a], 64 * 4, (64, 1, 1), (32, 1, 1))
    assert not isinstance(e.value, enigma.EnigmaError)   # a dispatch failure, not a validation error
    msg = str(e.value)
    assert "reads_past_the_end" in msg and "grid: (64, 1, 1)" in msg and "threads: (32, 1, 1)" in msg, msg
    if runtime.device_capabilities().backend == "cpu":
        assert msg.startswith("enigma CPU error: dispatch failed"), msg
