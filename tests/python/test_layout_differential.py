"""The layout algebra against tensor-layouts, an independent pure-Python CuTe
implementation, on thousands of seeded random layouts (nested shapes
included). The laws of the algebra are checked on our results alone in
test_layout.py.

Where the two disagree the difference must fall into one of the known,
explained categories below (each checked, not just counted); anything else
fails. Run with ``pytest -s`` to see the counts.

Known differences (ours follows CuTe's C++ definitions):
  coalesce_x     CuTe's composition coalesces its left side keeping the stride
                 of a trailing size-1 mode (the function beyond size(A) is
                 kept); tensor-layouts drops it. Same function on the domain.
  tl_stricter    tensor-layouts rejects a stride that neither divides nor is a
                 multiple of a mode size even when the elements fit in that
                 mode (CuTe's condition: stride % size == 0 or stride < size).
  no_complement  the layout has no complement (overlapping modes: CuTe asserts;
                 a stride that is not a multiple of the extent below it: CuTe
                 returns a non-covering layout, we raise). tensor-layouts returns
                 a layout that is not a complement (checked).
  cute_asserts   left_inverse / upcast / downcast preconditions CuTe asserts
                 and tensor-layouts does not check.
  tl_unwraps_1_tuples
                 CuTe's make_layout(L) of one layout is the 1-tuple (L) (a divide
                 or product by a 1-tuple tiler keeps it); tensor-layouts unwraps
                 it (and tiled_divide then flattens further). Our result has a
                 1-tuple and the two are equal once flattened.
  size1_strides  the results differ only in the stride of size-1 modes, which
                 never contributes to an offset (e.g. CuTe's composition with a
                 1:0 left side gives stride 0).
  tl_drops_padding
                 blocked/raked products pad the lower-rank side with 1:0 modes and
                 zip them in (CuTe); tensor-layouts leaves the padding out. Each
                 top-level mode is the same function.
  tl_stacks_by_cosize
                 tensor-layouts' blocked and raked products place the copies at
                 multiples of cosize(block); CuTe composes the tiler with
                 complement(block), which fills the block's holes first (and skips
                 its stride-0 modes). Checked by rebuilding tensor-layouts' answer.
  rank1_zip      a rank-1 blocked/raked product whose tiler composes into several
                 modes: CuTe's zip does not compile, tensor-layouts raises; we keep
                 the composed tiler as one mode (checked: a permutation of the
                 logical product).
  tl_keeps_extra_modes
                 composition by a tuple tiler shorter than the layout: CuTe drops
                 the modes the tiler does not reach, tensor-layouts keeps them.
"""
from __future__ import annotations

import collections
import random

import pytest

import enigma
from enigma import layout as el
from enigma import tuple as et

tl = pytest.importorskip("tensor_layouts")

SEED = 20240611
N_LAYOUTS = 4000  # with the tilers and right-hand sides: about 23,000 generated layouts

from layout_gen import _leaves, _unflatten, rand_layout  # noqa: E402


def T(L):
    """The tensor-layouts twin of one of our layouts."""
    return tl.Layout(L.shape, L.stride)


def same(ours, theirs) -> bool:
    return isinstance(theirs, tl.Layout) and ours.shape == theirs.shape and ours.stride == theirs.stride


def unwrap1(t):
    """1-tuples replaced by their element, all the way down."""
    if isinstance(t, tuple):
        return unwrap1(t[0]) if len(t) == 1 else tuple(unwrap1(x) for x in t)
    return t


def has_1tuple(t) -> bool:
    return isinstance(t, tuple) and (len(t) == 1 or any(has_1tuple(x) for x in t))


def differ_only_on_size1(o, t) -> bool:
    """Same shape (up to 1-tuples) and strides that differ only on size-1 modes,
    whose stride never contributes: the same function, everywhere."""
    if unwrap1(o.shape) != unwrap1(t.shape):
        return False
    fs, fo, ft = _leaves(unwrap1(o.shape)), _leaves(unwrap1(o.stride)), _leaves(unwrap1(t.stride))
    return len(fo) == len(ft) and all(a == b or s == 1 for s, a, b in zip(fs, fo, ft))


def same_modes(a, b) -> bool:
    """The same function mode by mode (top level), whatever the nesting inside."""
    if a.rank() != b.rank() or a.rank() == 1:
        return False
    return all(a[i].size() == b[i].size() and a[i].offsets() == b[i].offsets() for i in range(a.rank()))


