"""Random kernels against a numpy model of checked memory (SEMANTICS 4).

Each kernel is drawn from fixed seeds: random loads (indices that wrap in
uint32, land past the end or stay inside), random ops over uint32 or float32,
masked loads and stores, atomics, and geometries with partial threadgroups
and inputs shorter than the grid. The model applies the checked-memory rule
(an out-of-bounds load reads 0, an out-of-bounds store or atomic is dropped)
and says whether a dispatch must raise: exactly when a store or atomic went
out of bounds (in debug mode: any access). Nothing may crash the process. On
a machine with a CUDA device the CPU and CUDA results must agree bit for bit.
"""
import os
import random
import time

import numpy as np

import enigma
from enigma.testing import is_cuda_available

U32 = 1 << 32
KERNELS = int(os.environ.get("ENIGMA_FUZZ_KERNELS", "24"))
DISPATCHES = 6  # geometries and inputs per kernel
TIME_BUDGET_S = 50.0  # a guard for slow machines; the set of programs is fixed by the seeds

_PROG = {}  # the program being traced (read by the kernel bodies below)


def _body(A, B, W, Out, Out2, float_ops):
    p = _PROG
    gx = enigma.thread_position_in_grid_xyz("x")
    gy = enigma.thread_position_in_grid_xyz("y")
    lin = gy * W + gx
    bufs = {"A": A, "B": B}

    def index(scale, offset):
        # scale 0: the same index for a whole row of threads (gy * W + offset)
        i = gy * W if scale == 0 else lin * scale if scale != 1 else lin
        return i + offset if offset >= 0 else i - (-offset)

    vals = []
    for buf, scale, offset, masked in p["loads"]:
        i = index(scale, offset)
        if masked:
            vals.append(enigma.load_if(bufs[buf], i, (lin & 1) == 0))
        else:
            vals.append(bufs[buf][i])
    acc = vals[0]
    for op, k in p["ops"]:
        v = vals[k]
        if op == "add":
            acc = acc + v
        elif op == "sub":
            acc = acc - v
        elif op == "mul":
            acc = acc * v
        elif op == "min":
            acc = enigma.where(v, acc, acc < v)
        elif op == "max":
            acc = enigma.where(v, acc, acc > v)
        elif op == "xor" and not float_ops:
            acc = acc ^ v
    Out[index(1, p["store"])] = acc
    kind, offset = p["second"]
    if kind == "store_if":
        enigma.store_if(Out2, index(1, offset), vals[-1], (lin % 3) != 0)
    elif kind == "atomic" and not float_ops:
        enigma.atomic_fetch_add(Out2, lin % 7 + offset if offset >= 0 else lin % 7 - (-offset), 1)
    else:
        Out2[index(1, offset)] = vals[-1]


@enigma.kernel
def fuzz_u32(A: enigma.u32, B: enigma.u32, W: enigma.Scalar(enigma.u32), Out: enigma.u32, Out2: enigma.u32):
    _body(A, B, W, Out, Out2, False)


@enigma.kernel
def fuzz_f32(A: enigma.f32, B: enigma.f32, W: enigma.Scalar(enigma.u32), Out: enigma.f32, Out2: enigma.f32):
    _body(A, B, W, Out, Out2, True)


def draw_program(rng: random.Random):
    dtype = rng.choice(["u32", "f32"])
    offsets = [0, 0, 1, 2, 3, -1, -2, 5, 40, -40]
    loads = []
    for _ in range(rng.randint(1, 4)):
        loads.append((rng.choice("AB"), rng.choice([0, 1, 1, 2]), rng.choice(offsets), rng.random() < 0.25))
    ops = [(rng.choice(["add", "sub", "mul", "min", "max", "xor"]), rng.randrange(len(loads)))
           for _ in range(rng.randint(0, 4))]
    second = rng.choice(["store", "store_if", "atomic"] if dtype == "u32" else ["store", "store_if"])
    return {"dtype": dtype, "loads": loads, "ops": ops, "store": rng.choice([0, 0, 0, 0, 1, -1, 7]),
            "second": (second, rng.choice([0, 0, 0, 1, -1, 3]))}


def model(prog, a, b, n_out, n_out2, grid, w):
    """The expected outputs and whether a store/atomic (or any access) went out of bounds."""
    f = prog["dtype"] == "f32"
    dt = np.float32 if f else np.uint32
    gx, gy = np.meshgrid(np.arange(grid[0], dtype=np.uint64), np.arange(grid[1], dtype=np.uint64))
    lin = ((gy * np.uint64(w) + gx) % U32).ravel()

    row = ((gy * np.uint64(w)) % U32).ravel()

    def index(scale, offset):
        base = row if scale == 0 else lin * np.uint64(scale)
        return (base + np.uint64(offset % U32)) % U32

    bufs = {"A": a, "B": b}
    oob_load = False
    vals = []
    with np.errstate(all="ignore"):
        for buf, scale, offset, masked in prog["loads"]:
            src = bufs[buf]
            i = index(scale, offset)
            ok = i < len(src)
            take = (lin & 1) == 0 if masked else np.ones_like(ok)
            oob_load |= bool(np.any(take & ~ok))
            v = np.zeros(len(lin), dt)
            sel = ok & take
            v[sel] = src[i[sel]]
            vals.append(v)
        acc = vals[0].copy()
        for op, k in prog["ops"]:
            v = vals[k]
            if op == "add":
                acc = (acc + v).astype(dt)
            elif op == "sub":
                acc = (acc - v).astype(dt)
            elif op == "mul":
                acc = (acc * v).astype(dt)
            elif op in ("min", "max"):
                # `<` and `>` on traced integers compare as signed (SEMANTICS 3).
                x, y = (acc, v) if f else (acc.view(np.int32), v.view(np.int32))
                acc = np.where(x < y if op == "min" else x > y, acc, v)
            elif op == "xor" and not f:
                acc = acc ^ v
    out = np.zeros(n_out, dt)
    out2 = np.zeros(n_out2, dt)
    oob_store = False
    i = index(1, prog["store"])
    ok = i < n_out
    oob_store |= bool(np.any(~ok))
    out[i[ok]] = acc[ok]
    kind, offset = prog["second"]
    if kind == "atomic" and not f:
        i = ((lin % np.uint64(7)) + np.uint64(offset % U32)) % U32
        ok = i < n_out2
        oob_store |= bool(np.any(~ok))
        np.add.at(out2, i[ok].astype(np.int64), np.uint32(1))
    else:
        i = index(1, offset)
        take = (lin % 3) != 0 if kind == "store_if" else np.ones(len(lin), bool)
        ok = i < n_out2
        oob_store |= bool(np.any(take & ~ok))
        sel = take & ok
        out2[i[sel]] = vals[-1][sel]
    return out, out2, oob_store, oob_load


