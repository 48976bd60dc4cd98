"""``enigma.MetalRuntime``: the seed page's runtime API on every device
(Metal on macOS, CUDA GPUs, the CPU)."""
from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from . import _core
from ._errors import EnigmaTypeError, EnigmaValueError

# Where the nvidia-cuda-nvrtc wheel may live (libnvrtc is found at run time).
_core.set_cuda_library_hints([p for p in sys.path if isinstance(p, str) and p])

_default_lock = threading.Lock()
_default = None


def _default_device():
    """The device ``MetalRuntime()`` picks: ENIGMA_DEVICE, else Metal, CUDA, CPU."""
    global _default
    with _default_lock:
        if _default is None:
            _default = _core.open_device("")
        return _default


@dataclass
class DeviceCapabilities:
    """What the active device provides (meaning per backend: docs/runtime.md)."""

    gpu_family: str
    gpu_family_raw: int
    supports_async_copy: bool
    supports_simdgroup_matrix: bool
    simdgroup_size: int
    max_threadgroup_memory: int
    max_threads_per_threadgroup: int
    device_name: str = ""
    backend: str = ""

    @property
    def is_m3_or_newer(self) -> bool:
        """True when the device provides everything Metal gates on M3 (async
        copy and simdgroup matrices), so M3-only fast paths can run."""
        return bool(self.supports_async_copy and self.supports_simdgroup_matrix)

    def require_m3(self, feature: str | None = None, *, feature_description: str | None = None) -> None:
        """Raises RuntimeError unless the device is M3-class (see is_m3_or_newer). The
        feature is named positionally, as ``feature=`` (the reference package) or as
        ``feature_description=`` (the runtime's API page)."""
        if (feature is None) == (feature_description is None):
            raise TypeError("require_m3() takes the feature's description once (feature or feature_description)")
        feature = feature if feature is not None else feature_description
        if not self.is_m3_or_newer:
            raise RuntimeError(f"enigma: {feature} requires Apple GPU family 9 (M3/A17) or newer. "
                               f"Current device: {self.device_name} ({self.gpu_family})")


def _dims(value, what: str, kernel: str):
    if type(value) is tuple and len(value) == 3:  # fast path for the hot dispatch loop
        x, y, z = value
        if type(x) is int and type(y) is int and type(z) is int and x > 0 and y > 0 and z > 0:
            return value
    try:
        items = tuple(value)
    except TypeError:
        items = None
    ok = items is not None and len(items) == 3 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items)
    if not ok or any(int(v) <= 0 for v in items):
        wrong_kind = items is None or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                                              for v in items)
        raise (EnigmaTypeError if wrong_kind else EnigmaValueError)(
            f"kernel '{kernel}': {what} must be 3 positive integers (x, y, z), got {value!r}")
    return [int(v) for v in items]


def _warn_partial_shuffles(compiled, grid, threads) -> None:
    """Debug builds: a lane shuffle over a partial simdgroup (or quad) reads
    inactive lanes, which return the reader's own value (Metal's rule), so a
    CUDA-style `x += simd_shuffle_down(x, k)` reduction counts lanes twice."""
    ops = getattr(compiled, "_debug_shuffles", ())
    if not ops:
        return
    import warnings
    from ._errors import text
    per_group = threads[0] * threads[1] * threads[2]
    edge = (grid[0] % threads[0]) * threads[1] * threads[2]
    for width, group in ((32, "simd"), (4, "quad")):
        used = [op for op in ops if op.startswith(group)]
        if not used:
            continue
        if per_group % width:
            where, active = f"last {group}group of every threadgroup", per_group % width
        elif edge % width:
            where, active = f"last {group}group of the edge threadgroups", edge % width
        else:
            continue
        warnings.warn(text("partial_simd_shuffle", kernel=compiled.kernel_name, ops=", ".join(used),
                           threads=tuple(threads), grid=tuple(grid), where=where, active=active, width=width),
                      RuntimeWarning, stacklevel=3)


# ---- inputs: host arrays, and CUDA arrays (DLPack / __cuda_array_interface__) ----

