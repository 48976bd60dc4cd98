"""The 12 thread/grid queries (plus enigma.thread_position_in_grid and
enigma.arch.*) on 1-D, 2-D and 3-D grids with partial edge threadgroups,
against a numpy model of Metal's dispatchThreads semantics."""
import numpy as np
import pytest

import enigma
from conftest import run

VEC_QUERIES = ["thread_position_in_grid", "thread_position_in_threadgroup", "threadgroup_position_in_grid",
               "threads_per_threadgroup", "threads_per_grid", "threadgroups_per_grid", "grid_size"]
SCALAR_QUERIES = ["thread_index_in_threadgroup", "thread_index_in_simdgroup", "simdgroup_index_in_threadgroup",
                  "threads_per_simdgroup", "simdgroups_per_threadgroup"]
VEC_FUNCS = {"thread_position_in_grid": enigma.thread_position_in_grid_xyz,
             "thread_position_in_threadgroup": enigma.thread_position_in_threadgroup,
             "threadgroup_position_in_grid": enigma.threadgroup_position_in_grid,
             "threads_per_threadgroup": enigma.threads_per_threadgroup,
             "threads_per_grid": enigma.threads_per_grid,
             "threadgroups_per_grid": enigma.threadgroups_per_grid,
             "grid_size": enigma.grid_size}

U32 = enigma.u32
SEEN = {}


@enigma.kernel
def all_queries(gx: enigma.Scalar(enigma.u32), gy: enigma.Scalar(enigma.u32),
                tpig: U32, tpitg: U32, tgpig: U32, tptg: U32, tpg: U32, tgpg: U32, gsz: U32,
                tiitg: U32, tiisg: U32, sgitg: U32, tpsg: U32, sgptg: U32, attr: U32, arch3: U32):
    x = enigma.thread_position_in_grid_xyz("x")
    y = enigma.thread_position_in_grid_xyz("y")
    z = enigma.thread_position_in_grid_xyz("z")
    lin = x + gx * (y + gy * z)
    vec_outs = [tpig, tpitg, tgpig, tptg, tpg, tgpg, gsz]
    for name, out in zip(VEC_QUERIES, vec_outs):
        for k, d in enumerate("xyz"):
            v = VEC_FUNCS[name](d)
            SEEN[(name, d)] = v.dtype
            out[lin * 3 + k] = v
    for name, out in zip(SCALAR_QUERIES, [tiitg, tiisg, sgitg, tpsg, sgptg]):
        v = getattr(enigma, name)()
        SEEN[name] = v.dtype
        out[lin] = v
    attr[lin] = enigma.thread_position_in_grid          # module attribute: the x position
    tid = enigma.arch.thread_idx()
    bid = enigma.arch.block_idx()
    bdim = enigma.arch.block_dim()
    SEEN["arch"] = (len(tid), tid[1], tid[2], bid[1:], bdim[1:])
    arch3[lin * 3] = tid[0]
    arch3[lin * 3 + 1] = bid[0]
    arch3[lin * 3 + 2] = bdim[0]


