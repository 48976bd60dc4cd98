"""Tracing: kernel bodies run once as Python while a core Builder records
ops. This module only captures what the user wrote (values, ops, regions,
source lines); typing and checking happen in the core."""
from __future__ import annotations

import inspect
import operator as _operator
import os
import sys
import threading

from . import _core, _errors
from .typing import dtype_name

EnigmaError = _core.EnigmaError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_state = threading.local()


class _Trace:
    """One kernel being traced."""

    def __init__(self, name: str):
        self.name = name
        self.builder = _core.Builder(name)
        self.cache: dict = {}

    def locate(self):
        """Point the builder at the user's current source line: the innermost
        frame outside this package."""
        f = sys._getframe(2)
        while f is not None and f.f_code.co_filename.startswith(_PACKAGE_DIR):
            f = f.f_back
        if f is not None:
            self.builder.set_location(f.f_code.co_filename, f.f_lineno)
        return self.builder


def _current(op: str) -> _Trace:
    t = getattr(_state, "trace", None)
    if t is None:
        raise EnigmaError(f"enigma.{op} can only be used inside @enigma.kernel / @enigma.jit")
    return t


def _builder(op: str):
    return _current(op).locate()


def _active():
    return getattr(_state, "trace", None)


class _TraceScope:
    def __init__(self, trace: _Trace):
        self.trace = trace
        self.saved = None

    def __enter__(self):
        self.saved = getattr(_state, "trace", None)
        _state.trace = self.trace
        return self.trace

    def __exit__(self, *exc):
        _state.trace = self.saved
        return False


def _plain(x):
    """numpy scalars become Python numbers; everything else is unchanged."""
    if isinstance(x, IRValue) or isinstance(x, (bool, int, float)):
        return x
    if isinstance(x, Query):
        return x()
    item = getattr(x, "item", None)
    if item is not None and getattr(x, "shape", None) == ():
        return item()
    return x


def _wrap(trace: _Trace, vid: int) -> "IRValue":
    return IRValue(vid, trace)


def _signature(names) -> inspect.Signature:
    """Positional-or-keyword parameters: an op's wrapper takes the reference's
    parameter names, so keyword calls written for it work."""
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])


def _bind(b, op: str, signature: inspect.Signature, args, kwargs, hint: str = "") -> tuple:
    """The arguments in the signature's order; a call that does not fit it is
    an error of ``op`` at the user's line (``hint`` follows the reason)."""
    try:
        return signature.bind(*args, **kwargs).args
    except TypeError as e:
        b.fail(op, f"{e}{hint}")