_DL_CUDA, _DL_CUDA_MANAGED = 2, 13
_DL_DTYPES = {(0, 8): "int8", (0, 16): "int16", (0, 32): "int32", (0, 64): "int64", (1, 8): "uint8",
              (1, 16): "uint16", (1, 32): "uint32", (1, 64): "uint64", (2, 16): "float16", (2, 32): "float32",
              (2, 64): "float64", (4, 16): "bfloat16", (6, 8): "bool"}


@dataclass
class _DeviceArray:
    """An array in CUDA memory: address, size, dtype name, and what keeps it alive."""
    ptr: int
    nbytes: int
    dtype: str
    shape: tuple
    device_id: int
    owner: object


def _contiguous(shape, strides) -> bool:
    """C-contiguous, given strides in elements (None: compact)."""
    if strides is None:
        return True
    expect = 1
    for n, st in zip(reversed(shape), reversed(strides)):
        if n != 1 and st != expect:
            return False
        expect *= n
    return True


def _from_dlpack_capsule(capsule, owner, what):
    t = _core.DLPackView(capsule)  # parsed by the core (nanobind's ndarray); keeps the tensor alive
    shape, strides = t.shape, t.strides
    code, bits, lanes = t.dtype
    key = (code, bits)
    if lanes != 1 or key not in _DL_DTYPES:
        raise RuntimeError(f"{what}: unsupported DLPack dtype (code {code}, {bits} bits, {lanes} lanes)")
    if not _contiguous(shape, strides):
        raise RuntimeError(f"{what} is not contiguous; pass a contiguous array (e.g. x.contiguous())")
    n = 1
    for d in shape:
        n *= d
    nbytes = n * bits // 8
    return _DeviceArray(t.data, nbytes, _DL_DTYPES[key], shape, t.device[1], (owner, t))


