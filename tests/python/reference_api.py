"""Reads tests/data/reference-api.txt (the reference package's public surface)
and checks this package against it: every module imports, every name exists
with the listed kind, every listed parameter is accepted by keyword with the
listed default. Used by test_reference_compat.py and scripts/reference-compat.py."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pathlib
import re

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "reference-api.txt"

_ENTRY = re.compile(r"^(?P<name>\w+): (?P<kind>class|callable|value|submodule|dynamic)"
                    r"(?: (?P<rest>.*?))?(?:\s+\[defined in (?P<defined>[\w.]+)\])?$")
_MEMBER = re.compile(r"^    \.(?P<name>\w+): (?P<kind>attr|method|property)(?: \((?P<sig>.*)\))?$")
FACTORY = "<factory>"  # a dataclass field's default_factory


@dataclasses.dataclass
class Param:
    name: str
    kind: inspect._ParameterKind
    default: object = inspect.Parameter.empty


@dataclasses.dataclass
class Member:
    name: str
    kind: str                   # attr | method | property
    params: list | None = None  # None: the reference lists no signature


@dataclasses.dataclass
class Entry:
    module: str
    name: str
    kind: str                   # class | callable | value | submodule | dynamic
    params: list | None = None
    target: str | None = None   # a submodule's full name
    defined_in: str | None = None
    members: list = dataclasses.field(default_factory=list)


def _split_top(text: str) -> list[str]:
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if text[start:].strip():
        parts.append(text[start:].strip())
    return parts


def parse_params(sig: str) -> list[Param]:
    params, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    for part in _split_top(sig):
        if part == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
        elif part.startswith("**"):
            params.append(Param(part[2:], inspect.Parameter.VAR_KEYWORD))
        elif part.startswith("*"):
            params.append(Param(part[1:], inspect.Parameter.VAR_POSITIONAL))
            kind = inspect.Parameter.KEYWORD_ONLY
        elif "=" in part:
            name, default = part.split("=", 1)
            value = FACTORY if default == FACTORY else ast.literal_eval(default)
            params.append(Param(name, kind, value))
        else:
            params.append(Param(part, kind))
    return params


def _sig_of(rest: str | None):
    if rest and rest.startswith("(") and rest.endswith(")"):
        return parse_params(rest[1:-1])
    return None


def parse(path=DATA) -> dict[str, list[Entry]]:
    """{module: [Entry]} in file order."""
    modules: dict[str, list[Entry]] = {}
    current = None
    for line in pathlib.Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = modules.setdefault(line.strip()[1:-1], [])
            continue
        m = _MEMBER.match(line)
        if m:
            sig = m["sig"]
            current[-1].members.append(
                Member(m["name"], m["kind"], parse_params(sig) if sig is not None else None))
            continue
        m = _ENTRY.match(line)
        if not m:
            raise ValueError(f"reference-api.txt: cannot parse {line!r}")
        kind, rest = m["kind"], m["rest"]
        current.append(Entry(module=next(reversed(modules)), name=m["name"], kind=kind,
                             params=_sig_of(rest) if kind in ("class", "callable") else None,
                             target=rest if kind == "submodule" else None, defined_in=m["defined"]))
    return modules


# ---------------------------------------------------------------- checking

def signature_of(obj, *, method=False):
    """inspect.Signature of a callable (for a method, without self), or None."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    if method:
        ps = list(sig.parameters.values())
        if ps and ps[0].kind in (ps[0].POSITIONAL_ONLY, ps[0].POSITIONAL_OR_KEYWORD):
            sig = sig.replace(parameters=ps[1:])
    return sig


def _same_default(ours, ref) -> bool:
    if ref is FACTORY:
        return ours is not inspect.Parameter.empty
    try:
        return type(ours) is type(ref) and bool(ours == ref)
    except Exception:  # noqa: BLE001 - an exotic default that cannot compare is a difference
        return False


