"""The layout algebra's public names (the reference's ``enigma.core``)."""
from __future__ import annotations

from .layout import (  # noqa: F401
    Layout, LayoutError, ScaledBasis, Swizzle, SwizzledLayout, blocked_product, coalesce, complement, composition,
    cosize, downcast, filter, left_inverse, logical_divide, logical_product, make_identity_layout,
    make_layout, make_layout_tv, make_ordered_layout, rank, raked_product, recast_layout, right_inverse, size,
    swizzle, tiled_divide, upcast, zipped_divide,
)
from .tuple import (  # noqa: F401  the tuple helpers the reference's enigma.core re-exports
    ceil_div, compact_col_major, compact_order, crd2idx, depth, flatten, gcd, is_int, is_tuple, product, repeat_like,
    select,
)
