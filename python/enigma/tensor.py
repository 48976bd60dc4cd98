"""``enigma.tensor``: layout-aware tensors (the reference's module path) and,
called as a function, ``enigma.tensor(array, layout=None, *, name=None,
index=None, dtype=None)``, the Tensor over an array for ``@enigma.jit``.

The module is callable so that both spellings work: ``from enigma.tensor
import Tensor`` (code written for the reference) and ``enigma.tensor(a)``.
Everything here is implemented in ``enigma._tensor``, ``enigma.layout`` and
``enigma.tuple``."""
from __future__ import annotations

import sys
import types

from ._tensor import Fragment, Tensor, make_identity_tensor, tensor_composition, tensor_zipped_divide
from ._tensor import tensor as _tensor_from_array
from .layout import Layout
from .tuple import flatten, idx2crd, is_int, is_tuple, product

__all__ = ["Tensor", "Fragment", "Layout", "make_identity_tensor", "tensor_composition", "tensor_zipped_divide",
           "flatten", "idx2crd", "is_int", "is_tuple", "product"]


class _CallableModule(types.ModuleType):
    def __call__(self, array, layout=None, *, name=None, index=None, dtype=None):
        return _tensor_from_array(array, layout, name=name, index=index, dtype=dtype)


_CallableModule.__call__.__doc__ = _tensor_from_array.__doc__
sys.modules[__name__].__class__ = _CallableModule
