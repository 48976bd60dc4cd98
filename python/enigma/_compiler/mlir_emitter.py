"""``enigma.compiler.mlir_emitter`` (the reference's module path). The
reference printed MLIR and translated it to MSL; here the C++ core prints its
own IR (``emit_mlir``, the text ``CompiledKernel.mlir_source`` holds) and
emits the MSL (``emit_msl``)."""
from __future__ import annotations

from enigma.compiler import _check_vec_width, _core, _trace


def _ir(builder, vec_width):
    """The optimised IR of a builder from ``trace_kernel`` (traced again when
    asked for another vector width: vec_width changes the traced types)."""
    vec_width = _check_vec_width(vec_width)
    if vec_width == builder.vec_width and builder.ir is not None:
        return builder.ir
    if builder.kernel_def is None:
        raise RuntimeError(f"kernel '{builder.kernel_name}': only builders from trace_kernel(kdef) can be emitted")
    ir, _ = _trace(builder.kernel_def, vec_width)
    ir.optimize()
    return ir


def emit_mlir(builder, vec_width=0) -> str:
    """The kernel's IR as text (Enigma IR; the reference's was MLIR)."""
    return _ir(builder, vec_width).print()


def emit_msl(builder, vec_width=0) -> str:
    """The kernel's Metal Shading Language source."""
    return _core.CompiledKernelCore(_ir(builder, vec_width), False).source("metal")
