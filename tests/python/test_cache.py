"""The disk cache of compiled CPU kernels (SEMANTICS 6): miss then hit across
processes, corrupt entries rebuilt, concurrent writers, ENIGMA_CACHE_DIR.

Each scenario runs kernels in child processes with a fresh cache directory,
so nothing here depends on (or pollutes) the default cache."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cache_child import env_for, pristine_cache, run_child, write_child

CHILD = textwrap.dedent("""\
    import sys
    import numpy as np
    import enigma

    @enigma.kernel
    def cached_poly(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        x = a[i]
        out[i] = (x * 3.0 + 1.25) * x - 0.5

    rt = enigma.MetalRuntime()
    assert rt.device_capabilities().backend == "cpu", rt.device
    a = np.arange(1000, dtype=np.float32) / 7
    raw = rt.execute(enigma.compile(cached_poly), [a], a.nbytes, (a.size, 1, 1), (128, 1, 1))
    got = np.frombuffer(raw, np.float32)
    want = (a * np.float32(3.0) + np.float32(1.25)) * a - np.float32(0.5)
    print("OK" if np.array_equal(got, want) else "MISMATCH")
""")


@pytest.fixture(autouse=True)
def cpu_only(is_cpu):
    if not is_cpu:
        pytest.skip("the disk cache of compiled CPU kernels is specific to the CPU device")


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    return write_child(tmp_path_factory, "child", CHILD)


@pytest.fixture(scope="module")
def pristine(child, tmp_path_factory):
    """A cache directory holding the child's one valid entry."""
    return pristine_cache(child, tmp_path_factory, "pristine")


def entries(root):
    """{relative entry dir: (inode, mtime_ns) of its kernel.so} of a cache root."""
    out = {}
    root = str(root)
    if not os.path.isdir(root):
        return out
    for d in sorted(os.listdir(root)):
        sub = os.path.join(root, d)
        if len(d) != 2 or not os.path.isdir(sub):
            continue
        for key in os.listdir(sub):
            so = os.path.join(sub, key, "kernel.so")
            st = os.stat(so)
            out[os.path.join(d, key)] = (st.st_ino, st.st_mtime_ns)
    return out


def only_entry(root):
    e = entries(root)
    assert len(e) == 1, e
    (rel, ident), = e.items()
    return os.path.join(str(root), rel), ident


def test_miss_then_hit(child, tmp_path):
    cache = tmp_path / "cache"
    assert entries(cache) == {}
    run_child(child, env_for(cache))                      # miss: compiled and published
    path, ident = only_entry(cache)
    assert {"kernel.so", "kernel.so.sha256"} <= set(os.listdir(path))
    run_child(child, env_for(cache))                      # hit in a fresh process: nothing rebuilt
    assert only_entry(cache) == (path, ident)
    run_child(child, env_for(cache))
    assert only_entry(cache) == (path, ident)


@pytest.mark.parametrize("damage", ["truncate", "overwrite_same_size", "bad_checksum", "missing_checksum",
                                    "missing_library"])
def test_corrupt_entry_is_rebuilt(child, pristine, tmp_path, damage):
    cache = tmp_path / "cache"
    shutil.copytree(pristine, cache)
    path, ident = only_entry(cache)
    so = os.path.join(path, "kernel.so")
    sha = so + ".sha256"
    size = os.path.getsize(so)
    if damage == "truncate":
        with open(so, "r+b") as f:
            f.truncate(size // 2)
    elif damage == "overwrite_same_size":
        with open(so, "r+b") as f:
            f.seek(size // 3)
            f.write(b"\xde\xad\xbe\xef" * 64)
    elif damage == "bad_checksum":
        with open(sha, "w") as f:
            f.write("enigma-artifact-v1 sha256=" + "0" * 64 + f" size={size}\n")
    elif damage == "missing_checksum":
        os.remove(sha)
    else:
        os.remove(so)
    run_child(child, env_for(cache))                      # detected, discarded, rebuilt; right results
    new_path, new_ident = only_entry(cache)
    assert new_path == path                               # same key
    assert new_ident != ident or damage == "bad_checksum"
    with open(sha) as f:
        assert f.read().startswith("enigma-artifact-v2 key=")
    assert os.path.getsize(so) == size
    if damage == "truncate":
        run_child(child, env_for(cache))                  # and the rebuilt entry is a hit
        assert only_entry(cache) == (new_path, new_ident)


def test_concurrent_processes(child, tmp_path):
    cache = tmp_path / "cache"
    env = env_for(cache)
    procs = [subprocess.Popen([sys.executable, child], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert out.strip().endswith("OK"), out + err
    only_entry(cache)                                     # exactly one entry
    tmp = os.path.join(str(cache), "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []  # the loser's private directory is gone


def test_cache_dir_locations(child, tmp_path):
    """ENIGMA_CACHE_DIR is honoured; without it, $XDG_CACHE_HOME/enigma."""
    xdg = tmp_path / "xdg"
    explicit = tmp_path / "explicit"
    run_child(child, env_for(explicit, XDG_CACHE_HOME=str(xdg)))
    only_entry(explicit)
    assert not xdg.exists()
    run_child(child, env_for(None, XDG_CACHE_HOME=str(xdg)))
    only_entry(xdg / "enigma")


def test_cache_dir_change_within_a_process(tmp_path, monkeypatch, runtime):
    """The cache root is read per compile, so setting ENIGMA_CACHE_DIR in a running process applies."""
    import uuid

    import enigma
    tag = float(uuid.uuid4().int % 100000) + 0.25

    @enigma.kernel
    def moved(a: enigma.f32, out: enigma.f32):
        out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid] - tag

    monkeypatch.setenv("ENIGMA_CACHE_DIR", str(tmp_path / "here"))
    ck = enigma.compile(moved)
    only_entry(tmp_path / "here")
    a = np.arange(5, dtype=np.float32)
    got = np.frombuffer(runtime.execute(ck, [a], 20, (5, 1, 1), (5, 1, 1)), np.float32)
    assert np.array_equal(got, a - np.float32(tag))
