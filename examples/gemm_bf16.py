"""C = A @ B for bfloat16 A (M x K) and B (K x N), float32 C, written with
simdgroup matrices, threadgroup-memory tiles and async-copy pipelining.

Each threadgroup of 8 simdgroups (256 threads) computes a 128 x 128 tile of
C; each simdgroup a 64 x 32 part of it, held as 8 x 4 simdgroup matrices in
registers across the K loop. The K loop walks 16-wide slices of A and B
through two stages of threadgroup memory (20.5 KiB: under the 32 KiB every
device offers): every simdgroup copies its share of the next slice with
async_copy_2d_d2t, multiplies the current one, then waits for its copy and
meets the others at a barrier, so the copy of slice k + 1 overlaps the
products of slice k. Rows of the stages are padded (24 and 136 elements) so
the eight rows of a tile fall in different memory banks.

On an NVIDIA GPU the simdgroup matrices become tensor-core fragments
(mma.sync, ldmatrix) and the async copies cp.async; on the CPU the same
kernel runs exactly. M and N must be multiples of 128 and K of 16 (pad()
zero-pads other sizes).

    python examples/gemm_bf16.py [M N K]
"""
import sys

import numpy as np

import enigma

BM, BN, BK = 128, 128, 16          # threadgroup tile and K slice
WM, WN = 64, 32                    # simdgroup tile (8 simdgroups as 2 x 4)
LDA, LDB = BK + 8, BN + 8          # padded rows of the threadgroup stages
A_STAGE, B_STAGE = BM * LDA, BK * LDB
THREADS = 256


@enigma.kernel
def gemm_bf16(A: enigma.bf16, B: enigma.bf16, m: enigma.Scalar(enigma.u32), n: enigma.Scalar(enigma.u32),
              k: enigma.Scalar(enigma.u32), C: enigma.f32):
    row0 = enigma.threadgroup_position_in_grid("y") * BM
    col0 = enigma.threadgroup_position_in_grid("x") * BN
    sg = enigma.simdgroup_index_in_threadgroup()
    wm, wn = sg // 4, sg % 4
    As = enigma.threadgroup_alloc("bfloat", 2 * A_STAGE)
    Bs = enigma.threadgroup_alloc("bfloat", 2 * B_STAGE)
    slices = k // BK

    def fetch(t, stage):
        """This simdgroup's share of slice t: 16 rows of A's, 2 rows of B's."""
        ea = enigma.async_copy_2d_d2t(As, stage * A_STAGE + sg * 16 * LDA, LDA,
                                      A, (row0 + sg * 16) * k + t * BK, k, BK, 16)
        eb = enigma.async_copy_2d_d2t(Bs, stage * B_STAGE + sg * 2 * LDB, LDB,
                                      B, (t * BK + sg * 2) * n + col0, n, BN, 2)
        return [ea, eb]

    enigma.async_copy_wait(fetch(0, 0))
    enigma.barrier()
    zero = enigma.make_filled_simdgroup_matrix(0.0, "float")
    with enigma.for_range(0, slices, 1, dtype="uint", init=[zero] * 32) as (t, acc):
        stage = t % 2
        events = fetch(enigma.imin(t + 1, slices - 1), 1 - stage)   # the next slice (the last one again at the end)
        for kk in range(BK // 8):
            a = [enigma.simdgroup_matrix_load(As, LDA, origin=stage * A_STAGE + (wm * WM + i * 8) * LDA + kk * 8)
                 for i in range(WM // 8)]
            b = [enigma.simdgroup_matrix_load(Bs, LDB, origin=stage * B_STAGE + kk * 8 * LDB + wn * WN + j * 8)
                 for j in range(WN // 8)]
            for j in range(WN // 8):            # products that share b[j] side by side: one tensor-core
                for i in range(WM // 8):        # instruction serves two of them on CUDA
                    acc[i * 4 + j] = enigma.simdgroup_multiply_accumulate(a[i], b[j], acc[i * 4 + j])
        enigma.async_copy_wait(events)
        enigma.barrier()
    for i in range(WM // 8):
        for j in range(WN // 8):
            enigma.simdgroup_matrix_store(acc[i * 4 + j], C, n,
                                          origin=(row0 + wm * WM + i * 8) * n + col0 + wn * WN + j * 8)


def launch_shape(m, n):
    """grid (in threads) and threadgroup size for an m x n C."""
    return (n // BN * THREADS, m // BM, 1), (THREADS, 1, 1)


def pad(x, rows, cols):
    """x zero-padded to a multiple of (rows, cols)."""
    r, c = -(-x.shape[0] // rows) * rows, -(-x.shape[1] // cols) * cols
    if (r, c) == x.shape:
        return x
    out = np.zeros((r, c), x.dtype)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def main(argv) -> int:
    import ml_dtypes
    m, n, k = (int(a) for a in argv[1:4]) if len(argv) > 3 else (128, 256, 40)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((k, n)).astype(ml_dtypes.bfloat16)
    ap, bp = pad(a, BM, BK), pad(b, BK, BN)
    mp, kp, np_ = ap.shape[0], ap.shape[1], bp.shape[1]
    ck = enigma.compile(gemm_bf16)
    rt = enigma.MetalRuntime()
    grid, threads = launch_shape(mp, np_)
    raw = rt.execute(ck, [ap, bp], mp * np_ * 4, grid, threads, scalars=[mp, np_, kp])
    c = np.frombuffer(raw, np.float32).reshape(mp, np_)[:m, :n]
    ref = a.astype(np.float64) @ b.astype(np.float64)
    rel = float(np.linalg.norm(c - ref) / np.linalg.norm(ref))
    ok = rel < 1e-5
    print(f"gemm_bf16: {m}x{n}x{k} on {rt.device}: {'OK' if ok else 'MISMATCH'} (relative error {rel:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
