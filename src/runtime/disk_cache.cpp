#include "enigma/runtime/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "enigma/support/error.h"
#include "enigma/support/file_io.h"
#include "enigma/support/host.h"
#include "enigma/support/sha256.h"

namespace enigma {
namespace fs = std::filesystem;

namespace {

constexpr const char* kChecksumSuffix = ".sha256";
constexpr int kPublishAttempts = 8;
// Private directories older than this were left by crashed processes.
constexpr auto kStaleAge = std::chrono::hours(24);
// Everything the cache creates is private to this user.
constexpr mode_t kDirMode = 0700;
constexpr mode_t kFileMode = 0600;

[[noreturn]] void io_error(const std::string& what, const fs::path& path, int err) {
  throw RuntimeError("disk cache: cannot " + what + " '" + path.string() +
                     "': " + std::generic_category().message(err));
}

void validate_key(const std::string& key) {
  bool ok = key.size() >= 16 && key.size() <= 128;
  for (char c : key) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) { throw RuntimeError("disk cache: invalid key '" + key + "': expected 16 to 128 lowercase hex digits"); }
}

void validate_filename(const std::string& filename) {
  if (filename.empty() || filename == "." || filename == ".." ||
      filename.find_first_of(std::string("/\0", 2)) != std::string::npos) {
    throw RuntimeError("disk cache: invalid artifact file name '" + filename +
                       "': it must be a plain, non-empty file name without '/'");
  }
}

// ---- trust -------------------------------------------------------------------

std::string octal_mode(mode_t mode) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0%o", static_cast<unsigned>(mode & 07777));
  return buffer;
}

// Why an object of the cache with status `st` cannot be trusted, or "" when it
// can: a directory (or a regular file), owned by this user, not writable by
// group or others.
std::string distrust(const struct stat& st, bool directory) {
  if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return directory ? "it is not a directory" : "it is not a regular file";
  if (st.st_uid != ::geteuid())
    return "it is owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
           std::to_string(::geteuid()) + ")";
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return "it is writable by group or others (mode " + octal_mode(st.st_mode) + ")";
  return "";
}

// An open file descriptor, closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

// Opens `name` inside the directory `dirfd` without following a symbolic link
// and without blocking (opening a FIFO would otherwise wait for a writer).
Fd open_no_follow(int dirfd, const std::string& name, bool directory) {
  int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (directory ? O_DIRECTORY : 0);
  return Fd(::openat(dirfd, name.c_str(), flags));
}

// Creates `dir` and its missing parents, each with mode 0700.
void ensure_directory(const fs::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return;
  if (dir.has_parent_path() && dir.parent_path() != dir) ensure_directory(dir.parent_path());
  if (::mkdir(dir.c_str(), kDirMode) != 0 && errno != EEXIST) io_error("create directory", dir, errno);
}

// The root, opened and checked. The root itself may be a symbolic link (to a
// folder of this user's); nothing inside it may.
Fd open_trusted_root(const fs::path& root) {
  Fd fd(::open(root.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY | O_NONBLOCK));
  if (!fd.ok()) io_error("open", root, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) io_error("inspect", root, errno);
  std::string why = distrust(st, true);
  if (!why.empty()) throw UntrustedCacheError("disk cache: refusing to use '" + root.string() + "': " + why);
  return fd;
}

// A subfolder of the root (tmp/, trash/, a shard): created 0700 when missing;
// an existing one must be trusted (a symbolic link is not).
void ensure_private_subdir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), kDirMode) == 0) return;
  int err = errno;
  if (err != EEXIST) io_error("create directory", dir, err);
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) io_error("inspect", dir, errno);
  std::string why = distrust(st, true);
  if (!why.empty()) throw UntrustedCacheError("disk cache: refusing to use '" + dir.string() + "': " + why);
}

// ---- files -------------------------------------------------------------------

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

// SHA-256 of the file open at `fd`.
FileDigest hash_fd(int fd, const fs::path& path) {
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
      io_error("read", path, errno);
    }
  }
  digest.hex = hasher.hex_digest();
  return digest;
}

// Opens the file `name` of an entry for reading; an invalid Fd when it is
// missing, a symbolic link, not a regular file or not trusted (all of which
// mean "corrupt entry" to the caller).
Fd open_entry_file(int entry_fd, const std::string& name) {
  Fd fd = open_no_follow(entry_fd, name, false);
  if (!fd.ok()) return fd;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !distrust(st, false).empty()) return Fd();
  return fd;
}

// Contents of a small file, at most `limit` bytes.
std::string read_small_fd(int fd, const fs::path& path, size_t limit) {
  std::string data;
  char buffer[512];
  while (data.size() < limit) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      data.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      io_error("read", path, errno);
    }
  }
  return data;
}

