"""half and bfloat buffers interoperate with numpy: np.float16, and
ml_dtypes.bfloat16 when installed (else raw uint16 holding bfloat16 bits)."""
import numpy as np
import pytest

import enigma
from ._harness import runtime


@enigma.kernel
def scale16(H: enigma.f16, B: enigma.bf16, OutH: enigma.f16, OutB: enigma.bf16):
    i = enigma.thread_position_in_grid
    OutH[i] = H[i] * 2.0 + enigma.metal_cast(B[i], "half")
    OutB[i] = B[i] * 0.5 + enigma.metal_cast(H[i], "bfloat")


def bits_of_bf16(x):
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def test_half_and_bfloat_buffers():
    h = np.array([0.5, -1.25, 1000.0, 6e-5, np.inf, -0.0], np.float16)
    fb = np.array([1.0, -3.0, 256.0, 1e-3, 2.0, -0.0], np.float32)
    raw_b = bits_of_bf16(fb)
    outh, outb = runtime().execute(enigma.compile(scale16), [h, raw_b], grid=(6, 1, 1), threads=(6, 1, 1),
                                   output_sizes=[12, 12])
    got_h = np.frombuffer(outh, np.float16)
    b_vals = (raw_b.astype(np.uint32) << 16).view(np.float32)
    want_h = (h.astype(np.float32) * 2 + b_vals.astype(np.float16).astype(np.float32)).astype(np.float16)
    assert np.array_equal(got_h, want_h)
    got_b = (np.frombuffer(outb, np.uint16).astype(np.uint32) << 16).view(np.float32)
    h_as_b = (bits_of_bf16(h.astype(np.float32)).astype(np.uint32) << 16).view(np.float32)
    want_b = (b_vals * np.float32(0.5) + h_as_b)
    assert np.array_equal(bits_of_bf16(got_b), bits_of_bf16(want_b)) or np.allclose(got_b, want_b, rtol=1e-2)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    typed = fb.astype(ml_dtypes.bfloat16)
    outh2, outb2 = runtime().execute(enigma.compile(scale16), [h, typed], grid=(6, 1, 1), threads=(6, 1, 1),
                                     output_sizes=[12, 12])
    assert outh2 == outh and outb2 == outb
    assert np.array_equal(np.frombuffer(outb2, ml_dtypes.bfloat16).astype(np.float32), got_b)


def test_wrong_16bit_dtype_is_an_error():
    with pytest.raises(RuntimeError, match="half elements"):
        runtime().execute(enigma.compile(scale16), [np.zeros(2, np.float32), np.zeros(2, np.uint16)],
                          grid=(2, 1, 1), threads=(2, 1, 1), output_sizes=[4, 4])
