// The compiled-program cache every device uses. A device turns a kernel into
// a source, a source into an artifact (a shared library, a cubin, a pipeline)
// and the artifact into a Program; this cache holds the two reusable steps:
//   - in memory: the live Program of each content key (held weakly, so a
//     program lives as long as a CompiledKernel uses it), built once;
//   - on disk: the artifact of each key (DiskCache::fetch: content-addressed,
//     checksummed, trusted only when private; see disk_cache.h).
// Each device supplies only its key's ingredients and its compile function.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "enigma/runtime/runtime.h"

namespace enigma {

// The content key of a compiled program: the SHA-256 (hex) of
//   kind "\n", each toolchain line "\n", each option " ", "\n",
//   each target line "\n", then the source.
// Everything that changes the artifact belongs in it.
std::string program_key(const std::string& kind, const std::vector<std::string>& toolchain,
                        const std::vector<std::string>& options, const std::vector<std::string>& target,
                        const std::string& source);

class ProgramCache {
 public:
  using Build = std::function<std::shared_ptr<Program>()>;

  // The live program for `key`, else the one `build` returns (called without
  // the lock held: compiles take a while and other kernels may ask).
  std::shared_ptr<Program> get(const std::string& key, const Build& build);

  // The artifact `filename` of `key` from the disk cache (DiskCache::fetch),
  // made by `produce(dir)` (which writes dir / filename) on a miss.
  static std::filesystem::path artifact(const std::string& key, const std::string& filename,
                                        const std::function<void(const std::filesystem::path& dir)>& produce);

  // The same for an artifact held in memory as bytes: returns them, read from
  // the cache or made by `make` and stored. `device` prefixes I/O errors.
  static std::string artifact_bytes(const std::string& key, const std::string& filename,
                                    const std::function<std::string()>& make, const std::string& device);

 private:
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<Program>> live_;
};

}  // namespace enigma
