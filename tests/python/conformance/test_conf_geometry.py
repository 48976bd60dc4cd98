"""Geometry (dot, length, distance, normalize, cross, reflect, refract,
faceforward) on float, half and bfloat vectors of 2, 3 and 4 lanes. Results
may differ from the float64 value by the table's scaled ulps (cancellation
makes plain ulps meaningless); the documented formula, evaluated in float,
always passes."""
import numpy as np
import pytest

import enigma
from ._harness import ANNOTATION, float_ok, msl_call, Report, round_to, run, to_device, tolerance

VECTOR_OPS = ["normalize", "reflect", "refract", "faceforward", "cross"]
SCALAR_OPS = ["dot", "length", "distance"]


def vectors(dtype, count, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(-4, 4, (count, 4))
    v[0] = 0.0                      # zero vector: normalize gives NaN
    v[1] = [1.0, 0.0, 0.0, 0.0]
    v[2] = [np.nan, 1.0, 2.0, 3.0]
    v[3] = [np.inf, 1.0, 0.0, 0.0]
    v[4] = [1e3, -1e3, 1e3, 0.5]
    v[5] = [0.6, 0.8, 0.0, 0.0]
    return round_to(v, dtype)


def f32(x):
    return np.asarray(x, np.float64).astype(np.float32)


def dot(a, b, t):
    s = t(a[..., 0]) * t(b[..., 0])
    for k in range(1, a.shape[-1]):
        s = s + t(a[..., k]) * t(b[..., k])
    return s


def formulas(op, a, b, c, eta, t):
    """The documented formula with arithmetic type t (np.float32: as computed; np.float64: ~exact)."""
    a, b, c, eta = t(a), t(b), t(c), t(eta)
    one, two = t(1), t(2)
    if op == "dot":
        return dot(a, b, t)
    if op == "length":
        return np.sqrt(dot(a, a, t))
    if op == "distance":
        d = a - b
        return np.sqrt(dot(d, d, t))
    if op == "normalize":
        return a * (one / np.sqrt(dot(a, a, t)))[..., None]
    if op == "cross":
        return np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                         a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], 1)
    if op == "reflect":
        return a - (two * dot(b, a, t))[..., None] * b
    if op == "refract":
        d = dot(b, a, t)
        k = one - eta * eta * (one - d * d)
        r = eta[..., None] * a - (eta * d + np.sqrt(np.where(k < 0, 0, k)))[..., None] * b
        return np.where((k < 0)[..., None], t(0), r)
    if op == "faceforward":
        return np.where((dot(c, b, t) < 0)[..., None], a, -a)


def scales(op, a, b, c, eta):
    """Magnitudes of the summed terms, per result element."""
    A, B, E = np.abs(a), np.abs(b), np.abs(eta)
    if op == "dot":
        return (A * B).sum(-1)
    if op == "length":
        return np.sqrt((A * A).sum(-1))
    if op == "distance":
        return np.sqrt(((A + B) ** 2).sum(-1))
    if op == "normalize":
        return np.abs(formulas(op, a, b, c, eta, np.float64))
    if op == "cross":
        return np.stack([A[:, 1] * B[:, 2] + A[:, 2] * B[:, 1], A[:, 2] * B[:, 0] + A[:, 0] * B[:, 2],
                         A[:, 0] * B[:, 1] + A[:, 1] * B[:, 0]], 1)
    if op == "reflect":
        return A + 2 * (A * B).sum(-1)[..., None] * B
    if op == "refract":
        d = (A * B).sum(-1)
        return E[..., None] * A + (E * d + np.sqrt(1 + E * E * (1 + d * d)))[..., None] * B
    return np.abs(a)


@pytest.mark.parametrize("dtype", ["float", "half", "bfloat"])
def test_geometry(dtype):
    n = 48
    A, B, C = vectors(dtype, n, 1), vectors(dtype, n, 2), vectors(dtype, n, 3)
    B[5] = [0.0, 1.0, 0.0, 0.0]
    eta = round_to(np.random.default_rng(4).uniform(0.5, 1.6, n), dtype)
    T = ANNOTATION[dtype]
    shapes = (2, 3, 4)

    @enigma.kernel
    def geometry(VA: T, VB: T, VC: T, Eta: T, Out: T):
        i = enigma.thread_position_in_grid
        slot = 0
        for N in shapes:
            a, b, c = (enigma.make_vec(*[V[i * 4 + k] for k in range(N)]) for V in (VA, VB, VC))
            for op in SCALAR_OPS:
                Out[slot * n + i] = getattr(enigma, op)(a, b) if op != "length" else enigma.length(a)
                slot += 1
            for op in VECTOR_OPS:
                if op == "cross" and N != 3:
                    continue
                r = {"normalize": lambda: enigma.normalize(a), "reflect": lambda: enigma.reflect(a, b),
                     "refract": lambda: enigma.refract(a, b, Eta[i]),
                     "faceforward": lambda: enigma.faceforward(a, b, c),
                     "cross": lambda: enigma.cross(a, b)}[op]()
                for k in range(N):
                    Out[slot * n + i * 4 + k] = r[k]
                slot += 4
    ck, (out,) = run(geometry, [to_device(V.ravel(), dtype) for V in (A, B, C)] + [to_device(eta, dtype)],
                     [(dtype, 64 * n)], n)
    rep = Report("geometry")
    slot = 0
    with np.errstate(all="ignore"):
        for N in shapes:
            a, b, c = A[:, :N], B[:, :N], C[:, :N]
            for op in SCALAR_OPS + [o for o in VECTOR_OPS if o != "cross" or N == 3]:
                width = 1 if op in SCALAR_OPS else 4
                got = out[slot * n:(slot + width) * n]
                got = got if width == 1 else got.reshape(n, 4)[:, :N]
                slot += width
                exact = formulas(op, a, b, c, eta, np.float64)
                formula = round_to(formulas(op, a, b, c, eta, np.float32), dtype)
                ok = float_ok(got, exact, dtype, tolerance(op, dtype), formula, scales(op, a, b, c, eta))
                ok = ok if width == 1 else ok.all(1)
                rep.add(op, f"{dtype}{N}", ok, lambda k, got=got, exact=exact, op=op, a=a, b=b: (
                    f"{op}({a[k]}, {b[k]}) = {got[k]}, expected {exact[k]}"))
    for op in SCALAR_OPS + VECTOR_OPS:
        assert msl_call(op) in ck.metal_source, op
    rep.finish()
