#include "enigma/layout/layout.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>

namespace enigma::layout {

namespace {

void check_shape(const IntTuple& s, const IntTuple& whole) {
  if (s.is_tuple()) {
    if (s.num_elems() == 0) throw LayoutError("the shape " + whole.str() + " contains an empty tuple");
    for (const auto& e : s.elems()) check_shape(e, whole);
    return;
  }
  if (s.is_basis()) throw LayoutError("the shape " + whole.str() + " contains a basis element");
  if (s.value() < 0) throw LayoutError("the shape " + whole.str() + " has a negative size");
}

// A flattened mode: integer size, stride leaf (an integer or a basis element).
struct Mode {
  int64_t s;
  IntTuple d;
};

std::vector<Mode> flat_modes(const Layout& l) {
  std::vector<IntTuple> s = leaves(l.shape()), d = leaves(l.stride());
  std::vector<Mode> m;
  for (size_t i = 0; i < s.size(); ++i) m.push_back({s[i].value(), d[i]});
  return m;
}

Layout from_modes(const std::vector<Mode>& m) {
  if (m.empty()) return Layout();
  if (m.size() == 1) return Layout(IntTuple(m[0].s), m[0].d);
  std::vector<IntTuple> s, d;
  for (const auto& x : m) {
    s.emplace_back(x.s);
    d.push_back(x.d);
  }
  return Layout(IntTuple::tuple(std::move(s)), IntTuple::tuple(std::move(d)));
}

std::vector<Layout> top_modes(const Layout& l) {
  std::vector<Layout> m;
  for (int i = 0; i < l.rank(); ++i) m.push_back(l.mode(i));
  return m;
}

bool is_zero(const IntTuple& d) { return d.value() == 0; }

void require_int_strides(const Layout& l, const char* op) {
  if (has_basis(l.stride()))
    throw LayoutError(std::string(op) + " needs integer strides; " + l.str() + " has basis-element strides");
}

void require_non_negative(const Layout& l, const char* op) {
  for (const auto& d : leaves(l.stride()))
    if (d.value() < 0)
      throw LayoutError(std::string(op) + " needs non-negative strides; " + l.str() + " has " + d.str());
}

// Right to left: drop size-1 modes, merge a mode into its right neighbour when
// size * stride == the neighbour's stride. keep_last keeps the last mode's
// stride even when its size is 1 (CuTe's coalesce_x), which preserves the
// function beyond size(l) where the last mode absorbs the overflow.
Layout bw_coalesce(const std::vector<Mode>& m, bool keep_last) {
  std::vector<Mode> r;  // reversed: r.back() is the current front
  Mode last = m.back();
  if (keep_last && last.s == 1) last.s = 2;  // any size > 1: only its stride matters
  r.push_back(last);
  for (size_t k = m.size() - 1; k-- > 0;) {
    const Mode& x = m[k];
    if (x.s == 1) continue;
    if (r.size() == 1 && r.back().s == 1) {
      r.back() = x;
    } else if (scale(x.d, x.s) == r.back().d) {
      r.back().s *= x.s;
      r.back().d = x.d;
    } else {
      r.push_back(x);
    }
  }
  std::reverse(r.begin(), r.end());
  if (r.size() == 1 && r[0].s == 1) return Layout();
  return from_modes(r);
}

[[noreturn]] void compose_fail(const Layout& a, const Layout& b, const std::string& why) {
  throw LayoutError("composition(" + a.str() + ", " + b.str() + "): " + why);
}

// a o (s:d) for a coalesced (keep_last) lhs given as flat modes.
Layout compose_leaf(const std::vector<Mode>& am, int64_t s, int64_t d, const Layout& a, const Layout& b) {
  if (d == 0) return Layout(IntTuple(s), IntTuple(0));
  const size_t n = am.size();
  if (n == 1) return Layout(IntTuple(s), scale(am[0].d, d));
  const int64_t sign = d < 0 ? -1 : 1;
  int64_t r = d < 0 ? -d : d;  // rest stride
  int64_t rest = s;            // rest shape
  std::vector<Mode> out;
  for (size_t i = 0; i + 1 < n; ++i) {
    const int64_t S = am[i].s;
    if (S == 0) compose_fail(a, b, "the left layout has an empty mode");
    if (!(r % S == 0 || r < S))
      compose_fail(a, b,
                   "stride divisibility condition failed: the stride " + std::to_string(r) +
                       " is neither a multiple of nor smaller than the mode size " + std::to_string(S) +
                       " of the coalesced left layout");
    const int64_t next_shape = ceil_div(S, r), next_stride = ceil_div(r, S);
    if (next_shape == 1 || rest == 1) {
      r = next_stride;
      continue;
    }
    const int64_t new_shape = std::min(next_shape, rest);
    if (rest % new_shape != 0)
      compose_fail(a, b,
                   "shape divisibility condition failed: " + std::to_string(new_shape) +
                       " elements fit in the mode of size " + std::to_string(S) + " but the remaining size " +
                       std::to_string(rest) + " is not a multiple of it");
    // Leaving this mode for the next one needs the stride to tile it exactly,
    // or the offsets past its end would not be those of the next mode.
    if (rest > new_shape && S % r != 0)
      compose_fail(a, b,
                   "stride divisibility condition failed: the stride " + std::to_string(r) +
                       " does not divide the mode size " + std::to_string(S) + " that the right layout runs past");
    out.push_back({new_shape, scale(am[i].d, sign * r)});
    rest /= new_shape;
    r = next_stride;
  }
  if (out.empty()) return Layout(IntTuple(rest), scale(am[n - 1].d, sign * r));
  if (rest != 1) out.push_back({rest, scale(am[n - 1].d, sign * r)});
  return from_modes(out);
}

Layout compose_rec(const std::vector<Mode>& am, const IntTuple& s, const IntTuple& d, const Layout& a,
                   const Layout& b) {
  if (s.is_tuple()) {
    std::vector<Layout> m;
    for (size_t i = 0; i < s.num_elems(); ++i) m.push_back(compose_rec(am, s[i], d[i], a, b));
    return make_layout(m);
  }
  return compose_leaf(am, s.value(), d.value(), a, b);
}

// Zips the rank-2 results of a by-mode divide/product into ((firsts), (seconds, rest)).
Layout zip2_by(const Layout& l, const Tiler& t, const char* op) {
  switch (t.kind()) {
    case Tiler::Kind::kTuple: {
      if (static_cast<int>(t.modes().size()) > l.rank())
        throw LayoutError(std::string(op) + ": the tiler " + t.str() + " has more modes than " + l.str());
      std::vector<Layout> firsts, seconds;
      for (size_t i = 0; i < t.modes().size(); ++i) {
        Layout sub = zip2_by(l.mode(static_cast<int>(i)), t.modes()[i], op);
        firsts.push_back(sub.mode(0));
        seconds.push_back(sub.mode(1));
      }
      for (int i = static_cast<int>(t.modes().size()); i < l.rank(); ++i) seconds.push_back(l.mode(i));
      return make_layout({make_layout(firsts), make_layout(seconds)});
    }
    case Tiler::Kind::kUnderscore:
      throw LayoutError(std::string(op) + ": '_' (None) tiler modes are not supported, only by logical_divide");
    case Tiler::Kind::kLayout: break;
  }
  return l;
}

// CuTe's zip of the two modes of a rank-r product: mode i of the result is
// (x_i, y_i). For r == 1 each side is one mode (a rank-1 tiler can compose
// into several modes, which stay together).
Layout zip(const Layout& x, const Layout& y, int r) {
  auto one_mode = [](const Layout& l) { return l.shape().is_tuple() && l.rank() == 1 ? l.mode(0) : l; };
  if (r == 1) return make_layout({make_layout({one_mode(x), one_mode(y)})});
  if (x.rank() != r || y.rank() != r)
    throw LayoutError("zip: " + x.str() + " and " + y.str() + " do not both have rank " + std::to_string(r));
  std::vector<Layout> m;
  for (int i = 0; i < r; ++i) m.push_back(make_layout({x.mode(i), y.mode(i)}));
  return make_layout(m);
}

template <class F>
Layout transform_leaves(const IntTuple& s, const IntTuple& d, F f) {
  if (s.is_tuple()) {
    std::vector<Layout> m;
    for (size_t i = 0; i < s.num_elems(); ++i) m.push_back(transform_leaves(s[i], d[i], f));
    return make_layout(m);
  }
  return f(s.value(), d);
}

IntTuple basis_like(const IntTuple& shape, std::vector<int>& path) {
  if (shape.is_leaf()) return IntTuple::basis(1, path);
  std::vector<IntTuple> e;
  for (size_t i = 0; i < shape.num_elems(); ++i) {
    path.push_back(static_cast<int>(i));
    e.push_back(basis_like(shape[i], path));
    path.pop_back();
  }
  return IntTuple::tuple(std::move(e));
}

}  // namespace

// ---- Layout -----------------------------------------------------------------

Layout::Layout(IntTuple shape) : Layout(shape, compact_col_major(shape)) {}

Layout::Layout(IntTuple shape, IntTuple stride) : shape_(std::move(shape)), stride_(std::move(stride)) {
  check_shape(shape_, shape_);
  if (!congruent(shape_, stride_))
    throw LayoutError("the shape " + shape_.str() + " and the stride " + stride_.str() + " are not congruent");
}

Layout Layout::parse(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return Layout(IntTuple::parse(text));
  return Layout(IntTuple::parse(text.substr(0, colon)), IntTuple::parse(text.substr(colon + 1)));
}

int64_t Layout::cosize() const {
  require_int_strides(*this, "cosize");
  if (size() == 0) return 0;
  int64_t c = 1;  // 1 + sum (s_i - 1) * |d_i|: the extent of the codomain
  std::vector<IntTuple> s = leaves(shape_), d = leaves(stride_);
  for (size_t i = 0; i < s.size(); ++i) c += (s[i].value() - 1) * std::abs(d[i].value());
  return c;
}

Layout Layout::mode(int i) const {
  if (!shape_.is_tuple()) {
    if (i != 0) throw LayoutError("mode " + std::to_string(i) + " is out of range for " + str() + " (rank 1)");
    return *this;
  }
  if (i < 0 || i >= static_cast<int>(shape_.num_elems()))
    throw LayoutError("mode " + std::to_string(i) + " is out of range for " + str() + " (rank " +
                      std::to_string(shape_.num_elems()) + ")");
  return Layout(shape_[static_cast<size_t>(i)], stride_[static_cast<size_t>(i)]);
}

Layout Layout::mode(const std::vector<int>& path) const {
  Layout l = *this;
  for (int i : path) l = l.mode(i);
  return l;
}

Layout Layout::select(const std::vector<int>& modes) const {
  std::vector<Layout> m;
  for (int i : modes) m.push_back(mode(i));
  return make_layout(m);
}

IntTuple Layout::operator()(const IntTuple& coord) const { return crd2idx(coord, shape_, stride_); }

int64_t Layout::operator()(int64_t idx) const {
  require_int_strides(*this, "evaluation to an integer offset");
  std::vector<IntTuple> s = leaves(shape_), d = leaves(stride_);
  int64_t off = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    int64_t n = s[i].value();
    if (n == 0) throw LayoutError("cannot evaluate the empty layout " + str());
    off += (idx % n) * d[i].value();
    idx /= n;
  }
  return off + idx * d.back().value();
}

