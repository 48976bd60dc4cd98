"""C = A + B on the default device (ENIGMA_DEVICE picks another), checked against numpy."""
import sys

import numpy as np

import enigma


@enigma.kernel
def add(A: enigma.f32, B: enigma.f32, C: enigma.f32):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


def main() -> int:
    n = 1_000_000
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n, dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)

    compiled = enigma.compile(add)
    rt = enigma.MetalRuntime()
    raw = rt.execute(compiled, [a, b], n * 4, (n, 1, 1), (256, 1, 1))
    out = np.frombuffer(raw, dtype=np.float32)

    caps = rt.device_capabilities()
    ok = np.array_equal(out, a + b)
    print(f"vector_add: {n} elements on {rt.device} ({caps.device_name}): {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
