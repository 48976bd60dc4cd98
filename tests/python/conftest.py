"""Shared fixtures and helpers of the Python test suite.

Every test runs on the default device (``enigma.MetalRuntime()``, which
``ENIGMA_DEVICE`` selects), so the same suite checks the CPU, CUDA and Metal
backends. Only tests that are explicitly about the CPU device say "cpu".
"""
from __future__ import annotations

import inspect
import os
import sys

import numpy as np
import pytest

import enigma

try:  # bfloat16 as a real numpy dtype when available; raw uint16 bits otherwise
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    ml_dtypes = None
    BF16 = None

HERE = os.path.dirname(os.path.abspath(__file__))

# dtype short name -> (enigma annotation, numpy dtype of its buffers)
INT_TYPES = ["i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"]
FLOAT_TYPES = ["f32", "f16", "bf16"]


def np_dtype(short: str) -> np.dtype:
    """The numpy dtype that holds buffers of the enigma dtype `short`."""
    if short == "bf16":
        return BF16 if BF16 is not None else np.dtype(np.uint16)
    if short == "b1":
        return np.dtype(np.bool_)
    return np.dtype(enigma.typing.DTYPES[short].numpy_name)


def dt(short: str):
    """The enigma annotation singleton (enigma.f32 ...) of a short name."""
    return getattr(enigma, short)


