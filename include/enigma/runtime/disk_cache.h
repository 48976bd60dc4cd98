// A content-addressed on-disk cache of compiled artifacts (e.g. the shared
// libraries of CPU kernels), safe to share between concurrent processes.
//
// An entry is the directory <root>/<key[0:2]>/<key>/ holding the artifact
// <filename> and <filename>.sha256 (its SHA-256 and size). Entries are built
// in a private directory under <root>/tmp/ and published with one atomic
// rename, so readers never see a half-written entry; they are never modified
// afterwards. Corrupt entries are detected by the checksum and removed;
// leftovers of crashed processes in tmp/ and trash/ are swept after a day.
//
// The cache trusts only itself (docs/runtime.md, "Cache security"): the root
// and everything in it must be owned by the current user and not writable by
// group or others; folders are created 0700 and files 0600; symbolic links
// and special files (FIFOs, devices) inside it are never followed or opened;
// each checksum record names its key and file, so an entry copied to another
// key is corrupt. An untrusted root raises UntrustedCacheError; an untrusted
// entry is removed like a corrupt one.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "enigma/support/error.h"

namespace enigma {

// The cache root cannot be trusted (foreign owner, group/world-writable, not a
// directory). A RuntimeError, so callers that only report errors need no change.
class UntrustedCacheError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

class DiskCache {
 public:
  // Nothing is created on disk until the first store(). A relative root is
  // made absolute (so no path handed to a compiler can start with '-').
  explicit DiskCache(std::filesystem::path root);

  // $ENIGMA_CACHE_DIR if set and non-empty; else $XDG_CACHE_HOME/enigma (when
  // absolute); else $HOME/.cache/enigma; else private_root().
  static std::filesystem::path default_root();

  // This process's private cache: a fresh folder (mode 0700, unpredictable
  // name) under $TMPDIR or /tmp, created on first use and removed at exit.
  static std::filesystem::path private_root();

  // What the devices use: the artifact for `key` from the cache at
  // default_root(), built with `produce` (as in store()) on a miss. When that
  // cache cannot be trusted or used (foreign owner, group/world-writable,
  // read-only, unusable path, a corrupt entry that cannot be removed), it
  // warns once (host_warning) and uses private_root() instead: it never fails
  // for a cache reason. Exceptions from produce propagate unchanged.
  static std::filesystem::path fetch(const std::string& key, const std::string& filename,
                                     const std::function<void(const std::filesystem::path& dir)>& produce);

  const std::filesystem::path& root() const { return root_; }

  // Path of the verified artifact for `key`, or nullopt when there is none or
  // it is corrupt (artifact missing, truncated or modified; checksum file
  // missing or wrong). A corrupt entry is removed, so the caller rebuilds it.
  // `key`: 16 to 128 lowercase hex digits; `filename`: non-empty, no '/'. Use
  // one filename per key. Throws UntrustedCacheError when the root cannot be
  // trusted, RuntimeError on bad arguments or I/O errors.
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
