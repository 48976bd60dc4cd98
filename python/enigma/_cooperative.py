"""The cooperative execution model: threadgroup memory, barriers, simd/quad
collectives, atomics, simdgroup matrices, async copies and the tile helpers
built from them (copy, pipeline, gemm). Typing and checks live in the core;
this module only captures calls (SEMANTICS 4)."""
from __future__ import annotations

import inspect

from . import _core
from ._tensor import Fragment, Tensor
from ._tracing import EnigmaError, IRValue, _active, _current, _plain, _wrap, for_range, if_
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
        signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                       for n in ("value", lane_name)])

        def entry(*args, **kwargs):
            t = _trace_of(op)
            try:
                value, lane = signature.bind(*args, **kwargs).args
            except TypeError as e:
                t.locate().fail(op, f"{e} (parameters: value, {lane_name})")
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


_REDUCE = ["sum", "product", "min", "max", "and", "or", "xor"]
_SIMD_SCANS = ["prefix_exclusive_sum", "prefix_inclusive_sum", "prefix_exclusive_product", "prefix_inclusive_product"]
_QUAD_SCANS = ["prefix_exclusive_sum", "prefix_inclusive_sum"]
_SHUFFLES = ["shuffle", "shuffle_up", "shuffle_down", "shuffle_xor", "broadcast"]

COLLECTIVES = {}
for _scope, _scans in (("simd", _SIMD_SCANS), ("quad", _QUAD_SCANS)):
    for _n in _REDUCE + _scans:
        COLLECTIVES[f"{_scope}_{_n}"] = _make_collective(f"{_scope}_{_n}", False)
    for _n in _SHUFFLES:
        COLLECTIVES[f"{_scope}_{_n}"] = _make_collective(f"{_scope}_{_n}", True)
globals().update(COLLECTIVES)
del _scope, _scans, _n

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


atomic_exchange = _make_rmw("atomic_exchange")
atomic_fetch_add = _make_rmw("atomic_fetch_add")
atomic_fetch_sub = _make_rmw("atomic_fetch_sub")
atomic_fetch_min = _make_rmw("atomic_fetch_min")
atomic_fetch_max = _make_rmw("atomic_fetch_max")
atomic_fetch_and = _make_rmw("atomic_fetch_and")
atomic_fetch_or = _make_rmw("atomic_fetch_or")
atomic_fetch_xor = _make_rmw("atomic_fetch_xor")


def atomic_compare_exchange_weak(buf, index, expected, desired, success_order="relaxed", failure_order="relaxed"):
    """Stores ``desired`` if ``buf[index] == expected``; returns True when it did."""
    return _atomic("atomic_compare_exchange_weak", buf, index, [expected, desired], success_order, failure_order)


ATOMICS = {f.__name__: f for f in (atomic_load, atomic_store, atomic_exchange, atomic_fetch_add, atomic_fetch_sub,
                                    atomic_fetch_min, atomic_fetch_max, atomic_fetch_and, atomic_fetch_or,
                                    atomic_fetch_xor, atomic_compare_exchange_weak)}


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


# ---- tile helpers ----------------------------------------------------------------------

