"""Stream compaction with Metal's SIMD vote functions: each simdgroup finds its
kept elements with simd_ballot, ranks them with popcount, and its first
active lane reserves room with one atomic; native `if`s on traced values do
the rest. Runs with partial simdgroups (threadgroups of 48 threads) and
checks the kept values and their count against numpy."""
import sys

import numpy as np

import enigma


@enigma.kernel
def compact(a: enigma.f32, threshold: enigma.Scalar(enigma.f32), n: enigma.Scalar(enigma.u32),
            out: enigma.f32, count: enigma.u32):
    i = enigma.thread_position_in_grid
    keep = False
    if i < n:
        keep = a[i] > threshold
    mask = enigma.simd_ballot(keep)                          # one bit per active lane that keeps
    lane = enigma.thread_index_in_simdgroup
    below = mask & enigma.metal_cast((1 << lane) - 1, "ulong")
    rank = enigma.metal_cast(enigma.popcount(below), "uint")  # kept lanes before this one
    total = enigma.metal_cast(enigma.popcount(mask), "uint")
    base = 0
    if enigma.simd_is_first():
        base = enigma.atomic_fetch_add(count, 0, total)      # one atomic per simdgroup
    first = enigma.metal_cast(enigma.ctz(enigma.simd_active_threads_mask()), "uint")
    base = enigma.simd_broadcast(base, first)
    if keep:
        out[base + rank] = a[i]


def main() -> int:
    n = 10_000
    a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    threads = 48                                              # not a multiple of 32: partial simdgroups
    grid = n + (-n % threads)
    rt = enigma.MetalRuntime()
    out, count = rt.execute(enigma.compile(compact), [a], grid=(grid, 1, 1), threads=(threads, 1, 1),
                            scalars=[0.5, n], output_sizes=[n * 4, 4])
    kept = int(np.frombuffer(count, np.uint32)[0])
    got = np.sort(np.frombuffer(out, np.float32)[:kept])     # simdgroups finish in any order
    want = np.sort(a[a > 0.5])
    ok = kept == len(want) and np.array_equal(got, want)
    print(f"stream_compaction: kept {kept} of {n} on {rt.device}: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
