// The backend registry: each backend registers here once, by one line.
#include "enigma/backend.h"

#include <algorithm>

namespace enigma {

const std::vector<const Backend*>& backends() {
  static const std::vector<const Backend*> all = [] {
    std::vector<const Backend*> v = {
        &cpu_backend(),
        &cuda_backend(),
        &metal_backend(),
    };
    std::sort(v.begin(), v.end(), [](const Backend* a, const Backend* b) { return std::string(a->name) < b->name; });
    return v;
  }();
  return all;
}

const Backend* find_backend(const std::string& name) {
  for (const Backend* b : backends())
    if (name == b->name || (*b->language && name == b->language)) return b;
  return nullptr;
}

std::vector<const Backend*> backends_by_preference() {
  std::vector<const Backend*> out = backends();
  std::stable_sort(out.begin(), out.end(),
                   [](const Backend* a, const Backend* b) { return a->auto_rank < b->auto_rank; });
  return out;
}

}  // namespace enigma