void write_file(const fs::path& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, kFileMode);
  if (fd < 0) io_error("create", path, errno);
  if (int err = write_all(fd, data); err != 0) {
    ::close(fd);
    io_error("write", path, err);
  }
  if (::close(fd) != 0) io_error("write", path, errno);
}

// The checksum file's exact contents for an artifact. A versioned tag lets a
// later format change read old files as corrupt (rebuilt) rather than valid;
// the key and file name bind the record to its entry.
std::string checksum_text(const std::string& key, const std::string& filename, const FileDigest& digest) {
  return "enigma-artifact-v2 key=" + key + " file=" + filename + " sha256=" + digest.hex +
         " size=" + std::to_string(digest.size) + "\n";
}

// What a lookup found.
enum class Found { Missing, Valid, Corrupt };

// Checks the entry <root>/<shard>/<key> through file descriptors, never
// following a symbolic link below the root. On Corrupt, *bad is the path to
// discard: the entry, or its shard folder when that is the untrusted part.
Found check_entry(int root_fd, const fs::path& root, const std::string& key, const std::string& filename,
                  fs::path* bad) {
  const std::string shard = key.substr(0, 2);
  auto missing_or_corrupt = [&](const fs::path& path) {
    if (errno == ENOENT) return Found::Missing;
    *bad = path;  // a symbolic link (ELOOP), a file (ENOTDIR), ...
    return Found::Corrupt;
  };
  struct stat st;
  Fd shard_fd = open_no_follow(root_fd, shard, true);
  if (!shard_fd.ok()) return missing_or_corrupt(root / shard);
  if (::fstat(shard_fd.get(), &st) != 0 || !distrust(st, true).empty()) {
    *bad = root / shard;
    return Found::Corrupt;
  }
  const fs::path entry = root / shard / key;
  Fd entry_fd = open_no_follow(shard_fd.get(), key, true);
  if (!entry_fd.ok()) return missing_or_corrupt(entry);
  *bad = entry;
  if (::fstat(entry_fd.get(), &st) != 0 || !distrust(st, true).empty()) return Found::Corrupt;
  Fd record = open_entry_file(entry_fd.get(), filename + kChecksumSuffix);
  Fd artifact = open_entry_file(entry_fd.get(), filename);
  if (!record.ok() || !artifact.ok()) return Found::Corrupt;
  std::string recorded = read_small_fd(record.get(), entry / (filename + kChecksumSuffix), 4096);
  FileDigest actual = hash_fd(artifact.get(), entry / filename);
  return recorded == checksum_text(key, filename, actual) ? Found::Valid : Found::Corrupt;
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

// Takes the corrupt or untrusted `entry` (an entry or a shard folder, whose
// identity was `seen`) out of the cache. Renaming it into trash/ first makes
// it vanish atomically, so other processes see either the whole entry or none.
void discard_entry(const fs::path& root, const fs::path& entry, const struct stat& seen) {
  struct stat now;
  // Gone, or replaced by a fresh entry since we checked: nothing to discard.
  if (::lstat(entry.c_str(), &now) != 0 || !same_inode(now, seen)) return;

  const fs::path trash = root / "trash";
  ensure_private_subdir(trash);
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
  fs::remove_all(target, ec);  // never follows links; a leftover in trash/ is harmless
}

// Best effort: removes what crashed processes left in tmp/ or trash/ (by the
// entries' own times: a symbolic link is neither followed nor kept).
void sweep_stale(const fs::path& dir) {
  std::error_code ec;
  const auto now = std::chrono::system_clock::now();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::error_code entry_ec;
    if (now - std::chrono::system_clock::from_time_t(st.st_mtime) > kStaleAge) fs::remove_all(it->path(), entry_ec);
  }
}

// The process's private cache folder, removed at exit by the process that
// made it (not by forked children).
struct PrivateRoot {
  std::mutex mutex;
  fs::path path;
  pid_t owner = 0;
  ~PrivateRoot() {
    if (!path.empty() && owner == ::getpid()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

PrivateRoot& private_root_state() {
  static PrivateRoot state;
  return state;
}

bool is_private_root(const fs::path& root) {
  PrivateRoot& state = private_root_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  return !state.path.empty() && state.path == root;
}

// Warns once per process and message.
void warn_once(const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> said;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!said.insert(message).second) return;
  }
  host_warning(message);
}

}  // namespace

DiskCache::DiskCache(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  if (!root_.empty() && root_.is_relative()) {
    fs::path absolute = fs::absolute(root_, ec);
    if (!ec) root_ = absolute;
  }
}

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
  // No predictable shared folder (another user could create it first).
  return private_root();
}

