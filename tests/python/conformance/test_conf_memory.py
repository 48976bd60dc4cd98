"""load_if / store_if (reference 8.4, but nothing is read where the mask is
false) and register_tensor: per-thread arrays indexed by Python ints or by
traced integers, carried across for_range iterations (reference bug 26.1.6)."""
import numpy as np
import pytest

import enigma
from ._harness import Report, run, runtime


@enigma.kernel
def masked(A: enigma.f32, N: enigma.Scalar(enigma.u32), Out: enigma.f32, Copy: enigma.f32):
    i = enigma.thread_position_in_grid
    far = i * 1000003 + 4000000000                    # far outside A where the mask is false
    inside = i < N
    Out[i] = enigma.load_if(A, enigma.where(far, i, inside), inside, -1.0)
    Out[i + 64] = enigma.load_if(A, i, inside)        # default 0
    enigma.store_if(Copy, i, A[i % N] * 2.0, (i & 1) == 0)


def test_load_if_never_reads_masked_elements():
    a = np.arange(10, dtype=np.float32) + 0.5
    for debug in (False, True):  # debug mode reports no out-of-bounds access either
        ck = enigma.compile(masked, debug=debug)
        out, copy = runtime().execute(ck, [a], grid=(64, 1, 1), threads=(16, 1, 1), scalars=[10],
                                      output_sizes=[128 * 4, 64 * 4])
        out, copy = np.frombuffer(out, np.float32), np.frombuffer(copy, np.float32)
        i = np.arange(64)
        rep = Report("memory ops")
        rep.add("load_if", "float", out[:64] == np.where(i < 10, a[np.minimum(i, 9)], -1.0), lambda k: f"{k}")
        rep.add("load_if", "float", out[64:] == np.where(i < 10, a[np.minimum(i, 9)], 0.0), lambda k: f"{k}")
        rep.add("store_if", "float", copy == np.where(i % 2 == 0, a[i % 10] * 2, 0.0), lambda k: f"{k}")
        rep.finish()
    assert "? A[" in enigma.compile(masked).metal_source


def test_load_if_out_of_bounds_in_debug_mode_is_reported():
    @enigma.kernel
    def oob(A: enigma.f32, Out: enigma.f32):
        i = enigma.thread_position_in_grid
        Out[i] = enigma.load_if(A, i + 100, True)
    with pytest.raises(RuntimeError, match="A"):
        runtime().execute(enigma.compile(oob, debug=True), [np.zeros(4, np.float32)], 16, (4, 1, 1), (4, 1, 1))


@enigma.kernel
def registers(A: enigma.f32, N: enigma.Scalar(enigma.u32), Out: enigma.f32, OutI: enigma.i32):
    i = enigma.thread_position_in_grid
    acc = enigma.register_tensor((2, 3), "float", fill=1.0)
    hist = enigma.register_tensor(4, "int")
    vecs = enigma.register_tensor(2, "vec<2,float>", fill=0.5)
    with enigma.for_range(0, N) as k:                  # accumulates across iterations
        x = A[i * 8 + k]
        acc[k % 2, k % 3] = acc[k % 2, k % 3] + x     # dynamic indices
        acc[0, 0] = acc[0, 0] * 1.0 + 0.25            # static index inside the loop
        b = enigma.metal_cast(x, "int") & 3
        hist[b] = hist[b] + 1
        vecs[1] = vecs[1] + enigma.make_float2(x, 1.0)
    with enigma.if_(i > 0):
        acc[1, 2] = acc[1, 2] + 100.0
    for r in range(2):
        for c in range(3):
            Out[i * 8 + r * 3 + c] = acc[r, c]
    Out[i * 8 + 6] = vecs[1].x + vecs[0].y
    Out[i * 8 + 7] = acc[i + 5, i]                      # out of range: clamped to the last element
    for b in range(4):
        OutI[i * 4 + b] = hist[b]


