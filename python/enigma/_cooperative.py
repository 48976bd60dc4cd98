"""The cooperative execution model: threadgroup memory, barriers, simd/quad
collectives, atomics, simdgroup matrices and async copies. Typing and checks
live in the core; this module only captures calls (SEMANTICS 4). The tile
helpers built from them (copy, pipeline, gemm) are in ``_tiles``."""
from __future__ import annotations

import inspect

from . import _core
from ._tensor import Fragment, Tensor
from ._tracing import EnigmaError, IRValue, _active, _bind, _current, _plain, _signature, _wrap
from .typing import dtype_name


def _trace_of(op: str):
    return _current(op)


def _memory(x, op: str):
    """Memory id of a Tensor (buffer parameter or threadgroup array) or of a
    name of one."""
    t = _trace_of(op)
    if isinstance(x, Tensor):
        if x._trace is not t or x._param is None:
            raise EnigmaError(f"{op}: '{x.name}' is not a buffer or threadgroup array of the kernel being traced")
        return x._param
    if isinstance(x, str):
        mems = t.cache.get("memories", {})
        if x not in mems:
            raise EnigmaError(f"{op}: no kernel parameter or threadgroup array named {x!r}")
        return mems[x]
    raise EnigmaError(f"{op}: expected a Tensor/buffer-name, got {type(x).__name__}")


def _value(t, vid):
    return None if vid is None else _wrap(t, vid)


# ---- threadgroup memory ---------------------------------------------------------

def threadgroup_alloc(dtype, size):
    """``threadgroup T name[size]``, shared by the threads of one threadgroup
    (declared at kernel scope wherever it is called). Returns a Tensor."""
    t = _active()
    if t is None:
        raise EnigmaError("threadgroup_alloc() only inside @enigma.kernel")
    if isinstance(size, bool) or not isinstance(_plain(size), int):
        raise EnigmaError(f"threadgroup_alloc: size must be a Python int (a compile-time constant), got {size!r}")
    size = int(_plain(size))
    if size <= 0:
        raise EnigmaError(f"threadgroup_alloc: size must be positive, got {size}")
    name = dtype_name(dtype, "threadgroup_alloc")
    k = t.cache.get("tg_count", 0)
    t.cache["tg_count"] = k + 1
    tname = f"_shared{k}"  # numbered per kernel
    mem = t.locate().threadgroup_alloc(name, size, tname)
    tensor = Tensor(tname, -1, name, address_space="threadgroup", shape=(size,))
    tensor._trace = t
    tensor._param = mem
    tensor._size = size
    t.cache.setdefault("memories", {})[tname] = mem
    return tensor


# ---- barriers -------------------------------------------------------------------

def barrier(mem_flags="mem_threadgroup"):
    """``threadgroup_barrier``: every thread of the threadgroup waits here;
    memory is ordered per ``mem_flags`` (mem_none, mem_device,
    mem_threadgroup, mem_device_and_threadgroup, mem_texture)."""
    _trace_of("barrier").locate().barrier(str(mem_flags), False)


def simd_barrier(mem_flags="mem_threadgroup"):
    """``simdgroup_barrier``: the threads of a simdgroup wait for each other."""
    _trace_of("simd_barrier").locate().barrier(str(mem_flags), True)


# ---- simd / quad collectives ----------------------------------------------------

