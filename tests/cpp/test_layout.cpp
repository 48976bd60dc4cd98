// The layout algebra: worked examples (checked by hand against CuTe's
// definitions) and its laws on deterministic random layouts.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "enigma/layout/int_tuple.h"
#include "enigma/layout/layout.h"
#include "enigma/layout/swizzle.h"

using namespace enigma::layout;

namespace {

Layout L(const char* s) { return Layout::parse(s); }
IntTuple T(const char* s) { return IntTuple::parse(s); }

// Worked examples: f(L(in)) == L(want) for each {in, want}.
void expect_examples(const std::function<Layout(const Layout&)>& f,
                     std::initializer_list<std::pair<const char*, const char*>> cases) {
  for (const auto& [in, want] : cases) EXPECT_EQ(f(L(in)), L(want)) << in;
}
// f(L(a), L(b)) == L(want) for each {a, b, want}.
void expect_examples(const std::function<Layout(const Layout&, const Layout&)>& f,
                     std::initializer_list<std::array<const char*, 3>> cases) {
  for (const auto& [a, b, want] : cases) EXPECT_EQ(f(L(a), L(b)), L(want)) << a << " with " << b;
}

// Random layouts: up to 3 top-level modes, nested up to depth 2, small sizes,
// strides either compact in a random mode order (with gaps) or random.
struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}
  int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

  IntTuple shape(int depth) {
    if (depth == 0 || pick(0, 2) == 0) return IntTuple(pick(1, 6));
    std::vector<IntTuple> e;
    int n = static_cast<int>(pick(1, 3));
    for (int i = 0; i < n; ++i) e.push_back(shape(depth - 1));
    return IntTuple::tuple(std::move(e));
  }
  Layout layout(int64_t max_size = 256) {
    for (;;) {
      IntTuple s = shape(2);
      if (product(s) > max_size) continue;
      std::vector<IntTuple> ls = leaves(s), ds;
      if (pick(0, 1)) {  // injective: compact strides in a random order with gaps
        std::vector<size_t> order(ls.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        std::vector<int64_t> d(ls.size());
        int64_t cur = 1;
        for (size_t k : order) {
          cur *= pick(1, 2);
          d[k] = cur;
          cur *= ls[k].value();
        }
        for (int64_t x : d) ds.emplace_back(x);
      } else {
        for (size_t i = 0; i < ls.size(); ++i) ds.emplace_back(pick(0, 3) == 0 ? 0 : pick(1, 24));
      }
      return Layout(s, unflatten(ds, s));
    }
  }
};

bool injective(const Layout& l) {
  std::vector<int64_t> o = l.offsets();
  return std::set<int64_t>(o.begin(), o.end()).size() == o.size();
}

}  // namespace

// ---- IntTuple ---------------------------------------------------------------

TEST(IntTuple, ParsePrintAndStructure) {
  IntTuple t = T("(4,(2,3))");
  EXPECT_EQ(t, tup(4, tup(2, 3)));
  EXPECT_EQ(t.str(), "(4,(2,3))");
  EXPECT_EQ(T("(8)").str(), "(8)");
  EXPECT_NE(T("(8)"), T("8"));
  EXPECT_EQ(rank(t), 2);
  EXPECT_EQ(rank(T("8")), 1);
  EXPECT_EQ(depth(T("5")), 0);
  EXPECT_EQ(depth(T("(3,(4,5))")), 2);
  EXPECT_EQ(product(t), 24);
  EXPECT_EQ(flatten(t), T("(4,2,3)"));
  EXPECT_EQ(unflatten(leaves(T("(7,8,9)")), t), T("(7,(8,9))"));
  EXPECT_EQ(product_each(t), T("(4,6)"));
  EXPECT_EQ(IntTuple::basis(1, {1, 0}).str(), "1@0@1");  // CuTe prints the innermost mode first
  EXPECT_EQ(T("1@0@1"), IntTuple::basis(1, {1, 0}));
  EXPECT_THROW(T("(1,"), LayoutError);
}

