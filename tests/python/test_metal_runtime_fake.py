"""MetalRuntime on the fake Metal: src/runtime/metal/metal_device.mm compiled
on Linux against tests/metal_host/Metal/Metal.h and run on the fake Metal of
tests/metal_host (docs/metal.md). The fake records every Metal call the device
makes and computes results with the CPU backend, so these tests check the
host side of the Metal backend (bindings, scalars, sizes, errors, timing,
ownership) through the normal Python API.

Runs only in a build with ENIGMA_METAL_FAKE=ON and with the environment
variable ENIGMA_METAL_FAKE set to a GPU family (scripts/test.sh does both):
    ENIGMA_METAL_FAKE=apple9 ENIGMA_DEVICE=metal pytest tests/python/test_metal_runtime_fake.py
"""
import gc
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import enigma
from enigma import _core

fake = getattr(_core, "_fake_metal", None)
if fake is None or not fake.active():
    pytest.skip("needs a build with ENIGMA_METAL_FAKE=ON and ENIGMA_METAL_FAKE=<family> in the environment "
                "(scripts/test.sh runs it so)", allow_module_level=True)

# The objects the device keeps for the life of the process: the +1 device
# from MTLCreateSystemDefaultDevice and its command queue.
PROCESS_OBJECTS = {"FakeMTLDevice": 1, "FakeMTLCommandQueue": 1}
STATUS_COMPLETED, STATUS_ERROR = 4, 5
MSL_3_0, MSL_3_1 = (3 << 16) + 0, (3 << 16) + 1
MATH_MODE_SAFE, MATH_FUNCTIONS_PRECISE = 0, 1


@pytest.fixture(scope="module")
def rt():
    runtime = enigma.MetalRuntime(device="metal")
    assert runtime.device_capabilities().backend == "metal"
    return runtime


@pytest.fixture(autouse=True)
def fake_objects_released():
    """Every test leaves the fake objects alive as it found them and misuses
    none: each new.../alloc object of the device was released exactly once.
    (Kernels compiled by other test modules may keep their pipelines; the
    exact count is checked in a fresh process below.)"""
    gc.collect()
    fake.clear_records()
    misuse_before = fake.misuse()
    live_before = fake.live_objects()
    assert live_before.items() >= PROCESS_OBJECTS.items()
    yield
    gc.collect()
    assert fake.misuse() == misuse_before
    assert fake.live_objects() == live_before


@enigma.kernel
def vadd(a: enigma.f32, b: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i] + b[i]


@enigma.kernel
def axpb(x: enigma.f32, alpha: enigma.Scalar(enigma.f32), beta: enigma.Scalar(enigma.i64),
         flag: enigma.Scalar(enigma.b1), n: enigma.Scalar(enigma.u16), out: enigma.f32):
    i = enigma.thread_position_in_grid
    with enigma.if_(enigma.cmp_ult(i, n)):
        with enigma.if_(flag):
            out[i] = alpha * x[i] + enigma.metal_cast(beta, "float")


@enigma.kernel
def sum_and_diff(a: enigma.i32, b: enigma.i32, total: enigma.i32, diff: enigma.i32):
    i = enigma.thread_position_in_grid
    total[i] = a[i] + b[i]
    diff[i] = a[i] - b[i]


@enigma.kernel
def reverse_in_group(a: enigma.f32, out: enigma.f32):
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    buf = enigma.threadgroup_alloc("float", 64)
    buf[lid] = a[tid]
    enigma.barrier()
    out[tid] = buf[63 - lid]