def tl_style_product(op, A, B, t) -> bool:
    """Whether t is tensor-layouts' blocked/raked product: mode i is (A_i, B_i)
    with B's strides scaled by cosize(A), where CuTe composes B with
    complement(A) instead (the same only when that complement is cosize(A)-strided)."""
    def modes(L, r):
        m = [L[i] for i in range(L.rank())] if isinstance(L.shape, tuple) else [L]
        return m + [enigma.Layout(1, 0)] * (r - len(m))

    r = max(A.rank(), B.rank())
    scaled = [enigma.Layout(b.shape, _unflatten([d * A.cosize() for d in _leaves(b.stride)], b.stride))
              for b in modes(B, r)]
    pairs = [(a, b) if op == "blocked_product" else (b, a) for a, b in zip(modes(A, r), scaled)]
    want = [el.make_layout(x, y) for x, y in pairs]
    got = enigma.Layout(t.shape, t.stride)
    if r == 1:
        return got.offsets() == want[0].offsets()
    return got.rank() == r and all(got[i].offsets() == want[i].offsets() for i in range(r))


def trailing1(L) -> bool:
    """The last flattened mode has size 1: where CuTe's coalesce_x matters."""
    return et.flatten(L.shape if isinstance(L.shape, tuple) else (L.shape,))[-1] == 1


def is_complement(A, C, M) -> bool:
    """(filter(A), C) is a bijection onto [0, size) with size >= M."""
    both = el.make_layout(el.filter(A), C)
    return sorted(both.offsets()) == list(range(both.size())) and both.size() >= M


def tl_offsets(L) -> list:
    return [L(i) for i in range(tl.size(L))]


class Tally:
    def __init__(self):
        self.agree = collections.Counter()
        self.known = collections.Counter()
        self.layouts = 0

    def report(self, title):
        print(f"\n{title}: {self.layouts} generated layouts checked against tensor-layouts")
        print("  agreeing results:", dict(sorted(self.agree.items())))
        print("  known, explained differences:", dict(sorted(self.known.items())))


def _run(f):
    try:
        return f()
    except (enigma.LayoutError, tl.LayoutError) as e:
        return e


def compare(tally, op, ours_f, theirs_f, *, lhs, domain_ok=None, complement_of=None, lhs_rhs=None):
    """Runs both sides and checks that they agree or differ in a known way.

    lhs: the layout(s) whose coalescing decides composition (for coalesce_x).
    domain_ok(ours, theirs): on a structural difference, checks the two are the
    same function on the domain. complement_of: (A, M) when the op is built on
    complement(A, M)."""
    o, t = _run(ours_f), _run(theirs_f)
    lhs = lhs if isinstance(lhs, (list, tuple)) else [lhs]
    if isinstance(o, Exception) and isinstance(t, Exception):
        tally.agree[op + ":both_reject"] += 1
        return o
    if not isinstance(o, Exception) and not isinstance(t, Exception):
        if not isinstance(t, tl.Layout):
            pytest.fail(f"{op}: tensor-layouts gave a non-affine {t!r}, we gave {o!r}")
        if same(o, t):
            tally.agree[op] += 1
            return o
        if has_1tuple(o.shape) and _leaves(o.shape) == _leaves(t.shape) and _leaves(o.stride) == _leaves(t.stride):
            tally.known[op + ":tl_unwraps_1_tuples"] += 1
            return o
        if differ_only_on_size1(o, t):
            tally.known[op + ":size1_strides"] += 1
            return o
        if same_modes(o, enigma.Layout(t.shape, t.stride)):
            tally.known[op + ":tl_drops_padding"] += 1
            return o
        if op in ("blocked_product", "raked_product") and tl_style_product(op, *lhs_rhs, t):
            tally.known[op + ":tl_stacks_by_cosize"] += 1
            return o
        assert any(trailing1(x) for x in lhs), f"{op}: {o!r} vs {t!r} for {lhs}"
        assert o.size() == tl.size(t), f"{op}: {o!r} vs {t!r}"
        if domain_ok is not None:
            domain_ok(o, t)
        tally.known[op + ":coalesce_x"] += 1
        return o
    if isinstance(o, Exception):
        msg = str(o)
        if complement_of is not None and "no complement" in msg:
            # some layout the op complements has none; tensor-layouts' answer for it is no complement
            failing = [(A, M) for A, M in complement_of if isinstance(_run(lambda: el.complement(A, M)), Exception)]
            assert failing, f"{op}: {msg}"
            for A, M in failing:
                tc = _run(lambda: tl.complement(T(A), M))
                if isinstance(tc, tl.Layout):
                    assert not is_complement(A, enigma.Layout(tc.shape, tc.stride), M), f"{op}: {A} {M} {tc}"
            tally.known[op + ":no_complement"] += 1
        elif op in ("left_inverse", "upcast", "downcast", "recast_layout"):
            assert "divisibility" in msg or "unit-stride" in msg, msg
            tally.known[op + ":cute_asserts"] += 1
        elif "product" in op and msg.startswith("composition(") and "divisibility condition failed" in msg:
            # the tiler does not fit the complement of the block: CuTe's composition asserts
            tally.known[op + ":cute_asserts"] += 1
        else:
            assert any(trailing1(x) for x in lhs), f"{op}: we raised {msg!r}, tensor-layouts gave {t!r}"
            tally.known[op + ":coalesce_x"] += 1
        return o
    # tensor-layouts rejected, we did not: our result must be right (checked by the caller's laws)
    if "Rank mismatch in zip" in str(t) and lhs_rhs is not None:
        # a rank-1 product whose tiler composed into several modes: we keep them as one mode
        A, B = lhs_rhs
        assert sorted(o.offsets()) == sorted(el.logical_product(A, B).offsets())
        tally.known[op + ":rank1_zip"] += 1
        return o
    assert "not divisible" in str(t), f"{op}: tensor-layouts raised {t!r}, we gave {o!r}"
    tally.known[op + ":tl_stricter"] += 1
    return o


