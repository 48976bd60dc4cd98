"""``enigma.compiler.kernel`` (the reference's module path): the decorators,
kernel definitions and the tracer's types, implemented in ``enigma.compiler``
and ``enigma._tracing``."""
from __future__ import annotations

from enigma._tensor import Tensor  # noqa: F401
from enigma._tracing import IRValue, _Trace, _wrap  # noqa: F401
from enigma.compiler import JitDef, KernelDef, KernelHandle, _check_vec_width, _trace, jit, kernel  # noqa: F401
from enigma.typing import Numeric, Scalar, dtype_name  # noqa: F401


class KernelBuilder:
    """A kernel's trace. ``trace_kernel(kdef)`` returns one holding the traced,
    optimised IR (``ir``); ``enigma.compiler.mlir_emitter`` prints it. A
    builder made directly, ``KernelBuilder(name)``, records thread queries and
    constants into a fresh trace (ops are otherwise recorded by running a
    kernel body, not op by op)."""

    def __init__(self, kernel_name):
        self.kernel_name = kernel_name
        self.kernel_def = None
        self.vec_width = 0
        self.ir = None
        self._trace = _Trace(kernel_name)

    def __repr__(self):
        return f"<enigma KernelBuilder {self.kernel_name}>"

    def _query(self, op):
        return _wrap(self._trace, self._trace.builder.query(op, 0))

    def get_thread_idx(self):
        """The thread's position in its threadgroup (x)."""
        return self._query("thread_position_in_threadgroup")

    def get_block_idx(self):
        """The threadgroup's position in the grid (x)."""
        return self._query("threadgroup_position_in_grid")

    def get_block_dim(self):
        """The threadgroup size (x)."""
        return self._query("threads_per_threadgroup")

    def get_thread_position_in_grid(self):
        """The thread's position in the grid (x)."""
        return self._query("thread_position_in_grid")

    def make_const(self, dtype, value):
        """A constant of ``dtype`` (converted with metal_cast rules)."""
        b = self._trace.builder
        return _wrap(self._trace, b.convert(value, dtype_name(dtype, "make_const")))


def trace_kernel(kdef, vec_width=0):
    """Traces an ``@enigma.kernel`` and returns its KernelBuilder (with ``ir``)."""
    if not isinstance(kdef, KernelDef):
        raise TypeError(f"trace_kernel expects an @enigma.kernel, got {type(kdef).__name__}")
    kb = KernelBuilder(kdef.name)
    kb.kernel_def, kb.vec_width = kdef, _check_vec_width(vec_width)
    kb.ir, _ = _trace(kdef, kb.vec_width)
    kb.ir.optimize()
    return kb
