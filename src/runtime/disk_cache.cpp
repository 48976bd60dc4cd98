#include "enigma/runtime/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <system_error>
#include <utility>
#include <vector>

#include "enigma/support/error.h"
#include "enigma/support/sha256.h"

namespace enigma {
namespace fs = std::filesystem;

namespace {

constexpr const char* kChecksumSuffix = ".sha256";
constexpr int kPublishAttempts = 8;
// Private directories older than this were left by crashed processes.
constexpr auto kStaleAge = std::chrono::hours(24);

[[noreturn]] void io_error(const std::string& what, const fs::path& path, int err) {
  throw RuntimeError("disk cache: cannot " + what + " '" + path.string() + "': " +
                     std::generic_category().message(err));
}

void validate_key(const std::string& key) {
  bool ok = key.size() >= 16 && key.size() <= 128;
  for (char c : key) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) {
    throw RuntimeError("disk cache: invalid key '" + key + "': expected 16 to 128 lowercase hex digits");
  }
}

void validate_filename(const std::string& filename) {
  if (filename.empty() || filename == "." || filename == ".." ||
      filename.find_first_of(std::string("/\0", 2)) != std::string::npos) {
    throw RuntimeError("disk cache: invalid artifact file name '" + filename +
                       "': it must be a plain, non-empty file name without '/'");
  }
}

void ensure_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) io_error("create directory", dir, ec.value());
}

// A name no other thread or process will pick: pid, a per-process counter and
// random bits (the counter alone repeats in forked children).
std::string unique_name() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 rng{(uint64_t(std::random_device{}()) << 32) ^ std::random_device{}()};
  char buffer[80];
  std::snprintf(buffer, sizeof(buffer), "%ld-%llx-%016llx", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1)), static_cast<unsigned long long>(rng()));
  return buffer;
}

struct FileDigest {
  std::string hex;
  uint64_t size = 0;
};

// SHA-256 of a regular file; nullopt when it does not exist or is not a
// regular file (both mean "corrupt entry" to the caller).
std::optional<FileDigest> hash_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    io_error("open", path, err);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return std::nullopt;
  }
  Sha256 hasher;
  FileDigest digest;
  std::vector<char> buffer(1 << 16);
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n > 0) {
      hasher.update(buffer.data(), static_cast<size_t>(n));
      digest.size += static_cast<uint64_t>(n);
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      int err = errno;
      ::close(fd);
      io_error("read", path, err);
    }
  }
  ::close(fd);
  digest.hex = hasher.hex_digest();
  return digest;
}

// Contents of a small file, at most `limit` bytes; nullopt when missing.
std::optional<std::string> read_small_file(const fs::path& path, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    io_error("open", path, err);
  }
  std::string data;
  char buffer[512];
  while (data.size() < limit) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      data.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      int err = errno;
      ::close(fd);
      // A directory in place of the checksum file is corruption, not an I/O error.
      if (err == EISDIR) return std::nullopt;
      io_error("read", path, err);
    }
  }
  ::close(fd);
  return data;
}

void write_file(const fs::path& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_error("create", path, errno);
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      io_error("write", path, err);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) io_error("write", path, errno);
}

// The checksum file's exact contents for an artifact. A versioned tag lets a
// later format change read old files as corrupt (rebuilt) rather than valid.
std::string checksum_text(const FileDigest& digest) {
  return "enigma-artifact-v1 sha256=" + digest.hex + " size=" + std::to_string(digest.size) + "\n";
}

bool entry_is_valid(const fs::path& entry, const std::string& filename) {
  std::optional<std::string> recorded = read_small_file(entry / (filename + kChecksumSuffix), 4096);
  if (!recorded) return false;
  std::optional<FileDigest> actual = hash_file(entry / filename);
  return actual && *recorded == checksum_text(*actual);
}

bool same_inode(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

// Removes a private directory when it goes out of scope, unless released.
class ScopedDirectory {
 public:
  explicit ScopedDirectory(fs::path path) : path_(std::move(path)) {}
  ScopedDirectory(const ScopedDirectory&) = delete;
  ScopedDirectory& operator=(const ScopedDirectory&) = delete;
  ~ScopedDirectory() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);  // best effort: nothing sensible to report from a destructor
    }
  }
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

