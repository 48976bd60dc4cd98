"""``enigma.compiler.compiler`` (the reference's module path): compile and its
result type, implemented in ``enigma.compiler``."""
from __future__ import annotations

from enigma.compiler import CompiledKernel, JitDef, KernelDef, compile  # noqa: F401,A004
from enigma.compiler.kernel import trace_kernel  # noqa: F401
from enigma.compiler.mlir_emitter import emit_mlir, emit_msl  # noqa: F401
