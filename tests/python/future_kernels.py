"""Kernels defined in a module that uses ``from __future__ import annotations``
(every annotation is a string until enigma evaluates it)."""
from __future__ import annotations

import enigma
from enigma import f32


@enigma.kernel
def scale_add(a: f32, b: enigma.f32, s: enigma.Scalar(enigma.f32), out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i] * s + b[i]


def make_typed_copy(T):
    """A kernel factory: the annotation names a local of the enclosing function."""

    @enigma.kernel
    def typed_copy(a: T, out: T):
        i = enigma.thread_position_in_grid
        out[i] = a[i] + a[i]

    return typed_copy