TEST(IntTuple, Utilities) {
  EXPECT_EQ(prefix_product(T("(2,(3,4))")), T("(1,(2,6))"));
  EXPECT_EQ(compact_col_major(T("(2,(3,0),4)")), T("(1,(2,6),0)"));
  EXPECT_EQ(compact_order(T("(4,64)"), T("(1,0)")), T("(64,1)"));
  EXPECT_EQ(compact_order(T("(2,3,4)"), T("(2,0,1)")), T("(12,1,3)"));
  EXPECT_EQ(compact_order(T("((2,2),4)"), T("(1,0)")), T("((4,8),1)"));
  EXPECT_EQ(idx2crd(13, T("(4,8)")), T("(1,3)"));
  EXPECT_EQ(idx2crd(13, T("(2,(3,4))")), T("(1,(0,2))"));
  EXPECT_EQ(crd2idx(T("(1,2)"), T("(4,8)"), T("(8,1)")), IntTuple(10));
  EXPECT_EQ(crd2idx(T("5"), T("(4,8)"), T("(8,1)")), IntTuple(9));
  EXPECT_EQ(crd2idx(T("(1,(0,2))"), T("(2,(3,4))")), 13);
  EXPECT_EQ(shape_div(T("3"), T("8")), IntTuple(1));
  EXPECT_EQ(shape_div(T("8"), T("3")), IntTuple(2));
  EXPECT_EQ(shape_div(T("(4,6)"), T("8")), T("(1,3)"));
  EXPECT_EQ(ceil_div(T("(6,4)"), T("4")), T("(2,4)"));
  EXPECT_EQ(ceil_div(10, 4), 3);
  EXPECT_EQ(elem_scale(T("(2,3)"), T("(10,100)")), T("(20,300)"));
  EXPECT_EQ(inner_product(T("(1,(2,3))"), T("(4,(5,6))")), 32);
  EXPECT_TRUE(congruent(T("(4,8)"), T("(4,9)")));  // structure only
  EXPECT_FALSE(congruent(T("(4,8)"), T("(4,(8))")));
  EXPECT_TRUE(compatible(T("24"), T("(4,(2,3))")));
  EXPECT_TRUE(compatible(T("(4,6)"), T("(4,(2,3))")));
  EXPECT_FALSE(compatible(T("(4,(2,3))"), T("(4,6)")));
  EXPECT_FALSE(compatible(T("(4,6)"), T("24")));
  EXPECT_EQ(repeat_like(IntTuple(0), T("(1,(2,3))")), T("(0,(0,0))"));
  EXPECT_EQ(select(T("(10,20,30)"), {2, 0}), T("(30,10)"));
}

// ---- Layout basics ------------------------------------------------------------

TEST(Layout, DefaultStridesAndPrinting) {
  EXPECT_EQ(Layout(T("(4,(2,3))")).str(), "(4,(2,3)):(1,(4,8))");
  EXPECT_EQ(Layout(T("(8)")).str(), "(8):(1)");
  EXPECT_EQ(L("(4,2):(1,4)").str(), "(4,2):(1,4)");
  EXPECT_EQ(L("(4,8)"), L("(4,8):(1,4)"));
  EXPECT_NE(L("8"), L("(8)"));
  EXPECT_THROW(L("(4,2):(1,(4,1))"), LayoutError);  // not congruent
  EXPECT_THROW(L("(4,-2):(1,4)"), LayoutError);
}

TEST(Layout, Evaluation) {
  Layout a = L("(4,2):(1,4)"), b = L("(4,2):(2,1)");
  std::vector<int64_t> ao, bo;
  for (int64_t i = 0; i < 8; ++i) {
    ao.push_back(a(i));
    bo.push_back(b(i));
  }
  EXPECT_EQ(ao, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(bo, (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7}));
  EXPECT_EQ(b.offsets(), bo);
  EXPECT_EQ(b(T("(3,1)")), IntTuple(7));
  Layout h = L("(4,(2,3)):(1,(4,8))");
  EXPECT_EQ(h(T("(1,(1,2))")), IntTuple(21));
  EXPECT_EQ(h(T("(1,5)")), IntTuple(1 + 4 + 16));  // an int for a nested mode splits within it
  // The last mode absorbs what is left of an out-of-range index (CuTe).
  EXPECT_EQ(b(9), 1 * 2 + 2 * 1);
  EXPECT_EQ(h(100), 0 + 1 * 4 + 12 * 8);
  EXPECT_EQ(h(T("100")), IntTuple(100));
  EXPECT_THROW(h(T("(1,2,3)")), LayoutError);
  EXPECT_THROW(L("8:1")(T("(1,2)")), LayoutError);
}

