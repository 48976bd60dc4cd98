"""The Python layout API: names, printing, errors, worked examples, and the
places where we follow CuTe instead of the reference Enigma (its bugs)."""
from __future__ import annotations

import collections
import random

import pytest

import enigma
from enigma import Layout
from enigma import layout as el
from enigma import tuple as et
from layout_gen import _leaf_paths, rand_layout

SEED = 20240612


def _run(f):
    try:
        return f()
    except enigma.LayoutError as e:
        return e


def is_complement(A, C, M) -> bool:
    """(filter(A), C) is a bijection onto [0, size) with size >= M."""
    both = el.make_layout(el.filter(A), C)
    return sorted(both.offsets()) == list(range(both.size())) and both.size() >= M


def test_names():
    for name in ("Layout", "Swizzle", "SwizzledLayout", "swizzle", "make_layout", "make_ordered_layout",
                 "make_identity_layout", "size", "coalesce", "complement", "composition", "logical_divide",
                 "zipped_divide", "blocked_product", "recast_layout", "make_layout_tv", "product", "repeat_like",
                 "select"):
        assert callable(getattr(enigma, name)), name
    assert enigma.select is et.select  # the tuple utility; Metal's select is enigma.where
    for name in ("tiled_divide", "logical_product", "raked_product", "right_inverse", "left_inverse", "cosize",
                 "rank", "depth", "Layout", "composition"):
        assert getattr(enigma.core, name) is getattr(el, name)
    for name in ("is_int", "is_tuple", "rank", "depth", "flatten", "inner_product", "crd2idx", "idx2crd",
                 "compact_col_major", "compact_order", "prefix_product", "ceil_div", "gcd", "shape_div",
                 "elem_scale", "is_congruent", "is_compatible"):
        assert callable(getattr(enigma.tuple, name)), name
    assert issubclass(enigma.LayoutError, enigma.EnigmaError) and issubclass(enigma.LayoutError, ValueError)


def test_layout_basics():
    L = Layout((4, (2, 3)))
    assert L.shape == (4, (2, 3)) and L.stride == (1, (4, 8))
    assert repr(L) == str(L) == "(4,(2,3)):(1,(4,8))"
    assert repr(Layout((8,))) == "(8):(1)"
    assert Layout(8) != Layout((8,)) and Layout(8) == enigma.make_layout(8, 1)
    assert L.size() == 24 and L.rank() == 2 and L.depth() == 2 and L.cosize() == 24
    assert L.size(1) == 6 and L.size([1, 1]) == 3 and enigma.size((4, (2, 3)), mode=[1, 1]) == 3
    assert Layout(8).size(0) == 8
    with pytest.raises(IndexError):
        L.size(2)
    assert L[1] == Layout((2, 3), (4, 8)) and L[1, 0] == Layout(2, 4)
    assert L((1, (1, 2))) == 21 and L(1, (1, 2)) == 21 and L(21) == 21
    assert L.offsets() == list(range(24))
    with pytest.raises(TypeError):
        hash(L)
    with pytest.raises(TypeError):
        Layout([4, 2])
    with pytest.raises(enigma.LayoutError, match="not congruent"):
        Layout((4, 2), (1, (2, 3)))
    assert enigma.make_layout(Layout(4, 2), Layout((2, 3))) == Layout((4, (2, 3)), (2, (1, 2)))


def test_evaluation_last_mode_absorbs():
    # CuTe: an index past the end keeps counting in the last mode (the reference wrapped it)
    rm = Layout((4, 2), (2, 1))
    assert [rm(i) for i in range(8)] == [0, 2, 4, 6, 1, 3, 5, 7]
    assert rm(9) == 1 * 2 + 2 * 1
    assert Layout((4, 8), (8, 1))(40) == 10


