// A content-addressed on-disk cache of compiled artifacts (e.g. the shared
// libraries of CPU kernels), safe to share between concurrent processes.
//
// An entry is the directory <root>/<key[0:2]>/<key>/ holding the artifact
// <filename> and <filename>.sha256 (its SHA-256 and size). Entries are built
// in a private directory under <root>/tmp/ and published with one atomic
// rename, so readers never see a half-written entry; they are never modified
// afterwards. Corrupt entries are detected by the checksum and removed;
// leftovers of crashed processes in tmp/ and trash/ are swept after a day.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace enigma {

class DiskCache {
 public:
  // Nothing is created on disk until the first store().
  explicit DiskCache(std::filesystem::path root);

  // $ENIGMA_CACHE_DIR if set and non-empty; else $XDG_CACHE_HOME/enigma (when
  // absolute); else $HOME/.cache/enigma; else <temp dir>/enigma-cache-<uid>.
  static std::filesystem::path default_root();

  const std::filesystem::path& root() const { return root_; }

  // Path of the verified artifact for `key`, or nullopt when there is none or
  // it is corrupt (artifact missing, truncated or modified; checksum file
  // missing or wrong). A corrupt entry is removed, so the caller rebuilds it.
  // `key`: 16 to 128 lowercase hex digits; `filename`: non-empty, no '/'. Use
  // one filename per key. Throws RuntimeError on bad arguments or I/O errors.
  std::optional<std::filesystem::path> lookup(const std::string& key, const std::string& filename);

  // Publishes an artifact: `produce(dir)` is called with a fresh private
  // directory inside the cache root and must create `dir/filename`. Then the
  // checksum is written and the entry becomes visible with one atomic rename.
  // If another process published the same key first, its entry is kept and
  // ours discarded. Returns the path of the published artifact. Exceptions
  // from produce propagate; the private directory is always removed.
  std::filesystem::path store(const std::string& key, const std::string& filename,
                              const std::function<void(const std::filesystem::path& dir)>& produce);

 private:
  std::filesystem::path root_;
};

}  // namespace enigma
