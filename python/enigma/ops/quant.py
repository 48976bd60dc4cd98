"""``enigma.ops.quant``: int8/int4 packing and dequantization (implemented in
``enigma._lang``). ``select`` here is Metal's select, as in the reference's
module: ``select(false_val, true_val, condition)`` (``enigma.where``)."""
from __future__ import annotations

from .._lang import (  # noqa: F401
    dequantize_int8, extract_bits, insert_bits, pack_int4x2, pack_uint8x4, unpack_int4x2, unpack_uint8x4,
)
from .._tracing import cmp_ge, metal_cast  # noqa: F401
from .._tracing import where as select  # noqa: F401
