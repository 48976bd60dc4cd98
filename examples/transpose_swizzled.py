"""B = A.T staged through threadgroup memory with a swizzled tile.

Each threadgroup of 32x8 threads moves one 32x32 tile: it reads rows of A
(coalesced), writes them into a threadgroup tile, waits at a barrier, then
reads the tile's columns to write rows of B (coalesced again). A plain
row-major tile would put a column's 32 elements in one memory bank; the
layout algebra's Swizzle(5, 0, 5) XORs the row into the column bits, so a
column touches 32 distinct banks. Sides need not be multiples of 32: edge
threads are masked, the barrier is reached by all. Checked against numpy on
the default device."""
import sys

import numpy as np

import enigma

TILE, ROWS = 32, 8                                       # a 32x32 tile, 8 rows of threads
SMEM = enigma.Layout((TILE, TILE), (TILE, 1))            # row-major tile
SWIZZLE = enigma.Swizzle(5, 0, 5)                        # column ^= row (5 bits each)
TILE_LAYOUT = enigma.SwizzledLayout(SMEM, SWIZZLE)


def tile_offset(r, c):
    """The swizzled element offset of tile coordinate (r, c) (traced values)."""
    return SWIZZLE(r * SMEM.stride[0] + c * SMEM.stride[1])


@enigma.kernel
def transpose_swizzled(A: enigma.f32, m: enigma.Scalar(enigma.u32), n: enigma.Scalar(enigma.u32),
                       B: enigma.f32):
    tile = enigma.threadgroup_alloc("float", TILE * TILE)
    tx = enigma.thread_position_in_threadgroup("x")
    ty = enigma.thread_position_in_threadgroup("y")
    col0 = enigma.threadgroup_position_in_grid("x") * TILE   # first column of A in this tile
    row0 = enigma.threadgroup_position_in_grid("y") * TILE   # first row of A
    for k in range(TILE // ROWS):                              # unrolled while tracing
        r = ty + k * ROWS
        with enigma.if_((row0 + r < m) & (col0 + tx < n)):
            tile[tile_offset(r, tx)] = A[(row0 + r) * n + col0 + tx]
    enigma.barrier()
    for k in range(TILE // ROWS):
        r = ty + k * ROWS                                      # a row of B is a column of the tile
        with enigma.if_((col0 + r < n) & (row0 + tx < m)):
            B[(col0 + r) * m + row0 + tx] = tile[tile_offset(tx, r)]


def banks_of_column(c):
    """The 32 memory banks (4-byte words) a warp touches reading tile column c."""
    return {TILE_LAYOUT(r, c) % 32 for r in range(TILE)}


def run(a, rt=None):
    m, n = a.shape
    rt = rt or enigma.MetalRuntime()
    ck = enigma.compile(transpose_swizzled)
    tiles_x, tiles_y = -(-n // TILE), -(-m // TILE)
    raw = rt.execute(ck, [a], a.nbytes, (tiles_x * TILE, tiles_y * ROWS, 1), (TILE, ROWS, 1), scalars=[m, n])
    return np.frombuffer(raw, dtype=a.dtype).reshape(n, m), rt


def main() -> int:
    assert sorted(TILE_LAYOUT.offsets()) == list(range(TILE * TILE))  # a permutation of the tile
    conflict_free = all(len(banks_of_column(c)) == 32 for c in range(TILE))
    ok = conflict_free
    rt = None
    for m, n in ((100, 70), (64, 96), (33, 1)):
        a = np.arange(m * n, dtype=np.float32).reshape(m, n)
        b, rt = run(a, rt)
        ok = ok and np.array_equal(b, a.T)
    print(f"transpose_swizzled: on {rt.device}, conflict-free columns {conflict_free}: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
