"""Behaviours code written for the reference package relies on (docs/porting.md),
run on the default device against numpy."""
import importlib
import importlib.util
import unittest

import numpy as np
import pytest

import enigma
from enigma.tensor import Tensor


def _run(runtime, ck, inputs, out_bytes, n, tg=64, **kw):
    return runtime.execute(ck, inputs, out_bytes, (n, 1, 1), (tg, 1, 1), **kw)


# ---- module paths ---------------------------------------------------------------------

def test_tensor_is_a_module_and_still_makes_tensors():
    import enigma.tensor as mod
    assert mod is enigma.tensor and Tensor is enigma.Tensor
    a = np.zeros((4, 8), np.float32)
    t = enigma.tensor(a, index=0)
    assert isinstance(t, Tensor) and t.shape == (4, 8) and t.stride == (8, 1) and t.data is a


def test_compiler_paths_keep_the_decorator():
    from enigma.compiler import kernel
    from enigma.compiler.compiler import CompiledKernel
    from enigma.compiler.kernel import KernelDef
    assert kernel is enigma.kernel and enigma.compiler.kernel is enigma.kernel  # the attribute: the decorator
    assert importlib.import_module("enigma.compiler.kernel").KernelDef is KernelDef is enigma.KernelDef
    assert CompiledKernel is enigma.CompiledKernel


