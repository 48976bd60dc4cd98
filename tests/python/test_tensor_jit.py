"""Layout-aware tensors, TV fragments, coordinate tensors and the @enigma.jit
path (reference sections 19 and 6.1), checked against numpy on the default device."""
import numpy as np
import pytest

import enigma
from enigma import Layout


# ---- the canonical tiled add (reference 19.6) ------------------------------------


@enigma.kernel
def tv_add(gA, gB, gC, tv, tiler):
    bidx = enigma.threadgroup_position_in_grid()
    tidx = enigma.thread_position_in_threadgroup()

    def mine(g):
        return enigma.tensor_composition(g[((None, None), bidx)], tv, tiler)[(tidx, None)]

    mine(gC).store(mine(gA).load() + mine(gB).load())


def _tv(thr_shape=(4, 64), val_shape=(4, 4)):
    return enigma.make_layout_tv(enigma.make_ordered_layout(thr_shape, (1, 0)),
                                 enigma.make_ordered_layout(val_shape, (1, 0)))


@enigma.jit
def add2d(A, B, C):
    tiler, tv = _tv()
    gA, gB, gC = (enigma.tensor_zipped_divide(t, tiler) for t in (A, B, C))
    nb, nt = enigma.size(gA, mode=[1]), enigma.size(tv, mode=[0])
    tv_add(gA, gB, gC, tv, tiler).launch(grid=(nb * nt, 1, 1), block=(nt, 1, 1))


def _arrays(rng, shape, n=2):
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(n)]


def test_jit_records_launch_and_runs(runtime, rng):
    a, b = _arrays(rng, (256, 512))
    c = np.zeros_like(a)
    ck = enigma.compile(add2d, enigma.tensor(a), enigma.tensor(b), enigma.tensor(c))
    assert ck.grid == (8192, 1, 1) and ck.block == (256, 1, 1)
    assert ck.num_params == 3 and ck.scalar_params == []
    out = runtime.execute(ck)
    np.testing.assert_array_equal(c, a + b)
    np.testing.assert_array_equal(np.frombuffer(out, np.float32).reshape(a.shape), a + b)
    # explicit inputs work as for any kernel
    raw = runtime.execute(ck, [a, b], a.nbytes, ck.grid, ck.block)
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32).reshape(a.shape), a + b)


def test_tv_fragments_vectorise(runtime, rng):
    a, b = _arrays(rng, (256, 512))
    ck = enigma.compile(add2d, enigma.tensor(a), enigma.tensor(b), enigma.tensor(np.zeros_like(a)))
    cpu = ck.source("cpu")
    assert cpu.count("reinterpret_cast<const en_vec<float, 4>*>") == 8
    assert cpu.count("reinterpret_cast<en_vec<float, 4>*>") == 4
    assert "reinterpret_cast<const device float4*>" in ck.metal_source
    cuda = ck.source("cuda")  # the same aligned vector accesses on CUDA
    assert cuda.count("reinterpret_cast<const en_vec<float, 4>*>") == 8
    assert cuda.count("reinterpret_cast<en_vec<float, 4>*>") == 4


def test_binding_order_follows_buffer_index(runtime, rng):
    a, b = _arrays(rng, (256, 512))
    c = np.zeros_like(a)
    A = enigma.Tensor("A", 1, "float", Layout((256, 512), (512, 1)), data=a)
    B = enigma.Tensor("B", 0, "float", Layout((256, 512), (512, 1)), data=b)
    C = enigma.Tensor("C", 2, "float", Layout((256, 512), (512, 1)), data=c)
    ck = enigma.compile(add2d, A, B, C)
    assert ck.param_names == ["B", "A", "C"]
    runtime.execute(ck)
    np.testing.assert_array_equal(c, a + b)
    dup = enigma.Tensor("D", 1, "float", Layout((256, 512), (512, 1)))
    with pytest.raises(enigma.EnigmaError, match="same buffer index"):
        enigma.compile(add2d, A, dup, C)


