"""The kernel cache trusts only itself (docs/runtime.md, "Cache security"):
nothing another user (or a symbolic link, or a FIFO) put into it is loaded,
and a cache it cannot trust or use degrades to a private folder with a
warning, never to a failure.

Each scenario runs a kernel in a child process against its own cache folder.
A planted ``kernel.so`` announces itself by writing a marker file from a
constructor when loaded, so "not loaded" is checked directly."""
import glob
import os
import shutil
import stat
import subprocess
import textwrap

import pytest

import cache_child
from cache_child import env_for, pristine_cache, write_child

CHILD = textwrap.dedent("""\
    import numpy as np
    import enigma

    @enigma.kernel
    def trusted_poly(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = a[i] * 2.0 + 0.5

    rt = enigma.MetalRuntime()
    a = np.arange(300, dtype=np.float32)
    got = np.frombuffer(rt.execute(enigma.compile(trusted_poly), [a], a.nbytes, (300, 1, 1), (64, 1, 1)), np.float32)
    print("OK" if np.array_equal(got, a * np.float32(2) + np.float32(0.5)) else "MISMATCH")
""")

OTHER_UID = 4242


@pytest.fixture(autouse=True)
def cpu_only(is_cpu):
    if not is_cpu:
        pytest.skip("the cache of compiled CPU kernels (shared libraries) is specific to the CPU device")


# The child runs with every warning shown, so the cache's warnings reach its stderr.
CHILD_FLAGS = ("-W", "always")


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    return write_child(tmp_path_factory, "safety-child", CHILD)


@pytest.fixture(scope="module")
def pristine(child, tmp_path_factory):
    return pristine_cache(child, tmp_path_factory, "safety-pristine", python_flags=CHILD_FLAGS)


@pytest.fixture(scope="module")
def evil_library(tmp_path_factory):
    """(path of a shared library whose constructor writes a marker, marker path)."""
    d = tmp_path_factory.mktemp("evil")
    marker = d / "marker"
    src = d / "evil.c"
    src.write_text(textwrap.dedent(f"""\
        #include <stdio.h>
        __attribute__((constructor)) static void planted(void) {{
          FILE* f = fopen("{marker}", "w");
          if (f) {{ fputs("loaded", f); fclose(f); }}
        }}
        """))
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the planted library")
    lib = d / "evil.so"
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(lib)], check=True, timeout=120)
    return lib, marker


def run_child(child, env, cwd=None):
    return cache_child.run_child(child, env, cwd=cwd, python_flags=CHILD_FLAGS)


def only_entry(root):
    found = [p for p in glob.glob(os.path.join(str(root), "??", "*")) if os.path.isdir(p) or os.path.islink(p)]
    assert len(found) == 1, found
    return found[0]


def plant(entry, library, owner=None):
    """Replaces the entry's kernel.so by `library`, with a checksum record that
    matches it exactly (what an attacker who knows the format would write)."""
    import hashlib
    data = library.read_bytes()
    key = os.path.basename(entry)
    so = os.path.join(entry, "kernel.so")
    os.remove(so)
    with open(so, "wb") as f:
        f.write(data)
    with open(so + ".sha256", "w") as f:
        f.write(f"enigma-artifact-v2 key={key} file=kernel.so sha256={hashlib.sha256(data).hexdigest()} "
                f"size={len(data)}\n")
    if owner is not None:
        for p in (so, so + ".sha256", entry):
            os.chown(p, owner, owner)


def test_everything_the_cache_creates_is_private(child, tmp_path):
    cache = tmp_path / "cache"
    run_child(child, env_for(cache))
    for dirpath, dirnames, filenames in os.walk(cache):
        for d in dirnames:
            assert stat.S_IMODE(os.lstat(os.path.join(dirpath, d)).st_mode) == 0o700, d
        for f in filenames:
            mode = stat.S_IMODE(os.lstat(os.path.join(dirpath, f)).st_mode)
            assert mode & 0o077 == 0, (f, oct(mode))
    assert stat.S_IMODE(os.lstat(cache).st_mode) == 0o700


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give files to another user")
def test_an_entry_planted_by_another_user_is_not_loaded(child, pristine, evil_library, tmp_path):
    lib, marker = evil_library
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    entry = only_entry(cache)
    plant(entry, lib, owner=OTHER_UID)
    run_child(child, env_for(cache))
    assert not marker.exists(), "the planted library was loaded"
    assert os.stat(os.path.join(entry, "kernel.so")).st_uid == os.geteuid()  # discarded and rebuilt as ours


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give files to another user")
def test_a_root_owned_by_another_user_is_refused(child, pristine, evil_library, tmp_path):
    lib, marker = evil_library
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    plant(only_entry(cache), lib)
    for dirpath, dirnames, filenames in os.walk(cache):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), OTHER_UID, OTHER_UID)
    os.chown(cache, OTHER_UID, OTHER_UID)
    r = run_child(child, env_for(cache))
    assert not marker.exists(), "the planted library was loaded"
    assert "RuntimeWarning" in r.stderr and "owned by uid 4242" in r.stderr, r.stderr


def test_a_world_writable_root_is_refused_with_a_warning(child, pristine, evil_library, tmp_path):
    lib, marker = evil_library
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    entry = only_entry(cache)
    plant(entry, lib)  # what anyone could have done to a world-writable cache
    os.chmod(cache, 0o777)
    r = run_child(child, env_for(cache))
    assert not marker.exists(), "the planted library was loaded"
    assert "RuntimeWarning" in r.stderr and "writable by group or others" in r.stderr, r.stderr
    assert sorted(os.listdir(cache)) == sorted(os.listdir(pristine)), "nothing may be written into it"


def test_a_symlinked_entry_is_not_followed(child, pristine, evil_library, tmp_path):
    lib, marker = evil_library
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    entry = only_entry(cache)
    outside = tmp_path / "outside"
    shutil.copytree(entry, outside)
    plant(str(outside), lib)
    os.rename(outside, tmp_path / os.path.basename(entry))  # the record names the entry's key
    shutil.rmtree(entry)
    os.symlink(tmp_path / os.path.basename(entry), entry)
    run_child(child, env_for(cache))
    assert not marker.exists(), "the library behind the link was loaded"
    assert not os.path.islink(entry)


def test_a_fifo_in_an_entry_does_not_hang(child, pristine, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    so = os.path.join(only_entry(cache), "kernel.so")
    os.remove(so)
    os.mkfifo(so)
    run_child(child, env_for(cache))  # the timeout of run_child catches a hang
    assert stat.S_ISREG(os.lstat(os.path.join(only_entry(cache), "kernel.so")).st_mode)


def test_a_relative_cache_path_starting_with_a_dash(child, tmp_path):
    run_child(child, env_for("-cache"), cwd=str(tmp_path))
    only_entry(tmp_path / "-cache")


def test_no_home_means_a_private_folder_removed_at_exit(child, tmp_path):
    env = env_for(None, TMPDIR=str(tmp_path))
    for name in ("HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)
    run_child(child, env)
    assert os.listdir(tmp_path) == [], "no predictable shared folder, and the private one is gone"