@enigma.kernel
def _copy(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    out[i] = a[i] * 2.0


def test_trace_kernel_and_emitters_match_compile():
    from enigma.compiler.compiler import emit_mlir, emit_msl, trace_kernel
    ck = enigma.compile(_copy, emit_only=True)
    kb = trace_kernel(_copy)
    assert kb.kernel_name == "_copy"
    assert emit_msl(kb) == ck.metal_source
    assert emit_mlir(kb) == ck.mlir_source
    assert "vec<2,float>" in emit_mlir(kb, vec_width=2)


@pytest.mark.skipif(importlib.util.find_spec("mlx") is not None, reason="mlx is installed here")
def test_mlx_interop_imports_without_mlx_and_fails_on_use():
    from enigma.runtime_dispatch import mlx_interop
    assert mlx_interop.is_mlx_array(np.zeros(2)) is False
    with pytest.raises(RuntimeError, match="mlx is not installed"):
        mlx_interop.mlx_nbytes((2, 3), "float32")
    with pytest.raises(RuntimeError, match="mlx is not installed"):
        mlx_interop.make_mlx_output((2,), None)


def test_testing_decorators_take_a_function():
    def probe():
        return "ran"
    wrapped = enigma.testing.requires_metal(probe)
    if enigma.testing.is_metal_available():
        assert wrapped() == "ran"
    else:
        with pytest.raises(unittest.SkipTest, match="requires Metal runtime"):
            wrapped()
    assert enigma.testing.skip_if_no_metal is enigma.testing.requires_metal


def test_require_m3_takes_either_keyword(caps):
    for kw in ({"feature": "async copy"}, {"feature_description": "async copy"}):
        if caps.is_m3_or_newer:
            assert caps.require_m3(**kw) is None
        else:
            with pytest.raises(RuntimeError, match="async copy requires"):
                caps.require_m3(**kw)
    with pytest.raises(TypeError):
        caps.require_m3("x", feature_description="y")


# ---- re-wrapping a parameter binds to it by name -------------------------------------------

@enigma.kernel
def _rewrap_transpose(A: enigma.f32, B: enigma.f32):
    i = enigma.thread_position_in_grid
    rows = enigma.Tensor(A.name, A.buffer_index, A.metal_dtype, layout=enigma.make_layout((4, 8), (8, 1)))
    B[i] = rows[i % 4, i // 4]


def test_rewrapped_parameter_reads_through_its_layout(runtime):
    a = np.arange(32, dtype=np.float32) * 1.5
    raw = _run(runtime, enigma.compile(_rewrap_transpose), [a], a.nbytes, 32, 32)
    want = np.array([a[8 * (i % 4) + i // 4] for i in range(32)], np.float32)
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32), want)


@enigma.kernel
def _rewrap_wrong_dtype(A: enigma.f32, B: enigma.f32):
    enigma.Tensor(A.name, A.buffer_index, "int", layout=enigma.make_layout(8))


def test_rewrapping_cannot_change_the_element_type():
    with pytest.raises(enigma.EnigmaError, match="holds float, not int"):
        enigma.compile(_rewrap_wrong_dtype, emit_only=True)


# ---- simd reductions of a TV fragment (reference section 10) -------------------------------

@enigma.kernel
def _fragment_reductions(A: enigma.f32, I: enigma.i32, S: enigma.f32, M: enigma.i32):
    t = enigma.thread_position_in_grid
    mine = enigma.make_layout((4, 64), (1, 4))  # thread t owns elements 4t .. 4t+3
    fa = enigma.Tensor(A.name, A.buffer_index, A.metal_dtype, layout=mine)[(None, t)].load()
    fi = enigma.Tensor(I.name, I.buffer_index, I.metal_dtype, layout=mine)[(None, t)].load()
    S[t] = enigma.simd_sum(fa)
    M[t] = enigma.simd_max(fi) - enigma.simd_min(fi) + (enigma.simd_xor(fi) & 0)


def test_simd_reduction_of_a_fragment_is_one_value(runtime, rng):
    a = rng.standard_normal(256).astype(np.float32)
    ints = rng.integers(-1000, 1000, 256).astype(np.int32)
    s, m = _run(runtime, enigma.compile(_fragment_reductions), [a, ints], None, 64,
                output_shapes=[(64,), (64,)], output_dtypes=[np.float32, np.int32])
    groups = a.astype(np.float64).reshape(2, 128).sum(axis=1)
    np.testing.assert_allclose(s, np.repeat(groups, 32), rtol=1e-5, atol=1e-4)
    ig = ints.reshape(2, 128)
    np.testing.assert_array_equal(m, np.repeat(ig.max(axis=1) - ig.min(axis=1), 32))


@enigma.kernel
def _fragment_scan(A: enigma.i32, B: enigma.i32):
    t = enigma.thread_position_in_grid
    mine = enigma.make_layout((4, 32), (1, 4))
    src = enigma.Tensor(A.name, A.buffer_index, A.metal_dtype, layout=mine)[(None, t)]
    dst = enigma.Tensor(B.name, B.buffer_index, B.metal_dtype, layout=mine)[(None, t)]
    dst.store(enigma.simd_prefix_inclusive_sum(src.load()))


def test_simd_scan_of_a_fragment_is_per_element(runtime, rng):
    a = rng.integers(-50, 50, 128).astype(np.int32)
    b = _run(runtime, enigma.compile(_fragment_scan), [a], None, 32, 32,
             output_shapes=[(32, 4)], output_dtypes=["int"])
    np.testing.assert_array_equal(b, np.cumsum(a.reshape(32, 4), axis=0))


# ---- keyword calls written for the reference ------------------------------------------------

@enigma.kernel
def _keywords(A: enigma.f32, B: enigma.f32, Out: enigma.f32):
    i = enigma.thread_position_in_grid
    x, y = A[i], B[i]
    v = enigma.make_float2(x=x, y=y)
    Out[i] = (enigma.clamp(x=x, lo=-0.5, hi=0.5) + enigma.fmax(a=x, b=y) + enigma.atan2(a=x, b=y)
              + enigma.simd_shuffle_down(value=x, delta=1) + enigma.mix(a=x, b=y, t=0.25) + v.y)


def test_keyword_calls(runtime, rng):
    a = rng.standard_normal(64).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    out = _run(runtime, enigma.compile(_keywords), [a, b], None, 64, 32,
               output_shapes=[(64,)], output_dtypes=[enigma.f32])
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    lane = np.arange(64) % 32
    down = np.where(lane + 1 < 32, np.roll(a64, -1), a64)  # out of range: the thread's own value
    want = np.clip(a64, -0.5, 0.5) + np.maximum(a64, b64) + np.arctan2(a64, b64) + down + a64 + (b64 - a64) * 0.25 + b64
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_keyword_errors_name_the_parameters():
    @enigma.kernel
    def bad(A: enigma.f32):
        A[0] = enigma.clamp(x=A[0], minval=0.0, hi=1.0)
    with pytest.raises(enigma.EnigmaError, match="clamp.*x, lo, hi"):
        enigma.compile(bad, emit_only=True)


# ---- execute(output_shapes=, output_dtypes=) and RegisterTensor -----------------------------

@enigma.kernel
def _two_outputs(A: enigma.f32, S: enigma.f32, T: enigma.u16):
    i = enigma.thread_position_in_grid
    S[i] = A[i] + 1.0
    T[i] = enigma.metal_cast(A[i], "ushort")


def test_output_shapes_give_arrays(runtime):
    a = np.arange(48, dtype=np.float32)
    ck = enigma.compile(_two_outputs)
    s, t = _run(runtime, ck, [a], None, 48, 16, output_shapes=[(6, 8), 48], output_dtypes=["float", np.uint16])
    assert isinstance(s, np.ndarray) and s.shape == (6, 8) and s.dtype == np.float32
    assert t.shape == (48,) and t.dtype == np.uint16 and t.flags.writeable
    np.testing.assert_array_equal(s, (a + 1).reshape(6, 8))
    np.testing.assert_array_equal(t, a.astype(np.uint16))
    with pytest.raises(RuntimeError, match="output_shapes requires output_dtypes of matching length"):
        _run(runtime, ck, [a], None, 48, 16, output_shapes=[(48,), (48,)], output_dtypes=["float"])


def test_register_tensor_shape_and_dtype():
    seen = []

    @enigma.kernel
    def regs(out: enigma.f32):
        r = enigma.register_tensor((2, 3), "half", 0)
        seen.append((r.shape, r.dtype))
        out[0] = r[1, 2]
    enigma.compile(regs, emit_only=True)
    assert seen == [((2, 3), "half")]


@enigma.kernel
def _bf16_scalar(s: enigma.Scalar(enigma.bf16), out: enigma.bf16):
    out[0] = s


def test_bfloat_scalar_is_passed_as_bfloat(runtime):
    raw = runtime.execute(enigma.compile(_bf16_scalar), [], 2, (1, 1, 1), (1, 1, 1), scalars=[1.5])
    assert np.frombuffer(raw, np.uint16)[0] == 0x3FC0  # 1.5 in bfloat16


def test_output_shapes_follow_device_array_inputs(runtime):
    """On CUDA, device-array inputs give the same library's arrays on that device."""
    torch = pytest.importorskip("torch")
    if not runtime.device.startswith("cuda") or not torch.cuda.is_available():
        pytest.skip("needs the CUDA device and torch with CUDA")
    a = torch.arange(48, dtype=torch.float32, device="cuda")
    s, t = _run(runtime, enigma.compile(_two_outputs), [a], None, 48, 16, output_shapes=[(6, 8), (48,)],
                output_dtypes=[enigma.f32, enigma.u16])
    assert isinstance(s, torch.Tensor) and s.device == a.device and s.shape == (6, 8) and s.dtype == torch.float32
    assert torch.equal(s.cpu(), (a + 1).reshape(6, 8).cpu())
    assert torch.equal(t.cpu().to(torch.int32), a.cpu().to(torch.int32))


def test_kernel_builder_queries_and_constants():
    from enigma.compiler.kernel import KernelBuilder
    kb = KernelBuilder("k")
    assert kb.kernel_name == "k"
    assert kb.make_const("half", 2).dtype == "half" and kb.make_const(enigma.i32, 7).dtype == "int"
    assert {kb.get_thread_idx().dtype, kb.get_block_idx().dtype, kb.get_block_dim().dtype,
            kb.get_thread_position_in_grid().dtype} == {"uint"}
    with pytest.raises(RuntimeError, match="only builders from trace_kernel"):
        from enigma.compiler.mlir_emitter import emit_msl
        emit_msl(kb, vec_width=2)


@enigma.kernel
def _jit_rewrap(S, D):
    t = enigma.thread_position_in_grid
    rows = Tensor(S.name, S.buffer_index, S.metal_dtype, layout=enigma.make_layout((4, 8), (8, 1)))
    D[t] = rows[t % 4, t // 4] + rows[0, 1]


@enigma.jit
def _jit_rewrap_launch(S, D):
    _jit_rewrap(S, D).launch((32, 1, 1), (32, 1, 1))


def test_rewrap_in_a_jit_kernel(runtime):
    s = np.arange(32, dtype=np.float32)
    d = np.zeros(32, np.float32)
    runtime.execute(enigma.compile(_jit_rewrap_launch, enigma.tensor(s), enigma.tensor(d)))
    np.testing.assert_array_equal(d, np.array([s[8 * (t % 4) + t // 4] for t in range(32)]) + s[1])


def test_shuffle_keyword_errors_name_the_parameters():
    @enigma.kernel
    def bad(A: enigma.f32):
        A[0] = enigma.simd_shuffle_down(value=A[0], lane=1)
    with pytest.raises(enigma.EnigmaError, match=r"simd_shuffle_down.*value, delta"):
        enigma.compile(bad, emit_only=True)
