"""The runtime page's capability-gated example: pick a kernel by what the
device provides, run it, check against numpy (row sums of a matrix)."""
import sys

import numpy as np

import enigma

COLS = 64


@enigma.kernel
def fast_gemm(A: enigma.f32, out: enigma.f32):
    # Row sums unrolled 4-wide at trace time (a stand-in for an M3-only path).
    row = enigma.thread_position_in_grid
    with enigma.for_range(0, COLS, 4, init=[0.0, 0.0, 0.0, 0.0]) as (j, acc):
        for k in enigma.range_constexpr(4):
            acc[k] = acc[k] + A[row * COLS + j + k]
    out[row] = (acc[0] + acc[1]) + (acc[2] + acc[3])


@enigma.kernel
def fallback_gemm(A: enigma.f32, out: enigma.f32):
    row = enigma.thread_position_in_grid
    with enigma.for_range(0, COLS, init=[0.0]) as (j, acc):
        acc[0] = acc[0] + A[row * COLS + j]
    out[row] = acc[0]


def main() -> int:
    rows = 1000
    a = np.random.default_rng(2).standard_normal((rows, COLS), dtype=np.float32)
    rt = enigma.MetalRuntime()
    caps = rt.device_capabilities()
    print(f"GPU: {caps.gpu_family}, SIMD size: {caps.simdgroup_size}")

    if caps.supports_simdgroup_matrix:
        compiled = enigma.compile(fast_gemm)
    else:
        compiled = enigma.compile(fallback_gemm)

    out = np.frombuffer(rt.execute(compiled, [a], rows * 4, (rows, 1, 1), (128, 1, 1)), dtype=np.float32)
    ok = np.allclose(out, a.astype(np.float64).sum(axis=1), rtol=1e-5, atol=1e-4)
    print(f"{compiled.kernel_name}: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
