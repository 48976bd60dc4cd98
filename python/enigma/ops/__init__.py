"""``enigma.ops``: tile helpers (the reference's module path). ``gemm`` and the
quantization helpers are implemented in ``enigma._tiles`` and
``enigma._lang``; these modules only re-export them.

``enigma.ops.gemm`` is the function, as in the reference; the module of that
name is reached by ``from enigma.ops.gemm import ...``."""
from __future__ import annotations

from . import quant
from .gemm import gemm
from .quant import dequantize_int8, pack_int4x2, pack_uint8x4, unpack_int4x2, unpack_uint8x4

__all__ = ["gemm", "quant", "dequantize_int8", "pack_int4x2", "pack_uint8x4", "unpack_int4x2", "unpack_uint8x4"]
