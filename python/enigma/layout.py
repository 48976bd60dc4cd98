"""CuTe's layout algebra: layouts as functions from coordinates to offsets.

A ``Layout(shape, stride)`` maps a (possibly nested) coordinate ``c`` to
``sum(c_i * stride_i)``; shapes, strides and coordinates are ints or nested
tuples of them. The algebra (coalesce, composition, complement, inverses,
divides, products, recast, TV layouts) follows NVIDIA CuTe and is computed
by the C++ core; this module converts to and from Python tuples. See
docs/layouts.md for pictures and for where we differ from CuTe or from the
reference Enigma.
"""
from __future__ import annotations

from . import _core
from . import tuple as _tu

ScaledBasis = _core.ScaledBasis
LayoutError = _core.LayoutError

__all__ = [
    "Layout", "LayoutError", "ScaledBasis", "Swizzle", "SwizzledLayout", "swizzle", "make_layout",
    "make_ordered_layout", "make_identity_layout", "size", "cosize", "rank", "depth", "coalesce", "filter",
    "complement", "composition", "logical_divide", "zipped_divide", "tiled_divide", "logical_product",
    "blocked_product", "raked_product", "right_inverse", "left_inverse", "upcast", "downcast", "recast_layout",
    "make_layout_tv",
]


def _mode_path(shape, mode):
    """The sub-shape at ``mode`` (an int: a top-level mode, ignored for an int
    shape; a list/tuple: a path into nested modes)."""
    if mode is None:
        return shape
    path = [mode] if _tu.is_int(mode) else list(mode)
    cur = shape
    for i in path:
        if _tu.is_int(cur):
            if _tu.is_int(mode):
                return cur  # an int shape has one mode: itself
            if i != 0:
                raise IndexError(f"mode path {mode!r} is out of range for the shape {shape!r}")
            continue
        if not 0 <= i < len(cur):
            raise IndexError(f"mode path {mode!r} is out of range for the shape {shape!r}")
        cur = cur[i]
    return cur


class Layout:
    """A layout ``shape:stride``; ``stride=None`` gives compact column-major
    strides (mode 0 fastest). Call it with an int or a coordinate tuple."""

    __slots__ = ("shape", "stride")
    __hash__ = None  # mutable, compared structurally
    __iter__ = None  # not a sequence of modes: use layout[i]

    def __init__(self, shape, stride=None):
        self.shape, self.stride = _core.layout_make(shape, stride)

    @classmethod
    def _of(cls, pair):
        obj = cls.__new__(cls)
        obj.shape, obj.stride = pair
        return obj

    def __call__(self, *coord):
        """The offset at ``coord`` (``L(5)``, ``L((1,2))`` or ``L(1, 2)``). For an
        identity layout (basis strides) the result is a coordinate tuple."""
        c = coord[0] if len(coord) == 1 else coord
        return _core.layout_eval(self.shape, self.stride, c)

    def __getitem__(self, mode):
        """Top-level mode ``mode`` as a Layout; a tuple/list is a path into nested modes."""
        path = [mode] if _tu.is_int(mode) else list(mode)
        shape, stride = self.shape, self.stride
        for i in path:
            if _tu.is_int(shape):
                if i != 0:
                    raise IndexError(f"mode {i} is out of range for {self!r} (rank 1)")
                continue
            if not 0 <= i < len(shape):
                raise IndexError(f"mode {i} is out of range for {self!r} (rank {len(shape)})")
            shape, stride = shape[i], stride[i]
        return Layout._of((shape, stride))

    def select(self, modes):
        """The layout of the top-level modes ``modes`` (an int or a list of ints)."""
        if _tu.is_int(modes):
            return self[modes]
        return make_layout(*(self[i] for i in modes))

    def __eq__(self, other):
        if not isinstance(other, Layout):
            return NotImplemented
        return self.shape == other.shape and self.stride == other.stride

    def __repr__(self):
        return _core.layout_str(self.shape, self.stride)

    __str__ = __repr__

    def size(self, mode=None) -> int:
        """Number of coordinates (of one mode, or of the mode at a path)."""
        return _tu.product(_mode_path(self.shape, mode))

    def cosize(self) -> int:
        """``1 + sum((s_i - 1) * |d_i|)``: the extent of the codomain (0 if empty)."""
        return _core.layout_cosize(self.shape, self.stride)

    def rank(self) -> int:
        return _tu.rank(self.shape)

    def depth(self) -> int:
        return _tu.depth(self.shape)

    def offsets(self) -> list:
        """``[L(i) for i in range(size(L))]``, computed in one call."""
        return _core.layout_offsets(self.shape, self.stride)


