"""``enigma.ops.gemm``: the tile GEMM and the names its module exposes in the
reference (all implemented elsewhere in the package)."""
from __future__ import annotations

from .._cooperative import (  # noqa: F401
    barrier, make_filled_simdgroup_matrix, simdgroup_matrix_load, simdgroup_matrix_store,
    simdgroup_multiply_accumulate,
)
from .._lang import RegisterTensor  # noqa: F401
from .._tensor import Tensor  # noqa: F401
from .._tiles import gemm  # noqa: F401
from .._tracing import EnigmaError, for_range, metal_cast  # noqa: F401
