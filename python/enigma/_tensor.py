"""Layout-aware tensors, TV fragments and coordinate (identity) tensors.

A Tensor is a buffer seen through a Layout plus a base offset. Offsets are
kept as a static part plus a traced part whose known divisor ("alignment")
is the gcd of the strides that multiplied traced coordinates, so fragment
loads can prove vector alignment instead of assuming it."""
from __future__ import annotations

import math
import operator

from . import layout as _ly
from . import tuple as _tu
from ._tracing import EnigmaError, IRValue, _active, _current, _plain, _wrap
from .typing import dtype_name

_ScaledBasis = _ly.ScaledBasis


def _is_dyn(x) -> bool:
    return isinstance(x, IRValue)


def _static_index(value, what: str = "index") -> int:
    """A compile-time index or offset as an int. A float (``A[1.5]``) or a bool
    is an error at the user's line, never truncated."""
    if isinstance(value, (bool, float)) or not hasattr(value, "__index__"):
        message = f"index must be an integer, got {value!r}"
        if _active() is None:
            raise EnigmaError(f"{what}: {message}")
        _current(what).locate().fail(what, message)
    return operator.index(value)


class _Off:
    """An offset: one component for memory, one per mode for coordinates.
    Each component is static (int) + dyn (traced or None); `align` divides dyn."""

    __slots__ = ("static", "dyn", "align")

    def __init__(self, k=1):
        self.static = [0] * k
        self.dyn = [None] * k
        self.align = [0] * k

    def copy(self):
        o = _Off.__new__(_Off)
        o.static, o.dyn, o.align = list(self.static), list(self.dyn), list(self.align)
        return o

    def add(self, coord, stride):
        if isinstance(stride, _ScaledBasis):
            modes = list(stride.modes)
            if len(modes) != 1:
                raise EnigmaError("coordinate tensors of nested shapes are not supported; use a flat shape")
            k, scale = modes[0], stride.value
        else:
            k, scale = 0, stride
        if scale == 0:
            return
        if _is_dyn(coord):
            term = coord if scale == 1 else coord * scale
            self.dyn[k] = term if self.dyn[k] is None else self.dyn[k] + term
            self.align[k] = math.gcd(self.align[k], abs(scale))
        else:
            self.static[k] += _static_index(coord) * scale

    def add_dynamic(self, value, align=1):
        self.dyn[0] = value if self.dyn[0] is None else self.dyn[0] + value
        self.align[0] = math.gcd(self.align[0], align)

    def value(self, k=0, extra=0):
        s = self.static[k] + extra
        if self.dyn[k] is None:
            return s
        return self.dyn[k] + s if s else self.dyn[k]

    def aligned(self, rel, width) -> bool:
        """Whether static + rel + dyn is provably a multiple of width."""
        if (self.static[0] + rel) % width:
            return False
        return self.dyn[0] is None or (self.align[0] and self.align[0] % width == 0)


def _leaves(shape, stride):
    if _tu.is_int(shape):
        return [(shape, stride)]
    out = []
    for s, d in zip(shape, stride):
        out.extend(_leaves(s, d))
    return out


def _split_into(off, coord, shape, stride):
    """Adds a whole (int or traced) coordinate of one mode, split
    colexicographically over its leaves; the last leaf absorbs the rest."""
    leaves = _leaves(shape, stride)
    rest = coord
    for i, (s, d) in enumerate(leaves):
        if i == len(leaves) - 1:
            off.add(rest, d)
        else:
            off.add(rest % s if s != 1 else 0, d)
            rest = rest // s if s != 1 else rest