def test_jit_errors():
    @enigma.jit
    def none(A):
        pass

    with pytest.raises(RuntimeError, match="did not launch any kernel"):
        enigma.compile(none, enigma.tensor(np.zeros(4, np.float32)))

    @enigma.kernel
    def k(A):
        A[0] = 1.0

    @enigma.jit
    def twice(A):
        k(A).launch(grid=(1, 1, 1), block=(1, 1, 1))
        k(A).launch(grid=(1, 1, 1), block=(1, 1, 1))

    with pytest.raises(enigma.EnigmaError, match="launched 2 kernels"):
        enigma.compile(twice, enigma.tensor(np.zeros(4, np.float32)))
    with pytest.raises(RuntimeError, match="outside enigma.compile"):
        k(None).launch((1, 1, 1), (1, 1, 1))
    assert repr(twice) == "<enigma.jit twice>"
    with pytest.raises(TypeError, match="Expected @enigma.kernel or @enigma.jit"):
        enigma.compile(lambda: None)


# ---- slicing (19.2, bug 26.1.8) ------------------------------------------------------


def test_slicing_static():
    A = enigma.Tensor("A", 0, "float", Layout((256, 512), (512, 1)))
    g = enigma.tensor_zipped_divide(A, (16, 256))
    assert g.layout == Layout(((16, 256), (16, 2)), ((512, 1), (8192, 256)))
    blk = g[((None, None), 5)]
    assert blk.layout == Layout((16, 256), (512, 1)) and blk.base_offset == 40960
    _, tv = _tv()
    thr = enigma.tensor_composition(blk, tv, (16, 256))
    assert thr.layout == Layout(((64, 4), (4, 4)), ((4, 2048), (1, 512)))
    assert thr[(3, None)].layout == Layout((4, 4), (1, 512)) and thr[(3, None)].base_offset == 40972
    with pytest.raises(enigma.EnigmaError, match="has 1 modes"):
        A[(1,)]
    with pytest.raises(enigma.EnigmaError, match="not nested"):
        A[((1, 2), None)]


@enigma.kernel
def gather(src, dst, n):
    i = enigma.thread_position_in_grid
    r, c = i % n, i // n
    dst[(r, c)] = src[(r, c)] * 2.0       # both coordinates fixed: one element, through each layout


@enigma.jit
def transpose_scale(S, D):
    n = S.shape[0]
    gather(S.view(Layout((n, n), (n, 1))), D.view(Layout((n, n), (1, n))), n).launch((n * n, 1, 1), (n, 1, 1))


def test_full_coordinates_load_and_store_elements(runtime, rng):
    n = 16
    s = rng.standard_normal((n, n), dtype=np.float32)
    d = np.zeros_like(s)
    ck = enigma.compile(transpose_scale, enigma.tensor(s), enigma.tensor(d))
    runtime.execute(ck)
    np.testing.assert_array_equal(d, (s * 2.0).T)


@enigma.kernel
def offset_copy(src, dst):
    i = enigma.thread_position_in_grid
    dst[i] = src[i]                        # an int index goes through the layout and the base offset


@enigma.jit
def copy_view(S, D):
    offset_copy(S.view(Layout(8, 2), offset=3), D).launch((8, 1, 1), (8, 1, 1))


def test_integer_index_uses_layout_and_base(runtime):
    s = np.arange(32, dtype=np.float32)
    d = np.zeros(8, np.float32)
    ck = enigma.compile(copy_view, enigma.tensor(s, index=0), enigma.tensor(d, index=1))
    runtime.execute(ck)
    np.testing.assert_array_equal(d, s[3:19:2])


# ---- vectorisation needs proven alignment (bug 15a) ------------------------------------


@enigma.kernel
def per_thread_scale(src, dst, thr_layout):
    t = enigma.thread_position_in_grid
    dst[(None, t)].store(src[(None, t)].load() * 3.0)


def _strided_jit(stride, base):
    @enigma.jit
    def f(S, D):
        lay = Layout((4, 8), (1, stride))
        per_thread_scale(S.view(lay, offset=base), D.view(Layout((4, 8), (1, 4))), None).launch((8, 1, 1),
                                                                                                 (8, 1, 1))
    return f


@pytest.mark.parametrize("stride,base,vector", [(4, 0, True), (8, 4, True), (5, 0, False), (4, 1, False),
                                                (4, 2, False), (6, 2, False)])
def test_vector_only_when_aligned(runtime, stride, base, vector):
    s = np.arange(80, dtype=np.float32)
    d = np.zeros(32, np.float32)
    ck = enigma.compile(_strided_jit(stride, base), enigma.tensor(s), enigma.tensor(d))
    src = ck.source("cpu")
    assert ("reinterpret_cast<const en_vec<float, 4>*>" in src) == vector
    if not vector and stride % 2 == 0 and base % 2 == 0:
        assert "reinterpret_cast<const en_vec<float, 2>*>" in src  # aligned to 2 only
    if "en_vec" in src:
        runtime.execute(ck)
    want = np.concatenate([s[base + t * stride: base + t * stride + 4] * 3.0 for t in range(8)])
    np.testing.assert_array_equal(d, want)


