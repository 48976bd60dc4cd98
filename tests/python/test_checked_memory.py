"""Checked memory (SEMANTICS 4): out-of-bounds loads read 0, out-of-bounds
stores and atomics are dropped and the dispatch raises an OUT_OF_BOUNDS error
naming the kernel, the buffer, the index, its size and a thread; in-bounds
results are kept. One test per crash this used to be, plus the opt-out."""
import re

import numpy as np
import pytest

import enigma
from enigma.testing import is_cuda_available


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def cpu(request):
    """The CPU runtime, and the CUDA one where a GPU exists (same contract)."""
    if request.param == "cuda" and not is_cuda_available():
        pytest.skip("no CUDA device")
    return enigma.MetalRuntime(device=request.param)


def first(rt, index):
    """The index (or thread) a report names: the CPU records the lowest; on a
    GPU the threads race and any offending one may be recorded."""
    return str(index) if rt.device == "cpu" else r"\d+"


@enigma.kernel
def add(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


def test_readme_kernel_with_output_size_in_elements_raises_instead_of_crashing(cpu):
    n = 1 << 12
    a = np.arange(n, dtype=np.float32)
    b = np.ones(n, np.float32)
    ck = enigma.compile(add)
    with pytest.raises(RuntimeError) as e:
        cpu.execute(ck, [a, b], 16, (n, 1, 1), (256, 1, 1))   # 16 elements meant, 16 bytes given
    msg = str(e.value)
    assert "OUT_OF_BOUNDS" in msg and "kernel: add" in msg
    f = first(cpu, 4)
    assert re.search(f"store to buffer 'C' at index {f} \\(it holds 4 float elements\\) by thread \\({f}, 0, 0\\)", msg)
    # The in-bounds part is kept (read through a prepared kernel).
    p = cpu.prepare(ck, [a, b], 16)
    with pytest.raises(RuntimeError, match="OUT_OF_BOUNDS"):
        p.dispatch((n, 1, 1), (256, 1, 1))
        p.read_output()                                      # a GPU reports at the next wait
    assert np.frombuffer(p.read_output(), np.float32).tolist() == [1.0, 2.0, 3.0, 4.0]
    p.dispatch((4, 1, 1), (256, 1, 1))                       # the runtime stays usable
    p.release()


@enigma.kernel
def scale_rows(X: enigma.f32, Y: enigma.f32):
    i = enigma.thread_position_in_grid
    Y[i] = X[i] * 2.0


def test_buffers_of_vectors_are_checked_in_whole_elements(cpu):
    # With vec_width=4 each element of X and Y is a float4: an element store
    # writes one element, so the last one is in bounds, and one past it is not.
    x = np.arange(64, dtype=np.float32)
    ck = enigma.compile(scale_rows, vec_width=4)
    out = np.frombuffer(cpu.execute(ck, [x], x.nbytes, (16, 1, 1), (16, 1, 1)), np.float32)
    np.testing.assert_array_equal(out, x * 2)
    with pytest.raises(RuntimeError, match=f"store to buffer 'Y' at index {first(cpu, 15)} "):
        cpu.execute(ck, [x], x.nbytes - 16, (16, 1, 1), (16, 1, 1))


def test_input_shorter_than_the_grid_reads_zeros(cpu):
    n = 1000
    a = np.arange(n, dtype=np.float32)
    b = np.ones(300, np.float32)                              # shorter than the grid
    out = np.frombuffer(cpu.execute(enigma.compile(add), [a, b], n * 4, (n, 1, 1), (64, 1, 1)), np.float32)
    np.testing.assert_array_equal(out, a + np.concatenate([b, np.zeros(n - 300, np.float32)]))
    with pytest.raises(RuntimeError, match=f"load from buffer 'B' at index {first(cpu, 300)} .*it holds 300 float"):
        cpu.execute(enigma.compile(add, debug=True), [a, b], n * 4, (n, 1, 1), (64, 1, 1))


@enigma.kernel
def heat(U: enigma.f32, W: enigma.Scalar(enigma.u32), Out: enigma.f32):
    gx = enigma.thread_position_in_grid_xyz("x")
    gy = enigma.thread_position_in_grid_xyz("y")
    up = U[(gy - 1) * W + gx]          # gy = 0 wraps to 2^32 - 1 rows: out of bounds, reads 0
    down = U[(gy + 1) * W + gx]
    left = U[gy * W + gx - 1]
    right = U[gy * W + gx + 1]
    Out[gy * W + gx] = 0.25 * (up + down + left + right) - U[gy * W + gx]


def test_halo_read_with_a_wrapped_uint_index_is_zero_padding(cpu):
    h, w = 37, 50
    u = np.random.default_rng(3).standard_normal((h, w)).astype(np.float32)
    out = np.frombuffer(cpu.execute(enigma.compile(heat), [u], h * w * 4, (w, h, 1), (16, 4, 1), scalars=[w]),
                        np.float32).reshape(h, w)
    flat = np.concatenate([np.zeros(1, np.float32), u.ravel(), np.zeros(1, np.float32)])
    p = np.zeros((h + 2, w), np.float32)
    p[1:-1] = u
    up, down = p[:-2], p[2:]
    # left/right read the flat array's neighbours (previous/next row), 0 past the ends
    idx = np.arange(h * w) + 1
    left, right = flat[idx - 1].reshape(h, w), flat[idx + 1].reshape(h, w)
    want = (np.float32(0.25) * (((up + down) + left) + right) - u).astype(np.float32)
    np.testing.assert_array_equal(out, want)


@enigma.kernel
def mma_tile(A: enigma.f32, origin: enigma.Scalar(enigma.u32), Out: enigma.f32):
    a = enigma.simdgroup_matrix_load(A, 8, origin=origin)
    enigma.simdgroup_matrix_store(a, Out, 8, origin=origin)


@pytest.mark.parametrize("debug", [False, True])
def test_simdgroup_matrix_out_of_bounds_is_checked(cpu, debug):
    a = np.arange(64, dtype=np.float32) + 1
    ck = enigma.compile(mma_tile, debug=debug)
    out = np.frombuffer(cpu.execute(ck, [a], 64 * 4, (32, 1, 1), (32, 1, 1), scalars=[0]), np.float32)
    np.testing.assert_array_equal(out, a)
    p = cpu.prepare(ck, [a], 64 * 4, scalars=[40])            # rows 3..7 of the tile fall off both buffers
    what = "load from" if debug else "store to"
    with pytest.raises(RuntimeError, match=f"{what} buffer '(A|Out)' at index {first(cpu, 64)}"):
        p.dispatch((32, 1, 1), (32, 1, 1))
        p.read_output()
    got = np.frombuffer(p.read_output(), np.float32)
    np.testing.assert_array_equal(got[40:], a[40:])
    p.release()


@enigma.kernel
def async_oob(A: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    lid = enigma.thread_index_in_threadgroup()
    t = enigma.threadgroup_alloc("float", 64)
    enigma.async_copy_wait(enigma.async_copy_1d_d2t(t, 0, A, 0, n))         # n > 64 overruns t
    enigma.barrier()
    t[lid] = t[lid] + 1.0
    enigma.barrier()
    enigma.async_copy_wait(enigma.async_copy_1d_t2d(Out, 0, t, 0, 64))


@pytest.mark.parametrize("debug", [False, True])
def test_async_copy_out_of_bounds_is_checked(cpu, debug):
    a = np.arange(100, dtype=np.float32)
    ck = enigma.compile(async_oob, debug=debug)
    out = np.frombuffer(cpu.execute(ck, [a], 64 * 4, (64, 1, 1), (64, 1, 1), scalars=[64]), np.float32)
    np.testing.assert_array_equal(out, a[:64] + 1)
    with pytest.raises(RuntimeError,
                       match=f"store to threadgroup array .* at index {first(cpu, 64)} .*it holds 64 float"):
        cpu.execute(ck, [a], 64 * 4, (64, 1, 1), (64, 1, 1), scalars=[100])
    # A source shorter than the copy reads zeros (reported only in debug mode).
    short = np.arange(10, dtype=np.float32)
    if debug:
        with pytest.raises(RuntimeError, match=f"load from buffer 'A' at index {first(cpu, 10)}"):
            cpu.execute(ck, [short], 64 * 4, (64, 1, 1), (64, 1, 1), scalars=[64])
    else:
        out = np.frombuffer(cpu.execute(ck, [short], 64 * 4, (64, 1, 1), (64, 1, 1), scalars=[64]), np.float32)
        np.testing.assert_array_equal(out, np.concatenate([short, np.zeros(54, np.float32)]) + 1)


@enigma.kernel
def scatter(A: enigma.u32, H: enigma.u32):
    i = enigma.thread_position_in_grid
    enigma.atomic_fetch_add(H, A[i], 1)
    t = enigma.threadgroup_alloc("uint", 8)
    t[enigma.thread_index_in_threadgroup()] = A[i]            # threadgroups of more than 8 overrun t


def test_atomics_and_threadgroup_arrays_are_checked(cpu):
    a = np.array([0, 1, 1, 3, 9, 2], np.uint32)               # 9 is past H's end
    p = cpu.prepare(enigma.compile(scatter), [a], 4 * 4)
    with pytest.raises(RuntimeError, match="atomic on buffer 'H' at index 9 .*by thread \\(4, 0, 0\\)"):
        p.dispatch((6, 1, 1), (6, 1, 1))
        p.read_output()
    assert np.frombuffer(p.read_output(), np.uint32).tolist() == [1, 2, 1, 1]
    with pytest.raises(RuntimeError, match=f"store to threadgroup array .* at index {first(cpu, 8)} .*it holds 8 uint"):
        cpu.execute(enigma.compile(scatter), [np.zeros(16, np.uint32)], 16, (16, 1, 1), (16, 1, 1))
    p.release()


def test_bounds_check_false_opts_out_per_kernel(cpu):
    checked, unchecked = enigma.compile(add), enigma.compile(add, bounds_check=False)
    assert checked._core.bounds_check and not unchecked._core.bounds_check
    assert "en_len" in checked.source("cpu") and "en_len" not in unchecked.source("cpu")
    assert "en_len" in checked.source("cuda") and "en_len" not in unchecked.source("cuda")
    a = np.random.default_rng(1).standard_normal(777).astype(np.float32)
    for ck in (checked, unchecked):
        out = np.frombuffer(cpu.execute(ck, [a, a], 777 * 4, (777, 1, 1), (128, 1, 1)), np.float32)
        np.testing.assert_array_equal(out, a + a)
    with pytest.raises(TypeError, match="bounds_check"):
        enigma.compile(add, bounds_check="no")


def test_common_kernels_prove_their_rows_in_bounds():
    """The x loop keeps an unchecked, vectorisable copy: one check per row of
    threads selects it (docs/semantics.md, "Checked memory")."""
    src = enigma.compile(add, emit_only=True).source("cpu")
    fast = src[src.index("#pragma omp simd"):src.index("} else {")]
    assert "en_ok" not in fast and "en_len0" in src[:src.index("#pragma omp simd")]
