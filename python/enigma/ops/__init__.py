"""``enigma.ops``: tile helpers (the reference's module path). ``gemm`` and the
quantization helpers are implemented in ``enigma._cooperative`` and
``enigma._lang``; these modules only re-export them."""
from __future__ import annotations

from . import gemm as _gemm_module, quant
from .gemm import gemm
from .quant import dequantize_int8, pack_int4x2, pack_uint8x4, unpack_int4x2, unpack_uint8x4

# `enigma.ops.gemm` is the function (as in the reference); the module stays
# importable as `import enigma.ops.gemm` / `from enigma.ops.gemm import ...`.
del _gemm_module

__all__ = ["gemm", "quant", "dequantize_int8", "pack_int4x2", "pack_uint8x4", "unpack_int4x2", "unpack_uint8x4"]
