"""The reference package's public surface (tests/data/reference-api.txt, Enigma
DSL 0.1.1), checked name by name: every module imports, every name exists with
the listed kind, every listed parameter is accepted by keyword with the listed
default. The only exceptions are the justified differences below, the same
list as docs/porting.md's table."""
from __future__ import annotations

import importlib
import inspect
import pathlib
import re

import pytest

import enigma
import reference_api as ref

# Every accepted difference: "<name>" (the object itself) or "<Class>.<member>",
# with the reason. docs/porting.md ("Justified differences") holds the same rows.
JUSTIFIED = {
    "MetalRuntime.execute": "grid and threads default to the launch an @enigma.jit function recorded in the "
                            "CompiledKernel, else (1, 1, 1); the reference's fixed (1, 1, 1) runs a @jit kernel on "
                            "one thread",
    "PreparedKernel": "the constructor is internal (MetalRuntime.prepare makes one); the reference's takes Metal "
                      "objects (pso, mtl_lib, buffers) that other devices do not have",
    "simdgroup_matrix_load": "elem defaults to the memory's element type; the reference's 'float' mistypes a load "
                             "from half or bfloat memory",
    "IROp": "the IR is built and held by the C++ core through typed builder calls; there is no Python op record",
    "IRValue": "a traced value is a handle into the core's IR (value id, trace), not a (name, dtype) record",
    "KernelBuilder.new_value": "values are made by the ops that define them (typed by the core), never untyped",
    "KernelBuilder.record": "ops are recorded by running the kernel body, not appended as op records",
}

PORTING = pathlib.Path(__file__).resolve().parents[2] / "docs" / "porting.md"
MODULES = ref.parse()
ENTRIES = [e for entries in MODULES.values() for e in entries]
_instances = ref.sample_instances()


def _item(entry, problem: str) -> str:
    """The JUSTIFIED key a problem belongs to: the name, or Class.member."""
    if problem.startswith("."):
        return f"{entry.name}.{problem[1:].split(':', 1)[0]}"
    return entry.name


def test_reference_data_states_its_origin():
    first = ref.DATA.read_text().splitlines()[0]
    assert first.startswith("# Origin:") and "Enigma DSL 0.1.1" in first


def test_the_surface_is_all_there():
    # A guard against a truncated or misparsed data file.
    assert len(MODULES) == 16
    assert len(ENTRIES) == 411
    assert sum(len(e.members) for e in ENTRIES) == 268


@pytest.mark.parametrize("module", list(MODULES))
def test_module_imports(module):
    mod = importlib.import_module(module)
    assert mod.__name__ == module


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.module}.{e.name}" for e in ENTRIES])
def test_name(entry):
    result = ref.check_entry(importlib.import_module(entry.module), entry, _instances)
    unjustified = [p for p in result.problems if _item(entry, p) not in JUSTIFIED]
    assert not unjustified, f"{entry.module}.{entry.name}: {unjustified}"


def test_every_justified_difference_is_real():
    """The table lists only differences that exist (remove a row once fixed)."""
    seen = set()
    for result in ref.check_all(_instances):
        seen |= {_item(result.entry, p) for p in result.problems}
    assert set(JUSTIFIED) <= seen, sorted(set(JUSTIFIED) - seen)


def test_porting_doc_lists_the_same_differences():
    text = PORTING.read_text()
    section = text.split("## Justified differences", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([\w.]+)` \|", section, flags=re.M))
    assert documented == set(JUSTIFIED)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.defined_in and not e.defined_in.split(".")[-1]
                                   .startswith("_") and e.defined_in in MODULES and e.kind != "submodule"],
                         ids=lambda e: f"{e.module}.{e.name}")
def test_reexports_are_the_defining_object(entry):
    """A name re-exported from another public module is that module's object
    (one implementation, no copies)."""
    ours = getattr(importlib.import_module(entry.module), entry.name)
    assert ours is getattr(importlib.import_module(entry.defined_in), entry.name)


# ---- the checker itself fails on removed or renamed names ----------------------

def _entry(module, name):
    return next(e for e in MODULES[module] if e.name == name)


def test_checker_reports_a_removed_name(monkeypatch):
    monkeypatch.delattr(enigma.core, "flatten")
    result = ref.check_entry(enigma.core, _entry("enigma.core", "flatten"))
    assert result.status == "missing"


def test_checker_reports_a_renamed_parameter(monkeypatch):
    def clamp(x, minval, maxval):
        return x
    monkeypatch.setattr(enigma, "clamp", clamp)
    result = ref.check_entry(enigma, _entry("enigma", "clamp"))
    assert result.status == "different"
    assert any("'lo'" in p for p in result.problems)


def test_checker_reports_a_changed_default_and_a_renamed_method(monkeypatch):
    def barrier(mem_flags="mem_device"):
        return None
    monkeypatch.setattr(enigma, "barrier", barrier)
    assert any("defaults to 'mem_device'" in p
               for p in ref.check_entry(enigma, _entry("enigma", "barrier")).problems)
    monkeypatch.delattr(enigma.Layout, "cosize")
    assert ".cosize: missing" in ref.check_entry(enigma, _entry("enigma", "Layout")).problems


def test_checker_reads_keyword_only_and_variadic_parameters():
    params = ref.parse_params("fn, *args, repeat=50, label=None, **kwargs")
    kinds = [p.kind for p in params]
    assert kinds == [inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL,
                     inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD]
    assert params[2].default == 50 and params[3].default is None

    def positional_only(fn, /, *args, repeat=50, label=None, **kwargs):
        return fn
    assert any("'fn'" in p for p in ref.compare(params, inspect.signature(positional_only)))
