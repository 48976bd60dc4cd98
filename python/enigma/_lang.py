"""The per-thread kernel language: Metal's math library, integer and bit ops,
vectors, geometry, packing, matrices, function constants, predicated memory
access and per-thread arrays.

Every op is declared once in the core's op table (``ops.def``); the wrappers
here only capture the call and its source line. Typing (SEMANTICS 3: float
ops reject integers, literals are weakly typed, vector sizes must agree) and
checking happen in the core, so errors name the op, the dtypes and the
user's file:line.
"""
from __future__ import annotations

import operator

from . import _core
from ._tensor import Tensor
from ._tracing import (
    EnigmaError, IRValue, _active, _bind, _builder, _plain, _signature, _wrap, if_, metal_cast, where,
)
from .typing import dtype_name

# name -> row of the op table (operands, result, tolerance, spellings)
LANGUAGE_TABLE = {row["name"]: row for row in _core.language_table()}

# Parameter names (the reference's, so keyword calls written for it work) where they are not the
# default for the op's operands: x (a b, a b c for two or three operands; v for one vector).
_PARAMS = {
    "step": "edge x", "clamp": "x lo hi", "iclamp": "x lo hi", "mix": "a b t", "smoothstep": "e0 e1 x",
    "reflect": "incident normal", "refract": "incident normal eta", "faceforward": "n incident nref",
}


def _param_names(name: str) -> list[str]:
    row = LANGUAGE_TABLE[name]
    if name in _PARAMS:
        return _PARAMS[name].split()
    if row["arity"] == 1:
        return ["v"] if row["operands"] in ("V", "F4", "F2") else ["x"]
    return ["a", "b", "c"][:row["arity"]]


_DOCS = {
    "abs": "|x| for floats and integers; abs of the most negative integer is itself (two's complement).",
    "round": "Rounds to the nearest integer, halfway cases away from zero.",
    "sign": "1.0 for x > 0, -1.0 for x < 0, x itself for +-0, 0.0 for NaN.",
    "saturate": "clamp(x, 0, 1); NaN gives 0.",
    "fract": "x - floor(x), kept below 1; +-0 and +-inf give +-0.",
    "step": "0.0 where x < edge, else 1.0.",
    "fmin": "The smaller operand; when one is NaN, the other.",
    "fmax": "The larger operand; when one is NaN, the other.",
    "clamp": "fmin(fmax(x, lo), hi).",
    "mix": "a + (b - a) * t.",
    "smoothstep": "Hermite interpolation between 0 and 1 as x goes from e0 to e1.",
    "imin": "Integer minimum.", "imax": "Integer maximum.", "iclamp": "min(max(x, lo), hi) on integers.",
    "abs_diff": "|a - b| without overflow; a result too big for the type keeps its low bits (read it as unsigned).",
    "abs_diff_unary": "abs_diff(x, 0): |x| with the same wrapping rule.",
    "add_sat": "a + b saturated to the type's range.", "sub_sat": "a - b saturated to the type's range.",
    "mul_hi": "The high half of the full product a * b.", "rotate": "Rotates a left by b modulo the bit width.",
    "mad_sat": "a * b + c, exact, saturated to the type's range.", "popcount": "Number of set bits.",
    "clz": "Leading zero bits (the width for 0).", "ctz": "Trailing zero bits (the width for 0).",
    "reverse_bits": "The bits in reverse order.",
    "expm1": "exp(x) - 1, accurate for x near 0.", "log1p": "log(1 + x), accurate for x near 0.",
    "refract": "Refraction of ``incident`` at a surface of normal ``normal`` with index ratio ``eta``; the zero "
               "vector on total reflection.",
}


def _traced(b, fn_name, *parts):
    return _wrap(_active(), getattr(b, fn_name)(*parts))


def _make_math(name: str):
    row = LANGUAGE_TABLE[name]
    arity = row["arity"]
    params = _param_names(name)
    signature = _signature(params)

    def fn(*args, **kwargs):
        b = _builder(name)
        if kwargs:
            args = _bind(b, name, signature, args, kwargs, f" (parameters: {', '.join(params)})")
        if len(args) != arity:
            b.fail(name, f"expects {arity} argument(s) ({', '.join(params)}), got {len(args)}")
        return _traced(b, "math", name, [_plain(a) for a in args])

    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = signature
    fn.__doc__ = (f"{_DOCS.get(name, 'Metal ' + row['c_expr'].split('(')[0] + '.')}\n\n"
                  f"Operands: {row['operands']}; result: {row['result']}; tolerance: {row['tolerance']} "
                  f"(docs/ops.md).")
    return fn