# The reference's parameter names of the shuffles' second operand.
_LANE_PARAM = {"shuffle_up": "delta", "shuffle_down": "delta", "shuffle_xor": "mask"}
# How a thread combines its own fragment elements before a reduction (reference section 10).
_FOLD = {"sum": lambda a, b: a + b, "product": lambda a, b: a * b, "and": lambda a, b: a & b,
         "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b}


def _fold_fragment(kind, frag):
    """One value from a TV fragment's elements, in element order."""
    from ._lang import fmax, fmin, imax, imin
    values = [frag.element(i) for i in range(len(frag))]
    if kind in ("min", "max"):
        is_float = frag.metal_dtype in ("float", "half", "bfloat")
        pick = {("min", True): fmin, ("max", True): fmax, ("min", False): imin, ("max", False): imax}
        combine = pick[(kind, is_float)]
    else:
        combine = _FOLD[kind]
    acc = values[0]
    for v in values[1:]:
        acc = combine(acc, v)
    return acc


def _make_collective(op, with_lane):
    kind = op.split("_", 1)[1]
    if with_lane:
        lane_name = _LANE_PARAM.get(kind, "lane")
        signature = _signature(("value", lane_name))

        def entry(*args, **kwargs):
            t = _trace_of(op)
            value, lane = _bind(t.locate(), op, signature, args, kwargs, f" (parameters: value, {lane_name})")
            if isinstance(value, Fragment):  # each element
                return value.map(lambda v: entry(v, lane))
            return _wrap(t, t.locate().collective(op, _plain(value), _plain(lane)))
        entry.__signature__ = signature
        entry.__doc__ = (f"``{op}(value, {lane_name})``: a source lane out of range, or inactive in a partial "
                         "simdgroup, yields the thread's own value. On a TV fragment, each element.")
    else:
        def entry(x):
            t = _trace_of(op)
            if isinstance(x, Fragment):
                if kind in _FOLD or kind in ("min", "max"):  # the thread's elements, then the group
                    return entry(_fold_fragment(kind, x))
                return x.map(entry)  # scans: each element
            return _wrap(t, t.locate().collective(op, _plain(x), None))
        entry.__doc__ = (f"``{op}(x)`` over the active lanes (vectors lane-wise). A TV fragment's reduction "
                         "combines the thread's own elements first and gives one value; its scans are per element.")
    entry.__name__ = entry.__qualname__ = op
    return entry


# The op table's reductions, scans and shuffles (these take a lane), the simd ones first.
_CATEGORY = _core.op_categories()
_COLLECTIVE_NAMES = sorted((n for n, c in _CATEGORY.items() if c in ("GroupReduce", "GroupScan", "GroupShuffle")),
                           key=lambda n: n.startswith("quad"))
COLLECTIVES = {n: _make_collective(n, _CATEGORY[n] == "GroupShuffle") for n in _COLLECTIVE_NAMES}
globals().update(COLLECTIVES)

# Metal's vote and mask functions (ops.def's VOTE rows; the core expresses them with the reductions).
VOTE_TABLE = tuple(_core.vote_table())


def _make_vote(name, width, takes_predicate, how, result):
    scope = "simdgroup" if width == 32 else "quad"
    if takes_predicate:
        def fn(predicate):
            t = _trace_of(name)
            return _wrap(t, t.locate().vote(name, _plain(predicate)))
    else:
        def fn():
            t = _trace_of(name)
            return _wrap(t, t.locate().vote(name, True))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"``{name}({'predicate' if takes_predicate else ''})`` -> {result}, over the active threads of "
                  f"the {scope} (as Metal; inactive lanes of a partial {scope} take no part): {how}.")
    return fn


VOTES = {row[0]: _make_vote(*row) for row in VOTE_TABLE}
globals().update(VOTES)


# ---- atomics ----------------------------------------------------------------------

def _atomic(op, buf, index, values, order="relaxed", failure="relaxed"):
    t = _trace_of(op)
    mem = _memory(buf, op)
    r = t.locate().atomic(op, mem, _plain(index), [_plain(v) for v in values], str(order), str(failure))
    return _value(t, r)


def atomic_load(buf, index, order="relaxed"):
    """Atomically reads ``buf[index]``."""
    return _atomic("atomic_load", buf, index, [], order)


def atomic_store(buf, index, value, order="relaxed"):
    """Atomically writes ``buf[index] = value``."""
    _atomic("atomic_store", buf, index, [value], order)


