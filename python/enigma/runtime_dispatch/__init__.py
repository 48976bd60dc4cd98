"""``enigma.runtime_dispatch`` (the reference's module path): the runtime,
implemented in ``enigma.runtime``."""
from __future__ import annotations

from . import mlx_interop, runtime  # noqa: F401
from .runtime import MetalRuntime  # noqa: F401