std::vector<int64_t> Layout::offsets() const {
  require_int_strides(*this, "offsets");
  std::vector<IntTuple> s = leaves(shape_), d = leaves(stride_);
  const int64_t n = size();
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  std::vector<int64_t> c(s.size(), 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(off);
    for (size_t k = 0; k < s.size(); ++k) {  // odometer, mode 0 fastest
      off += d[k].value();
      if (++c[k] < s[k].value()) break;
      off -= c[k] * d[k].value();
      c[k] = 0;
    }
  }
  return out;
}

std::string Layout::str() const { return shape_.str() + ":" + stride_.str(); }

Layout make_layout(const std::vector<Layout>& modes) {
  if (modes.empty()) throw LayoutError("make_layout needs at least one mode");
  std::vector<IntTuple> s, d;
  for (const auto& m : modes) {
    s.push_back(m.shape());
    d.push_back(m.stride());
  }
  return Layout(IntTuple::tuple(std::move(s)), IntTuple::tuple(std::move(d)));
}

Layout make_ordered_layout(const IntTuple& shape, const IntTuple& order) {
  return Layout(shape, compact_order(shape, order));
}

Layout make_identity_layout(const IntTuple& shape) {
  if (shape.is_leaf()) return Layout(shape, IntTuple(1));
  std::vector<int> path;
  return Layout(shape, basis_like(shape, path));
}