# Every Math op of the table is a function of its operands, except those with a wrapper of their own
# below (compile-time bit ranges, an optional result dtype).
_OWN_WRAPPER = ("extract_bits", "insert_bits", "transpose", "determinant")
_CATEGORY = _core.op_categories()
_ELEMENTWISE = [n for n in LANGUAGE_TABLE if _CATEGORY[n] == "Math" and n not in _OWN_WRAPPER]
for _name in _ELEMENTWISE:
    globals()[_name] = _make_math(_name)
del _name


def _static_int(b, op: str, what: str, v) -> int:
    """A compile-time Python int argument (offsets, lanes, indices)."""
    if isinstance(v, IRValue):
        b.fail(op, f"{what} must be a Python int known while tracing, got a traced value")
    if isinstance(v, bool) or isinstance(v, float):
        b.fail(op, f"{what} must be a Python int, got {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        b.fail(op, f"{what} must be a Python int, got {type(v).__name__}")


def extract_bits(value, offset, bits):
    """Bits [offset, offset + bits) of an integer: zero-extended for unsigned
    types, sign-extended for signed ones. ``offset`` and ``bits`` are Python
    ints with offset + bits <= the bit width."""
    b = _builder("extract_bits")
    off, n = _static_int(b, "extract_bits", "offset", offset), _static_int(b, "extract_bits", "bits", bits)
    return _traced(b, "math", "extract_bits", [_plain(value)], off, n)


def insert_bits(base, insert, offset, bits):
    """``base`` with bits [offset, offset + bits) replaced by the low bits of
    ``insert``. ``offset`` and ``bits`` are Python ints."""
    b = _builder("insert_bits")
    off, n = _static_int(b, "insert_bits", "offset", offset), _static_int(b, "insert_bits", "bits", bits)
    return _traced(b, "math", "insert_bits", [_plain(base), _plain(insert)], off, n)


# ---- vectors -----------------------------------------------------------------------

def make_vec(*components):
    """A vector of 2-4 scalars; typed components promote to one dtype and
    literals take it (``make_vec(x, 0.0)``)."""
    b = _builder("make_vec")
    return _traced(b, "make_vec", [_plain(c) for c in components], None)


def _make_typed_vec(elem: str, n: int):
    name = f"make_{elem}{n}"
    signature = _signature("xyzw"[:n])

    def fn(*components, **by_name):
        b = _builder(name)
        if by_name:
            components = _bind(b, name, signature, components, by_name)
        if len(components) != n:
            b.fail(name, f"expects {n} components, got {len(components)}")
        return _traced(b, "make_vec", [_plain(c) for c in components], elem)

    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = signature
    fn.__doc__ = f"A {elem}{n}: each component converted to {elem} (metal_cast rules)."
    return fn


_VECTOR_MAKERS = []
for _elem in (row[0] for row in _core.dtype_table()):  # every scalar dtype, by its Metal name
    for _n in (2, 3, 4):
        globals()[f"make_{_elem}{_n}"] = _make_typed_vec(_elem, _n)
        _VECTOR_MAKERS.append(f"make_{_elem}{_n}")
del _elem, _n


def vec_extract(v, lane):
    """Lane ``lane`` (a Python int) of a vector; also ``v.x``/``.y``/``.z``/``.w`` and ``v[lane]``."""
    b = _builder("vec_extract")
    return _traced(b, "vec_extract", _plain(v), _static_int(b, "vec_extract", "lane", lane))


# ---- matrices (column-major, as Metal) -----------------------------------------------

def make_matrix(*columns):
    """A floatCxR (or halfCxR) matrix from C column vectors of R lanes:
    ``make_matrix(c0, c1, c2)`` is a float3x3 when each column is a float3."""
    b = _builder("make_matrix")
    return _traced(b, "make_matrix", [_plain(c) for c in columns])


def matrix_column(m, col):
    """Column ``col`` (a Python int) of a matrix, as a vector; also ``m[col]``."""
    b = _builder("matrix_column")
    return _traced(b, "matrix_column", _plain(m), _static_int(b, "matrix_column", "column", col))


def _as_dtype(b, op, value, dtype):
    if dtype is None:
        return value
    try:
        name = dtype_name(dtype, op)
    except EnigmaError as e:
        b.fail(op, str(e).split(": ", 1)[-1])
    return value if value.dtype == name else metal_cast(value, name)


def matmul(a, b, result_dtype=None):
    """matrix * matrix, matrix * vector (a column) or vector (a row) * matrix.
    With ``result_dtype`` the product is converted to it (e.g. "half4x4")."""
    bld = _builder("matmul")
    return _as_dtype(bld, "matmul", _traced(bld, "matmul", _plain(a), _plain(b)), result_dtype)


def transpose(m, result_dtype=None):
    bld = _builder("transpose")
    return _as_dtype(bld, "transpose", _traced(bld, "math", "transpose", [_plain(m)]), result_dtype)


def determinant(m, scalar_dtype=None):
    bld = _builder("determinant")
    return _as_dtype(bld, "determinant", _traced(bld, "math", "determinant", [_plain(m)]), scalar_dtype)


# ---- function constants ----------------------------------------------------------------

def function_constant(dtype, index):
    """A value bound at dispatch: ``execute(..., constants={index: (type_name, value)})``.
    Each set of values is a specialised (cached) compile; MSL declares
    ``constant T name [[function_constant(index)]]``."""
    b = _builder("function_constant")
    try:
        name = dtype_name(dtype, "function_constant")
    except EnigmaError as e:
        b.fail("function_constant", str(e).split(": ", 1)[-1])
    return _traced(b, "function_constant", name, _static_int(b, "function_constant", "index", index))


# ---- predicated memory access ----------------------------------------------------------

def _param_of(buf):
    trace = _active()
    if isinstance(buf, Tensor) and buf._trace is trace and buf._param is not None:
        return buf._param
    return None


def load_if(buf, index, mask, default=0):
    """``buf[index]`` where ``mask`` is true, else ``default`` (converted to the
    buffer's dtype). Nothing is read where the mask is false, so a masked-off
    index may be out of bounds."""
    b = _builder("load_if")
    param = _param_of(buf)
    if param is not None:
        return _traced(b, "load_if", param, _plain(index), _plain(mask), _plain(default))
    # Other indexable memory: read a safe element (0) where masked off.
    safe = where(0, index, mask)
    dtype = getattr(buf, "metal_dtype", None)
    fallback = metal_cast(default, dtype) if dtype else default
    return where(fallback, buf[safe], mask)


def store_if(buf, index, value, mask):
    """``buf[index] = value`` where ``mask`` is true."""
    _builder("store_if")
    with if_(mask):
        buf[index] = value


# ---- per-thread arrays -----------------------------------------------------------------

class RegisterTensor:
    """A per-thread array (``register_tensor``), row-major. Indices may be
    Python ints (checked now) or traced integers (then clamped into the array:
    an out-of-range index uses the last element). It is memory, not a set of
    traced values: writes inside ``for_range``/``if_``/``enigma.range`` bodies
    are seen after them."""

    def __init__(self, shape, dtype="float", fill=0):
        b = _builder("register_tensor")
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            shape = tuple(shape)
        except TypeError:
            b.fail("register_tensor", f"shape must be an int or a tuple of ints, got {shape!r}")
        if not shape:
            raise EnigmaError("register_tensor: shape cannot be empty")
        for s in shape:
            if isinstance(s, bool) or not isinstance(s, int) or s < 1:
                b.fail("register_tensor", f"shape must hold positive Python ints, got {shape!r}")
        try:
            self.dtype = dtype_name(dtype, "register_tensor")
        except EnigmaError as e:
            b.fail("register_tensor", str(e).split(": ", 1)[-1])
        self.shape = shape
        size = 1
        for s in shape:
            size *= s
        self.size = size
        self._trace = _active()
        self._id = b.local_array(self.dtype, size, _plain(fill), "register_tensor" + "x".join(map(str, shape)))

    def __repr__(self):
        return f"RegisterTensor(shape={self.shape}, dtype={self.dtype!r})"

    def __len__(self):
        return self.shape[0]

    def _flat(self, key, op):
        b = _builder(op)
        if self._trace is not _active():
            raise EnigmaError(f"{op}: this register_tensor belongs to another kernel trace")
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) != len(self.shape):
            raise EnigmaError(f"register_tensor indexing: expected {len(self.shape)}-tuple of ints, got {key!r}")
        flat, static = 0, True
        stride = 1
        terms = []
        for k, n in reversed(list(zip(key, self.shape))):
            k = _plain(k)
            if isinstance(k, IRValue):
                static = False
                terms.append(k * stride if stride != 1 else k)
            else:
                if isinstance(k, float) or not isinstance(k, int):
                    raise EnigmaError(f"register_tensor: indices must be Python ints or traced integers; "
                                      f"got {type(k).__name__}")
                if not 0 <= k < n:
                    raise EnigmaError(f"register_tensor: index {key!r} out of range for shape {self.shape}")
                flat += k * stride
            stride *= n
        if static:
            return b, flat
        index = terms[0]
        for t in terms[1:]:
            index = index + t
        return b, (index + flat if flat else index)

    def __getitem__(self, key):
        b, index = self._flat(key, "register_tensor")
        return _traced(b, "local_load", self._id, index)

    def __setitem__(self, key, value):
        b, index = self._flat(key, "register_tensor")
        b.local_store(self._id, index, _plain(value))


