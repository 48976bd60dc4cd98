"""Ctrl-C (SIGINT) stops a CPU dispatch between pieces of threadgroups and a
compile by killing the compiler; KeyboardInterrupt is raised and the runtime
stays usable (docs/runtime.md, "Interrupts").

A child process prints READY just before the long call; the test then sends
it SIGINT, as a terminal's Ctrl-C would, and reads what it reports. Without
the interrupt the child would run for hours (the run's timeout fails it)."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import subprocess_env

LONG_DISPATCH = textwrap.dedent("""\
    import numpy as np
    import enigma

    @enigma.kernel
    def spin(a: enigma.f32, n: enigma.Scalar(enigma.i32), out: enigma.f32):
        i = enigma.thread_position_in_grid
        with enigma.for_range(0, n, init=[a[i]]) as (j, c):
            c[0] = c[0] * 0.5 + 1.0
        out[i] = c[0]

    ck = enigma.compile(spin)
    rt = enigma.MetalRuntime()
    a = np.ones(1 << 22, np.float32)
    print("READY", flush=True)
    try:
        rt.execute(ck, [a], a.nbytes, (a.size, 1, 1), (256, 1, 1), scalars=[1 << 20])
        print("FINISHED", flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    # The runtime is still usable: the same kernel, a small grid.
    small = np.arange(64, dtype=np.float32)
    out = np.frombuffer(rt.execute(ck, [small], small.nbytes, (64, 1, 1), (32, 1, 1), scalars=[2]), np.float32)
    print("OK" if np.array_equal(out, (small * 0.5 + 1) * 0.5 + 1) else "MISMATCH", flush=True)
""")

LONG_COMPILE = textwrap.dedent("""\
    import os
    import enigma

    @enigma.kernel
    def never_built(a: enigma.f32, out: enigma.f32):
        out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid] * 3.0

    print("READY", flush=True)
    try:
        enigma.compile(never_built)
        print("FINISHED", flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    pid = int(open(os.environ["SLOW_CXX_PIDFILE"]).read())
    try:
        os.kill(pid, 0)
        print("COMPILER ALIVE", flush=True)
    except ProcessLookupError:
        print("OK", flush=True)
""")

# A "compiler" that never finishes: it records its pid, then sleeps.
SLOW_CXX = textwrap.dedent("""\
    #!/bin/sh
    if [ "$1" = "--version" ]; then echo "slow-cxx 1.0"; exit 0; fi
    echo $$ > "$SLOW_CXX_PIDFILE"
    exec sleep 3600
""")


@pytest.fixture(autouse=True)
def cpu_only(is_cpu):
    if not is_cpu:
        pytest.skip("interrupting dispatches and compiler processes is specific to the CPU device")


# A process started with SIGINT ignored (a background job of a shell without
# job control, some CI runners) passes that on, and Python then installs no
# handler: the child takes Python's default handler back, as a terminal gives it.
RESTORE_SIGINT = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"


def interrupted_child(tmp_path, script, env, wait_s):
    path = tmp_path / "child.py"
    path.write_text(RESTORE_SIGINT + script)
    p = subprocess.Popen([sys.executable, str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        # Give it time to be deep inside the call (a compile, or the pool's chunks).
        try:
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out.split(), err


@pytest.mark.parametrize("threads", ["1", "default"])
def test_ctrl_c_stops_a_cpu_dispatch(tmp_path, threads):
    env = subprocess_env(ENIGMA_DEVICE="cpu")
    if threads != "default":
        env["ENIGMA_NUM_THREADS"] = threads
    code, words, err = interrupted_child(tmp_path, LONG_DISPATCH, env, 1.0)
    assert code == 0, err
    assert words == ["INTERRUPTED", "OK"], (words, err)


def test_ctrl_c_kills_the_compiler_and_leaves_the_cache_clean(tmp_path):
    cxx = tmp_path / "slow-cxx"
    cxx.write_text(SLOW_CXX)
    cxx.chmod(0o755)
    cache = tmp_path / "cache"
    env = subprocess_env(ENIGMA_DEVICE="cpu", CXX=str(cxx), SLOW_CXX_PIDFILE=str(tmp_path / "pid"),
                         ENIGMA_CACHE_DIR=str(cache))
    env.pop("ENIGMA_EMIT_ONLY", None)
    code, words, err = interrupted_child(tmp_path, LONG_COMPILE, env, 1.0)
    assert code == 0, err
    assert words == ["INTERRUPTED", "OK"], (words, err)
    # No entry, no half-built private folder.
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(cache) for f in files]
    assert leftovers == [], leftovers
    assert sorted(os.listdir(cache)) in ([], ["tmp"]) and (not (cache / "tmp").exists() or
                                                          os.listdir(cache / "tmp") == [])
