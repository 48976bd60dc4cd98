#include "enigma/layout/int_tuple.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <numeric>

namespace enigma::layout {

// ---- IntTuple ---------------------------------------------------------------

IntTuple IntTuple::tuple(std::vector<IntTuple> elems) {
  IntTuple t;
  t.is_tuple_ = true;
  t.elems_ = std::move(elems);
  return t;
}

IntTuple IntTuple::basis(int64_t v, std::vector<int> modes) {
  for (int m : modes)
    if (m < 0) throw LayoutError("a basis element's mode index must be non-negative, got " + std::to_string(m));
  IntTuple t(v);
  t.modes_ = std::move(modes);
  return t;
}

int64_t IntTuple::value() const {
  if (is_tuple_) throw LayoutError("expected an integer, got the tuple " + str());
  return value_;
}

const IntTuple& IntTuple::operator[](size_t i) const {
  if (!is_tuple_) throw LayoutError("cannot index the integer " + str() + " as a tuple");
  if (i >= elems_.size())
    throw LayoutError("mode " + std::to_string(i) + " is out of range for " + str() + " (rank " +
                      std::to_string(elems_.size()) + ")");
  return elems_[i];
}

std::string IntTuple::str() const {
  if (!is_tuple_) {
    std::string s = std::to_string(value_);
    // CuTe prints the innermost mode first: E<1,0> is "1@0@1".
    for (auto it = modes_.rbegin(); it != modes_.rend(); ++it) {
      s += '@';
      s += std::to_string(*it);
    }
    return s;
  }
  std::string s = "(";
  for (size_t i = 0; i < elems_.size(); ++i) {
    if (i) s += ",";
    s += elems_[i].str();
  }
  return s + ")";
}

bool operator==(const IntTuple& a, const IntTuple& b) {
  if (a.is_tuple_ != b.is_tuple_) return false;
  if (!a.is_tuple_) return a.value_ == b.value_ && a.modes_ == b.modes_;
  return a.elems_ == b.elems_;
}

namespace {

struct Parser {
  std::string_view s;
  size_t pos = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw LayoutError("cannot parse '" + std::string(s) + "' at position " + std::to_string(pos) + ": " + what);
  }
  void skip() {
    while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos;
  }
  int64_t number() {
    skip();
    bool neg = false;
    if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) neg = s[pos++] == '-';
    if (pos >= s.size() || !std::isdigit(static_cast<unsigned char>(s[pos]))) fail("expected a number");
    int64_t v = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) v = v * 10 + (s[pos++] - '0');
    return neg ? -v : v;
  }
  IntTuple item() {
    skip();
    if (pos < s.size() && s[pos] == '(') {
      ++pos;
      std::vector<IntTuple> elems;
      skip();
      if (pos < s.size() && s[pos] == ')') {
        ++pos;
        return IntTuple::tuple({});
      }
      for (;;) {
        elems.push_back(item());
        skip();
        if (pos < s.size() && s[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < s.size() && s[pos] == ')') {
          ++pos;
          return IntTuple::tuple(std::move(elems));
        }
        fail("expected ',' or ')'");
      }
    }
    int64_t v = number();
    std::vector<int> modes;
    while (pos < s.size() && s[pos] == '@') {
      ++pos;
      modes.insert(modes.begin(), static_cast<int>(number()));
    }
    return modes.empty() ? IntTuple(v) : IntTuple::basis(v, std::move(modes));
  }
};

IntTuple materialize(int64_t v, const std::vector<int>& modes, size_t k) {
  if (k == modes.size()) return IntTuple(v);
  std::vector<IntTuple> e(static_cast<size_t>(modes[k]) + 1, IntTuple(0));
  e.back() = materialize(v, modes, k + 1);
  return IntTuple::tuple(std::move(e));
}

IntTuple scaled_term(int64_t c, const IntTuple& d) {
  if (d.is_int()) return IntTuple(c * d.value());
  return materialize(c * d.value(), d.modes(), 0);
}

void collect_leaves(const IntTuple& t, std::vector<IntTuple>& out) {
  if (t.is_leaf()) {
    out.push_back(t);
    return;
  }
  for (const auto& e : t.elems()) collect_leaves(e, out);
}

IntTuple unflatten_rec(const std::vector<IntTuple>& flat, size_t& k, const IntTuple& profile) {
  if (profile.is_leaf()) {
    if (k >= flat.size()) throw LayoutError("unflatten: too few elements for the profile " + profile.str());
    return flat[k++];
  }
  std::vector<IntTuple> e;
  for (const auto& p : profile.elems()) e.push_back(unflatten_rec(flat, k, p));
  return IntTuple::tuple(std::move(e));
}

