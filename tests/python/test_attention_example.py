"""examples/attention_fwd.py (online softmax over simdgroup matrices) against
a float64 numpy reference, causal and not, both head dimensions, on the
default device (the tensor-core entry with ENIGMA_DEVICE=cuda on a GPU)."""
import math

import numpy as np
import pytest

import enigma
from conftest import load_example

ml_dtypes = pytest.importorskip("ml_dtypes")


def _example():
    return load_example("attention_fwd")


@pytest.mark.parametrize("heads,seq,d,causal", [(1, 128, 64, True), (2, 64, 128, False)])
def test_attention_matches_float64(heads, seq, d, causal):
    ex = _example()
    rng = np.random.default_rng(seq + d)
    # Scores spread over a wide range, so the running maximum changes from block to block.
    q = (rng.standard_normal((heads, seq, d)) * 3).astype(ml_dtypes.bfloat16)
    k, v = (rng.standard_normal((heads, seq, d)).astype(ml_dtypes.bfloat16) for _ in range(2))
    grid, threads = ex.launch_shape(heads, seq)
    raw = enigma.MetalRuntime().execute(enigma.compile(ex.make_attention(d, causal)), [q, k, v], q.size * 2, grid,
                                        threads, scalars=[seq, 1.0 / math.sqrt(d)])
    got = np.frombuffer(raw, ml_dtypes.bfloat16).reshape(q.shape).astype(np.float64)
    want = ex.reference(q, k, v, causal)
    # bfloat probabilities and output: a few bfloat ulps of the largest |v|.
    assert np.abs(got - want).max() < 3e-2, np.abs(got - want).max()


def test_attention_rejects_other_head_dims():
    with pytest.raises(ValueError, match="D=96"):
        _example().make_attention(96, False)