TEST(Layout, SizesAndModes) {
  Layout h = L("(4,(2,3)):(2,(1,8))");
  EXPECT_EQ(h.size(), 24);
  EXPECT_EQ(h.rank(), 2);
  EXPECT_EQ(h.depth(), 2);
  EXPECT_EQ(h.cosize(), 1 + 3 * 2 + 1 * 1 + 2 * 8);
  EXPECT_EQ(L("(2,3):(0,0)").cosize(), 1);
  EXPECT_EQ(h.mode(1), L("(2,3):(1,8)"));
  EXPECT_EQ(h.mode({1, 1}), L("3:8"));
  EXPECT_EQ(h.select({1, 0}), L("((2,3),4):((1,8),2)"));
  EXPECT_EQ(L("8:2").mode(0), L("8:2"));
  EXPECT_THROW(h.mode(2), LayoutError);
}

// ---- coalesce -----------------------------------------------------------------

TEST(Coalesce, Examples) {
  // Mode order is kept (the last two): a row-major layout is not a column-major one.
  expect_examples([](const Layout& l) { return coalesce(l); }, {{"(2,(1,6)):(1,(6,2))", "12:1"},
                                                                {"(2,6):(1,2)", "12:1"},
                                                                {"(4,1,8):(1,999,4)", "32:1"},
                                                                {"(1,1):(3,4)", "1:0"},
                                                                {"(2,3):(0,0)", "6:0"},
                                                                {"(4,8):(8,1)", "(4,8):(8,1)"},
                                                                {"(4,4):(0,1)", "(4,4):(0,1)"}});
  // By mode.
  EXPECT_EQ(coalesce(L("((2,4),(3,5)):((1,2),(8,24))"), T("(1,1)")), L("(8,15):(1,8)"));
  EXPECT_EQ(coalesce(L("((2,4),(3,5),7):((1,2),(8,24),1)"), T("(1,1)")), L("(8,15,7):(1,8,1)"));
  EXPECT_EQ(coalesce(L("((2,4),(3,5)):((1,2),(8,24))"), T("(1)")), L("(8,(3,5)):(1,(8,24))"));
}

// ---- composition --------------------------------------------------------------

TEST(Composition, Examples) {
  // Beyond size(a) the last mode of a keeps going, even a size-1 one (the last case).
  expect_examples([](const Layout& a, const Layout& b) { return composition(a, b); },
                  {{"20:2", "(5,4):(4,1)", "(5,4):(8,2)"},
                   {"(10,2):(16,4)", "(5,4):(1,5)", "(5,(2,2)):(16,(80,4))"},
                   {"(6,2):(8,2)", "(4,3):(3,1)", "((2,2),3):((24,2),8)"},
                   {"(4,8):(8,1)", "8:4", "8:1"},
                   {"(4,8):(8,1)", "(2,2):(1,4)", "(2,2):(8,1)"},
                   {"32:1", "(4,8):(8,1)", "(4,8):(8,1)"},
                   {"(4,8):(1,5)", "2:3", "2:3"},
                   {"(4,8):(1,5)", "(2,2):(1,3)", "(2,2):(1,3)"},
                   {"(4,8):(1,4)", "4:0", "4:0"},
                   {"(4,1):(1,7)", "8:1", "(4,2):(1,7)"}});
  // By-mode tiler: modes of a beyond the tiler are dropped (CuTe).
  EXPECT_EQ(composition(L("(4,4,2):(1,4,16)"), Tiler::tuple({Tiler(L("2:1")), Tiler(L("2:2"))})), L("(2,2):(1,8)"));
  EXPECT_EQ(composition(L("(4,4):(1,4)"), Tiler::tuple({Tiler::underscore(), Tiler(2)})), L("(4,2):(1,4)"));
}

