"""The swizzled threadgroup-memory transpose of examples/transpose_swizzled.py:
correct for sides that are and are not multiples of the tile, conflict-free
columns, and a barrier between staging and draining."""
import importlib.util
import os

import numpy as np
import pytest

import enigma

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "transpose_swizzled.py")
_spec = importlib.util.spec_from_file_location("transpose_swizzled", _PATH)
ex = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ex)


def test_swizzle_is_a_conflict_free_permutation():
    assert sorted(ex.TILE_LAYOUT.offsets()) == list(range(ex.TILE * ex.TILE))
    assert all(len(ex.banks_of_column(c)) == 32 for c in range(ex.TILE))
    plain = enigma.SwizzledLayout(ex.SMEM, enigma.Swizzle(0, 0, 0))   # no swizzle: one bank per column
    assert all(len({plain(r, c) % 32 for r in range(ex.TILE)}) == 1 for c in range(ex.TILE))


def test_kernel_stages_through_swizzled_threadgroup_memory():
    ck = enigma.compile(ex.transpose_swizzled, emit_only=True)
    msl = ck.metal_source
    assert "threadgroup float _shared0[1024];" in msl
    assert msl.count("threadgroup_barrier(mem_flags::mem_threadgroup);") == 1
    assert " ^ " in msl  # the swizzle's XOR


@pytest.mark.parametrize("shape", [(100, 70), (64, 96), (32, 32), (1, 33), (33, 1)])
def test_transpose_matches_numpy(runtime, shape):
    a = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    b, _ = ex.run(a, runtime)
    np.testing.assert_array_equal(b, a.T)
