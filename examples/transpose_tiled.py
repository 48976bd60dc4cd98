"""B = A.T for a matrix whose sides are not multiples of the tile, through
the @enigma.jit path. A and the transposed view of B are divided by the same
(8, 32) tiler; tail tiles are predicated by the tensors themselves (the rest
modes round up, as in CuTe). Checked against numpy on the default device."""
import sys

import numpy as np

import enigma


@enigma.kernel
def transpose_k(gA, gBt, tv, tiler):
    block = enigma.threadgroup_position_in_grid()
    thread = enigma.thread_position_in_threadgroup()
    src = enigma.tensor_composition(gA[((None, None), block)], tv, tiler)[(thread, None)]
    dst = enigma.tensor_composition(gBt[((None, None), block)], tv, tiler)[(thread, None)]
    dst.store(src.load())


@enigma.jit
def transpose(A, B):
    m, n = A.shape
    # B seen with A's coordinates: Bt(i, j) is B[j, i].
    Bt = B.view(enigma.Layout((m, n), (1, m)))
    thr = enigma.make_ordered_layout((8, 8), (1, 0))
    val = enigma.make_ordered_layout((1, 4), (1, 0))
    tiler, tv = enigma.make_layout_tv(thr, val)          # an (8, 32) tile, 4 values per thread
    gA, gBt = enigma.tensor_zipped_divide(A, tiler), enigma.tensor_zipped_divide(Bt, tiler)
    blocks, threads = enigma.size(gA, mode=[1]), enigma.size(tv, mode=[0])
    transpose_k(gA, gBt, tv, tiler).launch(grid=(blocks * threads, 1, 1), block=(threads, 1, 1))


def main() -> int:
    m, n = 100, 70
    a = np.arange(m * n, dtype=np.float32).reshape(m, n)
    b = np.zeros((n, m), np.float32)
    compiled = enigma.compile(transpose, enigma.tensor(a), enigma.tensor(b))
    rt = enigma.MetalRuntime()
    rt.execute(compiled)
    ok = np.array_equal(b, a.T)
    print(f"transpose_tiled: {m}x{n} on {rt.device}, grid {compiled.grid}: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