TEST(Composition, RejectsWhatCuteRejects) {
  // stride divisibility: 6 is neither a multiple of nor smaller than 4
  EXPECT_THROW(composition(L("(4,6,8):(1,5,40)"), L("1:6")), LayoutError);
  // shape divisibility: 2 elements fit in the mode of 4 at stride 3, 3 is not a multiple of 2
  EXPECT_THROW(composition(L("(4,8):(1,5)"), L("3:3")), LayoutError);
  // stride 3 runs past the end of a mode of size 4 that it does not tile
  EXPECT_THROW(composition(L("(4,8):(1,5)"), L("4:3")), LayoutError);
  EXPECT_THROW(composition(L("(6,4):(1,10)"), L("(4,6):(1,4)")), LayoutError);
  try {
    composition(L("(4,8):(1,5)"), L("3:3"));
  } catch (const LayoutError& e) {
    EXPECT_NE(std::string(e.what()).find("shape divisibility"), std::string::npos) << e.what();
  }
}

TEST(Composition, IsFunctionComposition) {
  Gen g(1);
  int composed = 0, whole = 0;
  for (int n = 0; n < 3000; ++n) {
    Layout a = g.layout();
    Layout b = g.layout(64);
    try {
      Layout c = composition(a, b);
      ASSERT_TRUE(compatible(b.shape(), c.shape())) << a.str() << " o " << b.str() << " = " << c.str();
      // CuTe's composition distributes over the modes of b, each leaf mode being
      // a true function composition (on every index, past size(a) too) ...
      std::vector<std::vector<int>> paths;
      std::vector<int> path;
      std::function<void(const IntTuple&)> walk = [&](const IntTuple& s) {
        if (s.is_leaf()) {
          paths.push_back(path);
          return;
        }
        for (size_t k = 0; k < s.num_elems(); ++k) {
          path.push_back(static_cast<int>(k));
          walk(s[k]);
          path.pop_back();
        }
      };
      walk(b.shape());
      for (const auto& p : paths)  // c refines b: each leaf of b is one mode of c
        for (int64_t i = 0; i < b.mode(p).size(); ++i)
          ASSERT_EQ(c.mode(p)(i), a(b.mode(p)(i))) << a.str() << " o " << b.str() << " at " << i;
      // ... and so is the whole when b coalesces to one mode.
      Layout cb = coalesce(b);
      if (!cb.shape().is_tuple()) {
        for (int64_t i = 0; i < b.size(); ++i) ASSERT_EQ(c(i), a(b(i))) << a.str() << " o " << b.str() << " at " << i;
        ++whole;
      }
      ++composed;
    } catch (const LayoutError&) {}
  }
  EXPECT_GT(composed, 1000);
  EXPECT_GT(whole, 300);
}

// ---- complement ---------------------------------------------------------------

TEST(Complement, Examples) {
  EXPECT_EQ(complement(L("4:1")), L("1:0"));
  EXPECT_EQ(complement(L("4:2")), L("2:1"));
  EXPECT_EQ(complement(L("4:2"), 16), L("(2,2):(1,8)"));
  EXPECT_EQ(complement(L("4:1"), 24), L("6:4"));
  EXPECT_EQ(complement(L("(2,2):(1,4)")), L("2:2"));
  EXPECT_EQ(complement(L("(2,2):(1,4)"), 16), L("(2,2):(2,8)"));
  EXPECT_EQ(complement(L("4:2"), 6), L("2:1"));
  EXPECT_EQ(complement(L("(2,4):(4,1)"), 32), L("4:8"));
  EXPECT_EQ(complement(L("(2,4):(0,2)"), 16), L("(2,2):(1,8)"));  // stride-0 modes are ignored
  EXPECT_EQ(complement(L("1:0"), 5), L("5:1"));
  EXPECT_THROW(complement(L("(2,2):(1,1)")), LayoutError);      // overlapping
  EXPECT_THROW(complement(L("(2,2):(1,3)"), 12), LayoutError);  // 3 is not a multiple of 2
}