Layout flatten(const Layout& l) { return Layout(flatten(l.shape()), flatten(l.stride())); }

Layout append_to_rank(const Layout& l, int r) {
  if (r <= l.rank()) return l;
  std::vector<Layout> m = top_modes(l);
  while (static_cast<int>(m.size()) < r) m.push_back(Layout());
  return make_layout(m);
}

// ---- Tiler ------------------------------------------------------------------

Tiler Tiler::underscore() { return Tiler(); }

Tiler Tiler::tuple(std::vector<Tiler> modes) {
  Tiler t;
  t.kind_ = Kind::kTuple;
  t.modes_ = std::move(modes);
  return t;
}

std::string Tiler::str() const {
  switch (kind_) {
    case Kind::kLayout: return layout_.str();
    case Kind::kUnderscore: return "_";
    case Kind::kTuple: break;
  }
  std::string s = "<";
  for (size_t i = 0; i < modes_.size(); ++i) s += (i ? "," : "") + modes_[i].str();
  return s + ">";
}

// ---- coalesce / filter --------------------------------------------------------

Layout coalesce(const Layout& l) { return bw_coalesce(flat_modes(l), false); }

Layout coalesce(const Layout& l, const IntTuple& profile) {
  if (!profile.is_tuple()) return coalesce(l);
  if (rank(profile) > l.rank())
    throw LayoutError("coalesce: the profile " + profile.str() + " has more modes than " + l.str());
  std::vector<Layout> m;
  for (int i = 0; i < l.rank(); ++i)
    m.push_back(i < rank(profile) ? coalesce(l.mode(i), profile[static_cast<size_t>(i)]) : l.mode(i));
  return make_layout(m);
}

