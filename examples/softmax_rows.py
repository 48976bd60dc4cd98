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

NEG_BIG = -3.0e38  # below every finite float32 row value: the identity of max here


def threads_for(n: int) -> int:
    """Threads per row: 16 floats a thread up to 1024 threads, then more."""
    return max(32, min(1024, n // 16))


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
    if n % 4:
        raise ValueError(f"softmax_rows: N={n} must be a multiple of 4")
    nv = n // 4                                 # float4 per row
    per_thread = -(-nv // threads)              # float4 per thread, rounded up
    full = nv % threads == 0

    @enigma.kernel
    def softmax_rows(X: enigma.f32, Y: enigma.f32):
        row = enigma.threadgroup_position_in_grid("x")
        lid = enigma.thread_index_in_threadgroup()
        red_max = enigma.threadgroup_alloc("float", 32)
        red_sum = enigma.threadgroup_alloc("float", 32)  # separate: red_max may still be read
        base = row * nv
        xs, ok = [], []
        for j in range(per_thread):             # unrolled: every load in flight at once
            col = lid + j * threads
            inside = None if full else col < nv
            ok.append(inside)
            xs.append(X[base + col] if full else enigma.load_if(X, base + col, inside, NEG_BIG))
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
    rows, n = (int(argv[1]), int(argv[2])) if len(argv) > 2 else (8, 4096)
    rng = np.random.default_rng(0)
    rt = enigma.MetalRuntime()
    bad = 0
    for threads in (None, 96):                  # the default shape, and one with a partial last pass
        ck, t = compile_softmax(n, threads)
        x = (rng.standard_normal((rows, n)) * 3).astype(np.float32)
        raw = rt.execute(ck, [x], x.nbytes, (rows * t, 1, 1), (t, 1, 1))
        y = np.frombuffer(raw, np.float32).reshape(rows, n)
        want = reference(x)
        err = float(np.max(np.abs(y - want) / want))
        ok = bool(np.allclose(y, want, rtol=1e-5, atol=1e-9))
        bad += not ok
        print(f"softmax_rows: {rows}x{n}, {t} threads a row, on {rt.device}: "
              f"{'OK' if ok else 'MISMATCH'} (max rel err {err:.1e})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
