"""The runtime page's benchmarking loop: prepare once, dispatch many times,
time with dispatch_timed (milliseconds), then read and check the output."""
import sys

import numpy as np

import enigma


@enigma.kernel
def saxpy(X: enigma.f32, Y: enigma.f32, a: enigma.Scalar(enigma.f32), out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a * X[i] + Y[i]


def main() -> int:
    n = 1 << 22
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)
    rt = enigma.MetalRuntime()
    compiled = enigma.compile(saxpy)

    prepared = rt.prepare(compiled, [x, y], output_size=n * 4, scalars=[2.0])
    prepared.dispatch(grid=(n, 1, 1), threads=(256, 1, 1))  # warm up
    times = [prepared.dispatch_timed(grid=(n, 1, 1), threads=(256, 1, 1)) for _ in range(10)]
    result = np.frombuffer(prepared.read_output(), dtype=np.float32)
    prepared.release()

    mean = sum(times) / len(times)
    gbps = 3 * n * 4 / (mean * 1e-3) / 1e9
    ref = (np.float32(2.0) * x + y).astype(np.float32)
    ok = np.array_equal(result, ref)
    print(f"saxpy on {rt.device}: mean {mean:.3f} ms ({gbps:.1f} GB/s): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
