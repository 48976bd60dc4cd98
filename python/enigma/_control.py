"""Run-time half of native Python control flow in kernels.

`_preprocess` rewrites every ``if``/``while``/``for ... in range(...)``,
``a if c else b``, ``and``/``or``/``not`` of a kernel body into calls of the
helpers below. Each helper looks at the value it gets: a plain Python value
runs the construct as ordinary Python (at trace time: unrolling and
specialisation); a traced value (`IRValue`) records traced control flow
(`if_`, `while_`, `for_range`) and merges or carries the names the construct
assigns. The body is the user's own statements in both cases.
"""
from __future__ import annotations

import builtins

from ._errors import text
from ._preprocess import _carriable, carried_slots, unflatten_carried
from ._tracing import EnigmaError, IRValue, _current, _plain

_MISSING = object()


def _traced(v) -> bool:
    return isinstance(_plain(v), IRValue)


class Undefined:
    """What a name holds after a traced ``if`` that assigns it in one branch only."""

    __slots__ = ("_name", "_line")
    __hash__ = None

    def __init__(self, name: str, line: str):
        self._name = name
        self._line = line

    def _fail(self, *args, **kwargs):
        raise EnigmaError(text("undefined_after_if", name=self._name, line=self._line))

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self):
        return f"<'{self._name}' undefined after a traced if>"


for _m in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor", "lshift", "rshift",
           "radd", "rsub", "rmul", "rtruediv", "rfloordiv", "rmod", "rpow", "rand", "ror", "rxor", "rlshift",
           "rrshift", "neg", "pos", "invert", "abs", "lt", "le", "gt", "ge", "eq", "ne", "bool", "index", "int",
           "float", "getitem", "setitem", "iter", "len", "call"):
    setattr(Undefined, f"__{_m}__", Undefined._fail)


def _truth(v):
    """A b1 value (or a Python bool) for a condition."""
    v = _plain(v)
    if isinstance(v, IRValue):
        return v if v.dtype == "bool" else (v != 0)
    return bool(v)


def jump(what: str, line: str, helpers: tuple):
    """Guard before ``break``/``continue``/``return``: fine in plain Python
    constructs, an error inside a traced one (its region would stay open)."""
    for h in helpers:
        if getattr(h, "traced", False):
            raise EnigmaError(text("traced_return" if what == "return" else "traced_jump", what=what,
                                   construct=h.construct))


# ---- if / elif / else -----------------------------------------------------------

class If:
    """``if cond: ... else: ...``: plain Python for a Python condition, else a
    traced if whose assigned names are merged after it."""

    construct = "an `if`"

    def __init__(self, cond, bound: dict, names: tuple, line: str):
        cond = _plain(cond)
        self.cond = cond
        self.traced = isinstance(cond, IRValue)
        self.line = line
        self.names = names
        self.results: dict = {}
        self.restore: dict = {}
        if not self.traced:
            return
        if cond.dtype != "bool":
            cond = _truth(cond)
        self.trace = _current("if")
        self.pre = {n: bound[n] for n in names if n in bound}
        self.pre_lists = {n: list(v) for n, v in self.pre.items() if isinstance(v, list)}
        self.trace.locate().begin_if(cond)

    def then(self) -> bool:
        return True if self.traced else bool(self.cond)

    def orelse(self) -> bool:
        return True if self.traced else not self.cond

    @staticmethod
    def _snapshot(bound, names):
        out = {}
        for n in names:
            if n in bound:
                v = bound[n]
                out[n] = (v, list(v)) if isinstance(v, list) else (v, None)
        return out

    def end_then(self, bound: dict):
        if not self.traced:
            return
        self.then_vals = self._snapshot(bound, self.names)
        for n, saved in self.pre_lists.items():
            self.pre[n][:] = saved  # lists changed in place start the else-block as they were
        self.trace.locate().begin_else()
        for n in self.names:
            self.restore[n] = self.pre[n] if n in self.pre else Undefined(n, self.line)

    def end_else(self, bound: dict):
        if not self.traced:
            return
        else_vals = self._snapshot(bound, self.names)
        merged_names, tv, ev, places = [], [], [], []   # places: (name, list or None, position)
        for n in self.names:
            t, e = self.then_vals.get(n, (_MISSING, None)), else_vals.get(n, (_MISSING, None))
            (tobj, tlist), (eobj, elist) = t, e
            if tobj is _MISSING or eobj is _MISSING or isinstance(tobj, Undefined) or isinstance(eobj, Undefined):
                if tobj is not _MISSING or eobj is not _MISSING:
                    self.results[n] = Undefined(n, self.line)
                continue
            if tlist is not None and elist is not None:
                if len(tlist) != len(elist):
                    raise EnigmaError(text("merged_list_length", name=n, then=len(tlist), orelse=len(elist)))
                out = eobj if eobj is tobj else list(elist)
                for k, (a, b) in enumerate(zip(tlist, elist)):
                    if a is b:
                        out[k] = a
                    elif _carriable(a) and _carriable(b):
                        merged_names.append(f"{n}[{k}]")
                        tv.append(a)
                        ev.append(b)
                        places.append((n, out, k))
                    else:
                        raise EnigmaError(text("merge_kinds", name=f"{n}[{k}]", then=type(a).__name__,
                                               orelse=type(b).__name__))
                if eobj is tobj:
                    eobj[:] = out
                self.results[n] = out
                continue
            if tobj is eobj or (type(tobj) is type(eobj) and isinstance(tobj, (bool, int, float)) and tobj == eobj):
                self.results[n] = tobj
            elif _carriable(tobj) and _carriable(eobj):
                merged_names.append(n)
                tv.append(tobj)
                ev.append(eobj)
                places.append((n, None, 0))
            else:
                raise EnigmaError(text("merge_kinds", name=n, then=type(tobj).__name__, orelse=type(eobj).__name__))
        b = self.trace.locate()
        if not merged_names:
            b.end_if()
            return
        values = b.end_if_merge(tv, ev, merged_names)
        for (n, lst, k), vid in zip(places, values):
            v = IRValue(vid, self.trace)
            if lst is None:
                self.results[n] = v
            else:
                lst[k] = v


