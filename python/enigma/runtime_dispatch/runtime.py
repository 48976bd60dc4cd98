"""``enigma.runtime_dispatch.runtime`` (the reference's module path)."""
from __future__ import annotations

from ..compiler import CompiledKernel  # noqa: F401
from ..runtime import DeviceCapabilities, MetalRuntime, PreparedKernel  # noqa: F401
