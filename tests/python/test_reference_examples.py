"""Code from the reference package's docs, examples and tests (as quoted in its
surface description), written as its users write it: its import paths, its
keyword names, its calling conventions. It runs here unchanged on the default
device; results are checked against numpy or the quoted values."""
import numpy as np

import enigma
from enigma.core import Layout, make_layout_tv, make_ordered_layout, size
from enigma.ops.gemm import gemm
from enigma.ops.quant import dequantize_int8, pack_int4x2, unpack_int4x2
from enigma.runtime_dispatch.runtime import MetalRuntime
from enigma.tensor import Tensor, tensor_composition, tensor_zipped_divide
from enigma.tuple import compact_order, crd2idx, depth, elem_scale, flatten, idx2crd, rank, shape_div
from enigma.typing import f32

# ---- the canonical tiled add of the reference's tests (its section 19.6) ----------------------

M, N = 256, 512


@enigma.kernel
def elementwise_add(gA, gB, gC, tv_layout, tiler):
    bidx, _, _ = enigma.arch.block_idx()
    tidx, _, _ = enigma.arch.thread_idx()
    blkA = gA[((None, None), bidx)]
    blkB = gB[((None, None), bidx)]
    blkC = gC[((None, None), bidx)]
    thrA = tensor_composition(blkA, tv_layout, tiler)[(tidx, None)]
    thrB = tensor_composition(blkB, tv_layout, tiler)[(tidx, None)]
    thrC = tensor_composition(blkC, tv_layout, tiler)[(tidx, None)]
    thrC.store(thrA.load() + thrB.load())


@enigma.jit
def add(mA, mB, mC):
    thr_layout = make_ordered_layout((4, 64), (1, 0))
    val_layout = make_ordered_layout((4, 4), (1, 0))
    tiler, tv_layout = make_layout_tv(thr_layout, val_layout)
    gA = tensor_zipped_divide(mA, tiler)
    gB = tensor_zipped_divide(mB, tiler)
    gC = tensor_zipped_divide(mC, tiler)
    num_blocks = size(gA, mode=[1])
    num_threads = size(tv_layout, mode=[0])
    elementwise_add(gA, gB, gC, tv_layout, tiler).launch(grid=(num_blocks * num_threads, 1, 1),
                                                         block=(num_threads, 1, 1))


def test_canonical_tiled_add(rng):
    A = Tensor("A", 0, "float", Layout((M, N), (N, 1)))
    B = Tensor("B", 1, "float", Layout((M, N), (N, 1)))
    C = Tensor("C", 2, "float", Layout((M, N), (N, 1)))
    compiled = enigma.compile(add, A, B, C)
    assert compiled.grid == (8192, 1, 1) and compiled.block == (256, 1, 1)
    a = rng.standard_normal((M, N)).astype(np.float32)
    b = rng.standard_normal((M, N)).astype(np.float32)
    rt = MetalRuntime()
    raw = rt.execute(compiled, [a, b], a.nbytes, grid=compiled.grid, threads=compiled.block)
    np.testing.assert_array_equal(np.frombuffer(raw, dtype=np.float32).reshape(M, N), a + b)


def test_tensor_slicing_example():
    # "row-major (256,512):(512,1) tensor, zipped-divided by (16,256) -> ((16,256),(16,2)):((512,1),(8192,256));
    #  [((None,None), 5)] -> Tensor(A, layout=(16,256):(512,1), offset=40960)"
    A = Tensor("A", 0, "float", Layout((256, 512), (512, 1)))
    g = tensor_zipped_divide(A, (16, 256))
    assert repr(g.layout) == "((16,256),(16,2)):((512,1),(8192,256))"
    assert repr(g[((None, None), 5)]) == "Tensor(A, layout=(16,256):(512,1), offset=40960)"
    # "block (16,256):(512,1) with tv ((64,4),(4,4)):((64,4),(16,1)), tiler (16,256)
    #  -> ((64,4),(4,4)):((4,2048),(1,512)); [(3, None)] of that at base 40960 -> offset 40972"
    blk = g[((None, None), 5)]
    tv = Layout(((64, 4), (4, 4)), ((64, 4), (16, 1)))
    thr = tensor_composition(blk, tv, (16, 256))
    assert repr(thr.layout) == "((64,4),(4,4)):((4,2048),(1,512))"
    assert repr(thr[(3, None)]) == "Tensor(A, layout=(4,4):(1,512), offset=40972)"


# ---- worked control-flow examples (its section 16.7), run on the device -------------------------

@enigma.kernel
def carried_sum(A: f32, Out: f32):
    tid = enigma.thread_position_in_grid
    zero = enigma.metal_cast(0.0, "float")
    with enigma.for_range(0, 8, init=[zero]) as (i, carry):
        carry[0] = carry[0] + A[i]
    Out[tid] = carry[0]


@enigma.kernel
def range_sum(A: f32, Out: f32):
    tid = enigma.thread_position_in_grid
    total = enigma.metal_cast(0.0, "float")
    for i in enigma.range(10):
        total = total + A[i]
    acc = enigma.metal_cast(0.0, "float")  # the reference's `acc = 0` made a uint counter (its 26.2.17)
    for i in enigma.range(1, 9, 2):
        acc = acc + A[i]
    for h in enigma.range_constexpr(4):
        Out[tid * 8 + h] = enigma.metal_cast(float(h), "float")
    Out[tid * 8 + 4] = total
    Out[tid * 8 + 5] = acc