// Takes the corrupt entry `entry` (whose identity was `seen`) out of the
// cache. Renaming it into trash/ first makes it vanish atomically, so other
// processes see either the whole entry or none.
void discard_entry(const fs::path& root, const fs::path& entry, const struct stat& seen) {
  struct stat now;
  // Gone, or replaced by a fresh entry since we checked: nothing to discard.
  if (::lstat(entry.c_str(), &now) != 0 || !same_inode(now, seen)) return;

  const fs::path trash = root / "trash";
  ensure_directory(trash);
  const fs::path target = trash / unique_name();
  if (::rename(entry.c_str(), target.c_str()) != 0) {
    int err = errno;
    if (err == ENOENT) return;  // another process discarded it first
    io_error("move corrupt cache entry to", target, err);
  }
  // If a fresh entry slipped in between the check and the rename, we moved the
  // wrong one: put it back (fails harmlessly if yet another one appeared).
  struct stat moved;
  if (::lstat(target.c_str(), &moved) == 0 && !same_inode(moved, seen) &&
      ::rename(target.c_str(), entry.c_str()) == 0) {
    return;
  }
  std::error_code ec;
  fs::remove_all(target, ec);  // a leftover in trash/ is harmless
}

// Best effort: removes what crashed processes left in tmp/ or trash/.
void sweep_stale(const fs::path& dir) {
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    const auto modified = it->last_write_time(entry_ec);
    if (!entry_ec && now - modified > kStaleAge) fs::remove_all(it->path(), entry_ec);
  }
}

}  // namespace

DiskCache::DiskCache(fs::path root) : root_(std::move(root)) {}

fs::path DiskCache::default_root() {
  auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value ? value : "";
  };
  if (std::string dir = env("ENIGMA_CACHE_DIR"); !dir.empty()) return dir;
  // The XDG spec says relative values are invalid and must be ignored.
  if (std::string dir = env("XDG_CACHE_HOME"); !dir.empty() && fs::path(dir).is_absolute()) {
    return fs::path(dir) / "enigma";
  }
  if (std::string home = env("HOME"); !home.empty()) return fs::path(home) / ".cache" / "enigma";
  std::error_code ec;
  fs::path temp = fs::temp_directory_path(ec);
  if (ec) temp = "/tmp";
  return temp / ("enigma-cache-" + std::to_string(static_cast<unsigned long>(::getuid())));
}

std::optional<fs::path> DiskCache::lookup(const std::string& key, const std::string& filename) {
  validate_key(key);
  validate_filename(filename);
  const fs::path entry = root_ / key.substr(0, 2) / key;
  struct stat seen;
  if (::lstat(entry.c_str(), &seen) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    io_error("inspect", entry, err);
  }
  if (entry_is_valid(entry, filename)) return entry / filename;
  discard_entry(root_, entry, seen);
  return std::nullopt;
}

fs::path DiskCache::store(const std::string& key, const std::string& filename,
                          const std::function<void(const fs::path& dir)>& produce) {
  validate_key(key);
  validate_filename(filename);

  const fs::path tmp_root = root_ / "tmp";
  ensure_directory(tmp_root);
  // Storing follows a compile, so a directory listing here costs nothing noticeable.
  sweep_stale(tmp_root);
  sweep_stale(root_ / "trash");
  std::string work_template = (tmp_root / "XXXXXX").string();
  if (::mkdtemp(work_template.data()) == nullptr) io_error("create a private directory in", tmp_root, errno);
  const fs::path work = work_template;
  ScopedDirectory cleanup(work);

  produce(work);
  const fs::path artifact = work / filename;
  std::optional<FileDigest> digest = hash_file(artifact);
  if (!digest) {
    throw RuntimeError("disk cache: the artifact '" + artifact.string() +
                       "' was not created (or is not a regular file) by the step that should have produced it");
  }
  write_file(work / (filename + kChecksumSuffix), checksum_text(*digest));

  const fs::path entry = root_ / key.substr(0, 2) / key;
  ensure_directory(entry.parent_path());
  for (int attempt = 1;; ++attempt) {
    // Atomic publication: fails when the entry already exists (non-empty).
    if (::rename(work.c_str(), entry.c_str()) == 0) {
      cleanup.release();
      return entry / filename;
    }
    int err = errno;
    if (err != EEXIST && err != ENOTEMPTY) {
      throw RuntimeError("disk cache: cannot publish '" + work.string() + "' as '" + entry.string() +
                         "': " + std::generic_category().message(err));
    }
    // Another writer won; keep its entry unless it is corrupt (lookup then
    // removes it and we try again with ours).
    if (std::optional<fs::path> existing = lookup(key, filename)) return *existing;
    if (attempt == kPublishAttempts) {
      throw RuntimeError("disk cache: cannot publish '" + entry.string() + "': it kept reappearing corrupt after " +
                         std::to_string(kPublishAttempts) + " attempts");
    }
  }
}

}  // namespace enigma