class IRValue:
    """A traced value. Arithmetic, bitwise and comparison operators trace ops
    with the typing of SEMANTICS section 3."""

    __slots__ = ("_id", "_trace")
    __hash__ = None  # traced == is a comparison, not identity

    def __init__(self, vid: int, trace: _Trace):
        self._id = vid
        self._trace = trace

    @property
    def dtype(self) -> str:
        return self._trace.builder.dtype_of(self._id)

    @property
    def name(self) -> str:
        return f"%{self._id}"

    def __repr__(self):
        return f"IRValue(%{self._id}: {self.dtype})"

    def __bool__(self):
        raise _errors.located(_errors.text("traced_truth"))

    def __index__(self):
        hint = _errors.python_math_hint()
        if "cannot compute on a traced value" in str(hint):
            raise hint
        raise _errors.located(_errors.text("traced_index"))

    def __float__(self):
        raise _errors.python_math_hint()

    __int__ = __float__
    __complex__ = __float__

    # numpy on a traced value: operators with numpy scalars (np.float32(2) * x) trace as the
    # Python operators; numpy functions (np.exp(x), np.sum(x)) get a hint, not numpy's error.
    def __array_ufunc__(self, ufunc, method, *args, **kwargs):
        op = _UFUNC_OPERATORS.get(ufunc.__name__)
        if op is not None and method == "__call__" and not kwargs:
            return op(*[_plain(a) for a in args])
        raise _errors.python_math_hint(ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        raise _errors.python_math_hint(func.__name__)

    def __array__(self, *args, **kwargs):
        raise _errors.python_math_hint()

    # -- arithmetic ---------------------------------------------------------
    def _bin(self, op, a, b):
        return _wrap(self._trace, self._trace.locate().binary(op, _plain(a), _plain(b)))

    def __add__(self, o): return self._bin("add", self, o)
    def __radd__(self, o): return self._bin("add", o, self)
    def __sub__(self, o): return self._bin("sub", self, o)
    def __rsub__(self, o): return self._bin("sub", o, self)
    def __mul__(self, o): return self._bin("mul", self, o)
    def __rmul__(self, o): return self._bin("mul", o, self)
    def __truediv__(self, o): return self._bin("div", self, o)
    def __rtruediv__(self, o): return self._bin("div", o, self)
    def __floordiv__(self, o): return self._bin("floordiv", self, o)
    def __rfloordiv__(self, o): return self._bin("floordiv", o, self)
    def __mod__(self, o): return self._bin("rem", self, o)
    def __rmod__(self, o): return self._bin("rem", o, self)
    def __and__(self, o): return self._bin("and", self, o)
    def __rand__(self, o): return self._bin("and", o, self)
    def __or__(self, o): return self._bin("or", self, o)
    def __ror__(self, o): return self._bin("or", o, self)
    def __xor__(self, o): return self._bin("xor", self, o)
    def __rxor__(self, o): return self._bin("xor", o, self)
    def __lshift__(self, o): return self._bin("shl", self, o)
    def __rlshift__(self, o): return self._bin("shl", o, self)
    def __rshift__(self, o): return self._bin("shr", self, o)
    def __rrshift__(self, o): return self._bin("shr", o, self)

    def __neg__(self):
        return _wrap(self._trace, self._trace.locate().unary("neg", self))

    def __invert__(self):
        return _wrap(self._trace, self._trace.locate().unary("not", self))

    # -- comparisons (trace cmp ops; signed predicates as SEMANTICS 3) --------
    def _cmp(self, pred, o):
        return _wrap(self._trace, self._trace.locate().compare(pred, self, _plain(o)))

    def __lt__(self, o): return self._cmp("lt", o)
    def __le__(self, o): return self._cmp("le", o)
    def __gt__(self, o): return self._cmp("gt", o)
    def __ge__(self, o): return self._cmp("ge", o)
    def __eq__(self, o): return self._cmp("eq", o)
    def __ne__(self, o): return self._cmp("ne", o)

    # -- vector lanes and matrix columns (compile-time positions) ---------------
    def _part(self, k):
        b = self._trace.locate()
        if isinstance(k, bool) or not isinstance(k, int):
            b.fail("index", f"a vector lane or matrix column must be a Python int, got {type(k).__name__}")
        if self.dtype.startswith("vec<"):
            return _wrap(self._trace, b.vec_extract(self, k))
        if not self.dtype.startswith("simdgroup") and "x" in self.dtype:
            return _wrap(self._trace, b.matrix_column(self, k))
        b.fail("index", f"only vectors (lanes) and matrices (columns) can be indexed, got {self.dtype}")

    def __getitem__(self, k): return self._part(k)

    def __iter__(self):
        t = self.dtype
        if t.startswith("vec<"):
            return iter([self._vec_lane(k) for k in range(int(t[4]))])
        raise EnigmaError(f"a traced {t} value is not iterable (only vectors are: x, y = v)")

    @property
    def x(self): return self._vec_lane(0)

    @property
    def y(self): return self._vec_lane(1)

    @property
    def z(self): return self._vec_lane(2)

    @property
    def w(self): return self._vec_lane(3)

    def _vec_lane(self, k):
        return _wrap(self._trace, self._trace.locate().vec_extract(self, k))


_core._set_value_type(IRValue)

_UFUNC_OPERATORS = {
    "add": _operator.add, "subtract": _operator.sub, "multiply": _operator.mul, "true_divide": _operator.truediv,
    "divide": _operator.truediv, "floor_divide": _operator.floordiv, "remainder": _operator.mod,
    "bitwise_and": _operator.and_, "bitwise_or": _operator.or_, "bitwise_xor": _operator.xor,
    "left_shift": _operator.lshift, "right_shift": _operator.rshift, "less": _operator.lt,
    "less_equal": _operator.le, "greater": _operator.gt, "greater_equal": _operator.ge, "equal": _operator.eq,
    "not_equal": _operator.ne, "negative": _operator.neg, "invert": _operator.invert,
}


def to_value(x, op: str = "value"):
    """A traced value from an IRValue or a Python literal (default typing)."""
    x = _plain(x)
    if isinstance(x, IRValue):
        return x
    t = _current(op)
    return _wrap(t, t.locate().literal(x))


# ---- thread / grid queries ----------------------------------------------------

_DIMS = {"x": 0, "y": 1, "z": 2}


def _query(op: str, dim=None):
    b = _builder(op)
    if dim is None:
        return _wrap(_active(), b.query(op, 0))
    if dim not in _DIMS:
        raise EnigmaError(f"{op}: dim must be 'x'/'y'/'z', got {dim!r}")
    return _wrap(_active(), b.query(op, _DIMS[dim]))


def thread_position_in_grid_xyz(dim="x"):
    return _query("thread_position_in_grid", dim)


# One row per query: (name, axes, Metal attribute, CUDA equivalent). docs/language.md's
# query table is generated from it (scripts/gen-op-docs.py).
QUERY_TABLE = (
    ("thread_position_in_grid", "x, y, z", "[[thread_position_in_grid]]", "blockIdx * blockDim + threadIdx"),
    ("thread_position_in_threadgroup", "x, y, z", "[[thread_position_in_threadgroup]]", "threadIdx"),
    ("threadgroup_position_in_grid", "x, y, z", "[[threadgroup_position_in_grid]]", "blockIdx"),
    ("threads_per_threadgroup", "x, y, z", "[[threads_per_threadgroup]]", "blockDim"),
    ("threads_per_grid", "x, y, z", "[[threads_per_grid]]", "the launch's grid (in threads)"),
    ("threadgroups_per_grid", "x, y, z", "[[threadgroups_per_grid]]", "gridDim"),
    ("grid_size", "x, y, z", "[[threads_per_grid]] (an alias)", "the launch's grid (in threads)"),
    ("thread_index_in_threadgroup", "-", "[[thread_index_in_threadgroup]]",
     "threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)"),
    ("thread_index_in_simdgroup", "-", "[[thread_index_in_simdgroup]]", "the lane: flat threadIdx % 32"),
    ("simdgroup_index_in_threadgroup", "-", "[[simdgroup_index_in_threadgroup]]", "the warp: flat threadIdx / 32"),
    ("threads_per_simdgroup", "-", "[[threads_per_simdgroup]]", "warpSize (32)"),
    ("simdgroups_per_threadgroup", "-", "[[simdgroups_per_threadgroup]]", "ceil(blockDim.x*y*z / 32)"),
)


class Query:
    """A thread/grid query. Called, it gives the traced value: ``q()`` or
    ``q("y")`` for the queries with axes (x when no axis is given). Used bare
    in a kernel (``enigma.thread_index_in_simdgroup == 0``, ``A[q]``) it is the
    same value as ``q()``; ``q.x``/``q.y``/``q.z`` pick an axis."""

    __slots__ = ("name", "has_axes", "__name__", "__qualname__", "__signature__")

    def __init__(self, name: str, has_axes: bool):
        import inspect
        self.name = self.__name__ = self.__qualname__ = name
        self.has_axes = has_axes
        # What help() and inspect show: the reference's signatures, q(dim="x") or q().
        self.__signature__ = inspect.Signature(
            [inspect.Parameter("dim", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="x")] if has_axes else [])

    def __call__(self, dim=None):
        if dim is not None and not self.has_axes:
            b = _builder(self.name)
            b.fail(self.name, f"has no axes (it is one number per thread); write enigma.{self.name}() "
                              f"without an argument, got {dim!r}")
        return _query(self.name, ("x" if dim is None else dim) if self.has_axes else None)

    def __repr__(self):
        return f"enigma.{self.name}"

    __hash__ = object.__hash__

    @property
    def x(self): return self("x") if self.has_axes else self._no_axes("x")

    @property
    def y(self): return self("y") if self.has_axes else self._no_axes("y")

    @property
    def z(self): return self("z") if self.has_axes else self._no_axes("z")

    def _no_axes(self, d):
        return self(d)

    def __bool__(self): return bool(self())
    def __index__(self): return self().__index__()


def _delegate(name):
    def method(self, *args):
        return getattr(self(), name)(*args)
    method.__name__ = name
    return method


for _m in ("add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv", "mod",
           "rmod", "and", "rand", "or", "ror", "xor", "rxor", "lshift", "rlshift", "rshift", "rrshift", "neg",
           "invert", "lt", "le", "gt", "ge", "eq", "ne"):
    setattr(Query, f"__{_m}__", _delegate(f"__{_m}__"))
del _m

_QUERIES = {name: Query(name, axes != "-") for name, axes, _, _ in QUERY_TABLE}
thread_position_in_threadgroup = _QUERIES["thread_position_in_threadgroup"]
threadgroup_position_in_grid = _QUERIES["threadgroup_position_in_grid"]
threads_per_threadgroup = _QUERIES["threads_per_threadgroup"]
threads_per_grid = _QUERIES["threads_per_grid"]
threadgroups_per_grid = _QUERIES["threadgroups_per_grid"]
grid_size = _QUERIES["grid_size"]
thread_index_in_threadgroup = _QUERIES["thread_index_in_threadgroup"]
thread_index_in_simdgroup = _QUERIES["thread_index_in_simdgroup"]
simdgroup_index_in_threadgroup = _QUERIES["simdgroup_index_in_threadgroup"]
threads_per_simdgroup = _QUERIES["threads_per_simdgroup"]
simdgroups_per_threadgroup = _QUERIES["simdgroups_per_threadgroup"]


class _GridPosition(IRValue):
    """``enigma.thread_position_in_grid``: the x position (the reference's bare
    form), also callable with an axis: ``thread_position_in_grid("y")``."""

    __slots__ = ()

    def __call__(self, dim="x"):
        return _query("thread_position_in_grid", dim)


def _cached_thread_position():
    t = getattr(_state, "trace", None)
    if t is None:
        raise RuntimeError("enigma.thread_position_in_grid can only be used inside @enigma.kernel")
    # Queries are pure: the core's CSE merges repeats, so no region-crossing cache is needed.
    return _GridPosition(t.locate().query("thread_position_in_grid", 0), t)


class arch:
    """CUDA-style names: (x, 0, 0) tuples of thread/block index and block size."""

    @staticmethod
    def _one(op, what):
        t = getattr(_state, "trace", None)
        if t is None:
            raise EnigmaError(f"enigma.arch.{what}() can only be used inside @enigma.kernel / @enigma.jit")
        return (_wrap(t, t.locate().query(op, 0)), 0, 0)

    @staticmethod
    def thread_idx():
        return arch._one("thread_position_in_threadgroup", "thread_idx")

    @staticmethod
    def block_idx():
        return arch._one("threadgroup_position_in_grid", "block_idx")

    @staticmethod
    def block_dim():
        return arch._one("threads_per_threadgroup", "block_dim")


# ---- casts, comparisons, select ------------------------------------------------

def _dtype_arg(b, dtype, op: str) -> str:
    """A dtype argument of an op being traced; a bad one fails like any other
    typing error (kernel name and the user's source line)."""
    try:
        return dtype_name(dtype, op)
    except EnigmaError as e:
        msg = str(e)
        b.fail(op, msg[len(op) + 2:] if msg.startswith(op + ": ") else msg)


def metal_cast(x, dtype):
    """Value conversion (C semantics; float -> int saturates, NaN -> 0)."""
    b = _builder("metal_cast")
    return _wrap(_active(), b.convert(_plain(x), _dtype_arg(b, dtype, "metal_cast")))


def as_type(x, dtype):
    """Bit reinterpretation between types of the same size."""
    b = _builder("as_type")
    return _wrap(_active(), b.bitcast(_plain(x), _dtype_arg(b, dtype, "as_type")))


def _make_cmp(pred):
    def cmp(a, b):
        bld = _builder(f"cmp_{pred}")
        return _wrap(_active(), bld.compare(pred, _plain(a), _plain(b)))
    cmp.__name__ = f"cmp_{pred}"
    cmp.__qualname__ = cmp.__name__
    signed = "unsigned" if pred.startswith("u") else "signed (integers of the operands' width)"
    cmp.__doc__ = f"Traced comparison '{pred}': {signed}; floats compare ordered except ne."
    return cmp


cmp_eq, cmp_ne, cmp_lt, cmp_le, cmp_gt, cmp_ge = (_make_cmp(p) for p in ("eq", "ne", "lt", "le", "gt", "ge"))
cmp_ult, cmp_ule, cmp_ugt, cmp_uge = (_make_cmp(p) for p in ("ult", "ule", "ugt", "uge"))


def where(false_val, true_val, condition):
    """Metal's select: ``condition ? true_val : false_val`` (false value first)."""
    b = _builder("where")
    return _wrap(_active(), b.select(_plain(condition), _plain(true_val), _plain(false_val)))


# ---- control flow ----------------------------------------------------------------

class Carry:
    """Loop-carried values of a for_range: read and assign ``carry[k]``."""

    def __init__(self, initial):
        self._values = list(initial)
        self._open = True

    def __len__(self):
        return len(self._values)

    def __getitem__(self, k):
        return self._values[k]

    def __setitem__(self, k, v):
        if not self._open:
            raise EnigmaError("Cannot assign to carry[] outside the for_range body")
        self._values[k] = _plain(v)

    def __iter__(self):
        return iter(self._values)

    def __repr__(self):
        return f"Carry({self._values!r})"


class _LoopRegion:
    """What closing a traced loop does (for_range, while_): the body's carried
    values are yielded, and the Carry then holds the loop's results."""

    _end = ""  # the builder method that closes the loop region

    def __init__(self, init):
        self.init = None if init is None else [_plain(v) for v in init]
        self.carry = None
        self.trace = None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        yields = list(self.carry._values) if self.carry is not None else []
        results = getattr(self.trace.locate(), self._end)(yields)
        if self.carry is not None:
            self.carry._values = [_wrap(self.trace, r) for r in results]
            self.carry._open = False
        return False


class for_range(_LoopRegion):
    """``with for_range(lo, hi, step=1, dtype="int", init=None) as i:`` (or ``as (i, carry)``
    when ``init`` is given). Iterates i = lo, lo+step, ... while i < hi (i > hi for a
    negative step)."""

    _end = "end_for"

    def __init__(self, lo, hi, step=1, dtype="int", init=None):
        self.lo, self.hi, self.step = _plain(lo), _plain(hi), _plain(step)
        self.dtype = _dtype_arg(_builder("for_range"), dtype, "for_range")
        super().__init__(init)

    def __enter__(self):
        self.trace = _current("for_range")
        b = self.trace.locate()
        args = b.begin_for(self.lo, self.hi, self.step, self.dtype, list(self.init or []))
        iv = _wrap(self.trace, args[0])
        if self.init is None:
            return iv
        self.carry = Carry([_wrap(self.trace, a) for a in args[1:]])
        return iv, self.carry


class _Branch:
    def __init__(self, owner, which):
        self.owner = owner
        self.which = which

    def __enter__(self):
        self.owner._enter_branch(self.which)
        return None

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.owner._exit_branch(self.which)
        return False


class if_:
    """``with if_(cond):`` (one arm) or ``with if_(cond) as (then_, else_):`` then
    ``with then_: ...`` and ``with else_: ...``. Values made inside a branch stay
    inside it: write results to memory or use ``where``."""

    def __init__(self, condition):
        self.condition = _plain(condition)
        self.trace = None
        self.state = "outer"      # outer | then | then_done | else | else_done
        self.mark = 0

    def __enter__(self):
        self.trace = _current("if_")
        self.trace.locate().begin_if(self.condition)
        return _Branch(self, "then"), _Branch(self, "else")

    def _stray_ops(self):
        return self.trace.builder.region_size() != self.mark

    def _enter_branch(self, which):
        b = self.trace.locate()
        if which == "then":
            if self.state != "outer":
                b.fail("if_", "the then-block must come first and only once")
            if b.region_size() != 0:
                b.fail("if_", "code between `with if_(...) as (then_, else_):` and `with then_:` belongs to "
                              "no branch; move it into a branch or before the if_")
            self.state = "then"
        else:
            if self.state == "outer":
                if b.region_size() != 0:
                    b.fail("if_", "code between `with if_(...)` and `with else_:` belongs to no branch")
            elif self.state != "then_done":
                b.fail("if_", "the else-block must follow the then-block, once")
            elif self._stray_ops():
                b.fail("if_", "code between the then-block and the else-block belongs to no branch")
            b.begin_else()
            self.state = "else"

    def _exit_branch(self, which):
        self.state = "then_done" if which == "then" else "else_done"
        self.mark = self.trace.builder.region_size()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        b = self.trace.locate()
        if self.state in ("then_done", "else_done") and self._stray_ops():
            b.fail("if_", "code after the last branch block but inside `with if_(...)` belongs to no branch; "
                          "dedent it")
        b.end_if()
        return False


class while_(_LoopRegion):
    """``with while_(cond_fn):`` loops while ``cond_fn()`` is true; the condition is
    traced once and re-evaluated at run time. With ``init=[...]``, values are carried:
    ``cond_fn(carry)`` sees them and ``with while_(f, init=[...]) as carry:`` updates them."""

    _end = "end_while"

    def __init__(self, cond_fn, init=None):
        if not callable(cond_fn):
            raise EnigmaError(f"while_: expected a callable returning a bool value, got {cond_fn!r}")
        self.cond_fn = cond_fn
        super().__init__(init)

    def __enter__(self):
        self.trace = _current("while_")
        b = self.trace.locate()
        args = b.begin_while(list(self.init or []))
        if self.init is None:
            cond = self.cond_fn()
        else:
            cond = self.cond_fn(Carry([_wrap(self.trace, a) for a in args]))
        body_args = self.trace.locate().while_body(_plain(cond))
        if self.init is None:
            return self
        self.carry = Carry([_wrap(self.trace, a) for a in body_args])
        return self.carry


class _RangeConstexpr:
    """``enigma.range_constexpr(...)``: a Python range, unrolled at trace time."""

    def __call__(self, *args):
        if not 1 <= len(args) <= 3:
            raise EnigmaError("enigma.range_constexpr() expects 1-3 arguments")
        for a in args:
            if isinstance(a, IRValue):
                raise EnigmaError("enigma.range_constexpr() needs Python ints; use enigma.for_range for traced bounds")
        return range(*args)

    def __repr__(self):
        return "enigma.range_constexpr"


range_constexpr = _RangeConstexpr()
