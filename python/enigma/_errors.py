"""Enigma's error classes and the texts of the errors and hints the Python
layer raises (the core's texts live next to the checks in C++).

- ``EnigmaError``: a kernel is wrong (raised while tracing or compiling).
- ``EnigmaTypeError`` (also ``TypeError``): a runtime call got an argument of
  the wrong dtype or kind.
- ``EnigmaValueError`` (also ``ValueError``): a bad size, count, geometry or
  value.
Both validation classes also derive from ``RuntimeError``, which the seed
page's runtime raised for every failure, so existing ``except RuntimeError``
code keeps working. A failed dispatch is a plain ``RuntimeError`` (seed page).
"""
from __future__ import annotations

import linecache
import re
import sys

from . import _core

EnigmaError = _core.EnigmaError


class EnigmaTypeError(EnigmaError, TypeError, RuntimeError):
    """A runtime argument of the wrong dtype or kind; nothing ran."""


class EnigmaValueError(EnigmaError, ValueError, RuntimeError):
    """A bad size, count, grid/threadgroup geometry or value; nothing ran."""


_core._set_error_types(EnigmaTypeError, EnigmaValueError)

TEXTS = {
    "traced_truth": (
        "a traced value has no Python truth value here: `if`, `while`, `and`, `or`, `not` and `a if c else b` on "
        "traced values are traced only where they are written directly in an @enigma.kernel body whose source "
        "Python can read (a file, not a REPL or exec'd string), not in a helper function it calls; there use "
        "`with enigma.if_(cond):` for a branch or `enigma.where(false_val, true_val, cond)` to select a value"),
    "traced_index": (
        "a traced value cannot be used as a Python int (e.g. in list indexing or a Python API); loops over "
        "`range(traced)` are traced in a kernel body, elsewhere use enigma.for_range / enigma.range_constexpr"),
    "traced_python_math": (
        "{call}(x) cannot compute on a traced value: {module} works on Python numbers at trace time, while a "
        "kernel's values exist only when it runs; write enigma.{fn}(x){other}"),
    "traced_float": (
        "a traced value cannot become a Python float or int (float(x), int(x), or a Python math function); use "
        "enigma's math functions (enigma.exp, enigma.sqrt, ...) and enigma.metal_cast(x, \"float\") to convert"),
    "flat_buffer_2d": (
        "{name}[{index}]: '{name}' is a flat buffer parameter, indexed by one integer; compute the flat index "
        "(e.g. {name}[r * ncols + c]) or view it through a 2-D layout: "
        "{name}.view(enigma.make_layout((rows, cols), (cols, 1)))[r, c]"),
    # native control flow (_control.py)
    "undefined_after_if": (
        "'{name}' is assigned in only one branch of the `if` on a traced value at {line}, so it has no value where "
        "the other branch runs; assign '{name}' before the `if` or in both branches"),
    "traced_jump": (
        "`{what}` inside {construct} on a traced value cannot be traced; use a flag in the loop condition "
        "(`while i < n and not done:`) or guard the rest of the body with `if`"),
    "traced_return": (
        "`{what}` inside {construct} on a traced value cannot be traced; let the kernel body run to its end "
        "(guard the rest with `if`)"),
    "merged_list_length": (
        "the list '{name}' has {then} elements after the then-block of an `if` on a traced value but {orelse} "
        "after the else-block"),
    "merge_kinds": (
        "'{name}' is a {then} after the then-block and a {orelse} after the else-block of an `if` on a traced "
        "value; only scalars, vectors and lists of them can differ between the branches"),
    "while_became_traced": (
        "the condition of this `while` was a Python value when the loop started and became a traced value in the "
        "loop body; start the loop with traced values (e.g. `x = enigma.metal_cast(0, \"uint\")`) so it is "
        "traced from the first test"),
    "carried_list_length": "the carried list '{name}' must keep its length {length}",
    "select_sides": "`a if cond else b` on a traced condition needs scalar or vector sides, got {kind}",
    "partial_simd_shuffle": (
        "kernel '{kernel}' uses {ops} and is dispatched with threads {threads} (grid {grid}): its {where} has "
        "only {active} active lane(s) of {width}. A CUDA-style shuffle reduction (`x += simd_shuffle_down(x, k)`) "
        "then reads inactive lanes, which return the reading lane's own value, so lanes are counted twice; use "
        "simd_sum / simd_max (they reduce only active lanes), or make the threadgroup a multiple of {width} and "
        "guard the loads instead of returning early"),
}


def text(which: str, **fields) -> str:
    return TEXTS[which].format(**fields)


def user_line() -> tuple:
    """(file, line, source text) of the innermost frame outside the package."""
    import os
    pkg = os.path.dirname(os.path.abspath(__file__))
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(pkg):
        f = f.f_back
    if f is None:
        return None, 0, ""
    return f.f_code.co_filename, f.f_lineno, linecache.getline(f.f_code.co_filename, f.f_lineno)


def located(message: str) -> EnigmaError:
    """An EnigmaError raised while a kernel is traced: enigma.compile prefixes
    the kernel's name and the user's file:line."""
    return EnigmaError(message)


_PY_MATH = re.compile(r"\b(math|np|numpy|cmath)\.([a-z_0-9]+)\s*\(")


def python_math_hint(fn_hint: str | None = None) -> EnigmaError:
    """The error for a Python/numpy math function called on a traced value:
    names the call the user wrote and the enigma function to write instead."""
    from . import _lang
    file, line, src = user_line()
    m = None
    for cand in _PY_MATH.finditer(src or ""):
        if fn_hint is None or cand.group(2) == fn_hint:
            m = cand
            break
    fn = fn_hint or (m.group(2) if m else None)
    if fn is None:
        return located(text("traced_float"))
    module = (m.group(1) if m else "numpy")
    call = f"{module}.{fn}"
    known = hasattr(_lang, fn) or fn in getattr(_lang, "__all__", ())
    other = "" if known else f" (enigma has no `{fn}`; see docs/language.md for the functions it has)"
    return located(text("traced_python_math", call=call, module="numpy" if module in ("np", "numpy") else
                        f"Python's {module} module", fn=fn, other=other))