@enigma.kernel
def dyn_base(src, dst, n):
    t = enigma.thread_position_in_grid
    dst[(None, t)].store(src.view(Layout(4, 1), offset=t * 5 + 1).load())


@enigma.jit
def dyn_base_jit(S, D):
    dyn_base(S, D.view(Layout((4, 8), (1, 4))), 8).launch((8, 1, 1), (8, 1, 1))


def test_misaligned_dynamic_base_is_scalar_and_correct(runtime):
    s = np.arange(64, dtype=np.float32)
    d = np.zeros(32, np.float32)
    ck = enigma.compile(dyn_base_jit, enigma.tensor(s), enigma.tensor(d))
    assert "reinterpret_cast<const en_vec" not in ck.source("cpu")
    runtime.execute(ck)
    np.testing.assert_array_equal(d, np.concatenate([s[t * 5 + 1: t * 5 + 5] for t in range(8)]))


# ---- non-divisible tilers: tails predicated --------------------------------------------


@enigma.jit
def add_small(A, B, C):
    tiler, tv = _tv((4, 8), (2, 4))
    gA, gB, gC = (enigma.tensor_zipped_divide(t, tiler) for t in (A, B, C))
    nb, nt = enigma.size(gA, mode=[1]), enigma.size(tv, mode=[0])
    tv_add(gA, gB, gC, tv, tiler).launch(grid=(nb * nt, 1, 1), block=(nt, 1, 1))