def register_tensor(shape, dtype="float", fill=0) -> RegisterTensor:
    """A per-thread array of ``shape`` (int or tuple), every element ``fill``."""
    return RegisterTensor(shape, dtype, fill)


# ---- quantization helpers (reference 17.2) -----------------------------------------------

def _as_uint(x):
    x = _plain(x)
    if isinstance(x, IRValue):
        return x if x.dtype == "uint" else metal_cast(x, "uint")
    return metal_cast(x, "uint")


def pack_uint8x4(b0, b1, b2, b3):
    """The low 8 bits of b0..b3 at bits 0, 8, 16, 24 of a uint (b0 lowest)."""
    _builder("pack_uint8x4")
    out = _as_uint(b0) & 0xFF
    for shift, v in ((8, b1), (16, b2), (24, b3)):
        out = out | ((_as_uint(v) & 0xFF) << shift)
    return out


def unpack_uint8x4(packed):
    """The four bytes of a uint, lowest first, each a uint."""
    _builder("unpack_uint8x4")
    p = _as_uint(packed)
    return tuple(extract_bits(p, 8 * k, 8) for k in range(4))


def pack_int4x2(lo, hi):
    """The low 4 bits of lo at bits 0-3 and of hi at bits 4-7 of a uint."""
    _builder("pack_int4x2")
    return (_as_uint(lo) & 0xF) | ((_as_uint(hi) & 0xF) << 4)


def unpack_int4x2(packed):
    """The nibbles at bits 0-3 and 4-7, sign-extended to int: (lo, hi)."""
    _builder("unpack_int4x2")
    p = metal_cast(_as_uint(packed), "int")
    return extract_bits(p, 0, 4), extract_bits(p, 4, 4)


def dequantize_int8(x, scale, zero_point=0):
    """float(x - zero_point) * scale, with x and zero_point as int and scale as float."""
    _builder("dequantize_int8")

    def cast(v, t):
        v = _plain(v)
        if isinstance(v, IRValue) and v.dtype == t:
            return v
        return metal_cast(v, t)
    return metal_cast(cast(x, "int") - cast(zero_point, "int"), "float") * cast(scale, "float")


__all__ = (_ELEMENTWISE + _VECTOR_MAKERS + [
    "LANGUAGE_TABLE", "extract_bits", "insert_bits", "make_vec", "vec_extract", "make_matrix", "matrix_column",
    "matmul", "transpose", "determinant", "function_constant", "load_if", "store_if", "RegisterTensor",
    "register_tensor", "pack_uint8x4", "unpack_uint8x4", "pack_int4x2", "unpack_int4x2", "dequantize_int8",
])