def copy(src, dst, count, src_offset=0, dst_offset=0, mask_fn=None, coalesced_width=1):
    """Every thread copies ``count`` elements ``dst[dst_offset + i] =
    src[src_offset + i]``; with ``mask_fn(i)`` only where it holds (masked-off
    elements are neither read nor written). ``coalesced_width`` (1, 2, 4)
    copies that many elements per iteration when the count and offsets allow."""
    if coalesced_width not in (1, 2, 4):
        raise EnigmaError(f"copy: coalesced_width must be 1, 2, or 4, got {coalesced_width}")
    w = coalesced_width
    wide = (w > 1 and isinstance(count, int) and count % w == 0 and mask_fn is None
            and isinstance(src_offset, int) and isinstance(dst_offset, int)
            and src_offset % w == 0 and dst_offset % w == 0)
    if wide:
        with for_range(0, count // w) as g:
            for k in range(w):
                dst[g * w + dst_offset + k] = src[g * w + src_offset + k]
        return
    n = count if isinstance(count, IRValue) else int(count)
    with for_range(0, n) as i:
        si = i + src_offset if not (isinstance(src_offset, int) and src_offset == 0) else i
        di = i + dst_offset if not (isinstance(dst_offset, int) and dst_offset == 0) else i
        if mask_fn is None:
            dst[di] = src[si]
        else:
            m = mask_fn(i)
            with if_(m):
                dst[di] = src[si]


class Pipeline:
    """``stages`` threadgroup buffers used round-robin. ``stage(k)`` is buffer
    ``(phase + k) % stages``; ``advance()`` moves the phase. The rotation
    happens while tracing (Python side): calling ``advance()`` inside a traced
    loop body rotates once, not per iteration — unroll with
    ``range_constexpr`` (or index buffers by the loop variable) for per-
    iteration rotation."""

    def __init__(self, dtype, size, stages=2):
        if stages < 2:
            raise EnigmaError(f"Pipeline: stages must be >= 2, got {stages}")
        self.dtype = dtype_name(dtype, "pipeline")
        self.size = size
        self.stages = stages
        self._phase = 0
        self._buffers = [threadgroup_alloc(self.dtype, size) for _ in range(stages)]

    def stage(self, k):
        if not 0 <= k < self.stages:
            raise EnigmaError(f"Pipeline.stage: k={k} out of range for stages={self.stages}")
        return self._buffers[(self._phase + k) % self.stages]

    def front(self):
        return self.stage(0)

    def back(self):
        return self.stage(self.stages - 1)

    def advance(self):
        self._phase = (self._phase + 1) % self.stages

    def swap(self):
        if self.stages != 2:
            raise EnigmaError("Pipeline.swap() is only valid for stages=2. Use advance() for >=3.")
        self.advance()


def pipeline(dtype, size, stages=2):
    """A multi-buffered threadgroup pipeline (see Pipeline)."""
    return Pipeline(dtype, size, stages)


def gemm(A_s, B_s, C, *, M, N, K, transpose_A=False, transpose_B=False, accum_dtype="float", use_simdgroup=None,
         lda=None, ldb=None, ldc=None, a_offset=0, b_offset=0, c_offset=0):
    """Accumulating ``C += A @ B`` for an M x N x K block.

    Row-major operands: A[m, k] is ``A_s[a_offset + m * lda + k]``
    (``k * lda + m`` with ``transpose_A``), B[k, n] is
    ``B_s[b_offset + k * ldb + n]`` (``n * ldb + k`` with ``transpose_B``),
    C[m, n] is ``C[c_offset + m * ldc + n]``. Leading dimensions default to
    the packed ones (K, N, N; M, K when transposed).

    Simdgroup path (M, N, K multiples of 8, C a Tensor): the 8x8 tiles of C
    are shared out over the simdgroups; each loads its C tile, accumulates
    with simdgroup_multiply_accumulate and stores it back. A barrier first
    makes A/B written by other threads visible. Scalar path: C is a register
    tensor (per thread) and every thread computes the whole block.
    """
    for n_, v in (("M", M), ("N", N), ("K", K)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise EnigmaError(f"gemm: {n_} must be a Python int, got {v!r}")
    if M <= 0 or N <= 0 or K <= 0:
        raise EnigmaError(f"gemm: M/N/K must be positive, got M={M}, N={N}, K={K}")
    acc = dtype_name(accum_dtype, "gemm")
    tiles_ok = M % 8 == 0 and N % 8 == 0 and K % 8 == 0
    simd_ok = acc in ("float", "half") and tiles_ok
    if use_simdgroup is None:
        use_simdgroup = simd_ok and isinstance(C, Tensor)
    if use_simdgroup and not simd_ok:
        raise EnigmaError(f"gemm: use_simdgroup=True but shape ({M}x{N}x{K}, elem={acc}) is not made of 8x8x8 tiles "
                          "(M, N, K multiples of 8, accum_dtype float or half)")
    lda = lda if lda is not None else (M if transpose_A else K)
    ldb = ldb if ldb is not None else (K if transpose_B else N)
    ldc = ldc if ldc is not None else N
    if use_simdgroup:
        if not isinstance(C, Tensor):
            raise EnigmaError("gemm: the simdgroup path stores into a Tensor C (device or threadgroup memory); "
                              "pass use_simdgroup=False to accumulate into a register_tensor")
        from ._tracing import simdgroup_index_in_threadgroup, simdgroups_per_threadgroup
        barrier()
        sg = simdgroup_index_in_threadgroup()
        nsg = simdgroups_per_threadgroup()
        tile = 0
        for mi in range(M // 8):
            for ni in range(N // 8):
                with if_(sg == tile % nsg):
                    c_org = c_offset + (mi * 8) * ldc + ni * 8
                    c = simdgroup_matrix_load(C, ldc, origin=c_org)
                    for ki in range(K // 8):
                        if transpose_A:
                            a = simdgroup_matrix_load(A_s, lda, origin=a_offset + (ki * 8) * lda + mi * 8,
                                                      transpose=True)
                        else:
                            a = simdgroup_matrix_load(A_s, lda, origin=a_offset + (mi * 8) * lda + ki * 8)
                        if transpose_B:
                            b = simdgroup_matrix_load(B_s, ldb, origin=b_offset + (ni * 8) * ldb + ki * 8,
                                                      transpose=True)
                        else:
                            b = simdgroup_matrix_load(B_s, ldb, origin=b_offset + (ki * 8) * ldb + ni * 8)
                        c = simdgroup_multiply_accumulate(a, b, c)
                    simdgroup_matrix_store(c, C, ldc, origin=c_org)
                tile += 1
        return
    if isinstance(C, Tensor):
        raise EnigmaError("gemm: the scalar path accumulates into a per-thread register_tensor((M, N), ...); "
                          "got a Tensor (use the simdgroup path for memory)")
    if tuple(getattr(C, "shape", ())) != (M, N):
        raise EnigmaError(f"gemm: register tensor shape {getattr(C, 'shape', None)} does not match (M={M}, N={N})")
    from ._tracing import metal_cast
    for m in range(M):
        for n in range(N):
            with for_range(0, K, init=[C[m, n]]) as (k, carry):
                ai = (k * lda + m if transpose_A else m * lda + k) + a_offset
                bi = (n * ldb + k if transpose_B else k * ldb + n) + b_offset
                a, b = A_s[ai], B_s[bi]
                if a.dtype != acc:
                    a = metal_cast(a, acc)
                if b.dtype != acc:
                    b = metal_cast(b, acc)
                carry[0] = carry[0] + a * b
            C[m, n] = carry[0]


__all__ = (["threadgroup_alloc", "barrier", "simd_barrier", "simdgroup_matrix_load", "simdgroup_matrix_store",
            "make_filled_simdgroup_matrix", "simdgroup_multiply_accumulate", "async_copy_1d_d2t",
            "async_copy_1d_t2d", "async_copy_2d_d2t", "async_copy_2d_t2d", "async_copy_wait",
            "async_copy_to_threadgroup", "async_copy_commit", "copy", "pipeline", "Pipeline",
            "gemm"] + list(COLLECTIVES) + list(VOTES) + list(ATOMICS))
