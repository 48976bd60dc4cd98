"""Names are data, never code (docs/runtime.md, "Names"): kernel and
parameter names become unique valid identifiers in every backend, comments
carry no raw user text, the MSL entry point is an identifier, dump file names
stay in their folder, and errors keep the user's own name."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import enigma

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKENDS = ("cpu", "cuda", "metal")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The payload a name tries to smuggle into the generated code.
INJECTED = "static int injected = (__builtin_trap(), 0);"


def named(fn, name):
    fn.__name__ = name
    fn.__qualname__ = name
    return enigma.kernel(fn)


def code_lines(source):
    """The source's lines with // comments removed."""
    return [line.split("//", 1)[0] for line in source.splitlines()]


def injecting_kernel():
    def k(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = a[i] + 1.0
    return named(k, "evil\n" + INJECTED + "\n// \\")


def test_a_name_with_newlines_cannot_inject_code(runtime):
    ck = enigma.compile(injecting_kernel())
    assert ck.kernel_name == "evil\n" + INJECTED + "\n// \\"  # the user's name, as given
    for backend in BACKENDS:
        src = ck.source(backend)
        assert not any("__builtin_trap()" in line or "injected =" in line for line in code_lines(src)), backend
        for line in src.splitlines():  # a comment never continues onto the next line
            assert not line.rstrip().endswith("\\") or "//" not in line, (backend, line)
    a = np.arange(16, dtype=np.float32)
    got = np.frombuffer(runtime.execute(ck, [a], a.nbytes, (16, 1, 1), (16, 1, 1)), np.float32)
    assert np.array_equal(got, a + 1)


@pytest.mark.parametrize("name", ["my kernel", "Ä", "3d-stencil", "kernel", "en_helper", "a\tb"])
def test_entry_points_are_identifiers(name):
    def k(a: enigma.f32, out: enigma.f32):
        out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid]
    ck = enigma.compile(named(k, name), emit_only=True)
    msl = re.search(r"kernel void (\S+)\(", ck.source("metal")).group(1)
    cuda = re.search(r'extern "C" __global__ void (\S+)\(', ck.source("cuda")).group(1)
    assert IDENT.match(msl) and IDENT.match(cuda), (msl, cuda)
    assert ck.kernel_name == name


def test_parameters_that_clean_to_the_same_identifier(runtime):
    # Ä and Ö are distinct Python identifiers; neither is a C identifier.
    def k(Ä: enigma.f32, Ö: enigma.f32, ÄÖ: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = Ä[i] * 100.0 + Ö[i] * 10.0 + ÄÖ[i]
    ck = enigma.compile(enigma.kernel(k))
    for backend in BACKENDS:
        src = ck.source(backend)
        assert "Ä" not in "".join(code_lines(src)) and "Ö" not in "".join(code_lines(src)), backend
    n = 40
    a, b, c = (np.full(n, v, np.float32) for v in (1, 2, 3))
    got = np.frombuffer(runtime.execute(ck, [a, b, c], a.nbytes, (n, 1, 1), (8, 1, 1)), np.float32)
    assert np.array_equal(got, np.full(n, 123, np.float32))


def test_errors_name_the_kernel_as_the_user_wrote_it(runtime):
    ck = enigma.compile(injecting_kernel())
    with pytest.raises(RuntimeError) as e:
        runtime.execute(ck, [np.zeros(4, np.int32)], 16, (4, 1, 1), (4, 1, 1))
    assert "kernel 'evil\n" + INJECTED in str(e.value)


def test_dump_file_names_stay_in_the_folder(tmp_path, monkeypatch):
    dump = tmp_path / "dump"
    monkeypatch.setenv("ENIGMA_SOURCE_DUMP_DIR", str(dump))

    def k(a: enigma.f32, out: enigma.f32):
        out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid]
    enigma.compile(named(k, "../../escaped/../x"), emit_only=True)
    assert sorted(os.listdir(tmp_path)) == ["dump"]
    files = os.listdir(dump)
    assert files and all("/" not in f and not f.startswith(".") for f in files), files


def test_generated_msl_with_hostile_names_type_checks(tmp_path):
    """The MSL of the hostile names passes the Metal declarations check."""
    checker = os.path.join(ROOT, "scripts", "check-msl-sources.py")
    if not os.path.exists(checker):
        pytest.skip("no MSL checker")

    def k(Ä: enigma.f32, Ö: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = Ä[i] - Ö[i]
    for i, kd in enumerate([injecting_kernel(), named(k, "two words")]):
        (tmp_path / f"k{i}.metal").write_text(enigma.compile(kd, emit_only=True).source("metal"))
    r = subprocess.run([sys.executable, checker, str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