@enigma.kernel
def scaled(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = (a[i] * enigma.function_constant("float", 0)
              + enigma.metal_cast(enigma.function_constant("int", 1), "float"))


@enigma.kernel
def bf16_copy(a: enigma.bf16, out: enigma.bf16):
    i = enigma.thread_position_in_grid
    out[i] = a[i]


def only_command_buffer():
    cbs = fake.records()["command_buffers"]
    assert len(cbs) == 1
    return cbs[0]


def test_metal_runtime_execute_binds_buffers_in_order(rt):
    n = 1000
    a = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    b = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    # Unchecked: the kernel's own bindings only (checked memory adds two, below).
    raw = rt.execute(enigma.compile(vadd, bounds_check=False), [a, b], n * 4, (n, 1, 1), (256, 1, 1))
    assert np.array_equal(np.frombuffer(raw, np.float32), a + b)
    rec = fake.records()
    lib, = rec["libraries"]
    assert lib["compiled"] and "kernel void vadd(" in lib["source"]
    assert lib["language_version"] == MSL_3_0
    assert rec["functions"] == [("vadd", True)]
    assert rec["pipelines"] == ["vadd"]
    assert rec["buffer_lengths"] == [n * 4] * 3
    cb = only_command_buffer()
    assert cb["encoder_ended"] and cb["committed"] and cb["waited"]
    assert cb["status"] == STATUS_COMPLETED and cb["error_domain"] == ""
    d, = cb["dispatches"]
    assert d["function"] == "vadd"
    # inputs, then the output, at indices 0..2, whole buffers
    assert d["buffers"] == [(0, 0, n * 4, 0), (1, 0, n * 4, 1), (2, 0, n * 4, 2)]
    assert d["bytes"] == [] and d["threadgroup_memory"] == []
    assert d["grid"] == (n, 1, 1) and d["threads"] == (256, 1, 1)


def test_metal_runtime_compiles_with_ieee_math(rt):
    rt.execute(enigma.compile(vadd), [np.ones(4, np.float32)] * 2, 16, (4, 1, 1), (4, 1, 1))
    lib, = fake.records()["libraries"]
    # fast math off: both the arithmetic and the precise math functions
    assert lib["math_mode"] == MATH_MODE_SAFE
    assert lib["math_functions"] == MATH_FUNCTIONS_PRECISE


def test_metal_runtime_scalars_are_set_bytes_of_their_size(rt):
    n = 100
    x = np.arange(n, dtype=np.float32)
    raw = rt.execute(enigma.compile(axpb, bounds_check=False), [x], n * 4, (n, 1, 1), (32, 1, 1),
                     scalars=[2.5, -7, True, 60])
    out = np.frombuffer(raw, np.float32)
    expect = np.where(np.arange(n) < 60, 2.5 * x - 7, 0).astype(np.float32)
    assert np.array_equal(out, expect)
    d, = only_command_buffer()["dispatches"]
    assert d["bytes"] == [(1, struct.pack("<f", 2.5)), (2, struct.pack("<q", -7)), (3, b"\x01"),
                          (4, struct.pack("<H", 60))]
    assert [(i, off) for i, off, _, _ in d["buffers"]] == [(0, 0), (5, 0)]


def test_metal_runtime_several_outputs(rt):
    a = np.arange(50, dtype=np.int32)
    b = np.arange(50, dtype=np.int32)[::-1].copy()
    total, diff = rt.execute(enigma.compile(sum_and_diff, bounds_check=False), [a, b], None, (50, 1, 1), (16, 1, 1),
                             output_sizes=[200, 200])
    assert np.frombuffer(total, np.int32).tolist() == (a + b).tolist()
    assert np.frombuffer(diff, np.int32).tolist() == (a - b).tolist()
    d, = only_command_buffer()["dispatches"]
    assert [i for i, *_ in d["buffers"]] == [0, 1, 2, 3]
    assert d["grid"] == (50, 1, 1) and d["threads"] == (16, 1, 1)


def test_metal_runtime_checked_memory_binds_lengths_and_an_error_record(rt):
    """Checked memory (docs/metal.md): after the N parameters, the buffers'
    lengths in elements as setBytes at index N and a zeroed 8-uint error
    record at N + 1, one per dispatch, released after it."""
    n = 100
    a = np.arange(n, dtype=np.float32)
    raw = rt.execute(enigma.compile(vadd), [a, a[:60]], n * 4, (n, 1, 1), (32, 1, 1))
    assert np.array_equal(np.frombuffer(raw, np.float32), a + np.concatenate([a[:60], np.zeros(40, np.float32)]))
    d, = only_command_buffer()["dispatches"]
    assert [i for i, *_ in d["buffers"]] == [0, 1, 2, 4]
    assert d["bytes"] == [(3, struct.pack("<4Q", n, 60, n, 0))]
    assert fake.records()["buffer_lengths"] == [n * 4, 60 * 4, n * 4, 32]
    assert "constant ulong* en_lens [[buffer(3)]]" in fake.records()["libraries"][0]["source"]


def test_metal_runtime_prepare_dispatch_timed_read_output(rt):
    n = 256
    a = np.arange(n, dtype=np.float32)
    prepared = rt.prepare(enigma.compile(vadd, bounds_check=False), [a, a], output_size=n * 4)
    assert prepared.dispatch(grid=(n, 1, 1), threads=(64, 1, 1)) is None
    fake.set_next_gpu_times(start=100.0, end=100.0025)
    ms = prepared.dispatch_timed(grid=(n, 1, 1), threads=(128, 1, 1))
    assert ms == pytest.approx(2.5, rel=1e-6)            # (GPUEndTime - GPUStartTime) in milliseconds
    untimed = prepared.dispatch_timed(grid=(n, 1, 1), threads=(128, 1, 1))
    assert untimed > 0                                   # the fake's own clock around the CPU run
    assert np.array_equal(np.frombuffer(prepared.read_output(), np.float32), a + a)
    rec = fake.records()
    assert len(rec["libraries"]) == 1 and len(rec["buffer_lengths"]) == 3   # compiled and allocated once
    cbs = rec["command_buffers"]
    assert len(cbs) == 3
    assert [cb["dispatches"][0]["threads"] for cb in cbs] == [(64, 1, 1), (128, 1, 1), (128, 1, 1)]
    assert all(cb["dispatches"][0]["buffers"] == cbs[0]["dispatches"][0]["buffers"] for cb in cbs)
    assert cbs[1]["gpu_start"] == 100.0 and cbs[1]["gpu_end"] == 100.0025
    prepared.release()


def test_metal_runtime_multidimensional_grid_and_partial_groups(rt):
    @enigma.kernel
    def index2d(out: enigma.u32):
        x = enigma.thread_position_in_grid_xyz("x")
        y = enigma.thread_position_in_grid_xyz("y")
        out[y * 13 + x] = y * 1000 + x
    raw = rt.execute(enigma.compile(index2d), [], 13 * 7 * 4, (13, 7, 1), (8, 4, 1))
    got = np.frombuffer(raw, np.uint32).reshape(7, 13)
    assert np.array_equal(got, np.add.outer(np.arange(7) * 1000, np.arange(13)).astype(np.uint32))
    d, = only_command_buffer()["dispatches"]
    assert d["grid"] == (13, 7, 1) and d["threads"] == (8, 4, 1)


def test_metal_runtime_threadgroup_memory(rt):
    a = np.arange(256, dtype=np.float32)
    raw = rt.execute(enigma.compile(reverse_in_group), [a], 256 * 4, (256, 1, 1), (64, 1, 1))
    expect = a.reshape(4, 64)[:, ::-1].reshape(-1)
    assert np.array_equal(np.frombuffer(raw, np.float32), expect)
    lib, = fake.records()["libraries"]
    # the array is declared in the kernel (static size): nothing to set at dispatch
    assert "threadgroup float" in lib["source"]
    d, = only_command_buffer()["dispatches"]
    assert d["threadgroup_memory"] == []


def test_metal_runtime_function_constants_specialise_the_source(rt):
    ck = enigma.compile(scaled)
    a = np.arange(16, dtype=np.float32)
    out3 = rt.execute(ck, [a], 64, (16, 1, 1), (16, 1, 1), constants={0: ("float", 3.0), 1: ("int", 5)})
    out2 = rt.execute(ck, [a], 64, (16, 1, 1), (16, 1, 1), constants={0: ("float", 2.0), 1: ("int", -1)})
    assert np.array_equal(np.frombuffer(out3, np.float32), 3 * a + 5)
    assert np.array_equal(np.frombuffer(out2, np.float32), 2 * a - 1)
    libs = fake.records()["libraries"]
    # one library per set of values, each with the values in its source
    # (so the plain newFunctionWithName: is right: nothing left to specialise)
    assert len(libs) == 2 and libs[0]["source"] != libs[1]["source"]
    assert all("function_constant" not in lib["source"] for lib in libs)
    rt.execute(ck, [a], 64, (16, 1, 1), (16, 1, 1), constants={0: ("float", 3.0), 1: ("int", 5)})
    assert len(fake.records()["libraries"]) == 2        # the first program is reused
    del ck


def test_metal_runtime_bfloat_needs_msl_3_1(rt):
    a = np.array([1.0, -2.5, 3.25, 0.0], np.float32)
    bits = (a.view(np.uint32) >> 16).astype(np.uint16)
    raw = rt.execute(enigma.compile(bf16_copy), [bits], 8, (4, 1, 1), (4, 1, 1))
    assert np.frombuffer(raw, np.uint16).tolist() == bits.tolist()
    lib, = fake.records()["libraries"]
    assert lib["language_version"] == MSL_3_1


def test_metal_runtime_dispatch_error_has_kernel_grid_threads_code_description(rt):
    a = np.arange(64, dtype=np.float32)
    prepared = rt.prepare(enigma.compile(vadd), [a, a], output_size=256)
    fake.fail_next_command_buffer(domain="MTLCommandBufferErrorDomain", code=3,
                                  description="Caused GPU Address Fault Error (0000000b:kIOGPUCommandBufferCallback)")
    with pytest.raises(RuntimeError) as e:
        prepared.dispatch(grid=(64, 1, 1), threads=(32, 1, 1))
    msg = str(e.value)
    assert "dispatch failed: Caused GPU Address Fault Error" in msg
    assert "kernel: vadd" in msg and "grid: (64, 1, 1)" in msg and "threads: (32, 1, 1)" in msg
    assert "device: metal" in msg and "error: MTLCommandBufferErrorDomain code 3" in msg
    cb, = fake.records()["command_buffers"]
    assert cb["status"] == STATUS_ERROR and cb["waited"]
    # the prepared kernel stays usable
    prepared.dispatch(grid=(64, 1, 1), threads=(32, 1, 1))
    assert np.array_equal(np.frombuffer(prepared.read_output(), np.float32), a + a)
    prepared.release()


def test_metal_runtime_status_error_without_nserror(rt):
    fake.fail_next_command_buffer(domain="", code=0, description="")
    with pytest.raises(RuntimeError) as e:
        rt.execute(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, 32, (8, 1, 1), (8, 1, 1))
    msg = str(e.value)
    assert "kernel: vadd" in msg and "error: -2" in msg and "GPU execution error" in msg


def test_metal_runtime_timed_dispatch_error(rt):
    prepared = rt.prepare(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, output_size=32)
    fake.fail_next_command_buffer(domain="MTLCommandBufferErrorDomain", code=2, description="Timed out")
    with pytest.raises(RuntimeError, match=r"(?s)Timed out.*kernel: vadd.*MTLCommandBufferErrorDomain code 2"):
        prepared.dispatch_timed(grid=(8, 1, 1), threads=(8, 1, 1))
    prepared.release()


def test_metal_runtime_no_command_buffer(rt):
    fake.fail_next_command_buffer_creation()
    with pytest.raises(RuntimeError) as e:
        rt.execute(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, 32, (8, 1, 1), (8, 1, 1))
    msg = str(e.value)
    assert "kernel: vadd" in msg and "error: -1" in msg and "failed to create command buffer" in msg


def test_metal_runtime_library_compile_failure_shows_the_compiler_log(rt):
    log = "program_source:12:9: error: use of undeclared identifier 'en_v3'\n    out[i] = en_v3;\n        ^"
    fake.fail_next_library(log)
    with pytest.raises(RuntimeError) as e:
        rt.execute(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, 32, (8, 1, 1), (8, 1, 1))
    msg = str(e.value)
    assert "kernel 'vadd'" in msg and "the Metal compiler rejected the generated MSL" in msg
    assert log in msg
    assert fake.records()["command_buffers"] == []       # nothing was dispatched
    # a failure is not cached: the next compile succeeds
    raw = rt.execute(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, 32, (8, 1, 1), (8, 1, 1))
    assert np.frombuffer(raw, np.float32).tolist() == [2.0] * 8


def test_metal_runtime_pipeline_failure(rt):
    fake.fail_next_pipeline("Compiler encountered an internal error")
    with pytest.raises(RuntimeError, match=r"kernel 'vadd'.*failed to create compute pipeline: Compiler encountered"):
        rt.execute(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, 32, (8, 1, 1), (8, 1, 1))


def test_metal_runtime_buffer_allocation_failure(rt):
    fake.fail_next_buffer_allocation()
    with pytest.raises(RuntimeError, match="metal: failed to allocate a buffer of 32 bytes"):
        rt.execute(enigma.compile(vadd), [np.ones(8, np.float32)] * 2, 32, (8, 1, 1), (8, 1, 1))


def test_metal_runtime_buffers_are_zeroed(rt):
    """New Metal buffers hold garbage (the fake fills them with 0xA5); the
    device zeroes outputs itself, which a kernel that reads its output sees."""
    @enigma.kernel
    def accumulate(a: enigma.i32, out: enigma.i32):
        i = enigma.thread_position_in_grid
        out[i] = out[i] + a[i]
    a = np.arange(16, dtype=np.int32)
    raw = rt.execute(enigma.compile(accumulate), [a], 64, (16, 1, 1), (16, 1, 1))
    assert np.frombuffer(raw, np.int32).tolist() == a.tolist()


def test_metal_runtime_launch_refused_above_the_pipeline_limit(rt):
    fake.set_pipeline_thread_limit(256)
    try:
        @enigma.kernel
        def heavy(a: enigma.f32, out: enigma.f32):   # a kernel no earlier test compiled
            i = enigma.thread_position_in_grid
            out[i] = a[i] * 3.0
        ck = enigma.compile(heavy)
        a = np.ones(1024, np.float32)
        with pytest.raises(RuntimeError) as e:
            rt.execute(ck, [a], 4096, (1024, 1, 1), (512, 1, 1))
        msg = str(e.value)
        assert "LAUNCH_REFUSED" in msg and "kernel: heavy" in msg and "at most 256" in msg
        assert fake.records()["command_buffers"] == []   # refused before Metal saw it
        raw = rt.execute(ck, [a], 4096, (1024, 1, 1), (256, 1, 1))
        assert np.frombuffer(raw, np.float32).tolist() == [3.0] * 1024
    finally:
        fake.set_pipeline_thread_limit(0)


def test_metal_runtime_pipelines_are_shared_per_source(rt):
    ck1, ck2 = enigma.compile(vadd), enigma.compile(vadd)
    x = np.ones(4, np.float32)
    rt.execute(ck1, [x, x], 16, (4, 1, 1), (4, 1, 1))
    rt.execute(ck2, [x, x], 16, (4, 1, 1), (4, 1, 1))
    # the second compiled kernel finds the first one's pipeline (same MSL)
    assert fake.records()["pipelines"] == ["vadd"] and len(fake.records()["libraries"]) == 1
    del ck1, ck2


def test_metal_runtime_from_several_threads(rt):
    """Python threads are not Objective-C threads: each dispatch brings its own
    autorelease pool, and one queue serves them all."""
    import threading
    ck = enigma.compile(vadd)
    a = np.arange(64, dtype=np.float32)
    results = []

    def work(k):
        for _ in range(5):
            raw = rt.execute(ck, [a, a + k], 256, (64, 1, 1), (32, 1, 1))  # noqa: F821 (joined before ck is deleted)
            results.append(np.array_equal(np.frombuffer(raw, np.float32), a + a + k))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20 and all(results)
    assert len(fake.records()["command_buffers"]) == 20
    del ck


# ---- per GPU family: device_capabilities() and require_m3 ---------------------

FAMILY_SCRIPT = textwrap.dedent("""
    import json, enigma
    caps = enigma.MetalRuntime().device_capabilities()
    try:
        caps.require_m3("async copy operations require M3 or newer")
        m3 = None
    except RuntimeError as e:
        m3 = str(e)
    print(json.dumps(dict(vars(caps), is_m3=caps.is_m3_or_newer, require_m3=m3)))
""")


def run_with_family(family, script):
    env = dict(os.environ, ENIGMA_METAL_FAKE=family, ENIGMA_DEVICE="metal")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("family, raw, name", [
    ("none", 0, "Fake GPU without an Apple family"),
    ("m1", 1007, "Fake Apple M1"),
    ("apple8", 1008, "Fake Apple M2"),
    ("m3", 1009, "Fake Apple M3"),
    ("apple10", 1010, "Fake Apple M5"),
])
def test_metal_runtime_capabilities_per_family(family, raw, name):
    import json
    caps = json.loads(run_with_family(family, FAMILY_SCRIPT).stdout)
    n = raw - 1000 if raw else 0
    assert caps["backend"] == "metal" and caps["device_name"] == name
    assert caps["gpu_family_raw"] == raw
    assert caps["gpu_family"] == (f"apple{n}" if raw else "unknown(0)")
    assert caps["supports_simdgroup_matrix"] == (n >= 7)
    assert caps["supports_async_copy"] == (n >= 9)
    assert caps["is_m3"] == (n >= 9)
    assert caps["simdgroup_size"] == 32
    assert caps["max_threadgroup_memory"] == 32768 and caps["max_threads_per_threadgroup"] == 1024
    if n >= 9:
        assert caps["require_m3"] is None
    else:
        assert "async copy operations require M3 or newer" in caps["require_m3"]
        assert name in caps["require_m3"] and caps["gpu_family"] in caps["require_m3"]


def test_metal_runtime_unknown_family_is_an_error():
    env = dict(os.environ, ENIGMA_METAL_FAKE="m9", ENIGMA_DEVICE="metal")
    done = subprocess.run([sys.executable, "-c", "import enigma; enigma.MetalRuntime()"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "ENIGMA_METAL_FAKE='m9'" in done.stderr


LIFETIME_SCRIPT = textwrap.dedent("""
    import gc, numpy as np, enigma
    from enigma import _core
    @enigma.kernel
    def vadd(a: enigma.f32, b: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = a[i] + b[i]
    rt = enigma.MetalRuntime()
    print(rt.device_capabilities().device_name)
    ck = enigma.compile(vadd)
    a = np.ones(64, np.float32)
    p = rt.prepare(ck, [a, a], output_size=256)
    p.dispatch((64, 1, 1), (32, 1, 1))
    p.dispatch_timed((64, 1, 1), (32, 1, 1))
    _core._fake_metal.fail_next_library("error: injected")
    try:
        rt.execute(enigma.compile(vadd, debug=True), [a, a], 256, (64, 1, 1), (32, 1, 1))
    except RuntimeError:
        pass
    p.release()
    del p, ck
    gc.collect()
    print(sorted(_core._fake_metal.live_objects().items()), _core._fake_metal.misuse())
""")


def test_metal_runtime_every_objective_c_call_has_an_autorelease_pool():
    """Autoreleased objects (command buffers, strings, errors) must be made
    inside an @autoreleasepool: GNUstep reports one made without a pool (on a
    Mac it would leak until the thread ends). Run in a fresh process so the
    device's creation is covered too."""
    done = run_with_family("apple9", LIFETIME_SCRIPT)
    assert "autorelease called without pool" not in done.stderr, done.stderr
    name, live = done.stdout.splitlines()
    assert name == "Fake Apple M3"
    assert live == "[('FakeMTLCommandQueue', 1), ('FakeMTLDevice', 1)] []"
