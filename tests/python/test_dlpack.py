"""DLPack inputs, parsed by the core (enigma._core.DLPackView, nanobind's
ndarray): numpy's own capsules, and hand-made capsules standing for a CUDA
framework (torch, CuPy) and for a host bfloat16 tensor numpy cannot import.
The hand-made ones describe memory exactly as the DLPack header lays it out,
so each field the runtime reads (address, shape, strides, dtype, device) is
checked against what was written."""
import ctypes

import numpy as np
import pytest

import enigma
from enigma import _core
from enigma import runtime as rt_module


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLManagedTensor(ctypes.Structure):  # DLPack's unversioned DLManagedTensor
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64),
                ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class _Tensor:
    """A DLPack producer over memory at `data` (never read for CUDA tensors)."""

    def __init__(self, data, shape, dtype, device=(2, 0), strides=None, byte_offset=0):
        self.device, self.streams = device, []
        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self._strides = None if strides is None else (ctypes.c_int64 * len(strides))(*strides)
        self._mt = _DLManagedTensor(data, _DLDevice(*device), len(shape), _DLDataType(*dtype), self._shape,
                                    self._strides, byte_offset, None, None)

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, stream=None, **_):
        self.streams.append(stream)
        return _capsule_new(ctypes.addressof(self._mt), b"dltensor", None)


F32, BF16, C64 = (2, 32, 1), (4, 16, 1), (5, 64, 1)


def test_numpy_capsules_give_address_shape_strides_dtype_device():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    for x in (a, a[1:], a[:, ::2]):
        v = _core.DLPackView(x.__dlpack__())
        assert v.data == x.ctypes.data
        assert v.shape == x.shape
        assert v.strides == tuple(s // x.itemsize for s in x.strides)
        assert v.dtype == F32 and v.device == (1, 0)
    assert _core.DLPackView(a.__dlpack__()).host_bytes() == a.tobytes()


def test_cuda_tensor_is_bound_by_address_with_the_legacy_default_stream():
    t = _Tensor(0x7F0000001000, (3, 5), BF16, device=(2, 1), byte_offset=64)
    dev = rt_module._cuda_array(t, "kernel 'k' input 0")
    assert t.streams == [1]  # ordered before the stream the CUDA device launches on
    assert (dev.ptr, dev.nbytes, dev.dtype, dev.shape, dev.device_id) == (0x7F0000001040, 30, "bfloat16", (3, 5), 1)
    # Compact strides given explicitly read the same as none.
    t = _Tensor(0x7F0000002000, (2, 4), F32, strides=(4, 1))
    assert rt_module._cuda_array(t, "x").nbytes == 32


def test_cuda_tensor_errors_name_the_input():
    with pytest.raises(RuntimeError,
                       match=r"kernel 'k' input 2: unsupported DLPack dtype \(code 5, 64 bits, 1 lanes\)"):
        rt_module._cuda_array(_Tensor(0x1000, (4,), C64), "kernel 'k' input 2")
    with pytest.raises(RuntimeError, match=r"unsupported DLPack dtype \(code 2, 32 bits, 4 lanes\)"):
        rt_module._cuda_array(_Tensor(0x1000, (4,), (2, 32, 4)), "x")
    with pytest.raises(RuntimeError, match=r"kernel 'k' input 0 is not contiguous; pass a contiguous array"):
        rt_module._cuda_array(_Tensor(0x1000, (4, 2), F32, strides=(1, 4)), "kernel 'k' input 0")


@enigma.kernel
def widen(x: enigma.bf16, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = enigma.metal_cast(x[i], enigma.f32)


def test_host_bfloat16_tensor_numpy_cannot_import(runtime):
    values = np.array([1.0, -2.5, 0.15625, 2.0**127, -0.0, 7.0], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact in bfloat16
    t = _Tensor(bits.ctypes.data, bits.shape, BF16, device=(1, 0))
    got = rt_module._host_from_dlpack(t)
    assert got.dtype == np.uint16 and np.array_equal(got, bits)
    bits[0] = 0  # a copy: later changes to the tensor do not reach it
    assert got[0] != 0
    bits[0] = got[0]
    out = np.frombuffer(runtime.execute(enigma.compile(widen), [t], values.nbytes, (6, 1, 1), (6, 1, 1)), np.float32)
    np.testing.assert_array_equal(out, values)