TEST(Complement, DisjointAndCovering) {
  Gen g(2);
  int checked = 0;
  for (int n = 0; n < 2000; ++n) {
    Layout a = g.layout();
    int64_t m = a.cosize() * g.pick(1, 3);
    Layout c;
    try {
      c = complement(a, m);
    } catch (const LayoutError&) { continue; }
    // (a, c) is injective and its image is [0, size): a bijection onto its cosize
    Layout ac = make_layout({filter(a), c});
    std::vector<int64_t> o = ac.offsets();
    std::sort(o.begin(), o.end());
    for (size_t i = 0; i < o.size(); ++i) ASSERT_EQ(o[i], static_cast<int64_t>(i)) << a.str() << " " << c.str();
    ASSERT_GE(ac.size(), m);
    for (int64_t i = 1; i < c.size(); ++i) ASSERT_LT(c(i - 1), c(i)) << c.str();  // ordered
    ++checked;
  }
  EXPECT_GT(checked, 500);
}

// ---- inverses -----------------------------------------------------------------

TEST(Inverse, Examples) {
  expect_examples(
      right_inverse,
      {{"(4,8):(8,1)", "(8,4):(4,1)"}, {"(2,3):(3,1)", "(3,2):(2,1)"}, {"(2,2):(1,3)", "2:1"}, {"4:0", "1:0"}});
  expect_examples(left_inverse,
                  {{"4:2", "(2,4):(0,1)"}, {"(2,2):(1,3)", "(3,2):(1,2)"}, {"(4,8):(8,1)", "(8,4):(4,1)"}});
  EXPECT_THROW(left_inverse(L("(2,2):(2,3)")), LayoutError);
}

TEST(Inverse, Laws) {
  Gen g(3);
  int left = 0, right = 0;
  for (int n = 0; n < 2000; ++n) {
    Layout a = g.layout();
    Layout r = right_inverse(a);
    for (int64_t i = 0; i < r.size(); ++i) ASSERT_EQ(a(r(i)), i) << a.str() << " " << r.str();
    right += r.size() > 1;
    if (!injective(a)) continue;
    Layout li;
    try {
      li = left_inverse(a);
    } catch (const LayoutError&) { continue; }
    for (int64_t i = 0; i < a.size(); ++i) ASSERT_EQ(li(a(i)), i) << a.str() << " " << li.str();
    ++left;
  }
  EXPECT_GT(left, 500);
  EXPECT_GT(right, 300);
}

// ---- divides ------------------------------------------------------------------

TEST(Divide, Examples) {
  EXPECT_EQ(logical_divide(L("16:1"), Tiler(4)), L("(4,4):(1,4)"));
  EXPECT_EQ(logical_divide(L("24:1"), Tiler(L("4:2"))), L("(4,(2,3)):(2,(1,8))"));
  EXPECT_EQ(logical_divide(L("(4,8):(8,1)"), Tiler(2)), L("(2,(2,8)):(8,(16,1))"));
  EXPECT_EQ(logical_divide(L("10:1"), Tiler(4)), L("(4,3):(1,4)"));  // the rest rounds up
  EXPECT_EQ(logical_divide(L("(4,4,2):(1,4,16)"), Tiler::tuple({Tiler(2), Tiler(2)})),
            L("((2,2),(2,2),2):((1,2),(4,8),16)"));
  // CuTe's documentation example: (4,2,3):(2,1,8) divided by 4:2
  EXPECT_EQ(logical_divide(L("(4,2,3):(2,1,8)"), Tiler(L("4:2"))), L("((2,2),(2,3)):((4,1),(2,8))"));
  EXPECT_EQ(zipped_divide(L("(64,512):(512,1)"), Tiler::tuple({Tiler(16), Tiler(8)})),
            L("((16,8),(4,64)):((512,1),(8192,8))"));
  EXPECT_EQ(zipped_divide(L("(8,8):(8,1)"), Tiler::tuple({Tiler(3), Tiler(3)})), L("((3,3),(3,3)):((8,1),(24,3))"));
  EXPECT_EQ(zipped_divide(L("((2,4),8):((1,2),8)"), Tiler::tuple({Tiler(4), Tiler(2)})),
            L("((4,2),(2,4)):((1,8),(4,16))"));
  EXPECT_EQ(zipped_divide(L("(8,8,3):(1,8,64)"), Tiler::tuple({Tiler(4), Tiler(2)})),
            L("((4,2),(2,4,3)):((1,8),(4,16,64))"));
  EXPECT_EQ(tiled_divide(L("(8,8,3):(1,8,64)"), Tiler::tuple({Tiler(4), Tiler(2)})),
            L("((4,2),2,4,3):((1,8),4,16,64)"));
  EXPECT_EQ(zipped_divide(L("(8,8,3):(1,8,64)"), Tiler(4)), L("(4,48):(1,4)"));
  EXPECT_EQ(tiled_divide(L("(8,8,3):(1,8,64)"), Tiler(4)), L("(4,48):(1,4)"));
}