def _cuda_array(x, what):
    """The _DeviceArray of a CUDA array (torch, CuPy, numba, JAX...), or None
    when x is not one. DLPack first (it knows bfloat16 and orders the producer's
    stream before the legacy default stream that the CUDA device uses)."""
    dev = getattr(x, "__dlpack_device__", None)
    if dev is not None and hasattr(x, "__dlpack__"):
        try:
            kind, _ = dev()
        except Exception:  # noqa: BLE001 - not a usable DLPack producer; try the other protocol
            kind = None
        if kind in (_DL_CUDA, _DL_CUDA_MANAGED):
            try:
                capsule = x.__dlpack__(stream=1)  # 1: the legacy default stream
            except TypeError:
                capsule = x.__dlpack__()
            return _from_dlpack_capsule(capsule, x, what)
    try:
        cai = getattr(x, "__cuda_array_interface__", None)
    except Exception:  # noqa: BLE001 - e.g. torch raises for dtypes numpy lacks
        cai = None
    if cai is None:
        return None
    dt = np.dtype(cai["typestr"])
    shape = tuple(cai["shape"])
    strides = cai.get("strides")
    if strides is not None:
        strides = tuple(s // dt.itemsize for s in strides)
    if not _contiguous(shape, strides):
        raise RuntimeError(f"{what} is not contiguous; pass a contiguous array")
    n = 1
    for d in shape:
        n *= d
    ptr = cai["data"][0] or 0
    device_id = 0
    if ptr and hasattr(x, "device") and getattr(x.device, "id", None) is not None:
        device_id = int(x.device.id)
    return _DeviceArray(ptr, n * dt.itemsize, dt.name, shape, device_id, x)


def _to_host(x):
    """A host copy of a GPU array, for devices that cannot bind CUDA memory."""
    if hasattr(x, "get"):  # CuPy
        return x.get()
    if hasattr(x, "cpu"):  # torch
        return x.cpu()
    raise RuntimeError(f"cannot copy a {type(x).__name__} from GPU memory to the host; pass a numpy array")


def _host_from_dlpack(x):
    """numpy copy of a host DLPack tensor numpy cannot import (bfloat16)."""
    t = _core.DLPackView(x.__dlpack__())
    if t.dtype != (4, 16, 1) or t.device[0] != 1:
        return None
    shape = t.shape
    if not _contiguous(shape, t.strides):
        return None
    n = 1
    for d in shape:
        n *= d
    if not n:
        return np.zeros(shape, np.uint16)
    return np.frombuffer(t.host_bytes(), np.uint16).reshape(shape).copy()  # own the bits


def _as_host_array(x, index: int, kernel: str, cuda_device: bool = False):
    """The binding's input tuple: (array, dtype name, shape) for host memory,
    or (None, dtype name, shape, device pointer, bytes) for a CUDA array bound
    without a copy on a CUDA device. The caller keeps x alive while it is used."""
    if isinstance(x, (bool, int, float, complex)) or x is None:
        raise EnigmaTypeError(f"execute: kernel '{kernel}' input {index} is a {type(x).__name__}, not an array; "
                           "pass values of Scalar parameters with scalars=[...]")
    if not isinstance(x, np.ndarray):
        dev = _cuda_array(x, f"kernel '{kernel}' input {index}")
        if dev is not None:
            # Vector accesses assume aligned buffers: a misaligned view is copied instead.
            if cuda_device and dev.nbytes and dev.ptr % 32 == 0:
                return (None, dev.dtype, str(dev.shape), dev.ptr, dev.nbytes), dev.owner
            x = _to_host(x)
        if hasattr(x, "__dlpack__"):
            try:
                x = np.from_dlpack(x)
            except Exception:  # noqa: BLE001 - bfloat16, or not on the host: other routes below
                bits = None
                try:
                    bits = _host_from_dlpack(x)
                except Exception:  # noqa: BLE001
                    pass
                if bits is not None:
                    return (bits, "bfloat16", str(bits.shape)), None
                x = np.asarray(x)
        else:
            x = np.asarray(x)
    x = np.ascontiguousarray(x)
    if not x.dtype.isnative:  # e.g. '>f4': kernels read native (little-endian) values, so convert the copy
        x = x.astype(x.dtype.newbyteorder("="))
    return (x, x.dtype.name, str(x.shape)), None


def _scalar_value(v, index: int, kernel: str, api: str):
    """The value of a Scalar parameter as a Python number (numpy scalars and
    0-d arrays included: ``np.float32(alpha)``, ``a.size``)."""
    if isinstance(v, (bool, int, float)):
        return v
    dtype = getattr(v, "dtype", None)
    if dtype is not None and getattr(v, "shape", None) == () and dtype.kind in "biuf":
        return v.item()
    raise EnigmaTypeError(f"{api}: kernel '{kernel}': scalars[{index}] must be a number (bool, int, float or a numpy "
                    f"scalar), got {type(v).__name__} {v!r}")


def _kernel_core(compiled):
    core = getattr(compiled, "_core", None)
    if core is None:
        raise RuntimeError(
            f"kernel '{getattr(compiled, 'kernel_name', compiled)}' carries no Enigma IR (it was not made by "
            "enigma.compile(), e.g. a hand-built metallib); only enigma.compile() results can run here")
    return core


def _output_sizes(name, output_size, output_sizes):
    if output_sizes is not None:
        sizes = list(output_sizes)
        single = False
    elif output_size is not None:
        sizes = [output_size]
        single = True
    else:
        raise EnigmaValueError(f"execute: kernel '{name}': must pass output_size or output_sizes")
    for s in sizes:
        if not isinstance(s, (int, np.integer)) or isinstance(s, (bool, np.bool_)) or s <= 0:
            raise EnigmaValueError(f"kernel '{name}': output sizes must be positive integers (bytes), got {s!r}")
    return [int(s) for s in sizes], single


def _numpy_dtype(dtype, name: str = "?") -> np.dtype:
    """The numpy dtype of a buffer element: an enigma dtype (enigma.f32), a
    dtype name ("float", "f32", "float32"; a vector's, "vec<float,4>", gives
    its lanes') or anything numpy.dtype() accepts. bfloat is
    ml_dtypes.bfloat16 when installed, else its uint16 bits."""
    from .typing import dtype_name
    if isinstance(dtype, str) and dtype.startswith("vec<"):
        dtype = dtype[dtype.index(",") + 1:-1]
    try:
        metal = dtype_name(dtype, "output_dtypes")
    except (_core.EnigmaError, TypeError):
        metal = None
    if metal is None:
        try:
            return np.dtype(dtype)
        except TypeError:
            raise RuntimeError(f"execute: kernel '{name}': output_dtypes: unknown dtype {dtype!r}") from None
    if metal == "bfloat":
        try:
            import ml_dtypes
            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            return np.dtype(np.uint16)
    return np.dtype(next(row[5] for row in _core.dtype_table() if row[0] == metal))


def _shaped_outputs(name, output_shapes, output_dtypes):
    """[(shape, numpy dtype)] of ``execute(output_shapes=..., output_dtypes=...)``."""
    shapes = list(output_shapes)
    dtypes = list(output_dtypes) if output_dtypes is not None else []
    if len(shapes) != len(dtypes):
        raise RuntimeError(f"execute: kernel '{name}': output_shapes requires output_dtypes of matching length "
                           f"(got {len(shapes)} shapes and {len(dtypes)} dtypes)")
    out = []
    for shape, dtype in zip(shapes, dtypes):
        if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
            shape = (int(shape),)
        out.append((tuple(int(s) for s in shape), _numpy_dtype(dtype, name)))
    return out


def _like_inputs(array, inputs):
    """``array`` as the same kind of array as the first non-numpy input (a CUDA
    array library's, through its ``asarray``), else the numpy array itself."""
    for x in inputs or ():
        if isinstance(x, (np.ndarray, bytes, bytearray, memoryview)) or not hasattr(x, "__dlpack__"):
            continue
        library = sys.modules.get(type(x).__module__.split(".")[0])
        asarray = getattr(library, "asarray", None)
        if asarray is None:
            break
        try:
            return asarray(array, device=x.device)
        except Exception:  # noqa: BLE001 - a library without device=: its default device
            return asarray(array)
    return array


# Type names accepted in constants={index: (type_name, value)}: the reference's
# (float, int, uint, bool, half and their short names) plus every other dtype
# spelling a function_constant can have (bfloat cannot be one).
_CONSTANT_TYPES = sorted(
    {n for row in _core.dtype_table() if row[0] != "bfloat" for n in row[:2]}
    | {"i1", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float16"})


def _constants_arg(constants) -> list:
    """constants={index: (type_name, value)} as [(index, type_name, value)], sorted by index."""
    if not constants:
        return []
    if not isinstance(constants, dict):
        raise EnigmaTypeError(f"constants must be a dict {{index: (type_name, value)}}, got {type(constants).__name__}")
    for index in constants:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise EnigmaTypeError(f"constants: keys must be function-constant indices (ints), got {index!r}")
    out = []
    for index in sorted(constants):
        payload = constants[index]
        if not isinstance(payload, tuple) or len(payload) != 2:
            raise EnigmaTypeError(f"constants[{index}] must be (type_name, value) tuple, got {payload!r}")
        type_name, value = payload
        if type_name not in _CONSTANT_TYPES:
            raise EnigmaValueError(f"constants[{index}]: unknown type {type_name!r}. Expected one of {_CONSTANT_TYPES}")
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, (bool, int, float)):
            raise EnigmaTypeError(f"constants[{index}]: value must be a number, got {value!r}")
        out.append((int(index), type_name, value))
    return out


_RECORDED = type("_Recorded", (), {"__repr__": lambda self: "<the @jit launch's, else (1, 1, 1)>"})()


def _jit_bindings(compiled, api):
    """(inputs, None, output_sizes) from an @jit kernel's tensors: the trailing
    tensors the kernel writes are the outputs, every other one an input."""
    tensors = getattr(compiled, "_tensors", None)
    name = getattr(compiled, "kernel_name", "?")
    if tensors is None:
        raise RuntimeError(f"{api}: kernel '{name}': inputs are required (only @enigma.jit kernels carry "
                           "their tensors' data)")
    written = list(compiled._written)
    n_out = 0
    while n_out < len(written) and written[len(written) - 1 - n_out]:
        n_out += 1
    if n_out == 0 or any(written[:len(written) - n_out]):
        raise RuntimeError(f"{api}: kernel '{name}': the tensors it writes must come last in binding order "
                           "(give them the highest buffer indices); written: "
                           f"{[t.name for t, w in zip(tensors, written) if w]}")
    missing = [t.name for t in tensors if t.data is None]
    if missing:
        raise RuntimeError(f"{api}: kernel '{name}': tensors {missing} carry no data (enigma.tensor(array) or "
                           "Tensor(..., data=array))")
    k = len(tensors) - n_out
    sizes = [int(t.data.nbytes) for t in tensors[k:]]
    if len(sizes) == 1:
        return [t.data for t in tensors[:k]], sizes[0], None
    return [t.data for t in tensors[:k]], None, sizes


def _write_back(compiled, outs):
    """Copies output bytes into the output tensors' numpy arrays (where writable)."""
    tensors = compiled._tensors
    for t, raw in zip(tensors[len(tensors) - len(outs):], outs):
        a = t.data
        if isinstance(a, np.ndarray) and a.flags.writeable and a.flags.c_contiguous and a.nbytes == len(raw):
            a.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, np.uint8)


class DeviceArray:
    """A typed array in a device's memory (``MetalRuntime.array`` / ``zeros``).

    Prepared kernels bind it without copying (``prepare(..., [A])``,
    ``outputs=[B]``, ``pk.bind(param=A)``), so several prepared kernels can
    share it and a time-stepping loop can swap buffers between dispatches.
    ``numpy()`` copies it to the host as an array of its dtype and shape;
    ``write(a)`` copies host data in."""

    def __init__(self, device, buffer, dtype: np.dtype, shape: tuple):
        self._device = device
        self._buffer = buffer
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)

    @property
    def nbytes(self) -> int:
        return int(self._buffer.size)

    @property
    def device(self) -> str:
        return self._device.name

    def numpy(self) -> np.ndarray:
        return np.frombuffer(self._device.download(self._buffer), dtype=self.dtype).reshape(self.shape).copy()

    def write(self, array) -> None:
        a = np.ascontiguousarray(array, dtype=self.dtype)
        if a.nbytes != self.nbytes:
            raise EnigmaValueError(f"DeviceArray.write: the array holds {self.nbytes} bytes ({self.dtype}, shape "
                                   f"{self.shape}), the data has {a.nbytes}")
        self._device.upload(self._buffer, a)

    def __repr__(self):
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype}, device={self.device!r})"