IntTuple product_like(const IntTuple& shape, const IntTuple& order) {
  if (order.is_tuple()) {
    if (!shape.is_tuple() || shape.num_elems() != order.num_elems())
      throw LayoutError("compact_order: the order " + order.str() + " does not match the shape " + shape.str());
    std::vector<IntTuple> e;
    for (size_t i = 0; i < shape.num_elems(); ++i) e.push_back(product_like(shape[i], order[i]));
    return IntTuple::tuple(std::move(e));
  }
  return IntTuple(product(shape));
}

IntTuple compact_order_rec(const IntTuple& shape, const IntTuple& order, const std::vector<IntTuple>& ref_shape,
                           const std::vector<IntTuple>& ref_order) {
  if (order.is_tuple()) {
    std::vector<IntTuple> e;
    for (size_t i = 0; i < shape.num_elems(); ++i)
      e.push_back(compact_order_rec(shape[i], order[i], ref_shape, ref_order));
    return IntTuple::tuple(std::move(e));
  }
  int64_t d = 1;
  for (size_t j = 0; j < ref_order.size(); ++j)
    if (ref_order[j].value() < order.value()) d *= ref_shape[j].value();
  return compact_col_major(shape, d);
}

IntTuple prefix_rec(const IntTuple& shape, int64_t& current) {
  if (shape.is_leaf()) {
    IntTuple d(current);
    current *= shape.value();
    return d;
  }
  std::vector<IntTuple> e;
  for (const auto& s : shape.elems()) e.push_back(prefix_rec(s, current));
  return IntTuple::tuple(std::move(e));
}

IntTuple idx2crd_rec(int64_t idx, const IntTuple& shape, const IntTuple& stride) {
  if (shape.is_tuple()) {
    std::vector<IntTuple> e;
    for (size_t i = 0; i < shape.num_elems(); ++i) e.push_back(idx2crd_rec(idx, shape[i], stride[i]));
    return IntTuple::tuple(std::move(e));
  }
  if (shape.value() == 1) return IntTuple(0);
  if (shape.value() == 0 || stride.value() == 0)
    throw LayoutError("idx2crd: the shape " + shape.str() + " has no coordinates");
  return IntTuple((idx / stride.value()) % shape.value());
}

}  // namespace

IntTuple IntTuple::parse(std::string_view text) {
  Parser p{text};
  IntTuple t = p.item();
  p.skip();
  if (p.pos != text.size()) p.fail("unexpected trailing text");
  return t;
}

// ---- structure --------------------------------------------------------------

int rank(const IntTuple& t) { return t.is_tuple() ? static_cast<int>(t.num_elems()) : 1; }

int depth(const IntTuple& t) {
  if (t.is_leaf()) return 0;
  int d = 0;
  for (const auto& e : t.elems()) d = std::max(d, depth(e));
  return d + 1;
}

int64_t product(const IntTuple& t) {
  if (t.is_leaf()) {
    if (t.is_basis()) throw LayoutError("the product of " + t.str() + " is undefined (a basis element)");
    return t.value();
  }
  int64_t p = 1;
  for (const auto& e : t.elems()) p *= product(e);
  return p;
}

IntTuple product_each(const IntTuple& t) {
  if (t.is_leaf()) return t;
  std::vector<IntTuple> e;
  for (const auto& x : t.elems()) e.push_back(IntTuple(product(x)));
  return IntTuple::tuple(std::move(e));
}

std::vector<IntTuple> leaves(const IntTuple& t) {
  std::vector<IntTuple> out;
  collect_leaves(t, out);
  return out;
}

IntTuple flatten(const IntTuple& t) {
  if (t.is_leaf()) return t;
  return IntTuple::tuple(leaves(t));
}

IntTuple unflatten(const std::vector<IntTuple>& flat, const IntTuple& profile) {
  size_t k = 0;
  IntTuple r = unflatten_rec(flat, k, profile);
  if (k != flat.size()) throw LayoutError("unflatten: too many elements for the profile " + profile.str());
  return r;
}

IntTuple unwrap(const IntTuple& t) {
  if (t.is_tuple() && t.num_elems() == 1) return unwrap(t[0]);
  return t;
}

IntTuple wrap(const IntTuple& t) { return t.is_tuple() ? t : IntTuple::tuple({t}); }

