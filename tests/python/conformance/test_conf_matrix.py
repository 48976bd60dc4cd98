"""Matrix values (floatCxR and halfCxR, column-major as Metal): make_matrix,
matrix_column / m[c], matmul (matrix * matrix, matrix * vector, vector *
matrix), transpose, determinant, and metal_cast between float and half."""
import itertools

import numpy as np
import pytest

import enigma
from ._harness import ANNOTATION, Report, float_ok, round_to, run, to_device, tolerance

SHAPES = [(2, 2), (3, 3), (4, 4), (2, 3), (3, 4), (4, 2)]  # (columns, rows)


def det_formula(m, t):
    """The documented expansion along the first column, in arithmetic t; m[col][row]."""
    n = m.shape[1]
    m = t(m)
    if n == 2:
        return m[:, 0, 0] * m[:, 1, 1] - m[:, 1, 0] * m[:, 0, 1]

    def det3(a0, a1, a2, b0, b1, b2, c0, c1, c2):
        return a0 * (b1 * c2 - c1 * b2) - a1 * (b0 * c2 - c0 * b2) + a2 * (b0 * c1 - c0 * b1)
    if n == 3:
        return det3(*[m[:, c, r] for c in range(3) for r in range(3)])
    det = t(0) * m[:, 0, 0]
    for r in range(4):
        rows = [i for i in range(4) if i != r]
        minor = det3(*[m[:, c, i] for c in (1, 2, 3) for i in rows])
        term = m[:, 0, r] * minor
        det = det - term if r & 1 else det + term
    return det


def permanent_abs(m):
    n = m.shape[1]
    a = np.abs(m)
    return sum(np.prod([a[:, p[r], r] for r in range(n)], 0) for p in itertools.permutations(range(n)))


