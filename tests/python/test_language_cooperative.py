"""The per-thread language inside cooperative kernels: load_if on threadgroup
arrays, vectors, matrices and per-thread arrays that live across barriers,
simd/quad ops on vectors, function constants next to threadgroup memory."""
import numpy as np
import pytest

import enigma
from conftest import run_flat as run
from conftest import shared_runtime as rt


@enigma.kernel
def tg_load_if(A: enigma.f32, n: enigma.Scalar(enigma.u32), Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    buf = enigma.threadgroup_alloc("float", 64)
    buf[lid] = enigma.load_if(A, tid, tid < n, -1.0)
    enigma.barrier()
    # masked-off lanes ask for element 1000 of a 64-element array: never read
    j = enigma.where(1000, lid ^ 1, lid < 32)
    Out[tid] = enigma.load_if(buf, j, lid < 32, 7.0)


@pytest.mark.parametrize("debug", [False, True])
def test_load_if_on_threadgroup_array_is_a_masked_load(debug):
    n, tg, groups = 100, 64, 2
    a = np.arange(n, dtype=np.float32)
    out = run(tg_load_if, [a], np.float32, tg * groups, (tg * groups, 1, 1), (tg, 1, 1), scalars=[n], debug=debug)
    src = np.concatenate([a, np.full(tg * groups - n, -1.0, np.float32)])
    lid = np.arange(tg * groups) % tg
    ref = np.where(lid < 32, src[(np.arange(tg * groups) // tg) * tg + (lid ^ 1)], 7.0)
    np.testing.assert_array_equal(out, ref)
    ir = enigma.compile(tg_load_if, emit_only=True).ir_source
    assert "load_if _shared0[" in ir


@enigma.kernel
def values_across_barrier(A: enigma.f32, Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    buf = enigma.threadgroup_alloc("float", 64)
    a = A[tid]
    v = enigma.make_float4(a, 1.0, 2.0, 3.0)
    m = enigma.make_matrix(enigma.make_float2(a, 0.0), enigma.make_float2(0.0, 2.0))
    r = enigma.register_tensor(4, "float")
    r[0] = a
    r[1] = a + 1.0
    r[2] = a + 2.0
    r[3] = a + 3.0
    buf[lid] = a * 2.0
    enigma.barrier()
    b = buf[lid ^ 1]
    p = enigma.matmul(m, enigma.make_float2(b, 1.0))        # (a * b, 2)
    r[lid & 3] = r[lid & 3] + b                              # a traced index, after the barrier
    enigma.barrier()
    Out[tid] = v.x + v.w * p.x + p.y + r[0] + r[1] * 10.0 + r[2] * 100.0 + r[3] * 1000.0


def test_vectors_matrices_and_register_tensors_live_across_barriers():
    tg, groups = 64, 2
    n = tg * groups
    a = (np.arange(n) % 7).astype(np.float64)
    out = run(values_across_barrier, [a.astype(np.float32)], np.float32, n, (n, 1, 1), (tg, 1, 1))
    t = np.arange(n)
    lid = t % tg
    b = 2.0 * a[(t // tg) * tg + (lid ^ 1)]
    r = np.stack([a, a + 1, a + 2, a + 3], axis=1)
    r[t, lid & 3] += b
    ref = a + 3.0 * a * b + 2.0 + r[:, 0] + 10 * r[:, 1] + 100 * r[:, 2] + 1000 * r[:, 3]
    np.testing.assert_allclose(out, ref, rtol=1e-6)


@enigma.kernel
def simd_vectors(A: enigma.f32, I: enigma.i32, Out: enigma.f32, OutI: enigma.i32):
    tid = enigma.thread_position_in_grid
    f = enigma.make_float2(A[tid], A[tid] * 2.0)
    s = enigma.simd_sum(f)
    mx = enigma.simd_max(f)
    sh = enigma.simd_shuffle_xor(enigma.make_float4(A[tid], 0.0, 1.0, 2.0), 1)
    iv = enigma.make_int2(I[tid], -I[tid])
    mn = enigma.quad_min(iv)
    ps = enigma.simd_prefix_inclusive_sum(iv)
    x = enigma.simd_xor(iv)
    Out[tid * 4] = s.x
    Out[tid * 4 + 1] = s.y
    Out[tid * 4 + 2] = mx.y
    Out[tid * 4 + 3] = sh.x + sh.w
    OutI[tid * 4] = mn.x
    OutI[tid * 4 + 1] = mn.y
    OutI[tid * 4 + 2] = ps.y
    OutI[tid * 4 + 3] = x.x


def test_simd_and_quad_ops_on_vectors_are_lanewise():
    n, tg = 80, 80  # a full simdgroup, then a partial one (16 lanes)
    a = np.random.default_rng(3).integers(-20, 20, n).astype(np.float32)
    iv = np.random.default_rng(4).integers(-50, 50, n).astype(np.int32)
    ck = enigma.compile(simd_vectors)
    outf, outi = rt().execute(ck, [a, iv], grid=(n, 1, 1), threads=(tg, 1, 1),
                              output_sizes=[n * 16, n * 16])
    outf = np.frombuffer(outf, np.float32).reshape(n, 4)
    outi = np.frombuffer(outi, np.int32).reshape(n, 4)
    for t in range(n):
        sg = slice(t // 32 * 32, min(n, t // 32 * 32 + 32))
        q = slice(t // 4 * 4, t // 4 * 4 + 4)
        assert outf[t, 0] == a[sg].sum() and outf[t, 1] == 2 * a[sg].sum()
        assert outf[t, 2] == 2 * a[sg].max()
        assert outf[t, 3] == a[t ^ 1] + 2.0
        assert outi[t, 0] == iv[q].min() and outi[t, 1] == (-iv[q]).min()
        assert outi[t, 2] == (-iv[sg.start:t + 1]).sum()
        assert outi[t, 3] == np.bitwise_xor.reduce(iv[sg])


@enigma.kernel
def scaled_neighbour(A: enigma.f32, Out: enigma.f32):
    tid = enigma.thread_position_in_grid
    lid = enigma.thread_index_in_threadgroup()
    buf = enigma.threadgroup_alloc("float", 64)
    buf[lid] = A[tid] * enigma.function_constant("float", 0)
    enigma.barrier()
    Out[tid] = buf[lid ^ 1]


def test_function_constants_with_threadgroup_memory():
    a = np.arange(64, dtype=np.float32)
    out = run(scaled_neighbour, [a], np.float32, 64, (64, 1, 1), (64, 1, 1), constants={0: ("float", 3.0)})
    np.testing.assert_array_equal(out, 3.0 * a[np.arange(64) ^ 1])
    ck = enigma.compile(scaled_neighbour)
    with pytest.raises(RuntimeError, match="function constant 0"):
        rt().execute(ck, [a], 256, (64, 1, 1), (64, 1, 1))


def test_threadgroup_memory_limit_is_checked_with_function_constants():
    @enigma.kernel
    def big_fc(Out: enigma.f32):
        t = enigma.threadgroup_alloc("float", 1 << 20)
        t[0] = enigma.function_constant("float", 0)
        Out[0] = t[0]
    ck = enigma.compile(big_fc, emit_only=True)
    with pytest.raises(RuntimeError, match=r"big_fc.*4194304 bytes of threadgroup memory"):
        rt().execute(ck, [], 4, (1, 1, 1), (1, 1, 1), constants={0: ("float", 1.0)})


def test_cuda_emits_cooperative_ops_with_language_ops():
    @enigma.kernel
    def coop_only(A: enigma.f32, Out: enigma.f32):
        lid = enigma.thread_index_in_threadgroup()
        buf = enigma.threadgroup_alloc("float", 64)
        buf[lid] = enigma.simd_sum(A[lid])
        enigma.barrier()
        Out[lid] = buf[lid ^ 1]
    src = enigma.compile(coop_only, emit_only=True).source("cuda")
    assert "en_barrier(en_nbar);" in src and "en_shfl" in src
    # load_if on a threadgroup array is a masked read of the shared array
    src = enigma.compile(tg_load_if, emit_only=True).source("cuda")
    assert "? en_tg__shared0[" in src


def test_msl_declares_both_sections():
    msl = enigma.compile(values_across_barrier, emit_only=True).metal_source
    assert "threadgroup_barrier(mem_flags::mem_threadgroup);" in msl
    msl = enigma.compile(tg_load_if, emit_only=True).metal_source
    assert "? _shared0[" in msl
