#include "enigma/runtime/program_cache.h"

#include <fstream>
#include <iterator>

#include "enigma/runtime/disk_cache.h"
#include "enigma/support/error.h"
#include "enigma/support/sha256.h"

namespace enigma {

std::string program_key(const std::string& kind, const std::vector<std::string>& toolchain,
                        const std::vector<std::string>& options, const std::vector<std::string>& target,
                        const std::string& source) {
  Sha256 h;
  h.update(kind + "\n");
  for (const std::string& line : toolchain) h.update(line + "\n");
  for (const std::string& option : options) h.update(option + " ");
  h.update("\n");
  for (const std::string& line : target) h.update(line + "\n");
  h.update(source);
  return h.hex_digest();
}

std::shared_ptr<Program> ProgramCache::get(const std::string& key, const Build& build) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(key);
    if (it != live_.end())
      if (std::shared_ptr<Program> p = it->second.lock()) return p;
  }
  std::shared_ptr<Program> p = build();
  std::lock_guard<std::mutex> lock(mu_);
  live_[key] = p;
  return p;
}

std::filesystem::path ProgramCache::artifact(const std::string& key, const std::string& filename,
                                             const std::function<void(const std::filesystem::path& dir)>& produce) {
  // The cache root is resolved per call, so ENIGMA_CACHE_DIR changes apply;
  // an unusable cache falls back to a private one.
  return DiskCache::fetch(key, filename, produce);
}

std::string ProgramCache::artifact_bytes(const std::string& key, const std::string& filename,
                                         const std::function<std::string()>& make, const std::string& device) {
  std::string bytes;
  bool made = false;
  std::filesystem::path path = artifact(key, filename, [&](const std::filesystem::path& dir) {
    bytes = make();
    made = true;
    std::ofstream out(dir / filename, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw RuntimeError(device + ": cannot write the kernel cache entry in " + dir.string());
  });
  if (made) return bytes;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError(device + ": cannot read the cached kernel '" + path.string() + "'");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace enigma
