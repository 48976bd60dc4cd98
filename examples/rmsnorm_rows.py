"""RMSNorm over the rows of a matrix, one threadgroup per row, in one pass:
y = x / sqrt(mean(x^2) + eps) * w.

Written plainly in Enigma for any GPU: the kernel is specialised to the row
length N (a Python constant), so each thread holds its share of the row in
registers as float4 values (16-byte loads, coalesced across the simdgroup:
thread t reads vectors t, t + T, t + 2T, ...), the row is read from memory
once and written once. The sum of squares is a simd_sum (the xor butterfly)
per simdgroup, one partial per simdgroup in threadgroup memory, one barrier,
and a second simd_sum over the partials in every simdgroup.

The script checks the kernel against a float64 numpy reference on the
default device (the CPU without a GPU); benchmarks/gpu/run.py times it on an
NVIDIA GPU against torch and a one-pass Triton kernel.

    python examples/rmsnorm_rows.py [ROWS N]
"""
import sys

import numpy as np

import enigma
from _rows import check_rows, load_row, row_shape, threads_for

EPS = 1e-6


def make_rmsnorm(n: int, threads: int, eps: float = EPS):
    """The kernel for rows of `n` floats (n a multiple of 4) and `threads`
    threads per threadgroup. Buffers are float4 (compile with vec_width=4)."""
    nv, per_thread, full = row_shape("rmsnorm_rows", n, threads)   # float4 a row, a thread; all threads full

    @enigma.kernel
    def rmsnorm_rows(X: enigma.f32, W: enigma.f32, Y: enigma.f32):
        row = enigma.threadgroup_position_in_grid("x")
        lid = enigma.thread_index_in_threadgroup()
        lane = enigma.thread_index_in_simdgroup()
        sg = enigma.simdgroup_index_in_threadgroup()
        partial = enigma.threadgroup_alloc("float", 32)
        base = row * nv
        xs, ok = load_row(X, base, lid, threads, per_thread, nv, full, 0.0)
        ss = 0.0
        for x in xs:
            ss = ss + enigma.dot(x, x)
        ss = enigma.simd_sum(ss)
        with enigma.if_(lane == 0):
            partial[sg] = ss
        enigma.barrier()
        total = enigma.simd_sum(enigma.load_if(partial, lane, lane < enigma.simdgroups_per_threadgroup(), 0.0))
        inv = enigma.rsqrt(total * (1.0 / n) + eps)
        for j, x in enumerate(xs):
            col = lid + j * threads
            if full:
                Y[base + col] = x * inv * W[col]
            else:
                enigma.store_if(Y, base + col, x * inv * enigma.load_if(W, col, ok[j], 0.0), ok[j])

    return rmsnorm_rows


def compile_rmsnorm(n: int, threads: int | None = None):
    threads = threads or threads_for(n)
    return enigma.compile(make_rmsnorm(n, threads), vec_width=4), threads


def reference(x, w, eps=EPS):
    xd = np.asarray(x, np.float64)
    return xd / np.sqrt((xd ** 2).mean(1, keepdims=True) + eps) * np.asarray(w, np.float64)


def main(argv) -> int:
    def inputs(rng, rows, n):
        return [(rng.standard_normal((rows, n)) * 3).astype(np.float32), rng.standard_normal(n).astype(np.float32)]
    return 1 if check_rows("rmsnorm_rows", compile_rmsnorm, inputs, reference, argv, atol=1e-5, err_floor=1e-3) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
