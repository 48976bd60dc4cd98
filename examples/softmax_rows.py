"""Softmax over the rows of a matrix, one threadgroup per row, in one pass:
y = exp(x - max(x)) / sum(exp(x - max(x))).

Written plainly in Enigma for any GPU: the kernel is specialised to the row
length N (a Python constant), so each thread holds its share of the row in
registers as float4 values (16-byte loads, coalesced across the simdgroup:
thread t reads vectors t, t + T, t + 2T, ...); the row is read from memory
once, exponentiated once and written once. Both reductions (max, then sum)
are a simd reduction (the xor butterfly) per simdgroup, one partial per
simdgroup in threadgroup memory, one barrier, and a second simd reduction
over the partials in every simdgroup.

The script checks the kernel against a float64 numpy reference on the
default device (the CPU without a GPU); benchmarks/gpu/run.py times it on an
NVIDIA GPU against torch and a one-pass Triton kernel.

    python examples/softmax_rows.py [ROWS N]
"""
import sys

import numpy as np

import enigma
from _rows import check_rows, load_row, row_shape, threads_for

NEG_BIG = -3.0e38  # below every finite float32 row value: the identity of max here


def _group_reduce(v, partial, op, ident):
    """v reduced over the threadgroup, in every thread: a simd reduction, one
    partial per simdgroup in threadgroup memory, one barrier, then every
    simdgroup reduces the partials itself."""
    lane = enigma.thread_index_in_simdgroup()
    mine = op(v)                                 # outside the if_: all lanes take part
    with enigma.if_(lane == 0):
        partial[enigma.simdgroup_index_in_threadgroup()] = mine
    enigma.barrier()
    return op(enigma.load_if(partial, lane, lane < enigma.simdgroups_per_threadgroup(), ident))


def make_softmax(n: int, threads: int):
    """The kernel for rows of `n` floats (n a multiple of 4) and `threads`
    threads per threadgroup. Buffers are float4 (compile with vec_width=4)."""
    nv, per_thread, full = row_shape("softmax_rows", n, threads)   # float4 a row, a thread; all threads full

    @enigma.kernel
    def softmax_rows(X: enigma.f32, Y: enigma.f32):
        row = enigma.threadgroup_position_in_grid("x")
        lid = enigma.thread_index_in_threadgroup()
        red_max = enigma.threadgroup_alloc("float", 32)
        red_sum = enigma.threadgroup_alloc("float", 32)  # separate: red_max may still be read
        base = row * nv
        xs, ok = load_row(X, base, lid, threads, per_thread, nv, full, NEG_BIG)
        mx = NEG_BIG
        for x in xs:
            mx = enigma.fmax(mx, enigma.fmax(enigma.fmax(x.x, x.y), enigma.fmax(x.z, x.w)))
        m = _group_reduce(mx, red_max, enigma.simd_max, NEG_BIG)
        es, s = [], 0.0
        for j, x in enumerate(xs):
            e = enigma.exp(x - m)
            if not full:
                e = enigma.where(0.0, e, ok[j])
            es.append(e)
            s = s + ((e.x + e.y) + (e.z + e.w))
        inv = 1.0 / _group_reduce(s, red_sum, enigma.simd_sum, 0.0)
        for j, e in enumerate(es):
            col = lid + j * threads
            if full:
                Y[base + col] = e * inv
            else:
                enigma.store_if(Y, base + col, e * inv, ok[j])

    return softmax_rows


def compile_softmax(n: int, threads: int | None = None):
    threads = threads or threads_for(n)
    return enigma.compile(make_softmax(n, threads), vec_width=4), threads


def reference(x):
    xd = np.asarray(x, np.float64)
    e = np.exp(xd - xd.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main(argv) -> int:
    def inputs(rng, rows, n):
        return [(rng.standard_normal((rows, n)) * 3).astype(np.float32)]
    return 1 if check_rows("softmax_rows", compile_softmax, inputs, reference, argv, atol=1e-9, err_floor=0.0) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
