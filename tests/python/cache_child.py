"""Child processes for the tests of the compiled-kernel cache: each scenario
runs a small script on the CPU device against a cache folder of its own, so
nothing depends on (or pollutes) the default cache."""
import subprocess
import sys

from conftest import subprocess_env


def env_for(cache_dir, **extra) -> dict:
    """The child's environment: the CPU device, `cache_dir` as ENIGMA_CACHE_DIR
    (None: the default location), and no emit-only or debug mode inherited."""
    env = subprocess_env(ENIGMA_DEVICE="cpu", **extra)
    for name in ("ENIGMA_CACHE_DIR", "ENIGMA_EMIT_ONLY", "ENIGMA_DEBUG"):
        env.pop(name, None)
    if cache_dir is not None:
        env["ENIGMA_CACHE_DIR"] = str(cache_dir)
    return env


def run_child(child, env, cwd=None, python_flags=()):
    """Runs the script `child`; it must exit 0 and print OK last."""
    r = subprocess.run([sys.executable, *python_flags, child], env=env, capture_output=True, text=True,
                       timeout=300, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("OK"), r.stdout + r.stderr
    return r


def write_child(tmp_path_factory, folder, text) -> str:
    """Writes the script `text` into a fresh folder and returns its path."""
    path = tmp_path_factory.mktemp(folder) / "child.py"
    path.write_text(text)
    return str(path)


def pristine_cache(child, tmp_path_factory, folder, python_flags=()):
    """A fresh cache folder holding the one valid entry that running `child` stores."""
    cache = tmp_path_factory.mktemp(folder) / "cache"
    run_child(child, env_for(cache), python_flags=python_flags)
    return cache