class PreparedKernel:
    """Buffers bound once for repeated dispatches (``MetalRuntime.prepare``).

    Beyond the seed page's dispatch / dispatch_timed / read_output:
    ``dispatch(grid, threads, scalars=[...])`` sets new Scalar values,
    ``bind(param=DeviceArray)`` / ``swap(p, q)`` rebind buffer parameters
    without copying, ``array(param)`` is the DeviceArray bound to a parameter,
    and ``read(param)`` / ``output(i)`` return typed numpy arrays."""

    def __init__(self, launch, single_output: bool, device_name: str, keep_alive=(), compiled=None, device=None):
        self._launch = launch
        self._single = single_output
        self.kernel_name = launch.kernel_name
        self.device = device_name
        self._keep_alive = keep_alive  # CUDA arrays bound without a copy
        self._compiled = compiled
        self._device = device
        kinds = getattr(compiled, "_param_kinds", None) or []
        self._params = {n: (i, k, d) for i, (n, k, d) in enumerate(kinds)}
        self._shapes: dict = {}   # parameter index -> shape of the DeviceArray bound there

    def _scalars(self, scalars):
        if scalars is not None:
            self._launch.set_scalars([_scalar_value(v, i, self.kernel_name, "dispatch") for i, v in enumerate(scalars)])

    def dispatch(self, grid, threads, *, scalars=None) -> None:
        """Runs the kernel; call read_output() for the results. On a GPU it may
        return before the kernel ends: read_output() and dispatch_timed() wait
        (and report a failure of an earlier dispatch). ``scalars`` gives the
        Scalar parameters new values from this dispatch on."""
        g, t = _dims(grid, "grid", self.kernel_name), _dims(threads, "threads", self.kernel_name)
        self._scalars(scalars)
        if self._compiled is not None and self._compiled._debug_shuffles:
            _warn_partial_shuffles(self._compiled, g, t)
        self._launch.dispatch(g, t)

    def dispatch_timed(self, grid, threads, *, scalars=None) -> float:
        """Runs the kernel, waits, and returns its execution time in milliseconds."""
        self._scalars(scalars)
        return float(self._launch.dispatch_timed(_dims(grid, "grid", self.kernel_name),
                                                 _dims(threads, "threads", self.kernel_name)))

    def read_output(self):
        """The output buffer's bytes (a list of bytes for several outputs)."""
        outs = [self._launch.read_output(i) for i in range(self._launch.num_outputs)]
        return outs[0] if self._single else outs

    # ---- typed access and buffer binding -------------------------------------------
    def _param(self, param, what: str):
        if isinstance(param, str):
            if param not in self._params:
                raise EnigmaValueError(f"{what}: kernel '{self.kernel_name}' has no parameter '{param}' "
                                       f"(it has: {', '.join(self._params)})")
            index, kind, dtype = self._params[param]
        elif isinstance(param, (int, np.integer)) and not isinstance(param, bool):
            index = int(param)
            row = next(((i, k, d) for i, k, d in self._params.values() if i == index), None)
            if row is None:
                raise EnigmaValueError(f"{what}: kernel '{self.kernel_name}' has no parameter {index}")
            index, kind, dtype = row
        else:
            raise EnigmaTypeError(f"{what}: a parameter is a name or an index, got {param!r}")
        if kind != "buffer":
            raise EnigmaTypeError(f"{what}: kernel '{self.kernel_name}': parameter {param!r} is a Scalar; give its "
                                  "value with dispatch(..., scalars=[...])")
        return index, dtype

    def _shape(self, index: int, dtype: str, nbytes: int, shape=None):
        np_dt = _numpy_dtype(dtype)
        lanes = int(dtype[4]) if dtype.startswith("vec<") else 1
        if shape is not None:
            return tuple(shape)
        if index in self._shapes:
            return self._shapes[index]
        count = nbytes // np_dt.itemsize
        return (count // lanes, lanes) if lanes > 1 else (count,)

    def array(self, param) -> DeviceArray:
        """The DeviceArray bound to buffer parameter ``param`` (a name or an
        index): bind it to another prepared kernel to share it without copies."""
        index, dtype = self._param(param, "array")
        buf = self._launch.buffer(index)
        return DeviceArray(self._device, buf, _numpy_dtype(dtype), self._shape(index, dtype, buf.size))

    def bind(self, **buffers) -> None:
        """Binds buffer parameters, by name, to DeviceArrays of the same device
        and byte size, from the next dispatch on; nothing is copied."""
        for name, arr in buffers.items():
            index, dtype = self._param(name, "bind")
            if not isinstance(arr, DeviceArray):
                raise EnigmaTypeError(f"bind: kernel '{self.kernel_name}': parameter '{name}' needs a DeviceArray "
                                      f"(MetalRuntime.array / zeros), got {type(arr).__name__}")
            if arr.device != self.device:
                raise EnigmaValueError(f"bind: kernel '{self.kernel_name}': the array for '{name}' lives on "
                                       f"{arr.device!r}, the kernel runs on {self.device!r}")
            self._launch.bind(index, arr._buffer)
            self._shapes[index] = arr.shape

    def swap(self, a, b) -> None:
        """Exchanges the buffers of two buffer parameters (a ping-pong step)."""
        ia, _ = self._param(a, "swap")
        ib, _ = self._param(b, "swap")
        ba, bb = self._launch.buffer(ia), self._launch.buffer(ib)
        self._launch.bind(ia, bb)
        self._launch.bind(ib, ba)
        sa, sb = self._shapes.pop(ia, None), self._shapes.pop(ib, None)
        if sb is not None:
            self._shapes[ia] = sb
        if sa is not None:
            self._shapes[ib] = sa

    def read(self, param, shape=None) -> np.ndarray:
        """A buffer parameter's contents as a typed numpy array: an output, or
        an input the kernel reads and writes (in-out). The shape is ``shape``,
        else the bound DeviceArray's, else 1-D (elements x lanes for vectors)."""
        index, dtype = self._param(param, "read")
        raw = self._launch.read_buffer(index)
        return np.frombuffer(raw, dtype=_numpy_dtype(dtype)).reshape(self._shape(index, dtype, len(raw), shape)).copy()

    def output(self, i: int = 0, shape=None) -> np.ndarray:
        """Output ``i`` as a typed numpy array (read_output() gives its bytes)."""
        n = self._launch.num_outputs
        if not 0 <= i < n:
            raise EnigmaValueError(f"output: kernel '{self.kernel_name}' has {n} output(s), got index {i}")
        return self.read(len(self._params) - n + i, shape)

    def release(self) -> None:
        """Frees the buffers; the PreparedKernel cannot be used afterwards."""
        self._launch.release()
        self._keep_alive = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


class MetalRuntime:
    """Runs compiled kernels on a device: ``"metal"``, ``"cuda"``, ``"cuda:N"``,
    ``"cpu"``, or None for the default (ENIGMA_DEVICE, else Metal, CUDA, CPU)."""

    def __init__(self, dylib_path: str | None = None, *, device: str | None = None):
        if dylib_path is not None:
            self._check_dylib(os.fspath(dylib_path))
        if device is not None and not isinstance(device, str):
            raise EnigmaTypeError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
        self._device = _default_device() if device is None else _core.open_device(device)

    @staticmethod
    def _check_dylib(path: str) -> None:
        """``dylib_path`` names the native runtime library to use instead of the
        bundled one; it must load and be this build's Enigma runtime."""
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise RuntimeError(f"enigma GPU error: failed to load runtime library\n  path: {path}\n  error: {e}") from e
        if not hasattr(lib, "PyInit__core"):
            raise RuntimeError(f"enigma GPU error: not an Enigma runtime library\n  path: {path}\n"
                               "  error: it does not export the Enigma runtime entry point")
        if not os.path.samefile(path, _core.__file__):
            raise RuntimeError(f"enigma GPU error: runtime library mismatch\n  path: {path}\n  bundled: "
                               f"{_core.__file__}\n  error: a different Enigma build cannot be loaded into this "
                               "process; install that build instead")

    @property
    def device(self) -> str:
        return self._device.name

    def device_capabilities(self) -> DeviceCapabilities:
        c = self._device.capabilities()
        return DeviceCapabilities(
            gpu_family=c["gpu_family"], gpu_family_raw=c["gpu_family_raw"],
            supports_async_copy=c["supports_async_copy"], supports_simdgroup_matrix=c["supports_simdgroup_matrix"],
            simdgroup_size=c["simdgroup_size"], max_threadgroup_memory=c["max_threadgroup_memory"],
            max_threads_per_threadgroup=c["max_threads_per_threadgroup"], device_name=c["device_name"],
            backend=c["backend"])

    def _launch(self, compiled, inputs, output_size, output_sizes, scalars, constants, api):
        core = _kernel_core(compiled)
        name = compiled.kernel_name
        if inputs is None:
            inputs, output_size, output_sizes = _jit_bindings(compiled, api)
        consts = _constants_arg(constants)
        if isinstance(inputs, np.ndarray) or not hasattr(inputs, "__iter__"):
            raise EnigmaTypeError(f"{api}: kernel '{name}': inputs must be a list of arrays, "
                                  f"got {type(inputs).__name__}")
        sizes, single = _output_sizes(name, output_size, output_sizes)
        cuda = self._device.name.startswith("cuda")
        converted = [_as_host_array(x, i, name, cuda) for i, x in enumerate(inputs)]
        arrays = [c[0] for c in converted]
        keep = tuple(c[1] for c in converted if c[1] is not None)
        scal = [] if scalars is None else [_scalar_value(v, i, name, api) for i, v in enumerate(scalars)]
        launch = _core.PreparedLaunch(self._device, core, arrays, scal, sizes, api, consts)
        return launch, single, keep

    def execute(self, compiled, inputs=None, output_size=None, grid=_RECORDED, threads=_RECORDED, *,
                scalars=None, output_sizes=None, constants=None, output_shapes=None, output_dtypes=None):
        """One-shot dispatch: copies inputs in, runs, returns the output bytes
        (a list of bytes when ``output_sizes`` is given). With ``output_shapes``
        and ``output_dtypes`` (one per output) it returns arrays of those shapes
        and dtypes instead: numpy arrays, or the inputs' own array type for
        device arrays (one array for one shape, else a list). For an
        ``@enigma.jit`` kernel, ``inputs=None`` binds the compiled tensors' data,
        ``grid`` and ``threads`` default to the recorded launch, and the outputs
        are also written back into the output tensors' numpy arrays."""
        shaped = None
        if output_shapes is not None:
            shaped = _shaped_outputs(getattr(compiled, "kernel_name", "?"), output_shapes, output_dtypes)
            output_size, output_sizes = None, [max(1, int(np.prod(s, dtype=np.int64))) * d.itemsize
                                               for s, d in shaped]
        if grid is _RECORDED:
            grid = getattr(compiled, "grid", None) or (1, 1, 1)
        if threads is _RECORDED:
            threads = getattr(compiled, "block", None) or (1, 1, 1)
        g = _dims(grid, "grid", getattr(compiled, "kernel_name", "?"))
        t = _dims(threads, "threads", getattr(compiled, "kernel_name", "?"))
        jit_run = inputs is None
        _warn_partial_shuffles(compiled, g, t)
        launch, single, keep = self._launch(compiled, inputs, output_size, output_sizes, scalars, constants,
                                            "execute")
        try:
            launch.dispatch(g, t)
            outs = [launch.read_output(i) for i in range(launch.num_outputs)]
        finally:
            launch.release()
            del keep
        if jit_run:
            _write_back(compiled, outs)
        if shaped is not None:
            arrays = [_like_inputs(np.frombuffer(raw, d, count=int(np.prod(s, dtype=np.int64))).reshape(s).copy(),
                                   inputs) for raw, (s, d) in zip(outs, shaped)]
            return arrays[0] if len(arrays) == 1 else arrays
        return outs[0] if single else outs

    def prepare(self, compiled, inputs=None, output_size=None, *, scalars=None, output_sizes=None,
                constants=None, outputs=None) -> PreparedKernel:
        """Allocates and fills the buffers once for repeated dispatch. ``constants``
        ({index: (type_name, value)}) specialises the kernel's function constants.
        DeviceArrays among ``inputs``, and ``outputs=[DeviceArray, ...]`` (which
        also give the output sizes), are bound without copying."""
        inputs = list(inputs) if inputs is not None and not isinstance(inputs, np.ndarray) else inputs
        bound = {}
        if inputs is not None:
            for k, x in enumerate(inputs):
                if isinstance(x, DeviceArray):
                    bound[("in", k)] = x
                    inputs[k] = np.empty(x.nbytes // x.dtype.itemsize, x.dtype)  # validated, then replaced
        if outputs is not None:
            outputs = list(outputs)
            for x in outputs:
                if not isinstance(x, DeviceArray):
                    raise EnigmaTypeError(f"prepare: kernel '{compiled.kernel_name}': outputs= takes DeviceArrays "
                                          f"(MetalRuntime.array / zeros), got {type(x).__name__}")
            sizes = [x.nbytes for x in outputs]
            if (output_size is not None and [output_size] != sizes) or (output_sizes is not None and
                                                                         list(output_sizes) != sizes):
                raise EnigmaValueError(f"prepare: kernel '{compiled.kernel_name}': output sizes {sizes} of outputs= "
                                       "differ from output_size(s)")
            output_size, output_sizes = (sizes[0], None) if len(sizes) == 1 else (None, sizes)
        launch, single, keep = self._launch(compiled, inputs, output_size, output_sizes, scalars, constants,
                                            "prepare")
        pk = PreparedKernel(launch, single, self._device.name, keep, compiled, self._device)
        buffer_params = [i for i, (_, kind, _) in enumerate(compiled._param_kinds) if kind == "buffer"]
        names = [n for n, _, _ in compiled._param_kinds]
        for (_, k), arr in bound.items():
            pk.bind(**{names[buffer_params[k]]: arr})
        for k, arr in enumerate(outputs or []):
            pk.bind(**{names[len(names) - len(outputs) + k]: arr})
        return pk

    def array(self, data, dtype=None) -> DeviceArray:
        """A DeviceArray on this runtime's device holding a copy of ``data``."""
        a = np.ascontiguousarray(data, dtype=dtype)
        out = self.zeros(a.shape, a.dtype)
        out.write(a)
        return out

    def zeros(self, shape, dtype=np.float32) -> DeviceArray:
        """A zero-filled DeviceArray of ``shape`` and numpy ``dtype`` on this device."""
        dt = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
        count = int(np.prod(shape)) if shape else 1
        return DeviceArray(self._device, self._device.allocate(count * dt.itemsize), dt, shape)