TEST(Divide, Laws) {
  Gen g(4);
  int checked = 0;
  for (int n = 0; n < 2000; ++n) {
    Layout a = g.layout();
    Layout t = Layout(IntTuple(g.pick(1, 8)), IntTuple(g.pick(1, 3)));
    Layout d;
    try {
      d = logical_divide(a, Tiler(t));
    } catch (const LayoutError&) { continue; }
    // d is a o (t, complement(t, size(a))), its tile mode is a o t, and it
    // covers a (exactly when the tiles divide it)
    ASSERT_GE(d.size(), a.size()) << a.str() << " / " << t.str();
    ASSERT_EQ(d.mode(0), composition(a, t)) << a.str() << " / " << t.str();
    Layout rhs = make_layout({t, complement(t, a.size())});
    for (int64_t i = 0; i < d.size(); ++i) {
      if (rhs(i) < a.size()) {
        ASSERT_EQ(d(i), a(rhs(i))) << a.str() << " / " << t.str() << " = " << d.str() << " at " << i;
      }
    }
    if (a.size() % (t.size() * t.stride().value()) == 0) {
      ASSERT_EQ(d.size(), a.size());
      ++checked;
    }
  }
  EXPECT_GT(checked, 200);
}

// ---- products -----------------------------------------------------------------

TEST(Product, Examples) {
  EXPECT_EQ(logical_product(L("(2,2):(4,1)"), Tiler(L("6:1"))), L("((2,2),(2,3)):((4,1),(2,8))"));
  EXPECT_EQ(logical_product(L("(2,2):(1,2)"), Tiler::tuple({Tiler(3), Tiler(4)})),
            L("((2,3),(2,(2,2))):((1,2),(2,(1,4)))"));
  EXPECT_EQ(blocked_product(L("(2,2):(1,2)"), L("(3,4):(1,3)")), L("((2,3),(2,4)):((1,4),(2,12))"));
  EXPECT_EQ(raked_product(L("(2,2):(1,2)"), L("(3,4):(1,3)")), L("((3,2),(4,2)):((4,1),(12,2))"));
  EXPECT_EQ(blocked_product(L("4:1"), L("3:1")), L("((4,3)):((1,4))"));
  EXPECT_EQ(raked_product(L("4:1"), L("3:1")), L("((3,4)):((4,1))"));
  // CuTe's documentation: a 2x5 row-major block over a 3x4 tiler.
  EXPECT_EQ(blocked_product(L("(2,5):(5,1)"), L("(3,4):(1,3)")), L("((2,3),(5,4)):((5,10),(1,30))"));
  EXPECT_EQ(raked_product(L("(2,5):(5,1)"), L("(3,4):(1,3)")), L("((3,2),(4,5)):((10,5),(30,1))"));
}

