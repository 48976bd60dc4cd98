// CuTe's layout algebra: a Layout is a pair (shape, stride) of congruent
// IntTuples and the function coordinate -> offset = sum(coord_i * stride_i).
// Definitions follow NVIDIA CuTe (see docs/layouts.md for the few places
// where we are stricter and why).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "enigma/layout/int_tuple.h"

namespace enigma::layout {

class Layout {
 public:
  Layout() : Layout(IntTuple(1), IntTuple(0)) {}  // 1:0
  explicit Layout(IntTuple shape);                // column-major compact strides
  Layout(IntTuple shape, IntTuple stride);        // must be congruent
  // Parses "(4,(2,3)):(1,(4,8))", or a shape alone ("(4,8)", column-major).
  static Layout parse(std::string_view text);

  const IntTuple& shape() const { return shape_; }
  const IntTuple& stride() const { return stride_; }

  int64_t size() const { return product(shape_); }
  int rank() const { return enigma::layout::rank(shape_); }
  int depth() const { return enigma::layout::depth(shape_); }
  // CuTe: 1 + sum((s_i - 1) * |d_i|), the extent of the codomain; 0 if empty.
  int64_t cosize() const;

  Layout mode(int i) const;  // CuTe's layout<i>
  Layout mode(const std::vector<int>& path) const;
  Layout select(const std::vector<int>& modes) const;  // a layout of the chosen top-level modes

  // Offset (or, with basis strides, coordinate) at a coordinate.
  IntTuple operator()(const IntTuple& coord) const;
  int64_t operator()(int64_t idx) const;  // integer strides only
  std::vector<int64_t> offsets() const;   // L(i) for all i < size()

  std::string str() const;  // "shape:stride"

  friend bool operator==(const Layout& a, const Layout& b) { return a.shape_ == b.shape_ && a.stride_ == b.stride_; }

 private:
  IntTuple shape_, stride_;
};

// (l0, l1, ...) as one layout with those top-level modes.
Layout make_layout(const std::vector<Layout>& modes);
// Strides laid out in the order given per mode (0 = fastest); see compact_order.
Layout make_ordered_layout(const IntTuple& shape, const IntTuple& order);
// CuTe's identity layout: the strides are basis elements (1@0, 1@1, ...), so
// L(c) is the natural coordinate of c in shape. An integer shape gives n:1.
Layout make_identity_layout(const IntTuple& shape);
Layout flatten(const Layout& l);
// Pads to `r` top-level modes with 1:0 modes (an integer shape becomes a tuple).
Layout append_to_rank(const Layout& l, int r);

// ---- tilers -----------------------------------------------------------------
// What composition, divides and logical_product take on the right: a layout,
// or a tuple of tilers applied mode by mode, where "_" keeps a mode as it is.
class Tiler {
 public:
  enum class Kind { kLayout, kTuple, kUnderscore };
  Tiler(Layout l) : kind_(Kind::kLayout), layout_(std::move(l)) {}  // NOLINT(google-explicit-constructor)
  Tiler(int64_t n) : Tiler(Layout(IntTuple(n))) {}                  // NOLINT(google-explicit-constructor)
  static Tiler underscore();
  static Tiler tuple(std::vector<Tiler> modes);

  Kind kind() const { return kind_; }
  const Layout& layout() const { return layout_; }
  const std::vector<Tiler>& modes() const { return modes_; }
  std::string str() const;

 private:
  Tiler() = default;
  Kind kind_ = Kind::kUnderscore;
  Layout layout_;
  std::vector<Tiler> modes_;
};

// ---- the algebra ------------------------------------------------------------
// Same function on [0, size), modes merged where possible, mode order kept.
Layout coalesce(const Layout& l);
// Coalesces only within the modes that are integers in `profile` (by mode).
Layout coalesce(const Layout& l, const IntTuple& profile);
// Removes stride-0 and size-1 modes, then coalesces.
Layout filter(const Layout& l);

// (a o b)(c) == a(b(c)) for every coordinate c of b. Throws LayoutError when
// CuTe's stride or shape divisibility condition fails (no layout exists).
Layout composition(const Layout& a, const Layout& b);
// By mode for a tuple tiler: mode i of a composed with tiler mode i; modes of
// a beyond the tiler are dropped (CuTe).
Layout composition(const Layout& a, const Tiler& b);

// The layout R, ordered and disjoint from l, such that (l, R) covers
// [0, cotarget) (rounded up to whole copies of l). Throws for layouts that
// have no complement (overlapping or not divisible).
Layout complement(const Layout& l, int64_t cotarget);
Layout complement(const Layout& l);  // cotarget = cosize(l)

Layout right_inverse(const Layout& l);  // l(R(i)) == i for i < size(R)
Layout left_inverse(const Layout& l);   // R(l(i)) == i for injective l

// composition(l, (t, complement(t, size(l)))) per tiler mode: ((tile), (rest)).
Layout logical_divide(const Layout& l, const Tiler& t);
Layout zipped_divide(const Layout& l, const Tiler& t);  // ((tiles...), (rests..., other modes))
Layout tiled_divide(const Layout& l, const Tiler& t);   // ((tiles...), rest0, rest1, ...)
// (a, complement(a, size(a) * cosize(b)) o b); by mode for a tuple tiler.
Layout logical_product(const Layout& a, const Tiler& b);
Layout blocked_product(const Layout& a, const Layout& b);  // ((a0,b0),(a1,b1),...)
Layout raked_product(const Layout& a, const Layout& b);    // ((b0,a0),(b1,a1),...)

// Reinterprets a layout of old_bits-wide elements as new_bits-wide ones.
Layout upcast(const Layout& l, int64_t n);    // n old elements become one
Layout downcast(const Layout& l, int64_t n);  // one old element becomes n
Layout recast_layout(int64_t new_bits, int64_t old_bits, const Layout& l);

// CuTe's make_layout_tv: layout_mn = raked_product(thr, val);
// tiler = product_each(shape(layout_mn)); tv = right_inverse(layout_mn)
// reshaped to (size(thr), size(val)). Returns (tiler, tv).
std::pair<IntTuple, Layout> make_layout_tv(const Layout& thr, const Layout& val);

}  // namespace enigma::layout
