"""enigma.compile(), CompiledKernel and the compile options."""
import inspect
import os
import uuid

import numpy as np
import pytest

import enigma
import future_kernels
from conftest import run, saxpy


def unique_kernel():
    """A kernel whose generated code no cache has seen (a fresh constant in its body)."""
    tag = float(uuid.uuid4().int % 1_000_000) + 0.5

    @enigma.kernel
    def fresh(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        out[i] = a[i] + tag

    return fresh, tag


def cache_entries(root):
    """Published entries (<root>/<xx>/<key>/) of the disk cache."""
    if not os.path.isdir(root):
        return set()
    out = set()
    for d in os.listdir(root):
        if len(d) == 2 and os.path.isdir(os.path.join(root, d)):
            out |= {os.path.join(d, k) for k in os.listdir(os.path.join(root, d))}
    return out


def test_compiled_kernel_fields():
    ck = enigma.compile(saxpy)
    assert isinstance(ck, enigma.CompiledKernel)
    assert ck.kernel_name == "saxpy"
    assert ck.num_params == 5
    assert ck.param_names == ["x", "y", "alpha", "n", "out"]
    assert ck.scalar_params == [("alpha", 2, "float"), ("n", 3, "uint")]
    assert ck.ir_source == ck.mlir_source
    assert "kernel @saxpy" in ck.ir_source
    msl = ck.metal_source
    assert "#include <metal_stdlib>" in msl
    assert "kernel void saxpy" in msl
    assert "[[buffer(0)]]" in msl and "[[buffer(4)]]" in msl
    assert "[[thread_position_in_grid]]" in msl
    assert ck.kernel_source == msl
    assert ck.source("metal") == msl
    cpu = ck.source("cpu")
    assert "saxpy" in cpu and "extern \"C\"" in cpu
    assert ck.metallib_path is None and ck.metallib_bytes is None and not ck.has_metallib
    assert ck.grid is None and ck.block is None
    with pytest.raises(RuntimeError, match="unknown backend"):
        ck.source("fortran")


def test_kernel_def():
    assert saxpy.name == "saxpy"
    assert repr(saxpy) == "<enigma.kernel saxpy>"
    assert enigma.kernel(saxpy) is saxpy


def test_export_metal(tmp_path, monkeypatch):
    ck = enigma.compile(saxpy, emit_only=True)
    monkeypatch.chdir(tmp_path)
    path = ck.export_metal()
    assert path == "saxpy.metal"
    assert (tmp_path / "saxpy.metal").read_text() == ck.metal_source
    explicit = tmp_path / "sub_dir_file.metal"
    assert ck.export_metal(str(explicit)) == str(explicit)
    assert explicit.read_text() == ck.metal_source
    other = tmp_path / "pathlike.metal"
    assert ck.export_metal(other) == str(other)
    assert other.read_text() == ck.metal_source


def test_dump_ir(capsys):
    ck = enigma.compile(saxpy, dump_ir=True, emit_only=True)
    out = capsys.readouterr().out
    assert "=== IR: saxpy (" in out and " ops) ===" in out
    assert "=== Metal ===" in out
    assert ck.ir_source in out and ck.metal_source in out
    enigma.compile(saxpy, dump_mlir=True, emit_only=True)
    assert "=== IR: saxpy" in capsys.readouterr().out


def test_work_dir_and_keep_metal_source(tmp_path):
    wd = tmp_path / "new" / "work"
    ck = enigma.compile(saxpy, work_dir=str(wd), keep_metal_source=True, emit_only=True)
    assert (wd / "saxpy.metal").read_text() == ck.metal_source
    wd2 = tmp_path / "plain"
    enigma.compile(saxpy, work_dir=wd2, emit_only=True)
    assert wd2.is_dir()


def test_scalar_params_execute_and_prepare(runtime):
    ck = enigma.compile(saxpy)
    n = 300
    x = np.arange(n, dtype=np.float32)
    y = np.ones(n, dtype=np.float32)
    raw = runtime.execute(ck, [x, y], n * 4, (n, 1, 1), (64, 1, 1), scalars=[2.5, 200])
    out = np.frombuffer(raw, np.float32)
    want = np.where(np.arange(n) < 200, np.float32(2.5) * x + y, 0).astype(np.float32)
    assert np.array_equal(out, want)
    # numpy scalars are values too (np.float32(alpha), np.int64 sizes, 0-d arrays)
    raw = runtime.execute(ck, [x, y], n * 4, (n, 1, 1), (64, 1, 1), scalars=[np.float32(2.5), np.int64(200)])
    assert np.array_equal(np.frombuffer(raw, np.float32), want)
    raw = runtime.execute(ck, [x, y], n * 4, (n, 1, 1), (64, 1, 1), scalars=[np.array(2.5), np.uint32(200)])
    assert np.array_equal(np.frombuffer(raw, np.float32), want)
    prepared = runtime.prepare(ck, [x, y], n * 4, scalars=[-1.0, n])
    prepared.dispatch((n, 1, 1), (64, 1, 1))
    assert np.array_equal(np.frombuffer(prepared.read_output(), np.float32), -x + y)
    prepared.release()


def test_multiple_outputs(runtime):
    @enigma.kernel
    def split(a: enigma.i32, lo: enigma.i16, hi: enigma.i16, total: enigma.i64):
        i = enigma.thread_position_in_grid
        lo[i] = a[i] & 0xFFFF
        hi[i] = a[i] >> 16
        total[0] = 7

    a = np.array([0x12345678, -1, 65536, 3], np.int32)
    ck = enigma.compile(split)
    outs = runtime.execute(ck, [a], grid=(4, 1, 1), threads=(4, 1, 1), output_sizes=[8, 8, 8])
    assert isinstance(outs, list) and len(outs) == 3
    lo, hi, total = (np.frombuffer(o, t) for o, t in zip(outs, [np.int16, np.int16, np.int64]))
    assert lo.tolist() == [0x5678, -1, 0, 3]
    assert hi.tolist() == [0x1234, -1, 1, 0]
    assert total.tolist() == [7]
    # prepare() with several outputs returns a list from read_output()
    p = runtime.prepare(ck, [a], output_sizes=[8, 8, 8])
    p.dispatch((4, 1, 1), (4, 1, 1))
    assert [bytes(o) for o in p.read_output()] == [bytes(o) for o in outs]
    p.release()
    # output_sizes with one entry still returns a list

    @enigma.kernel
    def one(out: enigma.u8):
        out[enigma.thread_position_in_grid] = 9

    res = runtime.execute(enigma.compile(one), [], grid=(3, 1, 1), threads=(3, 1, 1), output_sizes=[3])
    assert isinstance(res, list) and res == [b"\x09\x09\x09"]


def test_compile_rejects_non_kernels():
    def plain(a, out):
        pass

    with pytest.raises(TypeError, match="Expected @enigma.kernel or @enigma.jit, got function"):
        enigma.compile(plain)
    with pytest.raises(TypeError, match="got int"):
        enigma.compile(3)
    with pytest.raises(TypeError):
        enigma.compile(saxpy, target="cpu")   # no target= (reference compatibility)


def test_annotation_errors():
    @enigma.kernel
    def missing(a: enigma.f32, out):
        out[0] = a[0]

    with pytest.raises(TypeError, match="Kernel parameter 'out' needs a type annotation"):
        enigma.compile(missing)

    @enigma.kernel
    def unsupported(a: np.float32, out: enigma.f32):
        out[0] = a[0]

    with pytest.raises(TypeError, match="Unsupported kernel parameter annotation"):
        enigma.compile(unsupported)

    @enigma.kernel
    def by_class(a: enigma.Float32, out: enigma.Int32):
        out[0] = enigma.metal_cast(a[0], "int")

    ck = enigma.compile(by_class, emit_only=True)   # Numeric classes are accepted as annotations
    assert ck.param_names == ["a", "out"]
    with pytest.raises(TypeError, match="Scalar\\(dtype\\): dtype must be an enigma numeric"):
        enigma.Scalar(enigma.Float32)


def test_kernel_returning_a_value_is_an_error():
    @enigma.kernel
    def returns(a: enigma.f32, out: enigma.f32):
        return a[0]

    with pytest.raises(enigma.EnigmaError, match="returned a value"):
        enigma.compile(returns, emit_only=True)


def test_future_annotations_module(runtime):
    ck = enigma.compile(future_kernels.scale_add)
    assert ck.param_names == ["a", "b", "s", "out"]
    assert ck.scalar_params == [("s", 2, "float")]
    a = np.arange(10, dtype=np.float32)
    b = np.full(10, 0.5, np.float32)
    got = np.frombuffer(runtime.execute(ck, [a, b], 40, (10, 1, 1), (8, 1, 1), scalars=[3.0]), np.float32)
    assert np.array_equal(got, a * np.float32(3.0) + b)
    # annotations naming a local of the function that made the kernel
    copy16 = future_kernels.make_typed_copy(enigma.i16)
    got = run(runtime, copy16, [np.array([1, -2, 30000], np.int16)], (np.int16, 3), 3)
    assert got.tolist() == [2, -4, -5536]


def test_same_kernel_name_different_bodies_do_not_collide(runtime):
    def make(kind):
        if kind == "add":
            @enigma.kernel
            def k(a: enigma.f32, out: enigma.f32):
                out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid] + 1.0
        else:
            @enigma.kernel
            def k(a: enigma.f32, out: enigma.f32):
                out[enigma.thread_position_in_grid] = a[enigma.thread_position_in_grid] * 3.0
        return k

    k_add, k_mul = make("add"), make("mul")
    assert k_add.name == k_mul.name == "k"
    a = np.array([1.0, 2.0, 3.0], np.float32)
    ck_add, ck_mul = enigma.compile(k_add), enigma.compile(k_mul)
    assert run(runtime, ck_add, [a], (np.float32, 3), 3).tolist() == [2.0, 3.0, 4.0]
    assert run(runtime, ck_mul, [a], (np.float32, 3), 3).tolist() == [3.0, 6.0, 9.0]
    # compiled again (now from the disk cache): still each its own code
    assert run(runtime, enigma.compile(make("add")), [a], (np.float32, 3), 3).tolist() == [2.0, 3.0, 4.0]
    assert run(runtime, enigma.compile(make("mul")), [a], (np.float32, 3), 3).tolist() == [3.0, 6.0, 9.0]