Layout filter(const Layout& l) {
  std::vector<Mode> m = flat_modes(l);
  for (auto& x : m)
    if (x.d.is_int() && is_zero(x.d)) x.s = 1;
  return bw_coalesce(m, false);
}

// ---- composition ------------------------------------------------------------

Layout composition(const Layout& a, const Layout& b) {
  if (has_basis(b.stride()))
    throw LayoutError("composition(" + a.str() + ", " + b.str() + "): the right layout needs integer strides");
  Layout flat = bw_coalesce(flat_modes(a), true);
  return compose_rec(flat_modes(flat), b.shape(), b.stride(), a, b);
}

Layout composition(const Layout& a, const Tiler& b) {
  switch (b.kind()) {
    case Tiler::Kind::kLayout: return composition(a, b.layout());
    case Tiler::Kind::kUnderscore: return a;
    case Tiler::Kind::kTuple: break;
  }
  if (static_cast<int>(b.modes().size()) > a.rank())
    throw LayoutError("composition: the tiler " + b.str() + " has more modes than " + a.str());
  std::vector<Layout> m;
  for (size_t i = 0; i < b.modes().size(); ++i) m.push_back(composition(a.mode(static_cast<int>(i)), b.modes()[i]));
  return make_layout(m);
}

// ---- complement / inverses --------------------------------------------------

Layout complement(const Layout& l, int64_t cotarget) {
  require_int_strides(l, "complement");
  require_non_negative(l, "complement");
  Layout f = filter(l);
  std::vector<Mode> m = flat_modes(f);
  m.erase(std::remove_if(m.begin(), m.end(), [](const Mode& x) { return x.s == 1 || is_zero(x.d); }), m.end());
  std::stable_sort(m.begin(), m.end(), [](const Mode& x, const Mode& y) { return x.d.value() < y.d.value(); });
  std::vector<Mode> out;
  int64_t current = 1;
  for (const auto& x : m) {
    const int64_t d = x.d.value();
    if (d % current != 0)
      throw LayoutError(
          "complement(" + l.str() + ", " + std::to_string(cotarget) + "): the layout has no complement: " +
          (d < current ? "its modes overlap (stride " + std::to_string(d) + " < " + std::to_string(current) + ")"
                       : "the stride " + std::to_string(d) + " is not a multiple of " + std::to_string(current) +
                             ", the extent of the modes below it"));
    out.push_back({d / current, IntTuple(current)});
    current = d * x.s;
  }
  out.push_back({ceil_div(cotarget, current), IntTuple(current)});
  return coalesce(from_modes(out));
}