def _make_rmw(op):
    def fn(buf, index, value, order="relaxed"):
        return _atomic(op, buf, index, [value], order)
    fn.__name__ = fn.__qualname__ = op
    fn.__doc__ = f"``{op}(buf, index, value, order='relaxed')``: returns the old value."
    return fn


def atomic_compare_exchange_weak(buf, index, expected, desired, success_order="relaxed", failure_order="relaxed"):
    """Stores ``desired`` if ``buf[index] == expected``; returns True when it did."""
    return _atomic("atomic_compare_exchange_weak", buf, index, [expected, desired], success_order, failure_order)


# The op table's atomics, in its order; the read-modify-writes (exchange, fetch_*) share one wrapper.
_OWN_WRAPPER = {f.__name__: f for f in (atomic_load, atomic_store, atomic_compare_exchange_weak)}
ATOMICS = {n: _OWN_WRAPPER.get(n) or _make_rmw(n) for n, c in _CATEGORY.items() if c == "Atomic"}
globals().update(ATOMICS)


def _method(fn):
    def m(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    m.__name__ = m.__qualname__ = fn.__name__
    m.__doc__ = fn.__doc__
    params = list(inspect.signature(fn).parameters.values())[1:]  # buf becomes self
    m.__signature__ = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
                                        + params)
    return m


for _name, _fn in ATOMICS.items():  # Tensor methods: buf.atomic_fetch_add(i, v)
    setattr(Tensor, _name, _method(_fn))
del _name, _fn


# ---- simdgroup matrices -------------------------------------------------------------

def _matrix_dtype(elem, rows, cols, op):
    if int(rows) != 8 or int(cols) != 8:
        raise EnigmaError(f"{op}: only 8x8 simdgroup matrices exist, got {rows}x{cols}")
    return f"simdgroup_matrix<8,8,{dtype_name(elem, op)}>"


def simdgroup_matrix_load(buf, elements_per_row=8, elem=None, rows=8, cols=8, *, origin=0, transpose=False):
    """Loads an 8x8 tile per simdgroup: element (r, c) is
    ``buf[origin + r * elements_per_row + c]`` (``c * elements_per_row + r``
    with ``transpose``). ``elem`` defaults to the memory's dtype."""
    t = _trace_of("simdgroup_matrix_load")
    mem = _memory(buf, "simdgroup_matrix_load")
    if elem is None:
        elem = buf.metal_dtype if isinstance(buf, Tensor) else "float"
    mt = _matrix_dtype(elem, rows, cols, "simdgroup_matrix_load")
    return _wrap(t, t.locate().simd_matrix_load(mem, _plain(origin), _plain(elements_per_row), mt, bool(transpose)))


def simdgroup_matrix_store(matrix, buf, elements_per_row=8, *, origin=0, transpose=False):
    """Stores a simdgroup's 8x8 tile at ``buf[origin + r * elements_per_row + c]``."""
    t = _trace_of("simdgroup_matrix_store")
    if not isinstance(matrix, IRValue) or not matrix.dtype.startswith("simdgroup_matrix<"):
        raise EnigmaError(f"simdgroup_matrix_store: expected a simdgroup matrix, got {matrix!r}")
    mem = _memory(buf, "simdgroup_matrix_store")
    t.locate().simd_matrix_store(matrix._id, mem, _plain(origin), _plain(elements_per_row), bool(transpose))


def make_filled_simdgroup_matrix(value, elem="float", rows=8, cols=8):
    """An 8x8 matrix with every element ``value`` (converted to ``elem``)."""
    t = _trace_of("make_filled_simdgroup_matrix")
    mt = _matrix_dtype(elem, rows, cols, "make_filled_simdgroup_matrix")
    return _wrap(t, t.locate().simd_matrix_fill(_plain(value), mt))


def simdgroup_multiply_accumulate(a, b, c):
    """``a @ b + c`` on 8x8 simdgroup matrices; the result has ``c``'s dtype."""
    t = _trace_of("simdgroup_multiply_accumulate")
    for m in (a, b, c):
        if not isinstance(m, IRValue):
            raise EnigmaError(f"simdgroup_multiply_accumulate: operands must be simdgroup matrices, got {m!r}")
    return _wrap(t, t.locate().simd_matrix_mma(a._id, b._id, c._id))