def test_error_in_kernel_body_names_file_and_line():
    @enigma.kernel
    def bad_body(a: enigma.f32, out: enigma.f32):
        x = a[0] * 2.0
        out[0] = enigma.metal_cast(x, "quaternion")  # THE-LINE

    lines, start = inspect.getsourcelines(bad_body.fn)
    line = start + next(k for k, ln in enumerate(lines) if "THE-LINE" in ln)
    with pytest.raises(enigma.EnigmaError) as e:
        enigma.compile(bad_body)
    msg = str(e.value)
    assert f"{os.path.basename(__file__)}:{line}" in msg, msg
    assert __file__ in msg or os.path.abspath(__file__) in msg
    assert "bad_body" in msg and "quaternion" in msg


def test_emit_only(runtime, is_cpu, tmp_path, monkeypatch):
    """emit_only=True / ENIGMA_EMIT_ONLY=1 skip the backend build (it happens at first
    use instead); ENIGMA_EMIT_ONLY=0 means off."""
    a = np.arange(4, dtype=np.float32)
    cache = str(tmp_path / "cache")
    monkeypatch.setenv("ENIGMA_CACHE_DIR", cache)

    fresh, tag = unique_kernel()
    ck = enigma.compile(fresh, emit_only=True)
    assert "kernel void fresh" in ck.metal_source
    if is_cpu:
        assert cache_entries(cache) == set()       # nothing was built
    assert run(runtime, ck, [a], (np.float32, 4), 4).tolist() == (a + np.float32(tag)).tolist()
    if is_cpu:
        assert len(cache_entries(cache)) == 1      # built at first use

    monkeypatch.setenv("ENIGMA_EMIT_ONLY", "1")
    fresh2, tag2 = unique_kernel()
    enigma.compile(fresh2)
    if is_cpu:
        assert len(cache_entries(cache)) == 1
    ck2 = enigma.compile(fresh2, emit_only=False)  # the explicit argument wins
    if is_cpu:
        assert len(cache_entries(cache)) == 2

    monkeypatch.setenv("ENIGMA_EMIT_ONLY", "0")
    fresh3, tag3 = unique_kernel()
    ck3 = enigma.compile(fresh3)
    if is_cpu:
        assert len(cache_entries(cache)) == 3      # "0" means off: built now
    assert run(runtime, ck3, [a], (np.float32, 4), 4).tolist() == (a + np.float32(tag3)).tolist()
    assert run(runtime, ck2, [a], (np.float32, 4), 4).tolist() == (a + np.float32(tag2)).tolist()