def _slice(off, coord, shape, stride, what):
    """Applies coordinate `coord` to one mode; returns the kept (shape, stride) or None."""
    if coord is None:
        return (shape, stride)
    if isinstance(coord, tuple):
        if _tu.is_int(shape):
            raise EnigmaError(f"{what}: a tuple coordinate {coord!r} for a mode of shape {shape} (not nested)")
        if len(coord) != len(shape):
            raise EnigmaError(f"{what}: coordinate {coord!r} has {len(coord)} modes but the shape {shape!r} "
                              f"has {len(shape)}; use None to keep a mode")
        kept = [k for k in (_slice(off, c, s, d, what) for c, s, d in zip(coord, shape, stride)) if k is not None]
        if not kept:
            return None
        if len(kept) == 1:
            return kept[0]
        return tuple(k[0] for k in kept), tuple(k[1] for k in kept)
    coord = _plain(coord)
    if not (_is_dyn(coord) or (isinstance(coord, int) and not isinstance(coord, bool))):
        raise EnigmaError(f"{what}: a coordinate must be an int, a traced integer, None or a tuple, got {coord!r}")
    _split_into(off, coord, shape, stride)
    return None


class Tensor:
    """A buffer seen through a layout: ``Tensor(name, buffer_index, dtype,
    layout=None, base_offset=0, address_space="device", shape=None, data=None)``.

    ``data`` (a numpy or device array) is what the runtime binds when a
    ``@enigma.jit`` kernel runs without explicit inputs. ``enigma.tensor(array)``
    makes one from an array with the array's own (row-major) layout."""

    def __init__(self, name, buffer_index, metal_dtype, layout=None, base_offset=0,
                 address_space="device", shape=None, data=None):
        self.name = name
        self.buffer_index = buffer_index
        self.metal_dtype = dtype_name(metal_dtype, "Tensor") if metal_dtype is not None else None
        if layout is not None and not isinstance(layout, _ly.Layout):
            layout = _ly.Layout(layout)
        self.layout = layout
        self.address_space = address_space
        self._static_size = shape
        self.data = data
        self._trace = None
        self._param = None
        self._root = self
        self._identity = False
        self._coord = None     # a coordinate tensor moved in lockstep (tail predication)
        self._bounds = None    # the coordinate bounds it is checked against
        self._off = _Off()
        base_offset = _plain(base_offset)
        if _is_dyn(base_offset):
            self._off.add_dynamic(base_offset, 1)  # nothing is known about a caller's traced base
        else:
            self._off.static[0] = _static_index(base_offset, "base_offset")
        trace = _active()
        if trace is not None and isinstance(name, str):
            self._bind_by_name(trace)

    def _bind_by_name(self, trace):
        """Re-wrapping a kernel parameter inside a kernel,
        ``Tensor(P.name, P.buffer_index, P.metal_dtype, layout=...)``, binds to
        that parameter (or threadgroup array) by name, as the reference does."""
        mem = trace.cache.get("memories", {}).get(self.name)
        if mem is None:
            return
        original = trace.cache.get("params", {}).get(self.name)
        if original is not None and self.metal_dtype is not None and original.metal_dtype != self.metal_dtype:
            raise EnigmaError(f"Tensor '{self.name}': kernel parameter '{self.name}' holds {original.metal_dtype}, "
                              f"not {self.metal_dtype}; a re-wrapped parameter keeps its element type")
        self._trace, self._param = trace, mem

    # ---- properties ----------------------------------------------------------
    @property
    def base_offset(self):
        return self._off.value(0)

    @property
    def shape(self):
        if self.layout is None:
            if self._static_size is not None:
                return self._static_size
            raise EnigmaError(f"Tensor '{self.name}' has no layout")
        return self.layout.shape

    @property
    def stride(self):
        if self.layout is None:
            raise EnigmaError(f"Tensor '{self.name}' has no layout")
        return self.layout.stride

    @property
    def element_type(self):
        return self.metal_dtype

    def size(self, mode=None) -> int:
        if self.layout is None:
            return _tu.product(self._static_size) if self._static_size is not None else 0
        return self.layout.size(mode)

    def __repr__(self):
        return f"Tensor({self.name}, layout={self.layout}, offset={self.base_offset})"

    def __len__(self):
        if self.layout is not None:
            return self.layout.size()
        raise EnigmaError(f"the length of buffer '{self.name}' is not known while tracing; "
                          "pass it as an enigma.Scalar parameter")

    # ---- derivation -----------------------------------------------------------
    def _derive(self, layout, off):
        t = Tensor.__new__(Tensor)
        t.__dict__.update(self.__dict__)
        t.layout, t._off, t._static_size = layout, off, None
        t.address_space = self.address_space
        return t

    def _with(self, layout, off, coord):
        t = self._derive(layout, off)
        t._coord = coord
        return t

    def view(self, layout, offset=0):
        """The same memory seen through another layout, from ``offset`` elements
        past this base (an int, or a traced value of unknown alignment), e.g.
        ``B.view(Layout((m, n), (1, m)))`` reads ``B[j, i]`` at ``(i, j)``."""
        if self._coord is not None:
            raise EnigmaError("view: a tensor with predicated tails cannot be re-laid out; view it before dividing")
        off = self._off.copy()
        offset = _plain(offset)
        if _is_dyn(offset):
            off.add_dynamic(offset, 1)
        else:
            off.static[0] += _static_index(offset, "view")
        return self._derive(layout if isinstance(layout, _ly.Layout) else _ly.Layout(layout), off)

    # ---- element access and slicing -----------------------------------------
    def _locate(self, key, what):
        """(offset, kept layout or None) of ``self[key]``."""
        off = self._off.copy()
        if self.layout is None:
            if isinstance(key, tuple):
                if len(key) != 1:
                    from . import _errors
                    raise _errors.EnigmaTypeError(
                        "Layout algebra requires a Layout on the Tensor; " + _errors.text(
                            "flat_buffer_2d", name=self.name, index=", ".join("rcdefgh"[k] for k in range(len(key)))))
                key = key[0]
            key = _plain(key)
            if _is_dyn(key):
                off.add_dynamic(key, 1)
            else:
                off.static[0] += _static_index(key, what)
            return off, None
        shape, stride = self.layout.shape, self.layout.stride
        if _tu.is_int(shape) and isinstance(key, tuple) and len(key) == 1:
            key = key[0]
        kept = _slice(off, key, shape, stride, what)
        return off, (None if kept is None else _ly.Layout._of(kept))

    def __getitem__(self, key):
        off, kept = self._locate(key, f"Tensor '{self.name}'")
        coord = self._coord[key] if self._coord is not None else None
        if kept is not None:
            return self._with(kept, off, coord)
        if self._identity:
            return self._coords_at(off)
        return self._element_load(off, coord)

    def __setitem__(self, key, value):
        off, kept = self._locate(key, f"Tensor '{self.name}'")
        coord = self._coord[key] if self._coord is not None else None
        if kept is not None:
            self._with(kept, off, coord).store(value)
            return
        self._element_store(off, value, coord)

    # ---- the traced accesses --------------------------------------------------
    def _check(self, op):
        t = _current(op)
        if self._identity:
            raise EnigmaError(f"{op}: '{self.name}' is a coordinate tensor (make_identity_tensor); it has no memory")
        if self._trace is not t or self._param is None:
            raise EnigmaError(f"{op} '{self.name}': this Tensor is not a parameter of the kernel being traced")
        return t

    def _coords_at(self, off):
        _current("coordinate tensor")
        return tuple(off.value(k) for k in range(len(off.static)))

    def _in_bounds(self, coord):
        """A traced predicate (or True) that the coordinate lies inside the bounds."""
        if coord is None:
            return True
        pred = True
        for c, n in zip(coord, self._bounds):
            if _is_dyn(c):
                p = c < n
            elif 0 <= c < n:
                continue
            else:
                return False
            pred = p if pred is True else pred & p
        return pred

    def _element_load(self, off, coord):
        t = self._check("load")
        b = t.locate()
        pred = self._in_bounds(coord)
        if pred is False:
            return _wrap(t, b.literal(0, self.metal_dtype))
        if pred is True:
            return _wrap(t, b.load(self._param, off.value(0)))
        return _wrap(t, b.load_if(self._param, off.value(0), pred, 0))

    def _element_store(self, off, value, coord):
        t = self._check("store")
        pred = self._in_bounds(coord)
        if pred is False:
            return
        value = _plain(value)
        if not _is_dyn(value):
            value = _wrap(t, t.locate().literal(value, self.metal_dtype))  # stores of literals (bug 26.1.7)
        if pred is True:
            t.locate().store(self._param, off.value(0), value)
            return
        from ._tracing import if_
        with if_(pred):
            t.locate().store(self._param, off.value(0), value)

    # ---- fragments (19.5) ------------------------------------------------------
    def _offsets(self):
        if self.layout is None:
            raise TypeError("Layout algebra requires a Layout on the Tensor")
        return [o for o in self.layout.offsets()]

    def _chunks(self):
        """The view's elements grouped into vector chunks: (first element, width).
        A chunk of 2 or 4 needs consecutive offsets and a proven-aligned start."""
        offs = self._offsets()
        vectorisable = (self.metal_dtype is not None and not self.metal_dtype.startswith("vec")
                        and self.metal_dtype != "bool" and self._coord is None and not self._identity)
        out, i, n = [], 0, len(offs)
        while i < n:
            w = 1
            if vectorisable:
                for cand in (4, 2):
                    if i + cand <= n and all(offs[i + j] == offs[i] + j for j in range(cand)) \
                            and self._off.aligned(offs[i], cand):
                        w = cand
                        break
            out.append((i, w))
            i += w
        return offs, out

    def load(self):
        """All elements of this view as a Fragment (colexicographic order),
        with vector loads where contiguity and alignment are proven."""
        if self._identity:
            _current("coordinate tensor")
            return self._elements()
        t = self._check("load")
        offs, chunks = self._chunks()
        coords = self._coord._elements() if self._coord is not None else None
        values = []
        for i, w in chunks:
            if w == 1:
                values.append((self._element_load(self._elem_off(offs[i]), coords[i] if coords else None), 1))
            else:
                values.append((_wrap(t, t.locate().load_vec(self._param, self._off.value(0, offs[i]), w)), w))
        return Fragment(values, self.metal_dtype)

    def store(self, value):
        """Writes every element of this view: a Fragment element by element, or a
        scalar broadcast to all."""
        t = self._check("store")
        offs, chunks = self._chunks()
        coords = self._coord._elements() if self._coord is not None else None
        if isinstance(value, Fragment):
            if len(value) != len(offs):
                raise EnigmaError(f"store to '{self.name}': the fragment has {len(value)} elements, the view "
                                  f"{len(offs)}")
        for i, w in chunks:
            if w == 1:
                v = value.element(i) if isinstance(value, Fragment) else value
                self._element_store(self._elem_off(offs[i]), v, coords[i] if coords else None)
            else:
                if isinstance(value, Fragment):
                    v = value.vector(i, w, self.metal_dtype)
                else:
                    v = _wrap(t, t.locate().make_vec([_plain(value)] * w, self.metal_dtype))
                t.locate().store_vec(self._param, self._off.value(0, offs[i]), v)

    def _elem_off(self, rel):
        o = self._off.copy()
        o.static[0] += rel
        return o

    def _elements(self):
        """Coordinates of every element (a coordinate tensor's view)."""
        res = []
        for c in (self.layout(i) for i in range(self.layout.size())):
            o = self._off.copy()
            cs = c if isinstance(c, tuple) else (c,)
            for k, v in enumerate(cs):
                o.static[k] += v
            res.append(tuple(o.value(k) for k in range(len(o.static))))
        return res


