"""Enigma: GPU compute kernels in Metal's execution model, written in Python,
compiled by a C++ core for Apple GPUs (MSL), NVIDIA GPUs (CUDA) and CPUs."""
from __future__ import annotations

from . import _core
from ._tracing import (
    Carry, EnigmaError, IRValue, arch, as_type, cmp_eq, cmp_ge, cmp_gt, cmp_le, cmp_lt, cmp_ne,
    cmp_uge, cmp_ugt, cmp_ule, cmp_ult, for_range, grid_size, if_, metal_cast, range_constexpr,
    simdgroup_index_in_threadgroup, simdgroups_per_threadgroup, thread_index_in_simdgroup,
    thread_index_in_threadgroup, thread_position_in_grid_xyz, thread_position_in_threadgroup,
    threadgroup_position_in_grid, threadgroups_per_grid, threads_per_grid, threads_per_simdgroup,
    threads_per_threadgroup, where, while_,
)
from ._errors import EnigmaTypeError, EnigmaValueError
from ._cooperative import *  # noqa: F401,F403 - threadgroups, simdgroups, atomics
from ._tiles import *  # noqa: F401,F403 - the tile library: copy, Pipeline, gemm
from ._preprocess import range  # noqa: A004 - `for i in enigma.range(...)` in kernels
from ._lang import *  # noqa: F401,F403,A004 - the per-thread language (abs, round, pow shadow builtins)
from ._tensor import (  # noqa: E402  layout-aware tensors and TV fragments
    Fragment, Tensor, elem_less, make_identity_tensor, tensor_composition, tensor_zipped_divide,
)
from .compiler import CompiledKernel, JitDef, KernelDef, KernelHandle, compile, jit, kernel  # noqa: A004
from .runtime import DeviceArray, DeviceCapabilities, MetalRuntime, PreparedKernel
from .typing import (
    BFloat16, Bool, Float16, Float32, Int8, Int16, Int32, Int64, Numeric, Scalar, UInt8, UInt16, UInt32,
    UInt64, b1, bf16, f16, f32, i8, i16, i32, i64, u8, u16, u32, u64,
)
from . import benchmark, testing  # noqa: E402
from .layout import (  # the layout algebra (CuTe's), computed by the C++ core
    Layout, LayoutError, Swizzle, SwizzledLayout, blocked_product, coalesce, complement, composition,
    logical_divide, make_identity_layout, make_layout, make_layout_tv, make_ordered_layout, recast_layout, size,
    swizzle, zipped_divide,
)
from .tuple import product, repeat_like, select  # noqa: E402  (enigma.select is the tuple utility)
from . import core, layout, tuple  # noqa: E402,A004  (enigma.tuple shadows the builtin in this namespace only)
# The reference's module paths; enigma.tensor is a callable module (enigma.tensor(array) still works).
from . import _tracing, ops, runtime_dispatch, tensor  # noqa: E402
_EnigmaRange, _EnigmaRangeConstexpr = type(range), type(range_constexpr)  # the reference's class names

__version__ = "0.2.0"


def __getattr__(name):
    # `enigma.thread_position_in_grid` is a property of the kernel being traced.
    if name == "thread_position_in_grid":
        from ._tracing import _cached_thread_position
        return _cached_thread_position()
    raise AttributeError(f"module 'enigma' has no attribute '{name}'")
