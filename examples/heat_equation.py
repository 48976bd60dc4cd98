"""A 1-D heat equation stepped many times without preparing again: two device
arrays ping-pong between the stencil's input and output (swap, no copies), the
diffusion coefficient changes every step (dispatch(..., scalars=[...])), and a
second prepared kernel shares the same arrays to add heat in place (an in-out
buffer). Checked against numpy."""
import sys

import numpy as np

import enigma


@enigma.kernel
def diffuse(u: enigma.f32, alpha: enigma.Scalar(enigma.f32), n: enigma.Scalar(enigma.u32), u_next: enigma.f32):
    i = enigma.thread_position_in_grid
    if i < n:
        if i == 0 or i == n - 1:
            v = u[i]                     # fixed boundaries
        else:
            v = u[i] + alpha * (u[i - 1] - 2.0 * u[i] + u[i + 1])
        u_next[i] = v


@enigma.kernel
def inject(amount: enigma.Scalar(enigma.f32), at: enigma.Scalar(enigma.u32), u: enigma.f32):
    i = enigma.thread_position_in_grid
    if i == at:
        u[i] = u[i] + amount             # reads and writes the same buffer


def numpy_model(u0, steps, alphas, at, amount, every):
    u = u0.astype(np.float32).copy()
    for s in range(steps):
        nxt = u.copy()
        nxt[1:-1] = u[1:-1] + np.float32(alphas[s]) * (u[:-2] - np.float32(2.0) * u[1:-1] + u[2:])
        u = nxt
        if s % every == 0:
            u[at] = u[at] + np.float32(amount)
    return u


def main() -> int:
    n, steps, every, at, amount = 4096, 500, 50, 1000, 5.0
    alphas = [0.1 + 0.3 * (s % 7) / 7 for s in range(steps)]
    x = np.linspace(0, 1, n, dtype=np.float32)
    u0 = np.exp(-((x - 0.5) ** 2) / 0.002).astype(np.float32)

    rt = enigma.MetalRuntime()
    a, b = rt.array(u0), rt.zeros(n, np.float32)       # device-resident, shared by both kernels
    step = rt.prepare(enigma.compile(diffuse), [a], scalars=[alphas[0], n], outputs=[b])
    heat = rt.prepare(enigma.compile(inject), [], scalars=[amount, at], outputs=[b])
    grid, threads = (n, 1, 1), (256, 1, 1)
    for s in range(steps):
        step.dispatch(grid, threads, scalars=[alphas[s], n])   # u -> u_next
        step.swap("u", "u_next")                                 # the result becomes the next input
        if s % every == 0:
            heat.bind(u=step.array("u"))                         # the array holding the latest state
            heat.dispatch(grid, threads)
    got = step.read("u")                                         # a float32 array of shape (n,)

    want = numpy_model(u0, steps, alphas, at, amount, every)
    ok = got.dtype == np.float32 and got.shape == (n,) and np.allclose(got, want, rtol=1e-5, atol=1e-6)
    print(f"heat_equation: {steps} steps of {n} points on {rt.device}: {'OK' if ok else 'MISMATCH'}"
          f" (max |diff| {np.max(np.abs(got - want)):.2e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