Layout complement(const Layout& l) {
  require_int_strides(l, "complement");
  return complement(l, filter(l).cosize());
}

namespace {
// The flat modes of coalesce(l) (integer strides), where each starts in the
// domain (the product of the shapes before it), and their indices by
// ascending stride (stable): what both inverses walk.
struct ModesByStride {
  std::vector<Mode> m;
  std::vector<int64_t> pre;
  std::vector<size_t> idx;
};
ModesByStride modes_by_stride(const Layout& l) {
  ModesByStride r;
  std::vector<Mode>& m = r.m;
  m = flat_modes(coalesce(l));
  r.pre.resize(m.size());
  int64_t p = 1;
  for (size_t i = 0; i < m.size(); ++i) {
    r.pre[i] = p;
    p *= m[i].s;
  }
  r.idx.resize(m.size());
  std::iota(r.idx.begin(), r.idx.end(), size_t{0});
  std::stable_sort(r.idx.begin(), r.idx.end(), [&](size_t x, size_t y) { return m[x].d.value() < m[y].d.value(); });
  return r;
}
}  // namespace

Layout right_inverse(const Layout& l) {
  require_int_strides(l, "right_inverse");
  const auto [m, pre, idx] = modes_by_stride(l);
  std::vector<Mode> out{{1, IntTuple(0)}};
  int64_t curr = 1;
  for (size_t i : idx) {
    if (m[i].d.value() == curr) {
      out.push_back({m[i].s, IntTuple(pre[i])});
      curr = m[i].s * m[i].d.value();
    }
  }
  return coalesce(from_modes(out));
}

Layout left_inverse(const Layout& l) {
  require_int_strides(l, "left_inverse");
  require_non_negative(l, "left_inverse");
  const auto [m, pre, idx] = modes_by_stride(l);
  std::vector<int64_t> shapes;
  std::vector<IntTuple> strides{IntTuple(0)};
  int64_t sz = 1;
  for (size_t i : idx) {
    const int64_t d = m[i].d.value();
    if (d == 0) continue;
    if (d % sz != 0)
      throw LayoutError("left_inverse(" + l.str() + "): divisibility condition failed: the stride " +
                        std::to_string(d) + " is not a multiple of the stride " + std::to_string(sz) + " below it");
    shapes.push_back(d / sz);
    strides.emplace_back(pre[i]);
    sz = d;
  }
  shapes.push_back(m[idx.back()].s);
  std::vector<Mode> out;
  for (size_t i = 0; i < shapes.size(); ++i) out.push_back({shapes[i], strides[i]});
  return coalesce(from_modes(out));
}

// ---- divides and products ---------------------------------------------------

// A tuple tiler applies mode by mode; modes it does not reach stay as they are.
template <class F>
Layout by_mode(const Layout& l, const Tiler& t, const char* op, F&& f) {
  if (static_cast<int>(t.modes().size()) > l.rank())
    throw LayoutError(std::string(op) + ": the tiler " + t.str() + " has more modes than " + l.str());
  std::vector<Layout> m;
  for (int i = 0; i < l.rank(); ++i)
    m.push_back(i < static_cast<int>(t.modes().size()) ? f(l.mode(i), t.modes()[static_cast<size_t>(i)]) : l.mode(i));
  return make_layout(m);
}

Layout logical_divide(const Layout& l, const Tiler& t) {
  switch (t.kind()) {
    case Tiler::Kind::kLayout: {
      const Layout& tile = t.layout();
      return composition(l, make_layout({tile, complement(tile, l.size())}));
    }
    case Tiler::Kind::kUnderscore: return l;
    case Tiler::Kind::kTuple: break;
  }
  return by_mode(l, t, "logical_divide", [](const Layout& m, const Tiler& x) { return logical_divide(m, x); });
}

Layout zipped_divide(const Layout& l, const Tiler& t) { return zip2_by(logical_divide(l, t), t, "zipped_divide"); }