def compare(ref: list[Param], sig: inspect.Signature | None) -> list[str]:
    """Why a call written for the reference's parameters would not work with
    ``sig``; empty when every call does."""
    if sig is None:
        return ["no inspectable signature"]
    ours = list(sig.parameters.values())
    by_name = {p.name: p for p in ours}
    positional = [p for p in ours if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    has_var_pos = any(p.kind == p.VAR_POSITIONAL for p in ours)
    has_var_kw = any(p.kind == p.VAR_KEYWORD for p in ours)
    problems = []
    ref_positional = [p for p in ref if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
    for i, p in enumerate(ref_positional):
        o = by_name.get(p.name)
        if o is None or o.kind not in (o.POSITIONAL_OR_KEYWORD,):
            problems.append(f"parameter {p.name!r} is not accepted by position and keyword")
        elif i >= len(positional) or positional[i] is not o:
            problems.append(f"parameter {p.name!r} is not at position {i}")
        elif p.default is not inspect.Parameter.empty and not _same_default(o.default, p.default):
            problems.append(f"parameter {p.name!r} defaults to {_show(o.default)}, not {p.default!r}")
    for p in ref:
        if p.kind == inspect.Parameter.KEYWORD_ONLY:
            o = by_name.get(p.name)
            if o is None or o.kind not in (o.POSITIONAL_OR_KEYWORD, o.KEYWORD_ONLY):
                problems.append(f"keyword {p.name!r} is not accepted")
            elif p.default is not inspect.Parameter.empty and not _same_default(o.default, p.default):
                problems.append(f"keyword {p.name!r} defaults to {_show(o.default)}, not {p.default!r}")
        elif p.kind == inspect.Parameter.VAR_POSITIONAL and not has_var_pos:
            problems.append(f"*{p.name} is not accepted")
        elif p.kind == inspect.Parameter.VAR_KEYWORD and not has_var_kw:
            problems.append(f"**{p.name} is not accepted")
    # A parameter the reference does not have must be optional, or calls written for it fail.
    ref_names = {p.name for p in ref}
    ref_var_pos = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in ref)
    for o in ours:
        if o.name in ref_names or o.kind in (o.VAR_POSITIONAL, o.VAR_KEYWORD):
            continue
        if o.default is inspect.Parameter.empty and not ref_var_pos:
            problems.append(f"extra required parameter {o.name!r}")
    return problems


def _accepts_positional(sig: inspect.Signature, n: int) -> bool:
    try:
        sig.bind(*range(n))
        return True
    except TypeError:
        return False


def _is_builtin_inherited(cls, name: str) -> bool:
    owner = next((k for k in cls.__mro__ if name in vars(k)), None)
    return owner is not None and owner.__module__ == "builtins"


def _show(v):
    return "no default" if v is inspect.Parameter.empty else repr(v)


def _kind_ok(entry: Entry, obj) -> str | None:
    if entry.kind == "class":
        return None if inspect.isclass(obj) else f"is a {type(obj).__name__}, not a class"
    if entry.kind == "callable":
        return None if callable(obj) else f"is a {type(obj).__name__}, not callable"
    if entry.kind == "submodule":
        if not inspect.ismodule(obj):
            return f"is a {type(obj).__name__}, not a module"
        if obj.__name__ != entry.target:
            return f"is module {obj.__name__}, not {entry.target}"
        return None
    if entry.kind == "value":
        return None if not (inspect.ismodule(obj) or inspect.isclass(obj)) else "is not a value"
    return None


@dataclasses.dataclass
class Result:
    entry: Entry
    status: str                 # compatible | different | missing
    problems: list


def _member_problems(entry: Entry, cls, instance_of) -> list[str]:
    problems = []
    for m in entry.members:
        where = f".{m.name}"
        if m.kind == "method":
            fn = inspect.getattr_static(cls, m.name, None)
            if fn is None:
                problems.append(f"{where}: missing")
                continue
            if m.params is None:
                continue
            if m.name.startswith("__") and m.name.endswith("__"):
                # Operators call these positionally: only the number of arguments matters.
                sig = signature_of(fn, method=True)
                if sig is None or not _accepts_positional(sig, len(m.params)):
                    problems.append(f"{where}: does not take {len(m.params)} argument(s)")
                continue
            if signature_of(fn) is None and _is_builtin_inherited(cls, m.name):
                continue  # inherited from Python itself (e.g. BaseException.add_note), as in the reference
            if isinstance(fn, staticmethod):
                problems += [f"{where}: {p}" for p in compare(m.params, signature_of(fn.__func__))]
            else:
                bound = getattr(fn, "__func__", fn)
                problems += [f"{where}: {p}" for p in compare(m.params, signature_of(bound, method=True))]
        else:  # attr / property: readable on the class or on an instance
            if inspect.getattr_static(cls, m.name, None) is not None:
                continue
            inst = instance_of(cls)
            if inst is None or not hasattr(inst, m.name):
                problems.append(f"{where}: missing")
    return problems


def check_entry(mod, entry: Entry, instance_of=lambda cls: None) -> Result:
    if entry.kind == "dynamic":
        try:
            getattr(mod, entry.name)
        except AttributeError:
            return Result(entry, "missing", ["missing"])
        except Exception:  # noqa: BLE001 - served, but only inside a kernel
            pass
        return Result(entry, "compatible", [])
    if not hasattr(mod, entry.name):
        return Result(entry, "missing", ["missing"])
    obj = getattr(mod, entry.name)
    problems = []
    bad_kind = _kind_ok(entry, obj)
    if bad_kind:
        problems.append(bad_kind)
    elif entry.params is not None:
        problems += compare(entry.params, signature_of(obj))
    if entry.kind == "class" and inspect.isclass(obj):
        problems += _member_problems(entry, obj, instance_of)
    return Result(entry, "different" if problems else "compatible", problems)


def check_all(instance_of=lambda cls: None, path=DATA) -> list[Result]:
    results = []
    for module, entries in parse(path).items():
        try:
            mod = importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - count as missing, whatever the failure
            results += [Result(e_, "missing", [f"module {module} does not import: {e!r}"]) for e_ in entries]
            continue
        results += [check_entry(mod, e_, instance_of) for e_ in entries]
    return results


def sample_instances():
    """A function giving an instance of a class whose attributes live on
    instances only (built on first use; None when it cannot be built)."""
    import numpy as np  # noqa: F401 - the package's own dependency
    import enigma

    def compiled_kernel():
        @enigma.kernel
        def _ref_compat_sample(a: enigma.f32, out: enigma.f32):
            i = enigma.thread_position_in_grid
            out[i] = a[i]
        return enigma.compile(_ref_compat_sample, emit_only=True)

    def register_tensor():
        seen = []

        @enigma.kernel
        def _ref_compat_regs(out: enigma.f32):
            r = enigma.register_tensor((2,), "float", 0)
            seen.append(r)
            out[0] = r[0]
        enigma.compile(_ref_compat_regs, emit_only=True)
        return seen[0]

    makers = {
        "Layout": lambda: enigma.make_layout((4, 2)),
        "Swizzle": lambda: enigma.Swizzle(2, 0, 3),
        "SwizzledLayout": lambda: enigma.swizzle(enigma.make_layout((8, 8)), 2, 0, 3),
        "CompiledKernel": compiled_kernel,
        "RegisterTensor": register_tensor,
    }
    cache = {}

    def instance_of(cls):
        name = cls.__name__
        if name not in cache:
            try:
                cache[name] = makers[name]() if name in makers else None
            except Exception:  # noqa: BLE001 - no sample: the attribute counts as missing
                cache[name] = None
        return cache[name]
    return instance_of


def counts(results) -> dict:
    out = {"compatible": 0, "different": 0, "missing": 0}
    for r in results:
        out[r.status] += 1
    return out
