"""What the row-kernel examples (rmsnorm_rows.py, softmax_rows.py) share:
the threads a row gets, and the check of a kernel against its float64
reference on the default device."""
import numpy as np

import enigma


def threads_for(n: int) -> int:
    """Threads per row: 16 floats a thread up to 1024 threads, then more."""
    return max(32, min(1024, n // 16))


def row_shape(name: str, n: int, threads: int):
    """(float4 a row, float4 a thread rounded up, whether every thread has
    them all) for rows of `n` floats; n must be a multiple of 4."""
    if n % 4:
        raise ValueError(f"{name}: N={n} must be a multiple of 4")
    nv = n // 4
    return nv, -(-nv // threads), nv % threads == 0


def load_row(X, base, lid, threads, per_thread, nv, full, fill):
    """This thread's float4 values of the row at `base` (a kernel helper):
    vectors lid, lid + threads, ...; unrolled, so every load is in flight at
    once. Returns them and, for a partial last pass, whether each is inside
    the row (outside ones read `fill`)."""
    xs, ok = [], []
    for j in range(per_thread):
        col = lid + j * threads
        inside = None if full else col < nv
        ok.append(inside)
        xs.append(X[base + col] if full else enigma.load_if(X, base + col, inside, fill))
    return xs, ok


def check_rows(name, compile_fn, make_inputs, reference, argv, atol, err_floor) -> int:
    """Runs `compile_fn(n, threads)`'s kernel over ROWS x N rows (argv, else
    8 x 4096) in the default shape and in one with a partial last pass;
    `make_inputs(rng, rows, n)` gives the float32 buffers, the first of which
    is the rows. Prints one line a shape; returns the number of mismatches."""
    rows, n = (int(argv[1]), int(argv[2])) if len(argv) > 2 else (8, 4096)
    rng = np.random.default_rng(0)
    rt = enigma.MetalRuntime()
    bad = 0
    for threads in (None, 96):                  # the default shape, and one with a partial last pass
        ck, t = compile_fn(n, threads)
        inputs = make_inputs(rng, rows, n)
        raw = rt.execute(ck, inputs, inputs[0].nbytes, (rows * t, 1, 1), (t, 1, 1))
        y = np.frombuffer(raw, np.float32).reshape(rows, n)
        want = reference(*inputs)
        err = float(np.max(np.abs(y - want) / (np.abs(want) + err_floor)))
        ok = bool(np.allclose(y, want, rtol=1e-5, atol=atol))
        bad += not ok
        print(f"{name}: {rows}x{n}, {t} threads a row, on {rt.device}: "
              f"{'OK' if ok else 'MISMATCH'} (max rel err {err:.1e})")
    return bad