# ---- async copies --------------------------------------------------------------------
# No device query at trace time: support is a property of the device the
# kernel later runs on (caps.supports_async_copy), not of the tracing host.

def _async(op, dst, src):
    t = _trace_of(op)
    return t, _memory(dst, op), _memory(src, op)


def async_copy_1d_d2t(dst, dst_offset, src, src_offset, count):
    """Device -> threadgroup copy of ``count`` elements (destination first)."""
    t, d, s = _async("async_copy_1d_d2t", dst, src)
    return _wrap(t, t.locate().async_copy_1d(d, _plain(dst_offset), s, _plain(src_offset), _plain(count)))


def async_copy_1d_t2d(dst, dst_offset, src, src_offset, count):
    """Threadgroup -> device copy of ``count`` elements (destination first)."""
    t, d, s = _async("async_copy_1d_t2d", dst, src)
    return _wrap(t, t.locate().async_copy_1d(d, _plain(dst_offset), s, _plain(src_offset), _plain(count)))


def _copy_2d(op, dst, dst_offset, dst_elements_per_row, src, src_offset, src_elements_per_row, tile_cols, tile_rows):
    t, d, s = _async(op, dst, src)
    return _wrap(t, t.locate().async_copy_2d(d, _plain(dst_offset), _plain(dst_elements_per_row), s,
                                             _plain(src_offset), _plain(src_elements_per_row), _plain(tile_cols),
                                             _plain(tile_rows)))


def async_copy_2d_d2t(dst, dst_offset, dst_elements_per_row, src, src_offset, src_elements_per_row, tile_cols,
                      tile_rows):
    """Device -> threadgroup copy of a ``tile_rows`` x ``tile_cols`` tile."""
    return _copy_2d("async_copy_2d_d2t", dst, dst_offset, dst_elements_per_row, src, src_offset,
                    src_elements_per_row, tile_cols, tile_rows)


def async_copy_2d_t2d(dst, dst_offset, dst_elements_per_row, src, src_offset, src_elements_per_row, tile_cols,
                      tile_rows):
    """Threadgroup -> device copy of a ``tile_rows`` x ``tile_cols`` tile."""
    return _copy_2d("async_copy_2d_t2d", dst, dst_offset, dst_elements_per_row, src, src_offset,
                    src_elements_per_row, tile_cols, tile_rows)


def async_copy_wait(*events):
    """Waits for the given copies (lists/tuples are flattened one level)."""
    t = _trace_of("async_copy_wait")
    flat = []
    for e in events:
        if isinstance(e, (list, tuple)):
            flat.extend(e)
        else:
            flat.append(e)
    ids = []
    for e in flat:
        if not isinstance(e, IRValue):
            raise EnigmaError(f"async_copy_wait: expected events returned by async_copy_*, got {e!r}")
        ids.append(e._id)
    if ids:
        t.locate().async_wait(ids)


def async_copy_to_threadgroup(src, dst, count, src_offset=0, dst_offset=0):
    """Legacy spelling (source first) of ``async_copy_1d_d2t``."""
    return async_copy_1d_d2t(dst, dst_offset, src, src_offset, count)


def async_copy_commit(token=None):
    """Legacy no-op."""
    return None


__all__ = (["threadgroup_alloc", "barrier", "simd_barrier", "simdgroup_matrix_load", "simdgroup_matrix_store",
            "make_filled_simdgroup_matrix", "simdgroup_multiply_accumulate", "async_copy_1d_d2t",
            "async_copy_1d_t2d", "async_copy_2d_d2t", "async_copy_2d_t2d", "async_copy_wait",
            "async_copy_to_threadgroup", "async_copy_commit"] + list(COLLECTIVES) + list(VOTES) + list(ATOMICS))
