"""Hierarchical integer tuples: an ``int`` or a (possibly nested) ``tuple`` of them.

The utilities of CuTe's IntTuple, computed by the C++ core. Lists are not
tuples here (a list argument raises ``TypeError``), except where a list names
several modes (``select``).
"""
from __future__ import annotations

import builtins
import math

from . import _core

__all__ = [
    "is_int", "is_tuple", "rank", "depth", "flatten", "inner_product", "crd2idx", "idx2crd",
    "compact_col_major", "compact_order", "prefix_product", "ceil_div", "gcd", "shape_div", "elem_scale",
    "is_congruent", "is_compatible", "product", "product_each", "repeat_like", "select",
]


def is_int(x) -> bool:
    """True for a Python int (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_tuple(x) -> bool:
    return isinstance(x, builtins.tuple)


def rank(x) -> int:
    """Number of top-level modes: 1 for an int, len(x) for a tuple; a Layout's rank()."""
    if is_int(x) or is_tuple(x):
        return _core.tuple_rank(x)
    return x.rank()


def depth(x) -> int:
    """Nesting depth: 0 for an int, 1 for a flat tuple, ...; a Layout's depth()."""
    if is_int(x) or is_tuple(x):
        return _core.tuple_depth(x)
    return x.depth()


def flatten(x):
    """The leaves in order, as a flat tuple (an int stays an int)."""
    return _core.flatten(x)


def product(x) -> int:
    """Product of the leaves: ``product((4,(2,3))) == 24``."""
    return _core.product(x)


def product_each(x):
    """Each top-level mode's product: ``product_each((4,(2,3))) == (4,6)``."""
    return _core.product_each(x)


def inner_product(a, b) -> int:
    """Sum of leafwise products of two congruent tuples."""
    return _core.inner_product(a, b)


def crd2idx(crd, shape, stride=None):
    """The offset of the coordinate ``crd`` under ``(shape, stride)``; without a
    stride, the colexicographic index. An int coordinate on a tuple shape is split
    colexicographically and the last mode absorbs the rest (CuTe)."""
    return _core.crd2idx(crd, shape, stride)


def idx2crd(idx: int, shape):
    """The colexicographic coordinate of ``idx`` in ``shape`` (each mode of a
    tuple shape taken modulo its size, as CuTe does)."""
    return _core.idx2crd(idx, shape)


def prefix_product(shape, init: int = 1):
    """Exclusive prefix product keeping the nesting: ``(2,(3,4)) -> (1,(2,6))``."""
    return _core.prefix_product(shape, init)


def compact_col_major(shape, current: int = 1):
    """Column-major (mode 0 fastest) compact strides for ``shape``."""
    return _core.prefix_product(shape, current)


def compact_order(shape, order):
    """Compact strides where mode i comes before mode j when ``order[i] < order[j]``:
    ``compact_order((4,64),(1,0)) == (64,1)``."""
    return _core.compact_order(shape, order)


def ceil_div(a, b):
    """Ceiling division; tuple/int divides mode by mode (CuTe)."""
    return _core.ceil_div(a, b)


def gcd(a: int, b: int) -> int:
    return math.gcd(a, b)


def shape_div(a, b):
    """CuTe's shape_div: ``a // b``, or 1 when that is 0 (``shape_div(3,8) == 1``);
    a tuple is divided mode by mode, passing the remaining divisor on."""
    return _core.shape_div(a, b)


def elem_scale(a, b):
    """``a`` times ``product(b)`` at each leaf of ``a``: ``((2,3),(10,100)) -> (20,300)``."""
    return _core.elem_scale(a, b)


def is_congruent(a, b) -> bool:
    """Same nesting structure (leaf values are not compared)."""
    return _core.congruent(a, b)


def is_compatible(a, b) -> bool:
    """CuTe's compatible: equal sizes, and every coordinate of ``a`` is one of ``b``
    (``a`` is an int, or a tuple of the same rank whose modes are compatible)."""
    return _core.compatible(a, b)


def repeat_like(val, ref):
    """``val`` broadcast to the structure of ``ref``: ``repeat_like(0,(1,(2,3))) == (0,(0,0))``."""
    return _core.repeat_like(val, ref)


def select(x, mode):
    """Mode ``mode`` of ``x`` (an int picks one, a list or tuple of ints picks
    several as a tuple): ``select((10,20,30), [2,0]) == (30,10)``. On a Layout,
    the layout of those modes."""
    if not (is_int(x) or is_tuple(x)):
        return x.select(mode)
    if is_int(mode):
        return _pick(x, mode)
    return builtins.tuple(_pick(x, m) for m in mode)


def _pick(x, i: int):
    if is_int(x):
        if i != 0:
            raise IndexError(f"mode {i} is out of range for {x!r} (rank 1)")
        return x
    if not -len(x) <= i < len(x):
        raise IndexError(f"mode {i} is out of range for {x!r} (rank {len(x)})")
    return x[i]