@pytest.mark.parametrize("shape", [(10, 45), (3, 7), (8, 32)])
def test_non_divisible_tails_are_predicated(runtime, rng, shape):
    a, b = _arrays(rng, shape)
    c = np.zeros_like(a)
    ck = enigma.compile(add_small, enigma.tensor(a), enigma.tensor(b), enigma.tensor(c), debug=True)
    if "en_vec" in ck.source("cpu"):
        runtime.execute(ck)  # debug mode raises on any out-of-bounds access
    np.testing.assert_array_equal(c, a + b)
    tiles = enigma.tensor_zipped_divide(enigma.tensor(a), (8, 32)).size(mode=[1])
    assert tiles == -(-shape[0] // 8) * -(-shape[1] // 32)


# ---- coordinate tensors (bug 15b) ------------------------------------------------------


@enigma.kernel
def write_coords(cT, R, Cc, tv, tiler, m, n):
    bidx = enigma.threadgroup_position_in_grid()
    tidx = enigma.thread_position_in_threadgroup()
    mine = enigma.tensor_composition(cT[((None, None), bidx)], tv, tiler)[(tidx, None)]
    for (i, j) in mine.load():
        with enigma.if_(enigma.elem_less((i, j), (m, n))):
            R[i * n + j] = enigma.metal_cast(i, "float")
            Cc[i * n + j] = enigma.metal_cast(j, "float")


@enigma.jit
def coords_jit(R, Cc, m, n):
    tiler, tv = _tv((2, 8), (2, 2))
    cT = enigma.tensor_zipped_divide(enigma.make_identity_tensor((m, n)), tiler)
    nb, nt = enigma.size(cT, mode=[1]), enigma.size(tv, mode=[0])
    write_coords(cT, R, Cc, tv, tiler, m, n).launch((nb * nt, 1, 1), (nt, 1, 1))


def test_identity_tensor_predicates(runtime):
    m, n = 7, 13
    r = np.zeros(m * n, np.float32)
    cc = np.zeros(m * n, np.float32)
    ck = enigma.compile(coords_jit, enigma.tensor(r), enigma.tensor(cc), m, n, debug=True)
    runtime.execute(ck, output_sizes=[r.nbytes, cc.nbytes])
    out = runtime.execute(ck, [], output_sizes=[r.nbytes, cc.nbytes])
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    np.testing.assert_array_equal(np.frombuffer(out[0], np.float32), ii.ravel().astype(np.float32))
    np.testing.assert_array_equal(np.frombuffer(out[1], np.float32), jj.ravel().astype(np.float32))


def test_identity_tensor_static():
    ident = enigma.make_identity_tensor((4, 8))
    g = enigma.tensor_zipped_divide(ident, (2, 4))
    assert g.size() == 32 and g.size(mode=[1]) == 4
    with pytest.raises(enigma.EnigmaError, match="can only be used inside"):
        g[((1, 3), (1, 1))]


# ---- fragments and vec_width -------------------------------------------------------------


@enigma.kernel
def frag_ops(src, dst):
    t = enigma.thread_position_in_grid
    f = src[(None, t)].load()
    assert len(f) == 4 and f.dtype == "vec<4,float>"
    g = 1.0 - f * 2.0 + f / 4.0
    dst[(None, t)].store(-g)
    dst[(None, t + 4)].store(0.5)     # a scalar is broadcast


@enigma.jit
def frag_jit(S, D):
    frag_ops(S.view(Layout((4, 4), (1, 4))), D.view(Layout((4, 8), (1, 4)))).launch((4, 1, 1), (4, 1, 1))


def test_fragment_arithmetic_and_broadcast_store(runtime):
    s = np.arange(16, dtype=np.float32)
    d = np.zeros(32, np.float32)
    runtime.execute(enigma.compile(frag_jit, enigma.tensor(s), enigma.tensor(d)))
    np.testing.assert_allclose(d[:16], -(1.0 - s * 2.0 + s / 4.0), rtol=1e-6)
    np.testing.assert_array_equal(d[16:], 0.5)


@enigma.kernel
def vec_scale(A: enigma.f32, B: enigma.f32):
    i = enigma.thread_position_in_grid
    v = A[i]
    assert v.dtype == "vec<4,float>"   # trace dtypes follow vec_width (bug 26.1.11)
    B[i] = v * 2.0


def test_vec_width(runtime):
    ck = enigma.compile(vec_scale, vec_width=4)
    assert "device float4*" in ck.metal_source
    a = np.arange(64, dtype=np.float32)
    out = np.frombuffer(runtime.execute(ck, [a], a.nbytes, (16, 1, 1), (16, 1, 1)), np.float32)
    np.testing.assert_array_equal(out, a * 2)
    for bad in (1, 5, 8, 2.0, True):
        with pytest.raises(enigma.EnigmaError, match="vec_width must be 2, 3 or 4"):
            enigma.compile(vec_scale, vec_width=bad)


# ---- vector fragments of threadgroup memory ------------------------------------------


@enigma.kernel
def tg_fragments(A: enigma.f32, Out: enigma.f32):
    g = enigma.threadgroup_position_in_grid()
    lid = enigma.thread_index_in_threadgroup()
    grid_view = Layout((4, 64, 4), (256, 4, 1))            # (group, thread, value)
    sh = enigma.threadgroup_alloc("float", 256).view(Layout((64, 4), (4, 1)))
    sh[(63 - lid, None)].store(A.view(grid_view)[(g, lid, None)].load() * 2.0)
    enigma.barrier()
    Out.view(grid_view)[(g, lid, None)].store(sh[(lid, None)].load())


@pytest.mark.parametrize("debug", [False, True])
def test_threadgroup_fragments_are_vector_accesses(runtime, debug):
    ck = enigma.compile(tg_fragments, debug=debug)
    assert "reinterpret_cast<const en_vec<float, 4>*>(en_tg0 +" in ck.source("cpu")
    assert "reinterpret_cast<en_vec<float, 4>*>(en_tg0 +" in ck.source("cpu")
    assert "reinterpret_cast<const en_vec<float, 4>*>(en_tg__shared0 +" in ck.source("cuda")
    assert "alignas(16) threadgroup float _shared0[256];" in ck.metal_source
    assert "reinterpret_cast<threadgroup float4*>" in ck.metal_source
    a = np.arange(1024, dtype=np.float32)
    raw = runtime.execute(ck, [a], a.nbytes, (256, 1, 1), (64, 1, 1))
    want = 2.0 * a.reshape(4, 64, 4)[:, ::-1, :].reshape(-1)
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32), want)


def test_vector_access_to_threadgroup_memory_needs_whole_vectors():
    @enigma.kernel
    def odd(Out: enigma.f32):
        sh = enigma.threadgroup_alloc("float", 6).view(Layout((3, 2), (2, 1)))
        sh[(0, None)].store(1.0)
        sh = enigma.threadgroup_alloc("float", 10).view(Layout(4, 1))
        sh.store(1.0)
        Out[0] = 1.0
    with pytest.raises(enigma.EnigmaError, match="multiple of 4"):
        enigma.compile(odd, emit_only=True)