def select(cond, then_fn, else_fn):
    """``a if cond else b``: a traced if (only the chosen side's loads happen)."""
    c = _plain(cond)
    if not isinstance(c, IRValue):
        return then_fn() if c else else_fn()
    trace = _current("if")
    b = trace.locate()
    b.begin_if(_truth(c))
    a = _plain(then_fn())
    trace.locate().begin_else()
    e = _plain(else_fn())
    for v in (a, e):
        if not _carriable(v):
            b.fail("if", text("select_sides", kind=type(v).__name__))
    return IRValue(trace.locate().end_if_merge([a], [e], ["value"])[0], trace)


def and_(first, *rest):
    """``a and b and ...``: Python's short circuit, traced once a side is traced."""
    v = first
    for f in rest:
        if _traced(v):
            v = _short_circuit(_truth(v), f, True)
        elif not v:
            return v
        else:
            v = f()
    return v


def or_(first, *rest):
    v = first
    for f in rest:
        if _traced(v):
            v = _short_circuit(_truth(v), f, False)
        elif v:
            return v
        else:
            v = f()
    return v


def _short_circuit(c, rest_fn, is_and: bool):
    trace = _current("and" if is_and else "or")
    trace.locate().begin_if(c)
    then_v = _truth(rest_fn()) if is_and else True
    trace.locate().begin_else()
    else_v = False if is_and else _truth(rest_fn())
    return IRValue(trace.locate().end_if_merge([then_v], [else_v], ["value"])[0], trace)


def not_(v):
    p = _plain(v)
    if isinstance(p, IRValue):
        return _truth(p) == False  # noqa: E712 - a traced comparison
    return not p


# ---- for i in range(...) ------------------------------------------------------

class For:
    """``for i in range(...)``: a Python loop for Python bounds, a traced
    ``for_range`` (carrying the names its body assigns) when a bound is traced."""

    construct = "a `for` loop"

    def __init__(self, rng, bound: dict, names: tuple, args: tuple, line: str):
        from ._preprocess import _Loop
        self.rng, self.args, self.line = rng, args, line
        self.traced = rng is builtins.range and any(_traced(a) for a in args)
        self.vals: dict = {}
        self.results: dict = {}
        self.loop = _Loop(bound, names, args) if self.traced else None

    def __iter__(self):
        if not self.traced:
            yield from self.rng(*self.args)
            return
        iv, self.vals = self.loop.__enter__()
        yield iv
        self.loop.__exit__(None, None, None)
        self.results = self.loop.results

    def end_body(self, bound: dict):
        if self.traced:
            self.loop.end_body(bound)


# ---- while ----------------------------------------------------------------------

class While:
    """``while cond:``: a Python loop while the condition is a Python value, a
    traced ``while_`` (carrying the names its body assigns) when it is traced."""

    construct = "a `while` loop"

    def __init__(self, bound: dict, names: tuple, cond_fn, cond_names: tuple, line: str):
        self.names, self.cond_fn, self.cond_names, self.line = names, cond_fn, cond_names, line
        self.traced = False
        self.started = False
        self.vals: dict = {}
        self.results: dict = {}

    def _cond(self, bound: dict, override: dict):
        args = {}
        for n in self.cond_names:
            if n in override:
                args[n] = override[n]
            elif n in bound:
                args[n] = bound[n]
            else:
                raise NameError(f"name '{n}' is not defined")
        return _plain(self.cond_fn(**args))

    def next(self, bound: dict) -> bool:
        if not self.started:
            self.started = True
            c = self._cond(bound, {})
            if not isinstance(c, IRValue):
                return bool(c)
            self._begin(bound)
            return True
        if not self.traced:
            c = self._cond(bound, {})
            if isinstance(c, IRValue):
                raise EnigmaError(text("while_became_traced"))
            return bool(c)
        self._end(bound)
        return False

    def _begin(self, bound: dict):
        self.traced = True
        self.trace = _current("while")
        self.slots, inits = carried_slots(bound, self.names, convert=_plain)
        b = self.trace.locate()
        cond_args = [IRValue(a, self.trace) for a in b.begin_while(inits)]
        c = self._cond(bound, unflatten_carried(self.slots, cond_args))
        body_args = self.trace.locate().while_body(_truth(c))
        self.vals = unflatten_carried(self.slots, [IRValue(a, self.trace) for a in body_args])

    def _end(self, bound: dict):
        yields = []
        for n, length in self.slots:
            v = bound.get(n)
            if length is None:
                yields.append(_plain(v))
            else:
                if not isinstance(v, list) or len(v) != length:
                    raise EnigmaError(text("carried_list_length", name=n, length=length))
                yields.extend(_plain(x) for x in v)
        results = self.trace.locate().end_while(yields)
        self.results = unflatten_carried(self.slots, [IRValue(r, self.trace) for r in results])