def in_domain_agree(rhs, size_a):
    """A domain_ok check: equal offsets wherever the right side stays in [0, size(A))."""

    def check(o, t):
        ro = rhs.offsets()
        to = tl_offsets(t)
        for i, x in enumerate(o.offsets()):
            if 0 <= ro[i] < size_a:
                assert x == to[i], f"{o!r} vs {t!r} at {i}"

    return check


# ---- the differential test ----------------------------------------------------


def test_layouts_against_tensor_layouts():
    r = random.Random(SEED)
    tally = Tally()
    for _ in range(N_LAYOUTS):
        A = rand_layout(r)
        tally.layouts += 1
        TA = T(A)
        size_a = A.size()

        # evaluation: every index, and every index as a nested coordinate
        offs = A.offsets()
        assert offs == tl_offsets(TA), A
        for i in range(size_a):
            crd = et.idx2crd(i, A.shape)
            assert crd == tl.idx2crd(i, A.shape), (A, i)
            assert A(crd) == offs[i] == TA(crd), (A, i, crd)
            assert et.crd2idx(crd, A.shape) == i
        assert A(size_a + 3) == TA(size_a + 3)  # the last mode absorbs the overflow
        assert A.cosize() == (tl.cosize(TA) if size_a else 0)
        tally.agree["eval"] += 1

        # coalesce, and by mode
        compare(tally, "coalesce", lambda: el.coalesce(A), lambda: tl.coalesce(TA), lhs=A)
        if isinstance(A.shape, tuple):
            ours = el.coalesce(A, (1,) * len(A.shape))
            want = [tl.coalesce(T(A[i])) for i in range(len(A.shape))]
            assert ours.shape == tuple(w.shape for w in want) and ours.stride == tuple(w.stride for w in want)
            tally.agree["coalesce_by_mode"] += 1

        # composition with a random layout, and with a 1-mode layout
        for B in (rand_layout(r, 32), enigma.Layout(r.randint(1, 8), r.randint(0, 4))):
            tally.layouts += 1
            compare(tally, "composition", lambda: el.composition(A, B), lambda: tl.compose(TA, T(B)), lhs=A,
                    domain_ok=in_domain_agree(B, size_a))

        # complement
        M = A.cosize() * r.randint(1, 3)
        compare(tally, "complement", lambda: el.complement(A, M), lambda: tl.complement(TA, M), lhs=A,
                complement_of=[(A, M)])

        # inverses
        compare(tally, "right_inverse", lambda: el.right_inverse(A), lambda: tl.right_inverse(TA), lhs=A)
        compare(tally, "left_inverse", lambda: el.left_inverse(A), lambda: tl.left_inverse(TA), lhs=A)

        # divides by a 1-mode tiler
        tile = enigma.Layout(r.randint(1, 8), r.randint(1, 3))
        tally.layouts += 1
        rhs = _run(lambda: el.make_layout(tile, el.complement(tile, size_a)))
        for name, fo, ft in (("logical_divide", el.logical_divide, tl.logical_divide),
                             ("zipped_divide", el.zipped_divide, tl.zipped_divide),
                             ("tiled_divide", el.tiled_divide, tl.tiled_divide)):
            ok = in_domain_agree(rhs, size_a)  # a 1-mode tiler: all three are the same function
            compare(tally, name, lambda: fo(A, tile), lambda: ft(TA, T(tile)), lhs=A, domain_ok=ok,
                    complement_of=[(tile, size_a)])

        # divides and products by a tuple of tilers (by mode)
        if isinstance(A.shape, tuple):
            tiles = tuple(enigma.Layout(r.randint(1, 4), r.randint(1, 2)) for _ in range(r.randint(1, len(A.shape))))
            tally.layouts += len(tiles)
            modes = [A[i] for i in range(len(tiles))]
            for name, fo, ft in (("logical_divide_by_mode", el.logical_divide, tl.logical_divide),
                                 ("zipped_divide_by_mode", el.zipped_divide, tl.zipped_divide),
                                 ("tiled_divide_by_mode", el.tiled_divide, tl.tiled_divide),
                                 ("logical_product_by_mode", el.logical_product, tl.logical_product)):
                cands = [(m, m.size() * (x.cosize() if "product" in name else 1)) for m, x in zip(modes, tiles)]
                compare(tally, name, lambda: fo(A, tiles), lambda: ft(TA, tuple(T(x) for x in tiles)), lhs=modes,
                        complement_of=cands)
            # composition by mode: CuTe drops the modes beyond the tiler, tensor-layouts keeps them
            o = _run(lambda: el.composition(A, tiles))
            t = _run(lambda: tl.compose(TA, tuple(T(x) for x in tiles)))
            if not isinstance(o, Exception) and isinstance(t, tl.Layout):
                k = len(tiles)
                for i in range(k):
                    theirs = enigma.Layout(t.shape[i], t.stride[i])
                    assert o[i].size() == theirs.size(), (A, tiles, o, t)
                    for j in range(tiles[i].size()):
                        if tiles[i](j) < modes[i].size():
                            assert o[i](j) == theirs(j), (A, tiles, o, t)
                    if o[i] != theirs:  # past the end of the mode: CuTe keeps a trailing size-1 mode's stride
                        assert trailing1(modes[i]) or differ_only_on_size1(o[i], T(theirs)), (A, tiles, o, t)
                if k < len(A.shape):
                    tally.known["composition_by_mode:tl_keeps_extra_modes"] += 1
                else:
                    tally.agree["composition_by_mode"] += 1

        # products with a random layout
        B = rand_layout(r, 16)
        tally.layouts += 1
        for name, fo, ft in (("logical_product", el.logical_product, tl.logical_product),
                             ("blocked_product", el.blocked_product, tl.blocked_product),
                             ("raked_product", el.raked_product, tl.raked_product)):
            compare(tally, name, lambda: fo(A, B), lambda: ft(TA, T(B)), lhs=A, lhs_rhs=(A, B),
                    complement_of=[(A, size_a * max(B.cosize(), 1))])

        # recast: up and down by 2 and 4, and recast_layout's both directions
        for k in (2, 4):
            compare(tally, "upcast", lambda: el.upcast(A, k), lambda: tl.upcast(TA, k), lhs=A)
            compare(tally, "downcast", lambda: el.downcast(A, k), lambda: tl.downcast(TA, k), lhs=A)
        compare(tally, "recast_layout", lambda: el.recast_layout(8, 32, A), lambda: tl.downcast(TA, 4), lhs=A)
        compare(tally, "recast_layout", lambda: el.recast_layout(32, 16, A), lambda: tl.upcast(TA, 2), lhs=A)

    tally.report("differential")
    assert tally.layouts >= 10000
    assert sum(tally.agree.values()) > 2 * sum(tally.known.values())