@pytest.mark.parametrize("dtype", ["float", "half"])
def test_matrices(dtype):
    count = 24
    rng = np.random.default_rng(9)
    A = round_to(rng.uniform(-3, 3, (count, 16)), dtype)
    B = round_to(rng.uniform(-3, 3, (count, 16)), dtype)
    A[0] = 0.0
    A[1, :] = np.eye(4).ravel()
    B[2, 0] = np.inf
    T = ANNOTATION[dtype]
    other = "half" if dtype == "float" else "float"

    def mat(buf, i, c, r):
        cols = [enigma.make_vec(*[buf[i * 16 + col * 4 + row] for row in range(r)]) for col in range(c)]
        return enigma.make_matrix(*cols)

    @enigma.kernel
    def matrices(MA: T, MB: T, Out: T):
        i = enigma.thread_position_in_grid
        slot = 0

        def emit(v, rows, cols=1):
            nonlocal slot
            for c in range(cols):
                col = v if cols == 1 else v[c]
                for r in range(rows):
                    Out[(slot * 16 + c * 4 + r) * count + i] = col if rows == 1 else col[r]
            slot += 1
        for c, r in SHAPES:
            a = mat(MA, i, c, r)
            emit(a, r, c)                                           # make_matrix + columns
            emit(enigma.transpose(a), c, r)
            b = mat(MB, i, r, c)                                    # r columns of c rows: a * b is r x r
            emit(enigma.matmul(a, b), r, r)
            v = enigma.make_vec(*[MB[i * 16 + k] for k in range(c)])
            emit(enigma.matmul(a, v), r)                            # column vector
            w = enigma.make_vec(*[MB[i * 16 + k] for k in range(r)])
            emit(enigma.matmul(w, a), c)                            # row vector
            if c == r:
                emit(enigma.determinant(a), 1)
            back = enigma.metal_cast(enigma.metal_cast(a, f"{other}{c}x{r}"), f"{dtype}{c}x{r}")
            emit(back, r, c)

    n_slots = 7 * len(SHAPES)
    ck, (out,) = run(matrices, [to_device(A.ravel(), dtype), to_device(B.ravel(), dtype)],
                     [(dtype, n_slots * 16 * count)], count)
    rep = Report("matrices")
    slot = 0

    def got(rows, cols=1):
        nonlocal slot
        g = out[slot * 16 * count:(slot + 1) * 16 * count].reshape(4, 4, count)  # [col][row][thread]
        slot += 1
        return np.transpose(g[:cols, :rows], (2, 0, 1))  # [thread][col][row]

    with np.errstate(all="ignore"):
        for c, r in SHAPES:
            name = f"{dtype}{c}x{r}"
            a = A[:, :c * 4].reshape(count, c, 4)[:, :, :r]         # [thread][col][row]
            b = B[:, :r * 4].reshape(count, r, 4)[:, :, :c]
            am, bm = np.transpose(a, (0, 2, 1)), np.transpose(b, (0, 2, 1))  # row-major math matrices
            rep.add("make_matrix", name, (got(r, c) == a).all((1, 2)), lambda k: f"{a[k]}")
            rep.add("transpose", name, (got(c, r) == np.transpose(a, (0, 2, 1))).all((1, 2)), lambda k: f"{a[k]}")
            tol = tolerance("matmul", dtype)
            prod = np.transpose(am @ bm, (0, 2, 1))
            scale = np.transpose(np.abs(am) @ np.abs(bm), (0, 2, 1))
            f32 = np.transpose(am.astype(np.float32) @ bm.astype(np.float32), (0, 2, 1))
            g = got(r, r)
            ok = float_ok(g, prod, dtype, tol, round_to(f32, dtype), scale).all((1, 2))
            rep.add("matmul", f"{name}*{dtype}{r}x{c}", ok, lambda k, g=g, prod=prod: f"{g[k]} vs {prod[k]}")
            v = B[:, :c]
            g = got(r)[:, 0]
            ok = float_ok(g, np.einsum("tij,tj->ti", am, v), dtype, tol, None, np.einsum("tij,tj->ti", np.abs(am),
                                                                                           np.abs(v)))
            rep.add("matmul", f"{name}*{dtype}{c}", ok.all(1), lambda k: f"{a[k]} * {v[k]}")
            w = B[:, :r]
            g = got(c)[:, 0]
            ok = float_ok(g, np.einsum("ti,tij->tj", w, am), dtype, tol, None,
                          np.einsum("ti,tij->tj", np.abs(w), np.abs(am)))
            rep.add("matmul", f"{dtype}{r}*{name}", ok.all(1), lambda k: f"{w[k]} * {a[k]}")
            if c == r:
                g = got(1)[:, 0, 0]
                exact = det_formula(a, np.float64)
                formula = round_to(det_formula(a, np.float32), dtype)
                ok = float_ok(g, exact, dtype, tolerance("determinant", dtype), formula, permanent_abs(a))
                rep.add("determinant", name, ok, lambda k, g=g, exact=exact: f"{g[k]} vs {exact[k]}")
            back = got(r, c)
            want = round_to(a, "half") if dtype == "float" else a
            rep.add("metal_cast", f"{name}->{other}", (back == want).all((1, 2)), lambda k: f"{a[k]}")
    for fn in ("metal::transpose(", "metal::determinant(", " * "):
        assert fn in ck.metal_source
    rep.finish()


def test_matrix_errors():
    @enigma.kernel
    def bad(A: enigma.f32, Out: enigma.f32):
        i = enigma.thread_position_in_grid
        v2 = enigma.make_float2(A[i], A[i])
        v3 = enigma.make_float3(A[i], A[i], A[i])
        m = enigma.make_matrix(v2, v2, v2)                      # float3x2
        with pytest.raises(enigma.EnigmaError, match=r"test_conf_matrix.py:\d+.*matmul.*columns"):
            enigma.matmul(m, m)
        with pytest.raises(enigma.EnigmaError, match="matmul.*lanes"):
            enigma.matmul(m, v2)
        with pytest.raises(enigma.EnigmaError, match="determinant.*square"):
            enigma.determinant(m)
        with pytest.raises(enigma.EnigmaError, match="make_matrix.*different sizes"):
            enigma.make_matrix(v2, v3)
        with pytest.raises(enigma.EnigmaError, match="make_matrix.*vector"):
            enigma.make_matrix(A[i], A[i])
        with pytest.raises(enigma.EnigmaError, match="matrix_column.*out of range"):
            enigma.matrix_column(m, 3)
        with pytest.raises(enigma.EnigmaError, match="make_matrix.*float or half"):
            enigma.make_matrix(enigma.make_int2(1, 2), enigma.make_int2(3, 4))
        Out[i] = enigma.matmul(m, v3).x + m[1].y + enigma.transpose(m, "float2x3")[1].z
    enigma.compile(bad, emit_only=True)