fs::path DiskCache::private_root() {
  PrivateRoot& state = private_root_state();
  std::lock_guard<std::mutex> lock(state.mutex);
  struct stat st;
  // A forked child shares its parent's folder, which the parent removes at exit.
  if (!state.path.empty() && state.owner == ::getpid() && ::lstat(state.path.c_str(), &st) == 0) return state.path;
  std::vector<fs::path> bases;
  if (const char* tmp = std::getenv("TMPDIR"); tmp && *tmp == '/') bases.emplace_back(tmp);
  bases.emplace_back("/tmp");
  int err = 0;
  for (const fs::path& base : bases) {
    std::string pattern = (base / "enigma-private-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) {  // mode 0700, a name nobody can guess
      state.path = pattern;
      state.owner = ::getpid();
      return state.path;
    }
    err = errno;
  }
  io_error("create a private temporary folder in", bases.front(), err);
}

fs::path DiskCache::fetch(const std::string& key, const std::string& filename,
                          const std::function<void(const fs::path& dir)>& produce) {
  bool producing = false;
  auto guarded = [&](const fs::path& dir) {
    producing = true;
    produce(dir);
    producing = false;
  };
  const fs::path root = default_root();
  try {
    DiskCache cache(root);
    if (std::optional<fs::path> hit = cache.lookup(key, filename)) return *hit;
    return cache.store(key, filename, guarded);
  } catch (const Interrupted&) { throw; } catch (const std::exception& e) {
    if (producing) throw;              // the build itself failed: not a cache problem
    if (is_private_root(root)) throw;  // nowhere else to go
    warn_once("the kernel cache '" + root.string() + "' cannot be used (" + e.what() +
              "); compiled kernels are kept in a private temporary folder for this process instead");
  }
  DiskCache fallback(private_root());
  if (std::optional<fs::path> hit = fallback.lookup(key, filename)) return *hit;
  return fallback.store(key, filename, produce);
}

std::optional<fs::path> DiskCache::lookup(const std::string& key, const std::string& filename) {
  validate_key(key);
  validate_filename(filename);
  struct stat root_st;
  if (::stat(root_.c_str(), &root_st) != 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::nullopt;
    io_error("inspect", root_, err);
  }
  Fd root_fd = open_trusted_root(root_);
  fs::path bad;
  switch (check_entry(root_fd.get(), root_, key, filename, &bad)) {
    case Found::Missing: return std::nullopt;
    case Found::Valid: return root_ / key.substr(0, 2) / key / filename;
    case Found::Corrupt: break;
  }
  struct stat seen;
  if (::lstat(bad.c_str(), &seen) == 0) discard_entry(root_, bad, seen);
  return std::nullopt;
}

fs::path DiskCache::store(const std::string& key, const std::string& filename,
                          const std::function<void(const fs::path& dir)>& produce) {
  validate_key(key);
  validate_filename(filename);

  ensure_directory(root_);
  open_trusted_root(root_);
  const fs::path tmp_root = root_ / "tmp";
  ensure_private_subdir(tmp_root);
  // Storing follows a compile, so a directory listing here costs nothing noticeable.
  sweep_stale(tmp_root);
  sweep_stale(root_ / "trash");
  std::string work_template = (tmp_root / "XXXXXX").string();
  if (::mkdtemp(work_template.data()) == nullptr) io_error("create a private directory in", tmp_root, errno);
  const fs::path work = work_template;
  ScopedDirectory cleanup(work);

  produce(work);
  const fs::path artifact = work / filename;
  Fd work_fd(::open(work.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (!work_fd.ok()) io_error("open", work, errno);
  Fd artifact_fd = open_no_follow(work_fd.get(), filename, false);
  struct stat st;
  if (!artifact_fd.ok() || ::fstat(artifact_fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw RuntimeError("disk cache: the artifact '" + artifact.string() +
                       "' was not created (or is not a regular file) by the step that should have produced it");
  }
  // Whatever the umask and the producer chose: private to this user.
  if (::fchmod(artifact_fd.get(), kFileMode) != 0) io_error("set the mode of", artifact, errno);
  FileDigest digest = hash_fd(artifact_fd.get(), artifact);
  write_file(work / (filename + kChecksumSuffix), checksum_text(key, filename, digest));

  const fs::path shard = root_ / key.substr(0, 2);
  const fs::path entry = shard / key;
  try {
    ensure_private_subdir(shard);
  } catch (const UntrustedCacheError&) {
    struct stat seen;  // an untrusted shard inside our own root: discard it and make ours
    if (::lstat(shard.c_str(), &seen) == 0) discard_entry(root_, shard, seen);
    ensure_private_subdir(shard);
  }
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