TEST(Product, Laws) {
  Gen g(5);
  int checked = 0;
  for (int n = 0; n < 1000; ++n) {
    Layout a = g.layout(64), b = g.layout(16);
    Layout p;
    try {
      p = logical_product(a, Tiler(b));
    } catch (const LayoutError&) { continue; }
    ASSERT_EQ(p.size(), a.size() * b.size());
    ASSERT_EQ(p.mode(0), a);
    Layout bp = blocked_product(a, b), rp = raked_product(a, b);
    ASSERT_EQ(bp.size(), p.size());
    ASSERT_EQ(rp.size(), p.size());
    ASSERT_EQ(bp.rank(), std::max(a.rank(), b.rank()));
    // the same function with the modes interleaved differently
    std::vector<int64_t> x = bp.offsets(), y = rp.offsets(), z = p.offsets();
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    std::sort(z.begin(), z.end());
    ASSERT_EQ(x, z);
    ASSERT_EQ(y, z);
    ++checked;
  }
  EXPECT_GT(checked, 300);
}

// ---- recast, ordered, identity, TV ---------------------------------------------

TEST(Recast, UpAndDown) {
  EXPECT_EQ(recast_layout(16, 8, L("(16,16):(16,1)")), L("(16,8):(8,1)"));
  EXPECT_EQ(recast_layout(32, 16, L("(8,(4,4)):(16,(1,4))")), L("(8,(2,4)):(8,(1,2))"));
  EXPECT_EQ(recast_layout(64, 32, L("64:1")), L("32:1"));
  EXPECT_EQ(recast_layout(8, 16, L("(16,8):(8,1)")), L("(16,16):(16,1)"));
  EXPECT_EQ(recast_layout(8, 32, L("(4,(2,4)):(8,(1,2))")), L("(4,(8,4)):(32,(1,8))"));
  EXPECT_EQ(recast_layout(16, 16, L("(3,5):(7,1)")), L("(3,5):(7,1)"));
  EXPECT_EQ(recast_layout(24, 16, L("(6,4):(1,6)")), L("(4,4):(1,4)"));  // up by 3, down by 2
  EXPECT_EQ(recast_layout(16, 8, L("(4,0):(1,0)")), L("(2,0):(1,0)"));
  EXPECT_THROW(recast_layout(16, 8, L("(3,4):(1,3)")), LayoutError);  // stride 3 with factor 2
  EXPECT_THROW(recast_layout(8, 16, L("(3,4):(2,6)")), LayoutError);  // no unit stride to split
  // round trip
  Layout a = L("((4,2),8):((1,64),4)");
  EXPECT_EQ(recast_layout(32, 8, recast_layout(8, 32, a)), a);
}

TEST(OrderedAndIdentity, Layouts) {
  EXPECT_EQ(make_ordered_layout(T("(4,64)"), T("(1,0)")), L("(4,64):(64,1)"));
  EXPECT_EQ(make_ordered_layout(T("(4,64)"), T("(0,1)")), L("(4,64):(1,4)"));
  EXPECT_EQ(make_ordered_layout(T("(2,3,4)"), T("(2,0,1)")), L("(2,3,4):(12,1,3)"));
  EXPECT_EQ(make_ordered_layout(T("(2,(3,4))"), T("(1,(2,0))")), L("(2,(3,4)):(4,(8,1))"));
  Layout id = make_identity_layout(T("(4,(2,3))"));
  EXPECT_EQ(id.str(), "(4,(2,3)):(1@0,(1@0@1,1@1@1))");
  EXPECT_EQ(id(T("13")), T("(1,(1,1))"));
  EXPECT_EQ(id(T("(3,(1,2))")), T("(3,(1,2))"));
  EXPECT_EQ(make_identity_layout(T("8")), L("8:1"));
  // coordinates of a tile: identity o divide
  Layout id2 = make_identity_layout(T("(4,8)"));
  Layout z = zipped_divide(id2, Tiler::tuple({Tiler(2), Tiler(4)}));
  EXPECT_EQ(z.str(), "((2,4),(2,2)):((1@0,1@1),(2@0,4@1))");
  EXPECT_EQ(z(T("((1,3),(1,1))")), T("(3,7)"));
  EXPECT_THROW(complement(id2), LayoutError);
  EXPECT_THROW(id2.cosize(), LayoutError);
}

