"""Time-stepping without preparing again: per-dispatch scalars, DeviceArrays
bound without copies (shared between prepared kernels, swapped between
dispatches), typed outputs, and in-out buffers; each checked against numpy."""
import numpy as np
import pytest

import enigma


@enigma.kernel
def axpy(x: enigma.f32, a: enigma.Scalar(enigma.f32), y: enigma.f32):
    i = enigma.thread_position_in_grid
    y[i] = y[i] + a * x[i]          # y is read and written (in-out)


@enigma.kernel
def scale(x: enigma.f32, s: enigma.Scalar(enigma.f32), out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = x[i] * s


N = 256
G, T = (N, 1, 1), (64, 1, 1)


def test_scalars_per_dispatch(runtime):
    x = np.arange(N, dtype=np.float32)
    pk = runtime.prepare(enigma.compile(scale), [x], N * 4, scalars=[2.0])
    pk.dispatch(G, T)
    np.testing.assert_array_equal(pk.output(), x * 2)
    pk.dispatch(G, T, scalars=[-3.5])
    np.testing.assert_array_equal(pk.output(), x * np.float32(-3.5))
    assert pk.output().dtype == np.float32 and pk.output(shape=(16, 16)).shape == (16, 16)
    assert np.frombuffer(pk.read_output(), np.float32).tolist() == (x * np.float32(-3.5)).tolist()
    with pytest.raises(enigma.EnigmaValueError, match="expects 1 scalar"):
        pk.dispatch(G, T, scalars=[1.0, 2.0])


def test_device_arrays_swap_and_share(runtime):
    rng = np.random.default_rng(0)
    x0 = rng.random(N, dtype=np.float32)
    a, b = runtime.array(x0), runtime.zeros(N, np.float32)
    assert a.shape == (N,) and a.dtype == np.float32 and np.array_equal(a.numpy(), x0)
    pk = runtime.prepare(enigma.compile(scale), [a], scalars=[2.0], outputs=[b])
    want = x0.copy()
    for _ in range(5):               # ping-pong: x -> out, then the output is the next input
        pk.dispatch(G, T)
        pk.swap("x", "out")
        want = want * np.float32(2.0)
    np.testing.assert_array_equal(pk.read("x"), want)
    np.testing.assert_array_equal(pk.array("x").numpy(), want)
    # A second prepared kernel shares the arrays: y += 0.5 * x in place (in-out output buffer).
    y = runtime.array(np.ones(N, np.float32))
    upd = runtime.prepare(enigma.compile(axpy), [pk.array("x")], scalars=[0.5], outputs=[y])
    upd.dispatch(G, T)
    upd.dispatch(G, T, scalars=[0.25])
    np.testing.assert_array_equal(y.numpy(), np.float32(1) + np.float32(0.5) * want + np.float32(0.25) * want)
    np.testing.assert_array_equal(upd.read("y"), y.numpy())
    # Rebinding by name; the sizes must agree.
    upd.bind(x=runtime.array(np.full(N, 4.0, np.float32)))
    with pytest.raises(enigma.EnigmaValueError, match="holds 1024 bytes"):
        upd.bind(x=runtime.zeros(N + 1, np.float32))
    with pytest.raises(enigma.EnigmaTypeError, match="is a Scalar"):
        upd.bind(a=y)
    with pytest.raises(enigma.EnigmaValueError, match="no parameter 'z'"):
        upd.read("z")


def test_in_out_input_is_readable(runtime):
    x = np.arange(N, dtype=np.float32)
    y = np.full(N, 10.0, np.float32)
    # y as an ordinary (copied) input the kernel writes: read() returns what the kernel left there.
    pk = runtime.prepare(enigma.compile(axpy), [x], scalars=[1.0], outputs=[runtime.array(y)])
    pk.dispatch(G, T)
    np.testing.assert_array_equal(pk.read("y"), y + x)