def to_bf16(x) -> np.ndarray:
    """float values -> a bf16 buffer (ml_dtypes.bfloat16, else uint16 bits rounded to nearest even)."""
    x = np.asarray(x, dtype=np.float32)
    if BF16 is not None:
        return x.astype(BF16)
    b = x.view(np.uint32).astype(np.uint64)
    nan = np.isnan(x)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = ((b[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def bf16_to_f32(x: np.ndarray) -> np.ndarray:
    """A bf16 buffer (either representation) -> float32 values."""
    if BF16 is not None and x.dtype == BF16:
        return x.astype(np.float32)
    return (x.astype(np.uint32) << 16).view(np.float32)


def as_f64(x: np.ndarray) -> np.ndarray:
    """float64 reference values of any float buffer (f32, f16, bf16)."""
    if x.dtype == np.uint16 or (BF16 is not None and x.dtype == BF16):
        return bf16_to_f32(x).astype(np.float64)
    return np.asarray(x, dtype=np.float64)


def round_to(short: str, x) -> np.ndarray:
    """float64/float32 values rounded to the float dtype `short`, as float32 values."""
    x = np.asarray(x, dtype=np.float32)
    if short == "f32":
        return x
    if short == "f16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    return bf16_to_f32(to_bf16(x))


_compiled: dict = {}


def compiled(kernel, **opts):
    """enigma.compile(kernel) once per (kernel, options) for the whole session."""
    key = (id(kernel), tuple(sorted(opts.items())))
    hit = _compiled.get(key)
    if hit is None or hit[0] is not kernel:
        hit = (kernel, enigma.compile(kernel, **opts))
        _compiled[key] = hit
    return hit[1]


def run(rt, kernel, inputs, out, grid, threads=None, scalars=None, **opts):
    """Runs `kernel` (a KernelDef or CompiledKernel) and returns its output(s) as numpy arrays.

    out: (dtype, count) for one output, or a list of them for several
    (passed as output_sizes, returned as a list). grid/threads: an int (1-D)
    or a 3-tuple; threads defaults to min(grid, 64) in 1-D."""
    ck = kernel if isinstance(kernel, enigma.CompiledKernel) else compiled(kernel, **opts)
    if isinstance(grid, int):
        grid = (grid, 1, 1)
    if threads is None:
        threads = (min(grid[0], 64), 1, 1)
    elif isinstance(threads, int):
        threads = (threads, 1, 1)
    several = isinstance(out, list)
    outs = out if several else [out]
    dtypes = [np.dtype(d) if not isinstance(d, str) else np_dtype(d) for d, _ in outs]
    sizes = [dtype.itemsize * n for dtype, (_, n) in zip(dtypes, outs)]
    kw = {} if scalars is None else {"scalars": scalars}
    if several:
        raws = rt.execute(ck, list(inputs), grid=grid, threads=threads, output_sizes=sizes, **kw)
        return [np.frombuffer(r, dtype=d).copy() for r, d in zip(raws, dtypes)]
    raw = rt.execute(ck, list(inputs), sizes[0], grid, threads, **kw)
    return np.frombuffer(raw, dtype=dtypes[0]).copy()


def bits_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Exact comparison of float results (NaN == NaN, -0.0 != 0.0), with a readable failure."""
    got = np.ascontiguousarray(got)
    with np.errstate(over="ignore", invalid="ignore"):
        want = np.ascontiguousarray(np.asarray(want).astype(got.dtype))
    gv = got.view(np.uint8).reshape(got.size, -1)
    wv = want.view(np.uint8).reshape(want.size, -1)
    def nans(x):
        return np.isnan(x.astype(np.float64)) if x.dtype.kind == "f" or x.dtype == BF16 else np.zeros(got.size, bool)
    gnan, wnan = nans(got), nans(want)
    same = np.all(gv == wv, axis=1) | (gnan & wnan)
    if not np.all(same):
        bad = np.flatnonzero(~same)[:10]
        raise AssertionError(f"{(~same).sum()} of {got.size} differ; first at {bad.tolist()}: "
                             f"got {got[bad].tolist()} want {want[bad].tolist()}")


_shared_runtime = None


def shared_runtime():
    """The default device's runtime (ENIGMA_DEVICE selects it), one for the session,
    also for module-level helpers that cannot take the `runtime` fixture."""
    global _shared_runtime
    if _shared_runtime is None:
        _shared_runtime = enigma.MetalRuntime()
    return _shared_runtime


def run_flat(kernel, inputs, out_dtype, n_out, grid, threads, debug=None, **execute_opts):
    """Compiles `kernel` (with `debug` as given), runs it on the shared runtime
    with one output of n_out elements of out_dtype, and returns that output as a
    flat array. execute_opts (scalars=, constants=) go to execute()."""
    ck = enigma.compile(kernel, debug=debug)
    raw = shared_runtime().execute(ck, inputs, int(n_out) * np.dtype(out_dtype).itemsize, grid, threads,
                                   **execute_opts)
    return np.frombuffer(raw, dtype=out_dtype)


@pytest.fixture(scope="session")
def runtime():
    """The default device's runtime (ENIGMA_DEVICE selects it)."""
    return shared_runtime()


def line_of(fn, marker):
    """Line number (in its file) of the line of `fn` containing `marker`."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(k for k, ln in enumerate(lines) if marker in ln)


@enigma.kernel
def saxpy(x: enigma.f32, y: enigma.f32, alpha: enigma.Scalar(enigma.f32), n: enigma.Scalar(enigma.u32),
          out: enigma.f32):
    # out = alpha * x + y on the first n threads: buffers and scalars of two dtypes.
    i = enigma.thread_position_in_grid
    with enigma.if_(enigma.cmp_ult(i, n)):
        out[i] = alpha * x[i] + y[i]


def collatz_steps(x):
    """How many Collatz steps take x to 1 (the model of the while-loop kernels)."""
    steps = 0
    while x != 1:
        x = x // 2 if x % 2 == 0 else 3 * x + 1
        steps += 1
    return steps


@pytest.fixture(scope="session")
def caps(runtime):
    return runtime.device_capabilities()


@pytest.fixture(scope="session")
def is_cpu(runtime):
    return runtime.device_capabilities().backend == "cpu"


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def load_example(name: str):
    """examples/<name>.py as a module (examples/ on the path for its shared _*.py)."""
    import importlib.util
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    spec = importlib.util.spec_from_file_location(f"{name}_example", os.path.join(examples, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def subprocess_env(**extra) -> dict:
    """Environment for a child Python that imports the same enigma build."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(os.path.join(p, "enigma"))]
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(enigma.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg, HERE] + paths + [env.get("PYTHONPATH", "")])
    env.update({k: str(v) for k, v in extra.items()})
    return env