TEST(MakeLayoutTV, MatchesCuTe) {
  auto [t1, tv1] = make_layout_tv(L("(4,64):(64,1)"), L("(16,8):(8,1)"));
  EXPECT_EQ(t1, T("(64,512)"));
  EXPECT_EQ(tv1, L("((64,4),(8,16)):((512,16),(64,1))"));
  EXPECT_EQ(tv1.mode(0).size(), 256);
  std::vector<int64_t> o = tv1.offsets();
  std::sort(o.begin(), o.end());
  for (size_t i = 0; i < o.size(); ++i) ASSERT_EQ(o[i], static_cast<int64_t>(i));
  auto [t2, tv2] = make_layout_tv(L("(2,4):(4,1)"), L("(2,2):(2,1)"));
  EXPECT_EQ(t2, T("(4,8)"));
  EXPECT_EQ(tv2, L("((4,2),(2,2)):((8,2),(4,1))"));
  // thread t owns rows 2*(t/4)+{0,1} and columns 2*(t%4)+{0,1}
  for (int64_t t = 0; t < 8; ++t)
    for (int64_t v = 0; v < 4; ++v) {
      int64_t idx = tv2(tup(t, v)).value();
      EXPECT_EQ(idx % 4, 2 * (t / 4) + v / 2);
      EXPECT_EQ(idx / 4, 2 * (t % 4) + v % 2);
    }
  auto [t3, tv3] = make_layout_tv(L("(256):(1)"), L("(16):(1)"));
  EXPECT_EQ(t3, T("(4096)"));
  EXPECT_EQ(tv3, L("(256,16):(16,1)"));
}

// ---- swizzle ------------------------------------------------------------------

TEST(Swizzle, Function) {
  EXPECT_EQ(Swizzle(3, 3, 6)(128), 128);                  // bit 7 is neither read nor written
  EXPECT_EQ(Swizzle(3, 3, 6)(0b111000000), 0b111000000);  // bits 6..8 are below the ones read
  EXPECT_EQ(Swizzle(3, 3, 6)(0b111000000000), 0b111000111000);
  EXPECT_EQ(Swizzle(3, 3, 3)(0b101000000), 0b101101000);
  std::vector<int64_t> got;
  for (int r = 0; r < 8; ++r) got.push_back(Swizzle(3, 2, 5)(r * 32 + 1));
  EXPECT_EQ(got, (std::vector<int64_t>{1, 33, 65, 97, 133, 165, 197, 229}));
  EXPECT_EQ(Swizzle(0, 4, 3)(12345), 12345);
  EXPECT_EQ(Swizzle(2, 0, -3)(0b00011), 0b11011);  // negative shift moves bits up
  // a bijection of every aligned block of 2^(B+M+|S|)
  for (auto sw : {Swizzle(3, 3, 3), Swizzle(2, 1, 4), Swizzle(1, 0, -2)}) {
    std::set<int64_t> seen;
    for (int64_t x = 0; x < 1024; ++x) seen.insert(sw(x));
    EXPECT_EQ(seen.size(), 1024u);
    EXPECT_EQ(*seen.rbegin(), 1023);
    for (int64_t x = 0; x < 1024; ++x) EXPECT_EQ(sw(sw(x)), x);  // an involution
  }
  EXPECT_THROW(Swizzle(-1, 0, 3), LayoutError);
  EXPECT_THROW(Swizzle(3, -1, 3), LayoutError);
  EXPECT_THROW(Swizzle(3, 0, 2), LayoutError);
  SwizzledLayout sl = composition(Swizzle(3, 2, 5), L("(16,32):(32,1)"));
  EXPECT_EQ(sl(T("(1,0)")), 32);
  EXPECT_EQ(sl(T("(2,3)")), 67);
  EXPECT_EQ(sl.str(), "Sw<3,2,5> o (16,32):(32,1)");
}
