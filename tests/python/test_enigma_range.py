"""`for i in enigma.range(...)` inside kernels: traced loops with exact
loop-carried values (nested loops, temporaries, closures, lists, branches)."""
import numpy as np
import pytest

import enigma
import enigma as en


def run(kernel, inputs, n_out, grid, scalars=None, dtype=np.float32):
    rt = enigma.MetalRuntime()
    raw = rt.execute(enigma.compile(kernel), inputs, n_out * np.dtype(dtype).itemsize, (grid, 1, 1), (4, 1, 1),
                     scalars=scalars)
    return np.frombuffer(raw, dtype=dtype)


@enigma.kernel
def row_sums(A: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    total = enigma.metal_cast(0.0, "float")
    for i in enigma.range(n):
        t = A[tid * n + i]          # a temporary first assigned in the body: not carried
        total = total + t * 2.0
    Out[tid] = total


def test_dynamic_bound_and_temporaries():
    a = np.random.default_rng(0).standard_normal(6 * 8).astype(np.float32)
    out = run(row_sums, [a], 6, 6, scalars=[8])
    np.testing.assert_allclose(out, (a.reshape(6, 8).astype(np.float64) * 2).sum(1), rtol=1e-5)
    ir = enigma.compile(row_sums).ir_source
    assert ir.count("for ") == 1 and "iter_args" in ir


def make_nested(scale):
    @enigma.kernel
    def nested(A: enigma.f32, Out: enigma.f32):
        tid = enigma.thread_position_in_grid
        accs = [0.0, 0.0]
        s = 0.0
        for i in en.range(4):                 # an aliased module works
            for j in enigma.range(1, 3):      # nested loop with a temporary
                tmp = A[tid * 8 + i * 2 + j - 1]
                s = s + tmp * scale           # `scale` comes from the closure
            with enigma.if_(i > 1):
                Out[tid] = s
            for h in range(2):                # a Python loop: unrolled
                accs[h] = accs[h] + A[tid * 8 + h]
        Out[tid] = s + accs[0] + accs[1]
    return nested


def test_nested_closure_lists_and_branches():
    a = np.arange(5 * 8, dtype=np.float32)
    out = run(make_nested(3.0), [a], 5, 5)
    A = a.reshape(5, 8).astype(np.float64)
    ref = [sum(A[t, i * 2 + j - 1] * 3.0 for i in range(4) for j in range(1, 3)) + 4 * (A[t, 0] + A[t, 1])
           for t in range(5)]
    np.testing.assert_allclose(out, ref)


@enigma.kernel
def steps(Out: enigma.u32):
    tid = enigma.thread_position_in_grid
    cnt = 0
    for i in enigma.range(tid, 20, 3):
        cnt += 1
    Out[tid] = cnt


def test_start_stop_step_and_int_counter():
    out = run(steps, [], 8, 8, dtype=np.uint32)
    np.testing.assert_array_equal(out, [len(range(t, 20, 3)) for t in range(8)])


def test_loop_inside_if():
    @enigma.kernel
    def branchy(A: enigma.f32, Out: enigma.f32):
        tid = enigma.thread_position_in_grid
        with enigma.if_(tid < 2):
            acc = 0.0
            for i in enigma.range(3):
                acc = acc + A[i]
            Out[tid] = acc
    a = np.array([1, 2, 4], dtype=np.float32)
    np.testing.assert_array_equal(run(branchy, [a], 4, 4), [7, 7, 0, 0])


def test_break_is_an_error_with_location():
    @enigma.kernel
    def bad(Out: enigma.f32):
        for i in enigma.range(3):
            break
    with pytest.raises(enigma.EnigmaError, match=r"test_enigma_range\.py:\d+: `break`"):
        enigma.compile(bad)


def test_range_outside_a_kernel_loop_is_an_error():
    with pytest.raises(enigma.EnigmaError, match="enigma.range"):
        enigma.range(3)


def test_value_from_a_loop_body_cannot_escape():
    @enigma.kernel
    def leaky(A: enigma.f32, Out: enigma.f32):
        for i in enigma.range(3):
            t = A[i]
        Out[0] = t
    with pytest.raises(enigma.EnigmaError, match="cannot escape"):
        enigma.compile(leaky)