bool congruent(const IntTuple& a, const IntTuple& b) {
  if (a.is_leaf() || b.is_leaf()) return a.is_leaf() && b.is_leaf();
  if (a.num_elems() != b.num_elems()) return false;
  for (size_t i = 0; i < a.num_elems(); ++i)
    if (!congruent(a[i], b[i])) return false;
  return true;
}

bool compatible(const IntTuple& a, const IntTuple& b) {
  if (a.is_tuple()) {
    if (!b.is_tuple() || a.num_elems() != b.num_elems()) return false;
    for (size_t i = 0; i < a.num_elems(); ++i)
      if (!compatible(a[i], b[i])) return false;
    return true;
  }
  return a.value() == product(b);
}

IntTuple repeat_like(const IntTuple& value, const IntTuple& ref) {
  if (ref.is_leaf()) return value;
  std::vector<IntTuple> e;
  for (const auto& r : ref.elems()) e.push_back(repeat_like(value, r));
  return IntTuple::tuple(std::move(e));
}

const IntTuple& get(const IntTuple& t, const std::vector<int>& path) {
  const IntTuple* cur = &t;
  for (int i : path) {
    if (i < 0) throw LayoutError("mode index " + std::to_string(i) + " is negative");
    if (cur->is_leaf()) {
      if (i != 0) throw LayoutError("mode " + std::to_string(i) + " is out of range for " + cur->str() + " (rank 1)");
      continue;
    }
    cur = &(*cur)[static_cast<size_t>(i)];
  }
  return *cur;
}

IntTuple select(const IntTuple& t, const std::vector<int>& modes) {
  std::vector<IntTuple> e;
  for (int m : modes) e.push_back(get(t, {m}));
  return IntTuple::tuple(std::move(e));
}

// ---- arithmetic -------------------------------------------------------------

int64_t gcd(int64_t a, int64_t b) { return std::gcd(a, b); }

int64_t ceil_div(int64_t a, int64_t b) {
  if (b == 0) throw LayoutError("ceil_div: division by zero");
  // CuTe's ceil_div for positive operands; rounds toward +inf for others.
  int64_t q = a / b, r = a % b;
  return (r != 0 && ((r > 0) == (b > 0))) ? q + 1 : q;
}

namespace {

int64_t shape_div_int(int64_t a, int64_t b) {
  if (b == 0) throw LayoutError("shape_div: division by zero");
  int64_t q = a / b;
  if (q != 0) return q;
  auto sgn = [](int64_t x) { return static_cast<int64_t>((x > 0) - (x < 0)); };
  return sgn(a) * sgn(b);
}

// The tuple/int, tuple/tuple and int/tuple patterns shared by ceil_div and shape_div.
template <class IntOp>
IntTuple divide_like(const IntTuple& a, const IntTuple& b, IntOp op) {
  if (a.is_tuple()) {
    std::vector<IntTuple> e;
    if (b.is_tuple()) {
      if (a.num_elems() != b.num_elems())
        throw LayoutError("cannot divide " + a.str() + " by " + b.str() + ": mismatched ranks");
      for (size_t i = 0; i < a.num_elems(); ++i) e.push_back(divide_like(a[i], b[i], op));
      return IntTuple::tuple(std::move(e));
    }
    IntTuple rest = b;
    for (const auto& ai : a.elems()) {
      e.push_back(divide_like(ai, rest, op));
      rest = divide_like(rest, IntTuple(product(ai)), op);
    }
    return IntTuple::tuple(std::move(e));
  }
  if (b.is_tuple()) return IntTuple(op(a.value(), product(b)));
  return IntTuple(op(a.value(), b.value()));
}

}  // namespace

IntTuple ceil_div(const IntTuple& a, const IntTuple& b) {
  return divide_like(a, b, [](int64_t x, int64_t y) { return ceil_div(x, y); });
}

IntTuple shape_div(const IntTuple& a, const IntTuple& b) { return divide_like(a, b, shape_div_int); }

IntTuple elem_scale(const IntTuple& a, const IntTuple& b) {
  if (a.is_tuple()) {
    if (!b.is_tuple() || a.num_elems() != b.num_elems())
      throw LayoutError("elem_scale: " + a.str() + " and " + b.str() + " are not congruent");
    std::vector<IntTuple> e;
    for (size_t i = 0; i < a.num_elems(); ++i) e.push_back(elem_scale(a[i], b[i]));
    return IntTuple::tuple(std::move(e));
  }
  return IntTuple(a.value() * product(b));
}