def _pair(layout):
    if not isinstance(layout, Layout):
        raise TypeError(f"expected a Layout, got {type(layout).__name__}")
    return layout.shape, layout.stride


def _as_layout(x):
    """A Layout, or a shape (int/tuple) made into a column-major Layout."""
    if isinstance(x, Layout):
        return x
    if _tu.is_int(x) or _tu.is_tuple(x):
        return Layout(x)
    raise TypeError(f"expected a Layout or a shape, got {type(x).__name__}")


def _tiler(t):
    """The tiler encoding of the core: a layout as [shape, stride], an int, None or a tuple."""
    if isinstance(t, Layout):
        return [t.shape, t.stride]
    if t is None or _tu.is_int(t):
        return t
    if _tu.is_tuple(t):
        return tuple(_tiler(x) for x in t)
    raise TypeError(f"a tiler must be a Layout, an int, None or a tuple of them, got {type(t).__name__}")


def make_layout(shape, stride=None, *more_layouts):
    """``make_layout(shape, stride=None)``; or ``make_layout(L0, L1, ...)``, the
    layout whose top-level modes are the given layouts."""
    if isinstance(shape, Layout):
        modes = [shape] + ([] if stride is None else [stride]) + list(more_layouts)
        if not all(isinstance(a, Layout) for a in modes):
            raise TypeError("make_layout(L0, L1, ...) takes only Layouts")
        return Layout(tuple(a.shape for a in modes), tuple(a.stride for a in modes))
    if more_layouts:
        raise TypeError(f"make_layout() takes a shape and an optional stride, got {2 + len(more_layouts)} arguments")
    return Layout(shape, stride)


def make_ordered_layout(shape, order):
    """Compact strides in the order ``order`` (``order[i]`` = rank of mode i,
    0 = fastest; an int order for a tuple sub-shape keeps that sub-shape
    column-major): ``make_ordered_layout((4,64),(1,0)) == (4,64):(64,1)``."""
    return Layout._of(_core.make_ordered_layout(shape, order))


def make_identity_layout(shape):
    """CuTe's identity layout: maps each coordinate (or index) of ``shape`` to its
    natural coordinate. Its strides are basis elements (``1@0``, ``1@1``, ...),
    so ``make_identity_layout((4,8))(9) == (1,2)``; an int shape gives ``n:1``."""
    return Layout._of(_core.make_identity_layout(shape))


def size(x, mode=None) -> int:
    """Size of a Layout, SwizzledLayout, Tensor (anything with ``size(mode)``) or shape."""
    if _tu.is_int(x) or _tu.is_tuple(x):
        return _tu.product(_mode_path(x, mode))
    return x.size(mode)


def cosize(x) -> int:
    return x.cosize()


def rank(x) -> int:
    return _tu.rank(x)


depth = _tu.depth  # one function for shapes and layouts (the reference's enigma.core.depth is enigma.tuple's)


def coalesce(layout, profile=None):
    """Merges modes without changing the function on ``[0, size)``; mode order is
    kept. With ``profile`` (a tuple), only within the modes where it has an int."""
    return Layout._of(_core.coalesce(*_pair(layout), profile))


