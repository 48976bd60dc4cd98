"""``enigma.runtime_dispatch.mlx_interop``: helpers for mlx arrays (Apple's
array library). mlx is optional: this module always imports; where mlx is not
installed, ``is_mlx_array`` is False and the other helpers raise
``RuntimeError("mlx is not installed")``."""
from __future__ import annotations

import importlib

# mlx dtype name -> (Metal type name, bytes per element)
_MLX_DTYPES = {
    "float32": ("float", 4), "float16": ("half", 2), "bfloat16": ("bfloat", 2), "int8": ("char", 1),
    "int16": ("short", 2), "int32": ("int", 4), "int64": ("long", 8), "uint8": ("uchar", 1),
    "uint16": ("ushort", 2), "uint32": ("uint", 4), "uint64": ("ulong", 8), "bool": ("bool", 1),
}


def _mx(required=True):
    try:
        return importlib.import_module("mlx.core")
    except ImportError:
        if required:
            raise RuntimeError("mlx is not installed") from None
        return None


def is_mlx_array(obj) -> bool:
    mx = _mx(required=False)
    return mx is not None and isinstance(obj, mx.array)


def _dtype_entry(dtype):
    mx = _mx()
    for name, entry in _MLX_DTYPES.items():
        if getattr(mx, name, None) == dtype:
            return entry
    raise TypeError(f"unsupported mlx dtype: {dtype}")


def mlx_dtype_to_metal(dtype) -> str:
    """The Metal type name of an mlx dtype (``mx.float32`` -> ``"float"``)."""
    return _dtype_entry(dtype)[0]


def mlx_nbytes(shape, dtype) -> int:
    """Bytes of an mlx array of ``shape`` and ``dtype``."""
    n = 1
    for s in (shape if isinstance(shape, (tuple, list)) else (shape,)):
        n *= int(s)
    return n * _dtype_entry(dtype)[1]


def make_mlx_output(shape, dtype):
    """A zero-filled mlx array to receive a kernel's output."""
    mx = _mx()
    _dtype_entry(dtype)
    return mx.zeros(shape, dtype=dtype)


def mlx_buffer_ptr_and_size(arr):
    """(address, bytes) of an mlx array's data, evaluated first."""
    import numpy as np
    mx = _mx()
    mx.eval(arr)
    view = np.asarray(memoryview(arr))
    return view.ctypes.data, view.nbytes


__all__ = ["is_mlx_array", "make_mlx_output", "mlx_buffer_ptr_and_size", "mlx_dtype_to_metal", "mlx_nbytes"]