class Fragment:
    """The registers of a TV fragment: elements in the view's order, held as
    scalars or vector chunks. Arithmetic is element-wise (scalars broadcast)."""

    def __init__(self, chunks, dtype):
        self._chunks = list(chunks)  # [(value, width)]
        self.metal_dtype = dtype
        self._starts = []
        n = 0
        for _, w in self._chunks:
            self._starts.append(n)
            n += w
        self._n = n

    def __len__(self):
        return self._n

    @property
    def dtype(self):
        if len(self._chunks) == 1 and self._chunks[0][1] > 1:
            return f"vec<{self._chunks[0][1]},{self.metal_dtype}>"
        return self.metal_dtype

    def __repr__(self):
        return f"Fragment({self._n} x {self.metal_dtype}, chunks={[w for _, w in self._chunks]})"

    def element(self, i):
        if not 0 <= i < self._n:
            raise IndexError(f"fragment element {i} out of range ({self._n})")
        for (v, w), s in zip(self._chunks, self._starts):
            if s <= i < s + w:
                return v if w == 1 else v[i - s]
        raise IndexError(i)

    __getitem__ = element

    def __iter__(self):
        return iter([self.element(i) for i in range(self._n)])

    def vector(self, i, w, dtype):
        for (v, cw), s in zip(self._chunks, self._starts):
            if s == i and cw == w:
                return v
        b = _current("fragment").locate()
        return _wrap(_active(), b.make_vec([_plain(self.element(i + j)) for j in range(w)], dtype))

    def _same_chunks(self, other):
        return [w for _, w in self._chunks] == [w for _, w in other._chunks]

    def _map2(self, other, fn, swap=False):
        if isinstance(other, Fragment):
            if len(other) != self._n:
                raise EnigmaError(f"fragments of {self._n} and {len(other)} elements cannot be combined")
            if self._same_chunks(other):
                pairs = zip(self._chunks, other._chunks)
                return Fragment([(fn(b[0], a[0]) if swap else fn(a[0], b[0]), a[1]) for a, b in pairs],
                                self.metal_dtype)
            xs, ys = list(self), list(other)
            return Fragment([(fn(y, x) if swap else fn(x, y), 1) for x, y in zip(xs, ys)], self.metal_dtype)
        other = _plain(other)
        return Fragment([(fn(other, v) if swap else fn(v, other), w) for v, w in self._chunks], self.metal_dtype)

    def __add__(self, o): return self._map2(o, lambda a, b: a + b)
    def __radd__(self, o): return self._map2(o, lambda a, b: a + b, True)
    def __sub__(self, o): return self._map2(o, lambda a, b: a - b)
    def __rsub__(self, o): return self._map2(o, lambda a, b: a - b, True)
    def __mul__(self, o): return self._map2(o, lambda a, b: a * b)
    def __rmul__(self, o): return self._map2(o, lambda a, b: a * b, True)
    def __truediv__(self, o): return self._map2(o, lambda a, b: a / b)
    def __rtruediv__(self, o): return self._map2(o, lambda a, b: a / b, True)
    def __floordiv__(self, o): return self._map2(o, lambda a, b: a // b)
    def __rfloordiv__(self, o): return self._map2(o, lambda a, b: a // b, True)
    def __mod__(self, o): return self._map2(o, lambda a, b: a % b)
    def __rmod__(self, o): return self._map2(o, lambda a, b: a % b, True)

    def __neg__(self):
        return Fragment([(-v, w) for v, w in self._chunks], self.metal_dtype)

    def map(self, fn):
        """``fn`` applied to each chunk (a scalar or a vector value), e.g. ``frag.map(enigma.exp)``."""
        return Fragment([(fn(v), w) for v, w in self._chunks], self.metal_dtype)


# ---- tensor algebra ------------------------------------------------------------

def _flat_modes(shape):
    return [shape] if _tu.is_int(shape) else list(shape)


def tensor_zipped_divide(tensor, tiler):
    """``zipped_divide`` of the tensor's layout: ``((tile modes), (rest modes))``.
    A tiler that does not divide the tensor rounds the rest modes up (CuTe);
    the tensor then checks every access against its original shape, so tail
    tiles are predicated instead of truncated or read out of bounds."""
    if tensor.layout is None:
        raise TypeError("Layout algebra requires a Layout on the Tensor")
    layout = _ly.zipped_divide(tensor.layout, tiler)
    coord = None
    if tensor._coord is not None:
        coord = tensor_zipped_divide(tensor._coord, tiler)
    elif not tensor._identity:
        modes = _flat_modes(tensor.layout.shape)
        tiles = _flat_modes(tiler.shape) if isinstance(tiler, _ly.Layout) else _flat_modes(tiler)
        divisible = all(_tu.product(m) % _tu.product(t) == 0 for m, t in zip(modes, tiles))
        if not divisible:
            if not all(_tu.is_int(m) for m in modes):
                raise EnigmaError("tensor_zipped_divide: a tiler that does not divide a tensor with nested modes "
                                  "is not supported (tail predication needs flat modes)")
            ident = make_identity_tensor(tensor.layout.shape)
            coord = tensor_zipped_divide(ident, tiler)
    t = tensor._derive(layout, tensor._off.copy())
    t._coord = coord
    if coord is not None and t._bounds is None:
        t._bounds = tuple(_flat_modes(tensor.layout.shape))
    return t


def tensor_composition(tensor, tv_layout, tiler=None):
    """The tile ``tensor`` seen through a ``(thread, value)`` layout whose values
    are column-major indices into the tile: ``composition(tensor.layout, tv)``."""
    if tensor.layout is None:
        raise TypeError("Layout algebra requires a Layout on the Tensor")
    if tiler is not None and _tu.product(tiler) != tensor.layout.size():
        raise EnigmaError(f"tensor_composition: the tile {tensor.layout} has {tensor.layout.size()} elements but "
                          f"the tiler {tiler!r} has {_tu.product(tiler)}")
    layout = _ly.composition(tensor.layout, tv_layout)
    coord = tensor_composition(tensor._coord, tv_layout, tiler) if tensor._coord is not None else None
    t = tensor._derive(layout, tensor._off.copy())
    t._coord = coord
    return t


def make_identity_tensor(shape):
    """A coordinate tensor: element ``c`` is the coordinate ``c`` itself (a tuple
    of ints or traced values). Divide/compose/slice it like the data to learn
    which coordinates a thread touches, e.g. for ``if_(c[0] < M)`` predicates."""
    t = Tensor("__identity__", -1, "uint", None)
    t.layout = _ly.make_identity_layout(shape)
    t._identity = True
    k = len(shape) if isinstance(shape, tuple) else 1
    t._off = _Off(k)
    return t


def elem_less(coord, shape):
    """``all(coord[i] < shape[i])`` as a traced bool (or a Python bool when static)."""
    pred = True
    for c, n in zip(coord if isinstance(coord, tuple) else (coord,), shape if isinstance(shape, tuple) else (shape,)):
        c = _plain(c)
        if _is_dyn(c):
            p = c < n
            pred = p if pred is True else pred & p
        elif not c < n:
            return False
    return pred


def tensor(array, layout=None, *, name=None, index=None, dtype=None):
    """A Tensor over ``array`` (numpy or a device array) for ``@enigma.jit``:
    the layout defaults to the array's own strides (row-major for C order).
    ``index`` is the buffer binding slot; left out, slots follow the order of
    the tensors given to ``enigma.compile``."""
    import numpy as np
    if dtype is None:
        dt = getattr(array, "dtype", None)
        if dt is None:
            raise EnigmaError("enigma.tensor: cannot tell the dtype of the array; pass dtype=")
        dtype = str(np.dtype(dt)) if not str(dt).startswith("bfloat16") else "bfloat"
    if layout is None:
        shape = tuple(int(s) for s in array.shape)
        item = np.dtype(array.dtype).itemsize if hasattr(array, "dtype") else 1
        strides = getattr(array, "strides", None)
        if strides is None:
            layout = _ly.Layout(shape if len(shape) != 1 else shape[0])
        else:
            st = tuple(int(s) // item for s in strides)
            layout = _ly.Layout(shape[0], st[0]) if len(shape) == 1 else _ly.Layout(shape, st)
    t = Tensor(name or (f"t{index}" if index is not None else None), -1 if index is None else index, dtype,
               layout=layout, data=array)
    t._auto_index = index is None
    return t