def test_control_flow_examples():
    a = np.arange(16, dtype=np.float32) + 0.5
    rt = MetalRuntime()
    raw = rt.execute(enigma.compile(carried_sum), [a], 4 * 4, (4, 1, 1), (4, 1, 1))
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32), np.full(4, a[:8].sum()))
    raw = rt.execute(enigma.compile(range_sum), [a], 2 * 8 * 4, (2, 1, 1), (2, 1, 1))
    out = np.frombuffer(raw, np.float32).reshape(2, 8)
    np.testing.assert_array_equal(out[:, :4], np.tile(np.arange(4, dtype=np.float32), (2, 1)))
    np.testing.assert_array_equal(out[:, 4], a[:10].sum())
    np.testing.assert_array_equal(out[:, 5], a[1:9:2].sum())


# "gemm(A, B, register_tensor((3,4)), M=3, N=4, K=2) ... with A=[[1,2],[3,4],[5,6]],
#  B=[[7,8,9,10],[11,12,13,14]] on one thread the device result equals A @ B"
@enigma.kernel
def small_gemm(A: f32, B: f32, Out: f32):
    C = enigma.register_tensor((3, 4), "float", 0)
    gemm(A, B, C, M=3, N=4, K=2)
    for m in enigma.range_constexpr(3):
        for n in enigma.range_constexpr(4):
            Out[m * 4 + n] = C[m, n]


def test_gemm_example():
    A = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    B = np.array([[7, 8, 9, 10], [11, 12, 13, 14]], np.float32)
    raw = MetalRuntime().execute(enigma.compile(small_gemm), [A, B], 12 * 4, (1, 1, 1), (1, 1, 1))
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32).reshape(3, 4), A @ B)


# ---- quantization helpers (its section 17.2) ----------------------------------------------------

@enigma.kernel
def quant(Q: enigma.i32, Out: f32, Nib: enigma.i32):
    i = enigma.thread_position_in_grid
    Out[i] = dequantize_int8(Q[i], 0.5, zero_point=3)
    lo, hi = unpack_int4x2(pack_int4x2(Q[i], Q[i] + 1))
    Nib[i] = lo * 100 + hi


def test_quantization_example():
    q = np.arange(-8, 8, dtype=np.int32)
    out, nib = MetalRuntime().execute(enigma.compile(quant), [q], None, (16, 1, 1), (16, 1, 1),
                                      output_sizes=[64, 64])
    np.testing.assert_array_equal(np.frombuffer(out, np.float32), (q - 3).astype(np.float32) * 0.5)

    def nibble(v):
        v &= 0xF
        return v - 16 if v >= 8 else v
    want = np.array([nibble(v) * 100 + nibble(v + 1) for v in q], np.int32)
    np.testing.assert_array_equal(np.frombuffer(nib, np.int32), want)


# ---- layout and tuple facts (its sections 18.3-18.5) on which CuTe agrees ------------------------

def test_tuple_facts():
    assert rank(8) == 1 and rank((4, (2, 3))) == 2
    assert depth(5) == 0 and depth((3, (4, 5))) == 2
    assert flatten((4, (2, 3))) == (4, 2, 3)
    assert idx2crd(13, (4, 8)) == (1, 3) and idx2crd(13, (2, (3, 4))) == (1, (0, 2))
    assert crd2idx((1, 2), (4, 8), (8, 1)) == 10 and crd2idx(5, (4, 8), (8, 1)) == 9
    assert compact_order((4, 64), (1, 0)) == (64, 1)
    assert elem_scale((2, 3), (10, 100)) == (20, 300)
    assert shape_div(3, 8) == 1 and shape_div(8, 3) == 2
    assert enigma.product((4, (2, 3))) == 24 and enigma.repeat_like(0, (1, (2, 3))) == (0, (0, 0))
    assert enigma.select((10, 20, 30), 1) == 20 and enigma.select((10, 20, 30), [2, 0]) == (30, 10)


def test_layout_facts():
    assert repr(Layout((4, (2, 3)), (1, (4, 8)))) == "(4,(2,3)):(1,(4,8))"
    assert make_ordered_layout((4, 64), (1, 0)) == Layout((4, 64), (64, 1))
    assert make_ordered_layout((2, 3, 4), (2, 0, 1)) == Layout((2, 3, 4), (12, 1, 3))
    assert size((4, (2, 3)), mode=[1, 1]) == 3 and size(Layout(8)) == 8
    assert enigma.coalesce(Layout((2, 6), (1, 2))) == Layout(12, 1)
    tiler, tv = make_layout_tv(Layout((4, 64), (64, 1)), Layout((16, 8), (8, 1)))
    assert tiler == (64, 512) and repr(tv) == "((64,4),(8,16)):((512,16),(64,1))"
    assert size(tv, mode=0) == 256 and size(tv, mode=1) == 128
    assert sorted(tv(i) for i in range(tv.size())) == list(range(32768))
    sw = enigma.Swizzle(3, 2, 5)
    assert [sw(r * 32 + 1) for r in range(8)] == [1, 33, 65, 97, 133, 165, 197, 229]
    swl = enigma.swizzle(Layout((16, 32), (32, 1)), 3, 2, 5)
    assert swl((1, 0)) == 32 and swl((2, 3)) == 67
