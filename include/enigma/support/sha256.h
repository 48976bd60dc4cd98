// SHA-256 (FIPS 180-4), used to derive cache keys and to verify cached
// artifacts. Self-contained so the core needs no crypto library.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace enigma {

// Lowercase hex digest (64 characters) of `data`.
std::string sha256_hex(std::string_view data);

// Incremental hashing: feed any number of update() calls, then read the digest.
class Sha256 {
 public:
  Sha256();

  void update(std::string_view data);
  void update(const void* data, size_t size);

  // Lowercase hex digest of everything fed so far. Does not change the state,
  // so hashing may continue afterwards.
  std::string hex_digest() const;

 private:
  void compress(const unsigned char* block);

  uint32_t state_[8];
  unsigned char buffer_[64];
  size_t buffered_ = 0;       // bytes in buffer_
  uint64_t total_bytes_ = 0;  // message length so far
};

}  // namespace enigma
