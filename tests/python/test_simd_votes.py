"""Metal's SIMD/quad vote and mask functions against a numpy model of
dispatchThreads, with partial simdgroups (threadgroups that are not a
multiple of 32, partial edge threadgroups) and divergent branches: only the
active threads of a simdgroup (quad) take part, as Metal defines."""
import numpy as np
import pytest

import enigma
from conftest import run

U32 = enigma.u32


@enigma.kernel
def votes(a: enigma.f32, s_all: U32, s_any: U32, s_ballot: enigma.u64, s_mask: enigma.u64, s_first: U32,
          q_all: U32, q_any: U32, q_ballot: U32, q_mask: U32, q_first: U32, div_mask: enigma.u64):
    i = enigma.thread_position_in_grid
    p = a[i] > 0.5
    s_all[i] = enigma.metal_cast(enigma.simd_all(p), "uint")
    s_any[i] = enigma.metal_cast(enigma.simd_any(p), "uint")
    s_ballot[i] = enigma.simd_ballot(p)
    s_mask[i] = enigma.simd_active_threads_mask()
    s_first[i] = enigma.metal_cast(enigma.simd_is_first(), "uint")
    q_all[i] = enigma.metal_cast(enigma.quad_all(p), "uint")
    q_any[i] = enigma.metal_cast(enigma.quad_any(p), "uint")
    q_ballot[i] = enigma.quad_ballot(p)
    q_mask[i] = enigma.quad_active_threads_mask()
    q_first[i] = enigma.metal_cast(enigma.quad_is_first(), "uint")
    m = enigma.metal_cast(0, "ulong")
    if p:                                   # divergent: only the threads where p holds are active
        m = enigma.simd_active_threads_mask()
    div_mask[i] = m


def model(a, n, tg):
    p = a > 0.5
    out = {k: np.zeros(n, np.uint64) for k in ("s_all", "s_any", "s_ballot", "s_mask", "s_first", "q_all", "q_any",
                                               "q_ballot", "q_mask", "q_first", "div_mask")}
    for g0 in range(0, n, tg):
        size = min(tg, n - g0)
        for width, pre in ((32, "s"), (4, "q")):
            for s0 in range(0, size, width):
                ids = np.arange(g0 + s0, g0 + min(s0 + width, size))
                lanes = ids - (g0 + s0)
                ballot = sum(1 << int(l) for l, t in zip(lanes, ids) if p[t])
                mask = sum(1 << int(l) for l in lanes)
                out[f"{pre}_all"][ids] = all(p[ids])
                out[f"{pre}_any"][ids] = any(p[ids])
                out[f"{pre}_ballot"][ids] = ballot
                out[f"{pre}_mask"][ids] = mask
                out[f"{pre}_first"][ids] = lanes == lanes.min()
                if width == 32:
                    out["div_mask"][ids] = np.where(p[ids], ballot, 0)
    return out


@pytest.mark.parametrize("n,tg", [(256, 64), (200, 40), (100, 96), (37, 37)])
def test_votes_match_metal_model(runtime, n, tg):
    a = np.random.default_rng(n + tg).random(n, dtype=np.float32)
    a[: n // 3] = 0.9  # whole simdgroups/quads where p holds everywhere
    names = ["s_all", "s_any", "s_ballot", "s_mask", "s_first", "q_all", "q_any", "q_ballot", "q_mask", "q_first",
             "div_mask"]
    dtypes = [np.uint32, np.uint32, np.uint64, np.uint64, np.uint32, np.uint32, np.uint32, np.uint32, np.uint32,
              np.uint32, np.uint64]
    got = run(runtime, votes, [a], [(d, n) for d in dtypes], n, tg)
    want = model(a, n, tg)
    for name, g in zip(names, got):
        np.testing.assert_array_equal(g.astype(np.uint64), want[name], err_msg=name)


def test_vote_needs_a_bool():
    @enigma.kernel
    def bad(a: enigma.f32, out: U32):
        i = enigma.thread_position_in_grid
        out[i] = enigma.metal_cast(enigma.simd_all(a[i]), "uint")

    with pytest.raises(enigma.EnigmaError, match=r"simd_all: needs a bool scalar, got float; compare first"):
        enigma.compile(bad, emit_only=True)
