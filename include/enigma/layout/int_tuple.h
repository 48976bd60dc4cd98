// Hierarchical integer tuples (the shapes, strides and coordinates of the
// layout algebra) and the tuple utilities the algebra is built from.
//
// An IntTuple is either a leaf or a tuple of IntTuples. A leaf is an integer
// or, for strides only, a scaled basis element v@m (the value v placed at the
// mode path m of a coordinate), which is how identity layouts map
// coordinates to coordinates.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "enigma/support/error.h"

namespace enigma::layout {

// A precondition of the layout algebra failed. A KernelError, so it reaches
// Python as enigma.EnigmaError (enigma.LayoutError, also a ValueError).
class LayoutError : public KernelError {
 public:
  using KernelError::KernelError;
};

class IntTuple {
 public:
  IntTuple() = default;               // the integer 0
  IntTuple(int64_t v) : value_(v) {}  // NOLINT(google-explicit-constructor): ints are tuples
  IntTuple(int v) : value_(v) {}      // NOLINT(google-explicit-constructor)

  static IntTuple tuple(std::vector<IntTuple> elems);
  // v@m: v at mode path m (outermost mode first); an empty path is the integer v.
  static IntTuple basis(int64_t v, std::vector<int> modes);
  // Parses "8", "(4,(2,3))", "1@0@1" (CuTe's print order: innermost mode first).
  static IntTuple parse(std::string_view text);

  bool is_tuple() const { return is_tuple_; }
  bool is_leaf() const { return !is_tuple_; }
  bool is_int() const { return !is_tuple_ && modes_.empty(); }  // a plain integer
  bool is_basis() const { return !is_tuple_ && !modes_.empty(); }

  int64_t value() const;  // of a leaf (the scale of a basis element)
  const std::vector<int>& modes() const { return modes_; }
  const std::vector<IntTuple>& elems() const { return elems_; }
  size_t num_elems() const { return elems_.size(); }
  const IntTuple& operator[](size_t i) const;  // a tuple's i-th element

  std::string str() const;  // "(4,(2,3))"; a 1-tuple prints as "(8)"

  friend bool operator==(const IntTuple& a, const IntTuple& b);

 private:
  bool is_tuple_ = false;
  int64_t value_ = 0;
  std::vector<int> modes_;
  std::vector<IntTuple> elems_;
};

// tup(4, tup(2, 3)) == (4,(2,3))
template <class... Ts>
IntTuple tup(Ts&&... ts) {
  return IntTuple::tuple({IntTuple(std::forward<Ts>(ts))...});
}

// ---- structure --------------------------------------------------------------
int rank(const IntTuple& t);               // number of top-level modes (1 for a leaf)
int depth(const IntTuple& t);              // 0 for a leaf
int64_t product(const IntTuple& t);        // product of the (integer) leaves; "size"
IntTuple product_each(const IntTuple& t);  // a tuple of each mode's product; a leaf stays
IntTuple flatten(const IntTuple& t);       // a tuple of the leaves; a leaf stays a leaf
std::vector<IntTuple> leaves(const IntTuple& t);
// Rebuilds the nesting of `profile` from its flattened leaves.
IntTuple unflatten(const std::vector<IntTuple>& flat, const IntTuple& profile);
// A 1-tuple becomes its element (recursively); anything else is unchanged.
IntTuple unwrap(const IntTuple& t);
IntTuple wrap(const IntTuple& t);                      // a leaf becomes a 1-tuple
bool congruent(const IntTuple& a, const IntTuple& b);  // same nesting
// CuTe's compatible: size(a) == size(b) and every coordinate of a is one of b.
bool compatible(const IntTuple& a, const IntTuple& b);
IntTuple repeat_like(const IntTuple& value, const IntTuple& ref);
// get(t, {i, j}) == t[i][j]; a leaf answers index 0 with itself.
const IntTuple& get(const IntTuple& t, const std::vector<int>& path);
IntTuple select(const IntTuple& t, const std::vector<int>& modes);

// ---- arithmetic -------------------------------------------------------------
int64_t gcd(int64_t a, int64_t b);
int64_t ceil_div(int64_t a, int64_t b);
// CuTe's ceil_div / shape_div on tuples: tuple/int folds the divisor through
// the modes, tuple/tuple is elementwise, int/tuple divides by the product.
// shape_div(a, b) for integers: a / b, or sign(a)*sign(b) when that is 0.
IntTuple ceil_div(const IntTuple& a, const IntTuple& b);
IntTuple shape_div(const IntTuple& a, const IntTuple& b);
IntTuple elem_scale(const IntTuple& a, const IntTuple& b);  // a * product(b) at a's leaves
int64_t inner_product(const IntTuple& a, const IntTuple& b);
// Exclusive prefix product in colexicographic order, keeping the nesting:
// prefix_product((2,(3,4))) == (1,(2,6)).
IntTuple prefix_product(const IntTuple& shape, int64_t init = 1);
IntTuple compact_col_major(const IntTuple& shape, int64_t current = 1);
// Strides with mode i before mode j whenever order[i] < order[j]; order may be
// an integer where shape is a tuple (that sub-shape then gets col-major strides).
IntTuple compact_order(const IntTuple& shape, const IntTuple& order);

// Arithmetic-tuple sum of two offsets/coordinates (a missing entry is 0).
IntTuple add(const IntTuple& a, const IntTuple& b);
// The stride leaf d scaled by an integer k (v@m * k == (v*k)@m).
IntTuple scale(const IntTuple& d, int64_t k);

// ---- coordinates ------------------------------------------------------------
// The offset of coordinate `coord` under (shape, stride). An integer
// coordinate on a tuple shape is split colexicographically and the last mode
// absorbs what is left (CuTe), so every integer maps, in range or not. With
// basis strides the result is a coordinate tuple.
IntTuple crd2idx(const IntTuple& coord, const IntTuple& shape, const IntTuple& stride);
int64_t crd2idx(const IntTuple& coord, const IntTuple& shape);  // colexicographic index
// The colexicographic coordinate of idx in shape (CuTe: each mode of a tuple
// shape is taken modulo its size).
IntTuple idx2crd(int64_t idx, const IntTuple& shape);

bool has_basis(const IntTuple& t);

}  // namespace enigma::layout