Layout tiled_divide(const Layout& l, const Tiler& t) {
  Layout z = zip2_by(logical_divide(l, t), t, "tiled_divide");
  Layout rest = z.mode(1);
  if (!rest.shape().is_tuple()) return z;
  std::vector<Layout> m{z.mode(0)};
  for (int i = 0; i < rest.rank(); ++i) m.push_back(rest.mode(i));
  return make_layout(m);
}

Layout logical_product(const Layout& a, const Tiler& b) {
  switch (b.kind()) {
    case Tiler::Kind::kLayout: {
      const Layout& tile = b.layout();
      require_int_strides(a, "logical_product");
      require_int_strides(tile, "logical_product");
      return make_layout({a, composition(complement(a, a.size() * tile.cosize()), tile)});
    }
    case Tiler::Kind::kUnderscore: return a;
    case Tiler::Kind::kTuple: break;
  }
  return by_mode(a, b, "logical_product", [](const Layout& m, const Tiler& x) { return logical_product(m, x); });
}

Layout blocked_product(const Layout& a, const Layout& b) {
  const int r = std::max(a.rank(), b.rank());
  Layout p = logical_product(append_to_rank(a, r), Tiler(append_to_rank(b, r)));
  return zip(p.mode(0), p.mode(1), r);
}

Layout raked_product(const Layout& a, const Layout& b) {
  const int r = std::max(a.rank(), b.rank());
  Layout p = logical_product(append_to_rank(a, r), Tiler(append_to_rank(b, r)));
  return zip(p.mode(1), p.mode(0), r);
}

// ---- recast -----------------------------------------------------------------

Layout upcast(const Layout& l, int64_t n) {
  if (n < 1) throw LayoutError("upcast: the factor must be positive, got " + std::to_string(n));
  require_int_strides(l, "upcast");
  return transform_leaves(l.shape(), l.stride(), [&](int64_t s, const IntTuple& dt) {
    const int64_t d = dt.value();
    if (d == 0) return Layout(IntTuple(s), dt);
    const int64_t ad = d < 0 ? -d : d;
    if (ad % n != 0 && n % ad != 0)
      throw LayoutError("upcast(" + l.str() + ", " + std::to_string(n) +
                        "): divisibility condition failed: the stride " + std::to_string(d) + " and " +
                        std::to_string(n) + " do not divide one another");
    return Layout(IntTuple(ceil_div(s, ceil_div(n, ad))), IntTuple((d < 0 ? -1 : 1) * ceil_div(ad, n)));
  });
}

Layout downcast(const Layout& l, int64_t n) {
  if (n < 1) throw LayoutError("downcast: the factor must be positive, got " + std::to_string(n));
  require_int_strides(l, "downcast");
  bool unit = false;
  for (const auto& d : leaves(l.stride())) unit = unit || d.value() == 1;
  if (!unit)
    throw LayoutError("downcast(" + l.str() + ", " + std::to_string(n) +
                      "): the layout has no unit-stride mode to split the elements along");
  return transform_leaves(l.shape(), l.stride(), [&](int64_t s, const IntTuple& dt) {
    const int64_t d = dt.value();
    if (d == 1 || d == -1) return Layout(IntTuple(s * n), dt);
    return Layout(IntTuple(s), IntTuple(d * n));
  });
}

Layout recast_layout(int64_t new_bits, int64_t old_bits, const Layout& l) {
  if (new_bits <= 0 || old_bits <= 0)
    throw LayoutError("recast_layout: element widths must be positive, got new_bits=" + std::to_string(new_bits) +
                      ", old_bits=" + std::to_string(old_bits));
  const int64_t g = std::gcd(new_bits, old_bits);
  const int64_t num = new_bits / g, den = old_bits / g;
  if (num == 1 && den == 1) return l;
  if (num == 1) return downcast(l, den);
  if (den == 1) return upcast(l, num);
  return downcast(upcast(l, num), den);
}

std::pair<IntTuple, Layout> make_layout_tv(const Layout& thr, const Layout& val) {
  Layout mn = raked_product(thr, val);
  IntTuple tiler = product_each(mn.shape());
  Layout tv = composition(right_inverse(mn), Layout(tup(thr.size(), val.size())));
  return {tiler, tv};
}

}  // namespace enigma::layout