def filter(layout):  # noqa: A001 - CuTe's name
    """Removes stride-0 and size-1 modes, then coalesces."""
    return Layout._of(_core.filter(*_pair(layout)))


def complement(layout, cosize_val=None, *, cosize=None):
    """The layout R that, next to ``layout``, covers ``[0, cosize_val)`` once (rounded up
    to whole copies): ordered, disjoint from ``layout``. ``cosize_val`` defaults to
    ``layout.cosize()``; ``cosize`` is accepted as an alias."""
    if cosize_val is not None:
        if cosize is not None:
            raise TypeError("complement() got both cosize and cosize_val")
        cosize = cosize_val
    return Layout._of(_core.complement(*_pair(layout), cosize))


def composition(a, b):
    """``a o b``: ``composition(a, b)(c) == a(b(c))``. ``b`` may be a Layout, an int
    (``n:1``) or a tuple tiler applied mode by mode (None keeps a mode). A
    Swizzle on the left gives a SwizzledLayout."""
    if isinstance(a, Swizzle) and isinstance(b, Layout):
        return SwizzledLayout(b, a)
    if isinstance(a, SwizzledLayout) and not isinstance(b, (Swizzle, SwizzledLayout)):
        return SwizzledLayout(composition(a.layout, b), a.swizzle)
    if not isinstance(a, Layout) or isinstance(b, (Swizzle, SwizzledLayout)):
        raise TypeError(f"composition not implemented for ({type(a).__name__}, {type(b).__name__})")
    if b is None:
        return a
    return Layout._of(_core.composition(a.shape, a.stride, _tiler(b)))


def _divide(op, layout, tiler):
    if isinstance(layout, SwizzledLayout):
        return SwizzledLayout(_divide(op, layout.layout, tiler), layout.swizzle)
    return Layout._of(op(*_pair(layout), _tiler(tiler)))


def logical_divide(layout, tiler):
    """``composition(layout, (tiler, complement(tiler, size(layout))))``: mode 0 is
    the tile, mode 1 the tiles; a tuple tiler divides mode by mode. A tiler
    that does not divide the layout gets a rounded-up rest mode."""
    return _divide(_core.logical_divide, layout, tiler)


def zipped_divide(layout, tiler):
    """``((tile modes...), (rest modes..., untouched modes...))``."""
    return _divide(_core.zipped_divide, layout, tiler)


def tiled_divide(layout, tiler):
    """``((tile modes...), rest0, rest1, ...)``."""
    return _divide(_core.tiled_divide, layout, tiler)


def logical_product(block, tiler):
    """``(block, complement(block, size(block)*cosize(tiler)) o tiler)``: ``block``
    repeated as ``tiler`` says; a tuple tiler multiplies mode by mode."""
    return Layout._of(_core.logical_product(*_pair(block), _tiler(tiler)))


def blocked_product(a, b):
    """Mode i of the result is ``(a_i, b_i)``: copies of the block ``a`` laid out by the tiler ``b``."""
    return Layout._of(_core.blocked_product(*_pair(a), *_pair(_as_layout(b))))


def raked_product(block, tiler):
    """Mode i of the result is ``(tiler_i, block_i)``: the copies interleaved element by element."""
    return Layout._of(_core.raked_product(*_pair(block), *_pair(_as_layout(tiler))))


def right_inverse(layout):
    """R with ``layout(R(i)) == i`` for ``i < size(R)`` (the largest such)."""
    return Layout._of(_core.right_inverse(*_pair(layout)))


def left_inverse(layout):
    """R with ``R(layout(i)) == i`` for every i when ``layout`` is injective."""
    return Layout._of(_core.left_inverse(*_pair(layout)))


def upcast(layout, n: int):
    """n consecutive elements become one: unit-stride modes shrink by n, other strides divide by n."""
    return Layout._of(_core.upcast(*_pair(layout), n))


