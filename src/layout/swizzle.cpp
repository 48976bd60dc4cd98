#include "enigma/layout/swizzle.h"

#include <cstdlib>

namespace enigma::layout {

Swizzle::Swizzle(int bits, int base, int shift) : bits_(bits), base_(base), shift_(shift) {
  if (bits < 0) throw LayoutError("Swizzle bits must be non-negative, got " + std::to_string(bits));
  if (base < 0) throw LayoutError("Swizzle base must be non-negative, got " + std::to_string(base));
  if (std::abs(shift) < bits)
    throw LayoutError("Swizzle |shift| must be at least bits (" + std::to_string(bits) + "), got " +
                      std::to_string(shift));
  if (bits + base + std::abs(shift) > 62)
    throw LayoutError("Swizzle(" + std::to_string(bits) + ", " + std::to_string(base) + ", " + std::to_string(shift) +
                      ") reaches past bit 62 of a 64-bit offset");
}

int64_t Swizzle::yyy_mask() const { return ((int64_t{1} << bits_) - 1) << (base_ + (shift_ > 0 ? shift_ : 0)); }

int64_t Swizzle::zzz_mask() const { return ((int64_t{1} << bits_) - 1) << (base_ - (shift_ < 0 ? shift_ : 0)); }

int64_t Swizzle::operator()(int64_t offset) const {
  const int64_t y = offset & yyy_mask();
  return offset ^ (shift_ >= 0 ? y >> shift_ : y << -shift_);
}

std::string Swizzle::str() const {
  return "Sw<" + std::to_string(bits_) + "," + std::to_string(base_) + "," + std::to_string(shift_) + ">";
}

int64_t SwizzledLayout::operator()(const IntTuple& coord) const {
  IntTuple off = layout_(coord);
  if (!off.is_int()) throw LayoutError("a swizzle needs integer offsets; " + layout_.str() + " gave " + off.str());
  return swizzle_(off.value());
}

std::string SwizzledLayout::str() const { return swizzle_.str() + " o " + layout_.str(); }

SwizzledLayout composition(const Swizzle& s, const Layout& l) { return SwizzledLayout(s, l); }

}  // namespace enigma::layout
