// CuTe's Swizzle<B, M, S>: offset ^ ((offset & yyy) >> S), where the B bits
// at [M + max(S,0), ...) are XORed into the B bits at [M - min(S,0), ...).
// A negative S shifts left. Used to spread threadgroup-memory accesses over
// banks; a SwizzledLayout is the function swizzle(layout(coord)).
#pragma once

#include <cstdint>
#include <string>

#include "enigma/layout/layout.h"

namespace enigma::layout {

class Swizzle {
 public:
  Swizzle(int bits, int base, int shift);  // throws LayoutError unless bits, base >= 0 and |shift| >= bits

  int bits() const { return bits_; }
  int base() const { return base_; }
  int shift() const { return shift_; }
  int64_t yyy_mask() const;  // the bits read
  int64_t zzz_mask() const;  // the bits written

  int64_t operator()(int64_t offset) const;
  std::string str() const;  // "Sw<B,M,S>"

  friend bool operator==(const Swizzle& a, const Swizzle& b) {
    return a.bits_ == b.bits_ && a.base_ == b.base_ && a.shift_ == b.shift_;
  }

 private:
  int bits_, base_, shift_;
};

class SwizzledLayout {
 public:
  SwizzledLayout(Swizzle swizzle, Layout layout) : swizzle_(swizzle), layout_(std::move(layout)) {}

  const Swizzle& swizzle() const { return swizzle_; }
  const Layout& layout() const { return layout_; }
  int64_t operator()(const IntTuple& coord) const;
  int64_t operator()(int64_t idx) const { return swizzle_(layout_(idx)); }
  std::string str() const;  // "Sw<B,M,S> o layout"

  friend bool operator==(const SwizzledLayout& a, const SwizzledLayout& b) {
    return a.swizzle_ == b.swizzle_ && a.layout_ == b.layout_;
  }

 private:
  Swizzle swizzle_;
  Layout layout_;
};

// swizzle o layout (CuTe's composition(Swizzle, Layout)).
SwizzledLayout composition(const Swizzle& s, const Layout& l);

}  // namespace enigma::layout
