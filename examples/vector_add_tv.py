"""C = A + B for 2-D tensors, tiled with a thread-value (TV) layout through the
@enigma.jit path. Each thread owns 4 rows of 4 contiguous floats, so every
access is one float4-class vector load or store; the script checks the CPU
source for them and the result against numpy on the default device."""
import sys

import numpy as np

import enigma


@enigma.kernel
def tv_add(gA, gB, gC, tv, tiler):
    block = enigma.threadgroup_position_in_grid()
    thread = enigma.thread_position_in_threadgroup()

    def mine(g):  # this block's tile, then this thread's values in it
        tile = g[((None, None), block)]
        return enigma.tensor_composition(tile, tv, tiler)[(thread, None)]

    mine(gC).store(mine(gA).load() + mine(gB).load())


@enigma.jit
def add(A, B, C):
    thr = enigma.make_ordered_layout((4, 64), (1, 0))   # 256 threads, row-major
    val = enigma.make_ordered_layout((4, 4), (1, 0))    # 4x4 values each, rows contiguous
    tiler, tv = enigma.make_layout_tv(thr, val)         # a (16, 256) tile
    gA, gB, gC = (enigma.tensor_zipped_divide(t, tiler) for t in (A, B, C))
    blocks, threads = enigma.size(gA, mode=[1]), enigma.size(tv, mode=[0])
    tv_add(gA, gB, gC, tv, tiler).launch(grid=(blocks * threads, 1, 1), block=(threads, 1, 1))


def main() -> int:
    m, n = 256, 512
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, n), dtype=np.float32)
    b = rng.standard_normal((m, n), dtype=np.float32)
    c = np.zeros_like(a)
    compiled = enigma.compile(add, enigma.tensor(a), enigma.tensor(b), enigma.tensor(c))
    vector_loads = compiled.source("cpu").count("reinterpret_cast<const en_vec<float, 4>*>")
    rt = enigma.MetalRuntime()
    rt.execute(compiled)  # binds the tensors' arrays; the output lands in c
    ok = np.array_equal(c, a + b) and vector_loads == 8
    print(f"vector_add_tv: {m}x{n} on {rt.device}, grid {compiled.grid}, block {compiled.block}, "
          f"{vector_loads} vector loads per thread: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