def metal_model(grid, threads):
    """Per thread (flattened x-fastest over the grid): every query's value."""
    G = np.array(grid)
    T = np.array(threads)
    z, y, x = np.meshgrid(*[np.arange(g) for g in grid[::-1]], indexing="ij")
    pos = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)      # (n, 3), x fastest
    tg = pos // T
    local = pos % T
    edge = np.minimum(T, G - tg * T)                                 # real size of this thread's group
    groups = -(-G // T)
    n = pos.shape[0]
    idx = (local[:, 2] * edge[:, 1] + local[:, 1]) * edge[:, 0] + local[:, 0]
    count = edge.prod(axis=1)
    m = {
        "thread_position_in_grid": pos,
        "thread_position_in_threadgroup": local,
        "threadgroup_position_in_grid": tg,
        "threads_per_threadgroup": edge,
        "threads_per_grid": np.tile(G, (n, 1)),
        "threadgroups_per_grid": np.tile(groups, (n, 1)),
        "grid_size": np.tile(G, (n, 1)),
        "thread_index_in_threadgroup": idx,
        "thread_index_in_simdgroup": idx % 32,
        "simdgroup_index_in_threadgroup": idx // 32,
        "threads_per_simdgroup": np.full(n, 32),
        "simdgroups_per_threadgroup": -(-count // 32),
    }
    return m, n


CASES = [((1000, 1, 1), (256, 1, 1)), ((37, 19, 1), (8, 8, 1)), ((5, 6, 7), (4, 4, 2)),
         ((70, 3, 2), (64, 2, 1)), ((33, 1, 1), (33, 1, 1))]


@pytest.mark.parametrize("grid,threads", CASES, ids=[f"{g}-{t}" for g, t in CASES])
def test_queries_match_metal_model(runtime, grid, threads):
    model, n = metal_model(grid, threads)
    outs = [(np.uint32, 3 * n)] * len(VEC_QUERIES) + [(np.uint32, n)] * len(SCALAR_QUERIES) + \
        [(np.uint32, n), (np.uint32, 3 * n)]
    got = run(runtime, all_queries, [], outs, grid, threads, scalars=[grid[0], grid[1]])
    failures = []
    for name, g in zip(VEC_QUERIES, got):
        g = g.reshape(n, 3)
        want = model[name]
        if not np.array_equal(g, want):
            bad = np.flatnonzero(np.any(g != want, axis=1))[:3]
            failures.append(f"{name}: {len(np.flatnonzero(np.any(g != want, axis=1)))} threads wrong, e.g. "
                            f"thread {model['thread_position_in_grid'][bad].tolist()} got {g[bad].tolist()} "
                            f"want {want[bad].tolist()}")
    for name, g in zip(SCALAR_QUERIES, got[len(VEC_QUERIES):]):
        want = model[name]
        if not np.array_equal(g, want):
            bad = np.flatnonzero(g != want)[:3]
            failures.append(f"{name}: thread {model['thread_position_in_grid'][bad].tolist()} got {g[bad].tolist()} "
                            f"want {want[bad].tolist()}")
    attr, arch3 = got[-2], got[-1].reshape(n, 3)
    if not np.array_equal(attr, model["thread_position_in_grid"][:, 0]):
        failures.append("enigma.thread_position_in_grid differs from thread_position_in_grid_xyz('x')")
    want_arch = np.stack([model["thread_position_in_threadgroup"][:, 0], model["threadgroup_position_in_grid"][:, 0],
                          model["threads_per_threadgroup"][:, 0]], axis=1)
    if not np.array_equal(arch3, want_arch):
        failures.append("enigma.arch.thread_idx/block_idx/block_dim differ from the Metal queries")
    assert not failures, "\n".join(failures)
    # every query is uint; arch.* return (value, 0, 0)
    assert all(v == "uint" for k, v in SEEN.items() if k != "arch")
    assert SEEN["arch"] == (3, 0, 0, (0, 0), (0, 0))


def test_edge_threadgroups_really_are_partial(runtime):
    """Threads outside the grid do not run: nothing writes past the grid (output starts zeroed)."""

    @enigma.kernel
    def count_runs(out: enigma.u32):
        x = enigma.thread_position_in_grid_xyz("x")
        y = enigma.thread_position_in_grid_xyz("y")
        out[y * 64 + x] = out[y * 64 + x] + 1

    got = run(runtime, count_runs, [], (np.uint32, 64 * 40), (37, 19, 1), (8, 8, 1)).reshape(40, 64)
    want = np.zeros((40, 64), np.uint32)
    want[:19, :37] = 1
    assert np.array_equal(got, want)


def test_bad_dim_is_an_error():
    for fn in (enigma.thread_position_in_grid_xyz, enigma.thread_position_in_threadgroup,
               enigma.threadgroup_position_in_grid, enigma.threads_per_threadgroup, enigma.threads_per_grid,
               enigma.threadgroups_per_grid, enigma.grid_size):

        @enigma.kernel
        def bad_dim(out: enigma.u32):
            out[0] = fn("w")

        with pytest.raises(enigma.EnigmaError, match="dim must be 'x'/'y'/'z', got 'w'"):
            enigma.compile(bad_dim, emit_only=True)

    @enigma.kernel
    def bad_dim_int(out: enigma.u32):
        out[0] = enigma.threads_per_grid(0)

    with pytest.raises(enigma.EnigmaError, match="dim must be"):
        enigma.compile(bad_dim_int, emit_only=True)


def test_queries_outside_a_kernel():
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        enigma.thread_position_in_grid_xyz("x")
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        enigma.simdgroups_per_threadgroup()
    with pytest.raises(RuntimeError, match="can only be used inside @enigma.kernel"):
        enigma.thread_position_in_grid  # noqa: B018
    with pytest.raises((AssertionError, enigma.EnigmaError)):
        enigma.arch.thread_idx()
    with pytest.raises(AttributeError, match="module 'enigma' has no attribute 'no_such_name'"):
        enigma.no_such_name  # noqa: B018


@enigma.kernel
def query_forms(out: enigma.u32):
    x = enigma.thread_position_in_grid               # bare: the x position (the reference's form)
    y = enigma.thread_position_in_grid("y")          # called with an axis
    lane = enigma.thread_index_in_simdgroup          # bare scalar query: the same value as called
    flat = enigma.thread_index_in_threadgroup()
    gx = enigma.threads_per_grid.x                   # .x/.y/.z pick an axis
    k = (y * gx + x) * 4
    out[k] = lane + 0
    out[k + 1] = flat
    out[k + 2] = enigma.thread_position_in_threadgroup + enigma.thread_position_in_threadgroup("y") * 100
    out[k + 3] = y


def test_queries_bare_and_called(runtime):
    got = run(runtime, query_forms, [], (np.uint32, 16 * 3 * 4), (16, 3, 1), (8, 3, 1)).reshape(3, 16, 4)
    yy, xx = np.mgrid[0:3, 0:16]
    lx = xx % 8
    flat = lx + 8 * yy
    np.testing.assert_array_equal(got[..., 0], flat % 32)
    np.testing.assert_array_equal(got[..., 1], flat)
    np.testing.assert_array_equal(got[..., 2], lx + yy * 100)
    np.testing.assert_array_equal(got[..., 3], yy)


def test_scalar_query_with_an_axis_says_what_to_write():
    @enigma.kernel
    def bad(out: enigma.u32):
        out[0] = enigma.thread_index_in_simdgroup("y")

    with pytest.raises(enigma.EnigmaError, match=r"has no axes.*enigma\.thread_index_in_simdgroup\(\)"):
        enigma.compile(bad, emit_only=True)


def test_query_signatures_are_the_references():
    import inspect
    assert str(inspect.signature(enigma.thread_position_in_threadgroup)) == "(dim='x')"
    assert str(inspect.signature(enigma.thread_index_in_simdgroup)) == "()"
    assert enigma.threads_per_grid.__name__ == "threads_per_grid"