def downcast(layout, n: int):
    """One element becomes n: unit-stride modes grow by n, other strides multiply by n."""
    return Layout._of(_core.downcast(*_pair(layout), n))


def recast_layout(new_bits: int, old_bits: int, layout):
    """The layout of the same memory seen as ``new_bits``-wide elements instead of
    ``old_bits``-wide ones (both wider and narrower)."""
    return Layout._of(_core.recast_layout(new_bits, old_bits, *_pair(layout)))


def make_layout_tv(thr_layout, val_layout):
    """CuTe's make_layout_tv: returns ``(tiler, tv)`` where ``tiler`` is the tile
    shape (a tuple) and ``tv`` maps ``(thread, value)`` to the column-major
    index of its element in the tile (``raked_product(thr, val)`` inverted)."""
    tiler, tv = _core.make_layout_tv(*_pair(_as_layout(thr_layout)), *_pair(_as_layout(val_layout)))
    return tiler, Layout._of(tv)


class Swizzle:
    """CuTe's ``Swizzle<B,M,S>``: ``x ^ ((x & yyy) >> S)`` where ``yyy`` selects the
    ``bits`` bits at ``base + max(shift,0)``; a negative shift moves bits up.
    Requires ``bits, base >= 0`` and ``|shift| >= bits``."""

    __slots__ = ("bits", "base", "shift")

    def __init__(self, bits: int, base: int, shift: int):
        _core.swizzle_check(bits, base, shift)
        self.bits, self.base, self.shift = bits, base, shift

    @property
    def yyy_mask(self) -> int:
        return ((1 << self.bits) - 1) << (self.base + max(self.shift, 0))

    def __call__(self, offset):
        if _tu.is_int(offset):
            return _core.swizzle_apply(self.bits, self.base, self.shift, offset)
        # traced values: the same bit arithmetic with the value's operators
        y = offset & self.yyy_mask
        return offset ^ (y >> self.shift if self.shift >= 0 else y << -self.shift)

    def __eq__(self, other):
        if not isinstance(other, Swizzle):
            return NotImplemented
        return (self.bits, self.base, self.shift) == (other.bits, other.base, other.shift)

    def __hash__(self):
        return hash((Swizzle, self.bits, self.base, self.shift))

    def __repr__(self):
        return f"Swizzle(bits={self.bits}, base={self.base}, shift={self.shift})"


class SwizzledLayout:
    """``swizzle o layout``: ``SL(c) == swizzle(layout(c))``."""

    __slots__ = ("layout", "swizzle")
    __hash__ = None
    __iter__ = None

    def __init__(self, layout, swizzle):
        if not isinstance(layout, Layout) or not isinstance(swizzle, Swizzle):
            raise TypeError("SwizzledLayout(layout, swizzle) takes a Layout and a Swizzle")
        self.layout, self.swizzle = layout, swizzle

    def __call__(self, *coord):
        return self.swizzle(self.layout(*coord))

    @property
    def shape(self):
        return self.layout.shape

    @property
    def stride(self):
        return self.layout.stride

    def size(self, mode=None) -> int:
        return self.layout.size(mode)

    def cosize(self) -> int:
        return self.layout.cosize()

    def rank(self) -> int:
        return self.layout.rank()

    def depth(self) -> int:
        return self.layout.depth()

    def offsets(self) -> list:
        s = self.swizzle
        return _core.swizzle_offsets(s.bits, s.base, s.shift, self.layout.shape, self.layout.stride)

    def __eq__(self, other):
        if not isinstance(other, SwizzledLayout):
            return NotImplemented
        return self.layout == other.layout and self.swizzle == other.swizzle

    def __repr__(self):
        return f"SwizzledLayout({self.layout!r}, {self.swizzle!r})"


def swizzle(layout, bits: int, base: int, shift: int) -> SwizzledLayout:
    """``SwizzledLayout(layout, Swizzle(bits, base, shift))``."""
    return SwizzledLayout(layout, Swizzle(bits, base, shift))