def test_register_tensors():
    threads, n = 4, 7
    a = np.random.default_rng(3).uniform(0, 8, threads * 8).astype(np.float32)
    ck = enigma.compile(registers)
    out, outi = runtime().execute(ck, [a], grid=(threads, 1, 1), threads=(threads, 1, 1), scalars=[n],
                                  output_sizes=[threads * 8 * 4, threads * 4 * 4])
    out, outi = np.frombuffer(out, np.float32), np.frombuffer(outi, np.int32)
    rep = Report("memory ops")
    for t in range(threads):
        acc = np.ones((2, 3), np.float32)
        hist = np.zeros(4, np.int32)
        v1 = np.float32(0.5)
        for k in range(n):
            x = a[t * 8 + k]
            acc[k % 2, k % 3] += x
            acc[0, 0] = acc[0, 0] * np.float32(1.0) + np.float32(0.25)
            hist[int(x) & 3] += 1
            v1 = v1 + x
        if t > 0:
            acc[1, 2] += np.float32(100.0)
        want = list(acc.ravel()) + [v1 + np.float32(0.5), acc[1, 2]]
        rep.add("register_tensor", "float", out[t * 8:t * 8 + 8] == np.array(want, np.float32),
                lambda k, t=t: f"thread {t} slot {k}: {out[t * 8 + k]} vs {want[k]}")
        rep.add("register_tensor", "int", outi[t * 4:t * 4 + 4] == hist, lambda k, t=t: f"thread {t} bin {k}")
    rep.finish()
    assert "en_reg0[6]" in ck.metal_source or "float en_reg0[6];" in ck.metal_source


def test_carried_vectors():
    @enigma.kernel
    def carried(A: enigma.f32, Out: enigma.f32):
        i = enigma.thread_position_in_grid
        with enigma.for_range(0, 4, init=[enigma.make_float2(0.0, 1.0), enigma.make_int3(0, 0, 0)]) as (k, c):
            c[0] = c[0] + enigma.make_float2(A[i * 4 + k], 1.0)
            c[1] = c[1] + enigma.make_int3(1, k, 2)
        Out[i * 5], Out[i * 5 + 1] = c[0].x, c[0].y
        for lane in range(3):
            Out[i * 5 + 2 + lane] = enigma.metal_cast(c[1][lane], "float")
    a = np.arange(8, dtype=np.float32)
    _, (out,) = run(carried, [a], [("float", 10)], 2)
    for t in range(2):
        assert list(out[t * 5:t * 5 + 5]) == [a[t * 4:t * 4 + 4].sum(), 5.0, 4.0, 6.0, 8.0]


def test_register_tensor_errors():
    @enigma.kernel
    def bad(Out: enigma.f32):
        i = enigma.thread_position_in_grid
        r = enigma.register_tensor((2, 2))
        with pytest.raises(enigma.EnigmaError, match=r"index \(2, 0\) out of range for shape \(2, 2\)"):
            r[2, 0]
        with pytest.raises(enigma.EnigmaError, match="expected 2-tuple of ints"):
            r[1]
        with pytest.raises(enigma.EnigmaError, match="indices must be Python ints or traced integers"):
            r[0, 1.5]
        with pytest.raises(enigma.EnigmaError, match="shape cannot be empty"):
            enigma.register_tensor(())
        with pytest.raises(enigma.EnigmaError, match=r"test_conf_memory.py:\d+.*register_tensor.*bytes per thread"):
            enigma.register_tensor(100000)
        with pytest.raises(enigma.EnigmaError, match="index must be an integer"):
            r[enigma.metal_cast(i, "float"), 0]
        with enigma.for_range(0, 2):
            inner = enigma.register_tensor(2)
            inner[0] = 1.0
        with pytest.raises(enigma.EnigmaError, match="created inside a for_range"):
            inner[0]
        with pytest.raises(enigma.EnigmaError, match="load_if.*mask must be a bool"):
            enigma.load_if(Out, i, i)
        Out[i] = r[1, 1]
    enigma.compile(bad, emit_only=True)


def test_register_tensor_accumulates_in_enigma_range():
    """Reference bug 26.1.6: the RegisterTensor docstring's own example, where
    slots written in an `enigma.range` body must be seen after the loop."""
    if not hasattr(enigma, "range"):
        pytest.skip("enigma.range is not wired into compile() in this build")

    @enigma.kernel
    def acc(A: enigma.f32, Out: enigma.f32):
        i = enigma.thread_position_in_grid
        r = enigma.register_tensor(2)
        for k in enigma.range(4):
            r[0] = r[0] + A[i * 4 + k]
            r[1] = r[1] + 1.0
        Out[i * 2], Out[i * 2 + 1] = r[0], r[1]
    a = np.arange(8, dtype=np.float32)
    _, (out,) = run(acc, [a], [("float", 4)], 2)
    assert list(out) == [6.0, 4.0, 22.0, 4.0]
