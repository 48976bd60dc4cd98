"""Helpers for tests that need a particular platform or device."""
from __future__ import annotations

import functools
import os
import platform
import sys
import unittest


def is_darwin() -> bool:
    return sys.platform == "darwin"


def is_apple_silicon() -> bool:
    return is_darwin() and platform.machine() == "arm64"


@functools.lru_cache(maxsize=None)
def is_metal_available() -> bool:
    """True when a Metal device can be opened; never raises; cached per process."""
    if not is_darwin() or os.environ.get("ENIGMA_FORCE_NO_METAL"):
        return False
    try:
        from . import _core
        return "metal" in _core.available_backends()
    except Exception:  # noqa: BLE001 - availability probe must not raise
        return False


def is_cuda_available() -> bool:
    """True when a CUDA device can be opened; never raises."""
    try:
        from . import _core
        return "cuda" in _core.available_backends()
    except Exception:  # noqa: BLE001
        return False


def requires_metal(fn):
    """Skips the test (a function or a TestCase class) unless Metal is available."""
    return unittest.skipUnless(is_metal_available(), "requires Metal runtime")(fn)


def requires_apple_silicon(fn):
    """Skips the test unless running on Apple Silicon."""
    return unittest.skipUnless(is_apple_silicon(), "requires Apple Silicon (arm64 macOS)")(fn)


skip_if_no_metal = requires_metal

__all__ = ["is_darwin", "is_apple_silicon", "is_metal_available", "is_cuda_available", "requires_metal",
           "requires_apple_silicon", "skip_if_no_metal"]