def test_reference_facts_we_keep():
    mol = enigma.make_ordered_layout
    assert mol((4, 64), (1, 0)) == Layout((4, 64), (64, 1))
    assert mol((4, 64), (0, 1)) == Layout((4, 64), (1, 4))
    assert mol((2, 3, 4), (2, 0, 1)) == Layout((2, 3, 4), (12, 1, 3))
    assert mol((8,), (0,)) == Layout((8,), (1,))
    c = enigma.complement
    assert c(Layout(4, 2)) == Layout(2, 1)
    assert c(Layout(4, 2), 16) == Layout((2, 2), (1, 8))
    assert c(Layout(4, 1), 24) == Layout(6, 4)
    assert c(Layout((2, 2), (1, 4))) == Layout(2, 2)
    assert c(Layout((2, 2), (1, 4)), 16) == Layout((2, 2), (2, 8))
    assert c(Layout((2, 4), (4, 1)), 32) == Layout(4, 8)
    z = enigma.zipped_divide(Layout((64, 512), (512, 1)), (16, 8))
    assert z == Layout(((16, 8), (4, 64)), ((512, 1), (8192, 8)))
    assert sorted(z.offsets()) == list(range(32768))
    assert enigma.recast_layout(16, 8, Layout((16, 16), (16, 1))) == Layout((16, 8), (8, 1))
    assert enigma.recast_layout(32, 16, Layout((8, (4, 4)), (16, (1, 4)))) == Layout((8, (2, 4)), (8, (1, 2)))
    assert enigma.recast_layout(32, 8, Layout(64, 1)) == Layout(16, 1)
    tiler, tv = enigma.make_layout_tv(Layout((4, 64), (64, 1)), Layout((16, 8), (8, 1)))
    assert tiler == (64, 512) and tv == Layout(((64, 4), (8, 16)), ((512, 16), (64, 1)))
    assert tv.size(mode=0) == 256 and tv.size(mode=1) == 128 and tv((0, 0)) == 0 and tv((1, 0)) == 512
    tiler, tv = enigma.make_layout_tv(mol((4, 64), (1, 0)), mol((4, 4), (1, 0)))
    assert tiler == (16, 256) and tv == Layout(((64, 4), (4, 4)), ((64, 4), (16, 1)))
    tiler, tv = enigma.make_layout_tv(mol((2, 4), (1, 0)), mol((2, 2), (1, 0)))
    assert tiler == (4, 8) and tv == Layout(((4, 2), (2, 2)), ((8, 2), (4, 1)))
    for t in range(8):  # thread t owns rows 2*(t//4)+{0,1}, columns 2*(t%4)+{0,1}
        cells = [(x % 4, x // 4) for x in (tv((t, v)) for v in range(4))]  # (row, column) in the 4x8 tile
        assert cells == [(2 * (t // 4) + i, 2 * (t % 4) + j) for i in (0, 1) for j in (0, 1)]
    assert enigma.make_layout_tv(Layout((32,)), Layout((2,)))[0] == (64,)
    # tuple utilities
    assert enigma.product((4, (2, 3))) == 24
    assert enigma.repeat_like(0, (1, (2, 3))) == (0, (0, 0))
    assert enigma.select((10, 20, 30), 1) == 20 and enigma.select((10, 20, 30), [2, 0]) == (30, 10)
    assert et.rank(8) == 1 and et.rank((4, (2, 3))) == 2 and et.depth(5) == 0 and et.depth((3, (4, 5))) == 2
    assert et.flatten((4, (2, 3))) == (4, 2, 3)
    assert et.idx2crd(13, (4, 8)) == (1, 3) and et.idx2crd(13, (2, (3, 4))) == (1, (0, 2))
    assert et.crd2idx((1, 2), (4, 8), (8, 1)) == 10 and et.crd2idx(5, (4, 8), (8, 1)) == 9
    assert et.compact_order((4, 64), (1, 0)) == (64, 1)
    assert et.elem_scale((2, 3), (10, 100)) == (20, 300)
    assert et.shape_div(3, 8) == 1 and et.shape_div(8, 3) == 2
    assert et.compact_col_major((2, (3, 4))) == (1, (2, 6))
    assert et.ceil_div(10, 4) == 3 and et.gcd(12, 18) == 6 and et.inner_product((1, 2), (3, 4)) == 11
    assert et.is_int(3) and not et.is_int(True) and et.is_tuple(()) and not et.is_tuple([1])


def test_cute_where_the_reference_was_wrong():
    # composition is function composition (reference 26.3 #18)
    assert enigma.composition(Layout(20, 2), Layout((5, 4), (4, 1))) == Layout((5, 4), (8, 2))
    assert enigma.composition(Layout((4, 8), (8, 1)), Layout(8, 4)) == Layout(8, 1)
    assert enigma.composition(Layout((10, 2), (16, 4)), Layout((5, 4), (1, 5))) == \
        Layout((5, (2, 2)), (16, (80, 4)))
    assert enigma.logical_divide(Layout((4, 8), (8, 1)), 2) == Layout((2, (2, 8)), (8, (16, 1)))
    # coalesce keeps the mode order (#19)
    assert enigma.coalesce(Layout((4, 8), (8, 1))) == Layout((4, 8), (8, 1))
    assert enigma.coalesce(Layout((2, (1, 6)), (1, (7, 2)))) == Layout(12, 1)
    assert enigma.coalesce(Layout((1, 1), (3, 4))) == Layout(1, 0)
    # complement(4:1) is 1:0; both keyword spellings work (#20)
    assert enigma.complement(Layout(4, 1)) == Layout(1, 0)
    assert enigma.complement(Layout(4, 1), cosize=4) == enigma.complement(Layout(4, 1), cosize_val=4) == Layout(1, 0)
    # zipped_divide rounds the rest up and is logical_divide zipped (#21)
    assert enigma.zipped_divide(Layout(10, 1), 4) == Layout((4, 3), (1, 4))
    assert enigma.zipped_divide(Layout((8, 8), (8, 1)), (3, 3)) == Layout(((3, 3), (3, 3)), ((8, 1), (24, 3)))
    assert enigma.zipped_divide(Layout(((2, 4), 8), ((1, 2), 8)), (4, 2)) == \
        Layout(((4, 2), (2, 4)), ((1, 8), (4, 16)))
    # recast down-casts, and adjusts every unit-stride mode (#22)
    assert enigma.recast_layout(8, 16, Layout((16, 8), (8, 1))) == Layout((16, 16), (16, 1))
    assert enigma.recast_layout(8, 32, Layout((4, (2, 4)), (8, (1, 2)))) == Layout((4, (8, 4)), (32, (1, 8)))
    # identity layouts map to coordinates; ordered layouts of nested shapes stay congruent (#23)
    idl = enigma.make_identity_layout((4, 8))
    assert repr(idl) == "(4,8):(1@0,1@1)" and idl(9) == (1, 2) and idl((3, 5)) == (3, 5)
    assert enigma.make_ordered_layout(((2, 2), 4), (1, 0)) == Layout(((2, 2), 4), ((4, 8), 1))
    # left_inverse is not right_inverse (#24)
    assert el.left_inverse(Layout(4, 2)) == Layout((2, 4), (0, 1))
    assert el.right_inverse(Layout(4, 2)) == Layout(1, 0)
    # is_congruent compares structure only (#25)
    assert et.is_congruent((4, 8), (4, 9)) and not et.is_congruent((4, 8), (4, (8,)))
    # Swizzle(3,3,6)(128) == 128, as CuTe (#26)
    assert enigma.Swizzle(3, 3, 6)(128) == 128


def test_products():
    a, b = Layout((2, 2), (1, 2)), Layout((3, 4), (1, 3))
    assert enigma.blocked_product(a, b) == Layout(((2, 3), (2, 4)), ((1, 4), (2, 12)))
    assert el.raked_product(a, b) == Layout(((3, 2), (4, 2)), ((4, 1), (12, 2)))
    assert el.logical_product(Layout((2, 2), (4, 1)), Layout(6, 1)) == Layout(((2, 2), (2, 3)), ((4, 1), (2, 8)))
    assert el.logical_product(a, (3, 4)) == Layout(((2, 3), (2, (2, 2))), ((1, 2), (2, (1, 4))))
    assert enigma.blocked_product(Layout(4, 1), 3) == Layout(((4, 3),), ((1, 4),))


def test_divides_and_tilers():
    L = Layout((8, 8, 3), (1, 8, 64))
    assert el.tiled_divide(L, (4, 2)) == Layout(((4, 2), 2, 4, 3), ((1, 8), 4, 16, 64))
    assert enigma.logical_divide(L, (None, 4)) == Layout((8, (4, 2), 3), (1, (8, 32), 64))
    assert enigma.composition(L, (Layout(2, 2), None)) == Layout((2, 8), (2, 8))  # CuTe drops mode 2
    assert enigma.composition(L, None) is L
    with pytest.raises(TypeError):
        enigma.composition((8,), L)
    with pytest.raises(TypeError, match="tiler"):
        enigma.logical_divide(L, [4])
    with pytest.raises(enigma.LayoutError, match="more modes"):
        enigma.logical_divide(Layout((4, 4)), (2, 2, 2))
    with pytest.raises(enigma.LayoutError, match="divisibility"):
        enigma.composition(Layout((4, 8), (1, 5)), Layout(3, 3))


def test_identity_layout_coordinates():
    idl = enigma.make_identity_layout((4, (2, 3)))
    assert idl.stride == (el.ScaledBasis(1, 0), (el.ScaledBasis(1, (1, 0)), el.ScaledBasis(1, (1, 1))))
    assert repr(idl) == "(4,(2,3)):(1@0,(1@0@1,1@1@1))"
    assert idl(13) == (1, (1, 1))
    tiles = enigma.zipped_divide(enigma.make_identity_layout((4, 8)), (2, 4))
    assert tiles(((1, 3), (1, 1))) == (3, 7)
    with pytest.raises(enigma.LayoutError, match="integer strides"):
        enigma.complement(idl)


def test_swizzle():
    sw = enigma.Swizzle(3, 2, 5)
    assert (sw.bits, sw.base, sw.shift) == (3, 2, 5) and repr(sw) == "Swizzle(bits=3, base=2, shift=5)"
    assert [sw(r * 32 + 1) for r in range(8)] == [1, 33, 65, 97, 133, 165, 197, 229]
    assert enigma.Swizzle(2, 0, -3)(0b00011) == 0b11011
    assert sw == enigma.Swizzle(3, 2, 5) and hash(sw) == hash(enigma.Swizzle(3, 2, 5))
    with pytest.raises(ValueError, match="Swizzle bits must be non-negative, got -1"):
        enigma.Swizzle(-1, 2, 3)
    with pytest.raises(ValueError, match="shift"):
        enigma.Swizzle(3, 0, 2)

    class Sym(int):  # a stand-in for a traced value: only the operators are used
        def __and__(self, o):
            return Sym(int(self) & int(o))

        def __rshift__(self, o):
            return Sym(int(self) >> int(o))

        def __xor__(self, o):
            return Sym(int(self) ^ int(o))

    assert sw(Sym(133)) == sw(133)
    sl = enigma.swizzle(Layout((16, 32), (32, 1)), 3, 2, 5)
    assert sl((1, 0)) == 32 and sl((2, 3)) == 67
    assert sl.shape == (16, 32) and sl.size() == 512 and sl.cosize() == 512 and sl.rank() == 2
    assert sorted(sl.offsets()) == list(range(512))
    assert repr(sl) == "SwizzledLayout((16,32):(32,1), Swizzle(bits=3, base=2, shift=5))"
    assert enigma.composition(sw, Layout((16, 32), (32, 1))) == sl
    tiled = enigma.zipped_divide(sl, (4, 8))
    assert isinstance(tiled, enigma.SwizzledLayout) and tiled.swizzle == sw
    assert tiled.offsets() == [sw(x) for x in enigma.zipped_divide(sl.layout, (4, 8)).offsets()]


# ---- laws, on our results alone ---------------------------------------------------


def test_layout_laws():
    r = random.Random(SEED)
    counts = collections.Counter()
    for _ in range(2500):
        A = rand_layout(r)
        size_a, offs = A.size(), A.offsets()
        injective = len(set(offs)) == len(offs)

        # (A o B)(i) == A(B(i)) for a 1-mode B (and B past size(A): the last mode absorbs);
        # CuTe's composition distributes over B's modes, so a multi-mode B is checked leaf by leaf
        B = enigma.Layout(r.randint(1, 12), r.randint(0, 5))
        C = _run(lambda: el.composition(A, B))
        if isinstance(C, enigma.Layout):
            assert C.size() == B.size()
            assert C.offsets() == [A(B(i)) for i in range(B.size())], (A, B, C)
            counts["composition"] += 1
        # ... and mode by mode for a multi-mode B
        B = rand_layout(r, 32)
        C = _run(lambda: el.composition(A, B))
        if isinstance(C, enigma.Layout) and isinstance(B.shape, tuple):
            for path in _leaf_paths(B.shape):  # C refines B: each leaf of B is one mode of C
                assert C[path].offsets() == [A(B[path](i)) for i in range(B[path].size())], (A, B, C, path)
            counts["composition_by_mode"] += 1

        # complement: disjoint from A, and (A, complement) is a bijection onto its cosize
        M = A.cosize() * r.randint(1, 3)
        Cm = _run(lambda: el.complement(A, M))
        if isinstance(Cm, enigma.Layout):
            assert is_complement(A, Cm, M), (A, M, Cm)
            assert not set(el.filter(A).offsets()[1:]) & set(Cm.offsets()[1:])
            counts["complement"] += 1

        # divide: size(divide) == size(A) when the tile divides A, >= otherwise
        tile = enigma.Layout(r.randint(1, 8), r.randint(1, 3))
        D = _run(lambda: el.logical_divide(A, tile))
        if isinstance(D, enigma.Layout):
            assert D.size() >= size_a
            if size_a % (tile.size() * tile.stride) == 0:
                assert D.size() == size_a
            assert D[0] == el.composition(A, tile)
            Z = el.zipped_divide(A, tile)
            assert Z.size() == D.size() and Z.offsets() == D.offsets()
            counts["divide"] += 1

        # products: sizes multiply, mode 0 of the logical product is A
        Bp = rand_layout(r, 16)
        P = _run(lambda: el.logical_product(A, Bp))
        if isinstance(P, enigma.Layout):
            assert P.size() == size_a * Bp.size() and P[0] == A
            bp, rp = el.blocked_product(A, Bp), el.raked_product(A, Bp)
            assert bp.size() == rp.size() == P.size()
            assert sorted(bp.offsets()) == sorted(rp.offsets()) == sorted(P.offsets())
            counts["product"] += 1

        # inverses
        R = el.right_inverse(A)
        assert [A(R(i)) for i in range(R.size())] == list(range(R.size()))
        counts["right_inverse"] += 1
        if injective:
            Li = _run(lambda: el.left_inverse(A))
            if isinstance(Li, enigma.Layout):
                assert [Li(x) for x in offs] == list(range(size_a)), (A, Li)
                counts["left_inverse"] += 1

        # recast round trip through a narrower element
        if injective and 1 in et.flatten(A.stride if isinstance(A.stride, tuple) else (A.stride,)):
            narrow = el.recast_layout(8, 32, A)
            assert el.recast_layout(32, 8, narrow) == A
            counts["recast_round_trip"] += 1
    print("\nlaws checked:", dict(sorted(counts.items())))
    for k in ("composition", "composition_by_mode", "complement", "divide", "product", "left_inverse"):
        assert counts[k] > 200, (k, counts[k])
