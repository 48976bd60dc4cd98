"""Numeric annotation types (``enigma.f32`` ...) and ``enigma.Scalar``.

The dtypes themselves (names, widths, numpy names) come from the core's dtype
table, the single source of truth; this module only gives them Python classes.
"""
from __future__ import annotations

from . import _core

# Class names of the reference API, by short name.
_CLASS_NAMES = {
    "f32": "Float32", "f16": "Float16", "bf16": "BFloat16",
    "i8": "Int8", "u8": "UInt8", "i16": "Int16", "u16": "UInt16",
    "i32": "Int32", "u32": "UInt32", "i64": "Int64", "u64": "UInt64", "b1": "Bool",
}


class Numeric:
    """Base of the numeric annotation types. ``width`` is in bits."""

    width: int = 0
    metal_name: str = ""
    short_name: str = ""
    numpy_name: str = ""
    is_float: bool = False
    is_signed: bool = False

    def __repr__(self) -> str:
        return self.metal_name

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(self.metal_name)


DTYPES: dict[str, type[Numeric]] = {}
_SINGLETONS: dict[str, Numeric] = {}

for _metal, _short, _bits, _is_float, _is_signed, _numpy in _core.dtype_table():
    _cls = type(_CLASS_NAMES[_short], (Numeric,), {
        "width": _bits, "metal_name": _metal, "short_name": _short, "numpy_name": _numpy,
        "is_float": _is_float, "is_signed": _is_signed, "__module__": __name__,
    })
    DTYPES[_short] = _cls
    _SINGLETONS[_short] = _cls()
    globals()[_cls.__name__] = _cls
    globals()[_short] = _SINGLETONS[_short]

del _metal, _short, _bits, _is_float, _is_signed, _numpy, _cls


class Scalar:
    """Annotation of a by-value kernel parameter: ``n: enigma.Scalar(enigma.u32)``."""

    def __init__(self, dtype):
        if not isinstance(dtype, Numeric):
            raise TypeError(
                f"Scalar(dtype): dtype must be an enigma numeric (e.g. enigma.f32), got {dtype!r}")
        self.dtype = dtype
        self.metal_name = dtype.metal_name
        self.width = dtype.width

    def __repr__(self) -> str:
        return f"Scalar({self.metal_name})"


def dtype_name(dtype, op: str = "dtype") -> str:
    """The canonical trace spelling of a dtype given as a Numeric, a Numeric
    class, a Scalar or a string; raises EnigmaError for anything unknown."""
    if isinstance(dtype, Numeric):
        return dtype.metal_name
    if isinstance(dtype, type) and issubclass(dtype, Numeric) and dtype is not Numeric:
        return dtype.metal_name
    if isinstance(dtype, Scalar):
        return dtype.metal_name
    if isinstance(dtype, str):
        canonical = _core.canonical_dtype(dtype)
        if canonical is not None:
            return canonical
        raise _core.EnigmaError(f"{op}: unknown dtype {dtype!r}")
    raise _core.EnigmaError(f"{op}: expected a dtype (e.g. enigma.f32 or 'float'), got {dtype!r}")


__all__ = ["Numeric", "Scalar", "DTYPES", "dtype_name"] + list(_CLASS_NAMES.values()) + list(_CLASS_NAMES)