int64_t inner_product(const IntTuple& a, const IntTuple& b) {
  if (a.is_tuple()) {
    if (!b.is_tuple() || a.num_elems() != b.num_elems())
      throw LayoutError("inner_product: " + a.str() + " and " + b.str() + " are not congruent");
    int64_t s = 0;
    for (size_t i = 0; i < a.num_elems(); ++i) s += inner_product(a[i], b[i]);
    return s;
  }
  if (b.is_tuple()) throw LayoutError("inner_product: " + a.str() + " and " + b.str() + " are not congruent");
  return a.value() * b.value();
}

IntTuple prefix_product(const IntTuple& shape, int64_t init) {
  int64_t current = init;
  return prefix_rec(shape, current);
}

IntTuple compact_col_major(const IntTuple& shape, int64_t current) { return prefix_product(shape, current); }

IntTuple compact_order(const IntTuple& shape, const IntTuple& order) {
  IntTuple ref = product_like(shape, order);
  std::vector<IntTuple> ref_shape = leaves(ref), ref_order = leaves(order);
  return compact_order_rec(shape, order, ref_shape, ref_order);
}

IntTuple add(const IntTuple& a, const IntTuple& b) {
  if (a.is_leaf() && b.is_leaf()) {
    if (a.is_basis() || b.is_basis()) return add(scaled_term(1, a), scaled_term(1, b));
    return IntTuple(a.value() + b.value());
  }
  if (a.is_leaf() || b.is_leaf()) {
    const IntTuple& leaf = a.is_leaf() ? a : b;
    const IntTuple& tup = a.is_leaf() ? b : a;
    if (leaf.is_int() && leaf.value() == 0) return tup;
    if (leaf.is_basis()) return add(scaled_term(1, leaf), tup);
    throw LayoutError("cannot add the integer " + leaf.str() + " to the coordinate " + tup.str());
  }
  std::vector<IntTuple> e(std::max(a.num_elems(), b.num_elems()), IntTuple(0));
  for (size_t i = 0; i < e.size(); ++i) {
    IntTuple x = i < a.num_elems() ? a[i] : IntTuple(0);
    IntTuple y = i < b.num_elems() ? b[i] : IntTuple(0);
    e[i] = add(x, y);
  }
  return IntTuple::tuple(std::move(e));
}

IntTuple scale(const IntTuple& d, int64_t k) {
  if (d.is_tuple()) throw LayoutError("scale: expected a stride leaf, got " + d.str());
  return d.is_int() ? IntTuple(d.value() * k) : IntTuple::basis(d.value() * k, d.modes());
}

// ---- coordinates ------------------------------------------------------------

IntTuple crd2idx(const IntTuple& coord, const IntTuple& shape, const IntTuple& stride) {
  if (coord.is_tuple()) {
    if (!shape.is_tuple())
      throw LayoutError("the coordinate " + coord.str() + " has more modes than the shape " + shape.str());
    if (coord.num_elems() != shape.num_elems())
      throw LayoutError("the coordinate " + coord.str() + " has " + std::to_string(coord.num_elems()) +
                        " modes but the shape " + shape.str() + " has " + std::to_string(shape.num_elems()));
    IntTuple r(0);
    for (size_t i = 0; i < shape.num_elems(); ++i) r = add(r, crd2idx(coord[i], shape[i], stride[i]));
    return r;
  }
  if (coord.is_basis()) throw LayoutError("a coordinate cannot be a basis element: " + coord.str());
  if (shape.is_leaf()) return scaled_term(coord.value(), stride);
  // Colexicographic split; the last mode takes what is left.
  int64_t c = coord.value();
  IntTuple r(0);
  size_t n = shape.num_elems();
  for (size_t i = 0; i + 1 < n; ++i) {
    int64_t s = product(shape[i]);
    if (s == 0) throw LayoutError("cannot split the index " + coord.str() + " over the empty shape " + shape.str());
    r = add(r, crd2idx(IntTuple(c % s), shape[i], stride[i]));
    c /= s;
  }
  return add(r, crd2idx(IntTuple(c), shape[n - 1], stride[n - 1]));
}

int64_t crd2idx(const IntTuple& coord, const IntTuple& shape) {
  IntTuple r = crd2idx(coord, shape, compact_col_major(shape));
  return r.value();
}

IntTuple idx2crd(int64_t idx, const IntTuple& shape) {
  if (shape.is_leaf()) return IntTuple(idx);
  return idx2crd_rec(idx, shape, compact_col_major(shape));
}

bool has_basis(const IntTuple& t) {
  if (t.is_leaf()) return t.is_basis();
  for (const auto& e : t.elems())
    if (has_basis(e)) return true;
  return false;
}

}  // namespace enigma::layout