def draw_dispatch(rng: random.Random, prog):
    tx, ty = rng.choice([(1, 1), (3, 1), (32, 1), (64, 1), (5, 3), (16, 4), (33, 2)])
    two_d = ty > 1 or rng.random() < 0.3
    grid = (rng.randint(1, 150), rng.randint(1, 7) if two_d else 1, 1)
    n = grid[0] * grid[1]
    dt = np.float32 if prog["dtype"] == "f32" else np.uint32
    def arr(m):
        if dt is np.float32:
            return (rng.random() * 4 - 2 + np.arange(m, dtype=np.float32) * np.float32(0.25)).astype(np.float32)
        return np.array([rng.getrandbits(32) for _ in range(m)], np.uint32)
    # Inputs and outputs shorter than the grid, exact, or longer.
    sizes = [max(1, n + rng.choice([-n // 2, -3, -1, 0, 0, 0, 2, 50])) for _ in range(2)]
    sizes += [max(1, n + rng.choice([-1, 0, 0, 0, 0, 3, 8, 50])) for _ in range(2)]
    return grid, (tx, ty, 1), arr(sizes[0]), arr(sizes[1]), sizes[2], sizes[3]


def run_case(rt, ck, prog, grid, threads, a, b, n_out, n_out2):
    p = rt.prepare(ck, [a, b], output_sizes=[n_out * 4, n_out2 * 4], scalars=[grid[0]])
    raised = None
    try:
        p.dispatch(grid, threads)
        outs = p.read_output()  # waits: a GPU reports the dispatch's error here
    except RuntimeError as e:
        raised = e
        outs = p.read_output()  # the in-bounds results are kept
    p.release()
    dt = np.float32 if prog["dtype"] == "f32" else np.uint32
    return [np.frombuffer(o, dt)[:n] for o, n in zip(outs, (n_out, n_out2))], raised


def test_random_kernels_follow_the_checked_memory_model(record_testsuite_property):
    rt = enigma.MetalRuntime(device="cpu")
    cuda = enigma.MetalRuntime(device="cuda") if is_cuda_available() else None
    programs = 0
    raised_count = 0
    start = time.monotonic()
    for seed in range(KERNELS):
        if time.monotonic() - start > TIME_BUDGET_S:
            break
        rng = random.Random(1000 + seed)
        prog = draw_program(rng)
        _PROG.clear()
        _PROG.update(prog)
        kern = fuzz_f32 if prog["dtype"] == "f32" else fuzz_u32
        debug = seed % 4 == 3
        ck = enigma.compile(kern, debug=debug)
        for _ in range(DISPATCHES):
            grid, threads, a, b, n_out, n_out2 = draw_dispatch(rng, prog)
            want, want2, oob_store, oob_load = model(prog, a, b, n_out, n_out2, grid, grid[0])
            (got, got2), err = run_case(rt, ck, prog, grid, threads, a, b, n_out, n_out2)
            what = (f"seed {1000 + seed} program {prog} grid {grid} threads {threads} "
                    f"sizes {len(a), len(b), n_out, n_out2}")
            must_raise = oob_store or (debug and oob_load)
            assert (err is not None) == must_raise, f"{what}: raised {err!r}, expected {must_raise}"
            if err is not None:
                assert "OUT_OF_BOUNDS" in str(err) and ("fuzz_" in str(err)), str(err)
            np.testing.assert_array_equal(got, want, err_msg=what)
            np.testing.assert_array_equal(got2, want2, err_msg=what)
            if cuda is not None:
                (cgot, cgot2), cerr = run_case(cuda, ck, prog, grid, threads, a, b, n_out, n_out2)
                assert (cerr is not None) == must_raise, f"{what}: CUDA raised {cerr!r}"
                np.testing.assert_array_equal(cgot, got, err_msg="CUDA vs CPU: " + what)
                np.testing.assert_array_equal(cgot2, got2, err_msg="CUDA vs CPU: " + what)
            programs += 1
            raised_count += err is not None
    print(f"\nfuzz: {programs} programs run ({raised_count} raised OUT_OF_BOUNDS as the model said), "
          f"{time.monotonic() - start:.1f} s" + (", CPU and CUDA compared" if cuda is not None else ""))
    record_testsuite_property("fuzz_programs", programs)  # in the JUnit report
    assert programs >= DISPATCHES * min(KERNELS, 4)
