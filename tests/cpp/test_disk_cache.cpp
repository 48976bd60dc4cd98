#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "enigma/runtime/disk_cache.h"
#include "enigma/support/error.h"
#include "enigma/support/host.h"
#include "enigma/support/sha256.h"
#include "test_support.h"

namespace fs = std::filesystem;
using enigma::DiskCache;

namespace {

using namespace enigma::test;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const fs::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  if (!out) throw std::runtime_error("test: cannot write " + path.string());
}

size_t count_entries(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

std::string key_for(const std::string& text) { return enigma::sha256_hex(text); }

class DiskCacheTest : public TempDirTest {
 protected:
  DiskCacheTest() : TempDirTest("enigma-disk-cache-test") {}
  void SetUp() override {
    TempDirTest::SetUp();
    root_ = dir_ / "cache";  // not created: the cache must create it itself
  }

  // Stores `content` under `key` through a producer that writes it.
  fs::path store(DiskCache& cache, const std::string& key, const std::string& content) {
    return cache.store(key, "artifact.so", [&](const fs::path& dir) { write_file(dir / "artifact.so", content); });
  }

  fs::path root_;
};

}  // namespace

TEST_F(DiskCacheTest, MissOnEmptyCache) {
  DiskCache cache(root_);
  EXPECT_EQ(cache.root(), root_);
  EXPECT_FALSE(cache.lookup(key_for("a"), "artifact.so").has_value());
  EXPECT_FALSE(fs::exists(root_)) << "lookup must not create the cache directory";
}

TEST_F(DiskCacheTest, StoreThenHit) {
  DiskCache cache(root_);
  const std::string key = key_for("kernel 1");
  int produced = 0;
  fs::path stored = cache.store(key, "artifact.so", [&](const fs::path& dir) {
    ++produced;
    EXPECT_TRUE(fs::is_directory(dir));
    EXPECT_EQ(dir.parent_path(), root_ / "tmp");
    write_file(dir / "artifact.so", "binary\0content");
  });
  EXPECT_EQ(produced, 1);
  EXPECT_EQ(stored, root_ / key.substr(0, 2) / key / "artifact.so");
  EXPECT_TRUE(fs::exists(stored.string() + ".sha256"));

  std::optional<fs::path> hit = cache.lookup(key, "artifact.so");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit, stored);
  EXPECT_EQ(read_file(*hit), std::string("binary\0content"));
  EXPECT_EQ(count_entries(root_ / "tmp"), 0u);

  // Other keys are still misses; a second cache object on the same root hits.
  EXPECT_FALSE(cache.lookup(key_for("kernel 2"), "artifact.so").has_value());
  DiskCache again(root_);
  EXPECT_EQ(again.lookup(key, "artifact.so"), stored);
}

TEST_F(DiskCacheTest, BinaryAndEmptyArtifacts) {
  DiskCache cache(root_);
  std::string binary;
  for (int i = 0; i < 200000; ++i) binary.push_back(static_cast<char>(i * 7));
  fs::path big = store(cache, key_for("big"), binary);
  fs::path empty = store(cache, key_for("empty"), "");
  EXPECT_EQ(read_file(*cache.lookup(key_for("big"), "artifact.so")), binary);
  EXPECT_EQ(cache.lookup(key_for("empty"), "artifact.so"), empty);
  EXPECT_EQ(fs::file_size(empty), 0u);
  EXPECT_NE(big, empty);
}

TEST_F(DiskCacheTest, CorruptEntriesAreRemovedAndRebuilt) {
  struct Corruption {
    const char* name;
    std::function<void(const fs::path& artifact)> apply;
  };
  const std::vector<Corruption> corruptions = {
      {"truncate", [](const fs::path& a) { fs::resize_file(a, fs::file_size(a) / 2); }},
      {"flip a byte",
       [](const fs::path& a) {
         std::string data = read_file(a);
         data[data.size() / 2] ^= 0x20;
         write_file(a, data);
       }},
      {"append", [](const fs::path& a) { write_file(a, read_file(a) + "x"); }},
      {"delete artifact", [](const fs::path& a) { fs::remove(a); }},
      {"delete checksum", [](const fs::path& a) { fs::remove(a.string() + ".sha256"); }},
      {"garbage checksum", [](const fs::path& a) { write_file(a.string() + ".sha256", "not a checksum\n"); }},
      {"empty checksum", [](const fs::path& a) { write_file(a.string() + ".sha256", ""); }},
      {"artifact replaced by a directory",
       [](const fs::path& a) {
         fs::remove(a);
         fs::create_directory(a);
       }},
  };
  DiskCache cache(root_);
  int i = 0;
  for (const auto& corruption : corruptions) {
    SCOPED_TRACE(corruption.name);
    const std::string key = key_for("corrupt " + std::to_string(i++));
    const std::string content = "some compiled bytes for " + key;
    fs::path artifact = store(cache, key, content);
    ASSERT_EQ(cache.lookup(key, "artifact.so"), artifact);

    corruption.apply(artifact);
    EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value());
    EXPECT_FALSE(fs::exists(artifact.parent_path())) << "corrupt entry not removed";
    EXPECT_EQ(count_entries(root_ / "trash"), 0u);

    // Rebuilding works and is found again.
    EXPECT_EQ(store(cache, key, content), artifact);
    ASSERT_EQ(cache.lookup(key, "artifact.so"), artifact);
    EXPECT_EQ(read_file(artifact), content);
  }
}

TEST_F(DiskCacheTest, StoreReplacesCorruptEntryPublishedByOthers) {
  DiskCache cache(root_);
  const std::string key = key_for("replaced");
  fs::path artifact = store(cache, key, "good");
  write_file(artifact, "evil");  // corrupt in place; store must not keep it
  EXPECT_EQ(store(cache, key, "good"), artifact);
  EXPECT_EQ(read_file(artifact), "good");
  EXPECT_EQ(count_entries(root_ / "tmp"), 0u);
}

TEST_F(DiskCacheTest, ProducerErrorsLeaveNoGarbage) {
  DiskCache cache(root_);
  const std::string key = key_for("failing");
  EXPECT_THROW(cache.store(key, "artifact.so",
                           [](const fs::path& dir) {
                             write_file(dir / "artifact.so", "half");
                             throw std::runtime_error("compiler exploded");
                           }),
               std::runtime_error);
  EXPECT_EQ(count_entries(root_ / "tmp"), 0u);
  EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value());

  // A producer that "succeeds" without creating the file is an error too.
  std::string message = error_message([&] { cache.store(key, "artifact.so", [](const fs::path&) {}); });
  EXPECT_NE(message.find("artifact.so"), std::string::npos) << message;
  EXPECT_NE(message.find("not created"), std::string::npos) << message;
  EXPECT_EQ(count_entries(root_ / "tmp"), 0u);
  EXPECT_FALSE(fs::exists(root_ / key.substr(0, 2) / key));
}

TEST_F(DiskCacheTest, StoreSweepsStaleLeftovers) {
  DiskCache cache(root_);
  const auto two_days_ago = fs::file_time_type::clock::now() - std::chrono::hours(48);
  for (const char* sub : {"tmp/crashed", "trash/abandoned"}) {
    fs::create_directories(root_ / sub);
    write_file(root_ / sub / "artifact.so", "x");
    fs::last_write_time(root_ / sub, two_days_ago);
  }
  fs::create_directories(root_ / "tmp" / "in-progress");  // fresh: another process may be using it
  store(cache, key_for("sweep"), "content");
  EXPECT_FALSE(fs::exists(root_ / "tmp" / "crashed"));
  EXPECT_FALSE(fs::exists(root_ / "trash" / "abandoned"));
  EXPECT_TRUE(fs::exists(root_ / "tmp" / "in-progress"));
}

TEST_F(DiskCacheTest, RejectsBadKeysAndFilenames) {
  DiskCache cache(root_);
  auto produce = [](const fs::path& dir) { write_file(dir / "a", "x"); };
  for (const std::string& bad_key :
       std::vector<std::string>{"", "abc", "0123456789abcde", "0123456789ABCDEF", "0123456789abcdeg",
                                "../../0123456789abcdef", std::string(129, 'a')}) {
    std::string message = error_message([&] { cache.lookup(bad_key, "a"); });
    EXPECT_NE(message.find("invalid key"), std::string::npos) << bad_key << ": " << message;
    EXPECT_THROW(cache.store(bad_key, "a", produce), enigma::RuntimeError);
  }
  EXPECT_NO_THROW(cache.lookup(std::string(16, 'f'), "a"));
  EXPECT_NO_THROW(cache.lookup(std::string(128, '0'), "a"));
  for (const std::string& bad_name : std::vector<std::string>{"", "a/b", "/a", ".", ".."}) {
    std::string message = error_message([&] { cache.lookup(key_for("k"), bad_name); });
    EXPECT_NE(message.find("invalid artifact file name"), std::string::npos) << bad_name << ": " << message;
    EXPECT_THROW(cache.store(key_for("k"), bad_name, produce), enigma::RuntimeError);
  }
  EXPECT_FALSE(fs::exists(root_));
}

TEST_F(DiskCacheTest, IoErrorsNameThePath) {
  write_file(dir_ / "not-a-directory", "x");
  DiskCache cache(dir_ / "not-a-directory" / "cache");
  std::string message = error_message([&] { store(cache, key_for("io"), "x"); });
  EXPECT_NE(message.find((dir_ / "not-a-directory").string()), std::string::npos) << message;
  EXPECT_NE(message.find("disk cache: cannot"), std::string::npos) << message;
  // A lookup through a file is simply a miss.
  EXPECT_FALSE(cache.lookup(key_for("io"), "artifact.so").has_value());
}

TEST_F(DiskCacheTest, ConcurrentStoresFromThreads) {
  DiskCache cache(root_);
  const std::string key = key_for("shared by threads");
  const std::string content(100000, 'k');
  std::atomic<int> ready{0};
  std::vector<fs::path> results(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < 8) std::this_thread::yield();
      results[t] = cache.store(key, "artifact.so", [&](const fs::path& dir) {
        write_file(dir / "artifact.so", content);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // widen the race window
      });
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& path : results) {
    EXPECT_EQ(path, results[0]);
    EXPECT_EQ(read_file(path), content);
  }
  EXPECT_EQ(cache.lookup(key, "artifact.so"), results[0]);
  EXPECT_EQ(count_entries(root_ / "tmp"), 0u);
  EXPECT_EQ(count_entries(root_ / key.substr(0, 2)), 1u);
}

TEST_F(DiskCacheTest, ConcurrentStoresFromProcesses) {
  constexpr int kKeys = 6;
  auto content_for = [](int k) { return "artifact " + std::to_string(k) + std::string(50000, 'p'); };
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: no gtest assertions here; report through the exit status.
      int status = 0;
      try {
        DiskCache cache(root_);
        for (int k = 0; k < kKeys; ++k) {
          const std::string key = key_for("process key " + std::to_string(k));
          const std::string expected = content_for(k);
          fs::path path = cache.store(key, "artifact.so", [&](const fs::path& dir) {
            write_file(dir / "artifact.so", expected);
            std::this_thread::sleep_for(std::chrono::milliseconds(3));
          });
          if (read_file(path) != expected) status = 2;
          std::optional<fs::path> hit = cache.lookup(key, "artifact.so");
          if (!hit || *hit != path) status = 3;
        }
      } catch (...) { status = 4; }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  DiskCache cache(root_);
  for (int k = 0; k < kKeys; ++k) {
    std::optional<fs::path> hit = cache.lookup(key_for("process key " + std::to_string(k)), "artifact.so");
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(read_file(*hit), content_for(k));
  }
  EXPECT_EQ(count_entries(root_ / "tmp"), 0u);
}

TEST(DiskCacheDefaultRoot, HonoursEnvironment) {
  ScopedEnv home("HOME", "/home/someone");
  {
    ScopedEnv enigma_dir("ENIGMA_CACHE_DIR", "/custom/enigma-cache");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(DiskCache::default_root(), fs::path("/custom/enigma-cache"));
  }
  {
    ScopedEnv enigma_dir("ENIGMA_CACHE_DIR", "");  // empty counts as unset
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(DiskCache::default_root(), fs::path("/xdg/enigma"));
  }
  {
    ScopedEnv enigma_dir("ENIGMA_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
    EXPECT_EQ(DiskCache::default_root(), fs::path("/home/someone/.cache/enigma"));
  }
  {
    ScopedEnv enigma_dir("ENIGMA_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/ignored");
    EXPECT_EQ(DiskCache::default_root(), fs::path("/home/someone/.cache/enigma"));
  }
  {
    // No HOME: never a predictable shared folder, but this process's private one.
    ScopedEnv enigma_dir("ENIGMA_CACHE_DIR", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
    ScopedEnv no_home("HOME", nullptr);
    fs::path root = DiskCache::default_root();
    EXPECT_EQ(root, DiskCache::private_root());
    EXPECT_EQ(root.filename().string().rfind("enigma-private-", 0), 0u) << root;
    struct stat st;
    ASSERT_EQ(::lstat(root.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_uid, ::geteuid());
    EXPECT_EQ(st.st_mode & 0777, 0700u);
  }
}

// ---- trust: the cache accepts only what this user made -----------------------

namespace {

mode_t mode_of(const fs::path& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

// The checksum record the cache writes for `content` stored under `key`.
std::string record_for(const std::string& key, const std::string& content) {
  return "enigma-artifact-v2 key=" + key + " file=artifact.so sha256=" + enigma::sha256_hex(content) +
         " size=" + std::to_string(content.size()) + "\n";
}

// Captures host warnings while alive.
class WarningCapture {
 public:
  WarningCapture() {
    messages().clear();
    enigma::set_warning_hook([](const std::string& m) { messages().push_back(m); });
  }
  ~WarningCapture() { enigma::set_warning_hook(nullptr); }
  static std::vector<std::string>& messages() {
    static std::vector<std::string> list;
    return list;
  }
};

constexpr uid_t kOtherUid = 4242;

}  // namespace

TEST_F(DiskCacheTest, FoldersAndFilesArePrivate) {
  const mode_t saved = ::umask(0);  // the most permissive umask must not leak into the cache
  DiskCache cache(root_);
  fs::path artifact = store(cache, key_for("private"), "bytes");
  ::umask(saved);
  EXPECT_EQ(mode_of(root_), 0700u);
  EXPECT_EQ(mode_of(root_ / "tmp"), 0700u);
  EXPECT_EQ(mode_of(artifact.parent_path().parent_path()), 0700u);
  EXPECT_EQ(mode_of(artifact.parent_path()), 0700u);
  EXPECT_EQ(mode_of(artifact), 0600u);
  EXPECT_EQ(mode_of(artifact.string() + ".sha256"), 0600u);
}

TEST_F(DiskCacheTest, RefusesAGroupOrWorldWritableRoot) {
  DiskCache cache(root_);
  const std::string key = key_for("writable root");
  store(cache, key, "bytes");
  for (mode_t mode : {0770, 0707, 0777}) {
    ASSERT_EQ(::chmod(root_.c_str(), mode), 0);
    EXPECT_THROW(cache.lookup(key, "artifact.so"), enigma::UntrustedCacheError) << std::oct << mode;
    EXPECT_THROW(store(cache, key_for("other"), "x"), enigma::UntrustedCacheError) << std::oct << mode;
  }
  ASSERT_EQ(::chmod(root_.c_str(), 0700), 0);
  EXPECT_TRUE(cache.lookup(key, "artifact.so").has_value());
}

TEST_F(DiskCacheTest, RefusesAForeignRootAndDiscardsForeignEntries) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give files to another user";
  DiskCache cache(root_);
  const std::string key = key_for("foreign");
  fs::path artifact = store(cache, key, "bytes");
  // An entry (or its files) owned by someone else is not ours: removed, rebuilt.
  for (const fs::path& p : {artifact, fs::path(artifact.string() + ".sha256"), artifact.parent_path()}) {
    ASSERT_EQ(::chown(p.c_str(), kOtherUid, kOtherUid), 0);
    EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value()) << p;
    EXPECT_FALSE(fs::exists(artifact.parent_path()));
    artifact = store(cache, key, "bytes");
  }
  // A foreign shard folder too.
  ASSERT_EQ(::chown(artifact.parent_path().parent_path().c_str(), kOtherUid, kOtherUid), 0);
  EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value());
  EXPECT_EQ(store(cache, key, "bytes"), artifact);
  // A foreign root is refused as a whole.
  ASSERT_EQ(::chown(root_.c_str(), kOtherUid, kOtherUid), 0);
  EXPECT_THROW(cache.lookup(key, "artifact.so"), enigma::UntrustedCacheError);
  EXPECT_THROW(store(cache, key, "bytes"), enigma::UntrustedCacheError);
}

TEST_F(DiskCacheTest, NeverFollowsSymbolicLinks) {
  DiskCache cache(root_);
  const std::string key = key_for("linked");
  const std::string content = "planted";
  // A complete, valid-looking entry outside the cache...
  fs::path elsewhere = dir_ / "elsewhere";
  fs::create_directories(elsewhere);
  write_file(elsewhere / "artifact.so", content);
  write_file(elsewhere / "artifact.so.sha256", record_for(key, content));
  // ...linked in as the entry,
  fs::create_directories(root_ / key.substr(0, 2));
  fs::create_directory_symlink(elsewhere, root_ / key.substr(0, 2) / key);
  EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value());
  EXPECT_FALSE(fs::is_symlink(root_ / key.substr(0, 2) / key)) << "the link must be taken out of the cache";
  EXPECT_TRUE(fs::exists(elsewhere / "artifact.so")) << "its target must be left alone";
  // ...as the artifact,
  fs::path artifact = store(cache, key, "ours");
  fs::remove(artifact);
  fs::create_symlink(elsewhere / "artifact.so", artifact);
  fs::remove(artifact.string() + ".sha256");
  write_file(artifact.string() + ".sha256", record_for(key, content));
  EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value());
  // ...and as the shard folder.
  fs::path shard_target = dir_ / "shard";
  fs::create_directories(shard_target / key);
  write_file(shard_target / key / "artifact.so", content);
  write_file(shard_target / key / "artifact.so.sha256", record_for(key, content));
  fs::remove_all(root_ / key.substr(0, 2));
  fs::create_directory_symlink(shard_target, root_ / key.substr(0, 2));
  EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value());
  EXPECT_TRUE(fs::exists(shard_target / key / "artifact.so"));
  EXPECT_EQ(read_file(store(cache, key, "ours")), "ours");
  EXPECT_FALSE(fs::is_symlink(root_ / key.substr(0, 2)));
}

TEST_F(DiskCacheTest, AFifoInAnEntryDoesNotHang) {
  DiskCache cache(root_);
  const std::string key = key_for("fifo");
  for (const char* which : {"artifact.so", "artifact.so.sha256"}) {
    fs::path artifact = store(cache, key, "bytes");
    fs::path target = artifact.parent_path() / which;
    fs::remove(target);
    ASSERT_EQ(::mkfifo(target.c_str(), 0600), 0);
    EXPECT_FALSE(cache.lookup(key, "artifact.so").has_value()) << which;  // opening it would block forever
  }
}

TEST_F(DiskCacheTest, TheRecordIsBoundToItsKey) {
  DiskCache cache(root_);
  const std::string a = key_for("key a"), b = key_for("key b");
  fs::path artifact = store(cache, a, "content of a");
  // The whole valid entry of a copied to b's place (a planted pair) is corrupt there.
  fs::path b_entry = root_ / b.substr(0, 2) / b;
  fs::create_directories(b_entry.parent_path());
  ::chmod(b_entry.parent_path().c_str(), 0700);
  fs::copy(artifact.parent_path(), b_entry);
  EXPECT_FALSE(cache.lookup(b, "artifact.so").has_value());
  EXPECT_TRUE(cache.lookup(a, "artifact.so").has_value());
  EXPECT_EQ(read_file(artifact.string() + ".sha256"), record_for(a, "content of a"));
}

TEST_F(DiskCacheTest, RelativeRootsBecomeAbsolute) {
  const fs::path saved = fs::current_path();
  fs::current_path(dir_);
  DiskCache cache("-cache");
  fs::current_path(saved);
  EXPECT_EQ(cache.root(), dir_ / "-cache");
}

TEST_F(DiskCacheTest, FetchFallsBackToAPrivateFolderWithAWarning) {
  WarningCapture warnings;
  const std::string key = key_for("fallback");
  int produced = 0;
  auto produce = [&](const fs::path& dir) {
    ++produced;
    write_file(dir / "artifact.so", "built");
  };
  // An unusable path (under a file), then a world-writable root.
  write_file(dir_ / "file", "x");
  fs::create_directories(root_);
  ::chmod(root_.c_str(), 0777);
  for (const fs::path& root : {dir_ / "file" / "cache", root_}) {
    ScopedEnv env("ENIGMA_CACHE_DIR", root.c_str());
    fs::path got = DiskCache::fetch(key, "artifact.so", produce);
    EXPECT_EQ(read_file(got), "built");
    EXPECT_EQ(got.string().rfind(DiskCache::private_root().string(), 0), 0u) << got;
  }
  EXPECT_EQ(produced, 1) << "the private cache is shared by the process";
  ASSERT_EQ(WarningCapture::messages().size(), 2u);
  EXPECT_NE(WarningCapture::messages()[1].find(root_.string()), std::string::npos);
  EXPECT_NE(WarningCapture::messages()[1].find("writable by group or others"), std::string::npos);
  EXPECT_EQ(count_entries(root_), 0u) << "nothing may be written into an untrusted cache";
  // Errors of the build itself propagate.
  ScopedEnv env("ENIGMA_CACHE_DIR", (dir_ / "good").c_str());
  EXPECT_THROW(DiskCache::fetch(key_for("failing build"), "artifact.so",
                                [](const fs::path&) { throw enigma::RuntimeError("compiler failed"); }),
               enigma::RuntimeError);
  EXPECT_EQ(read_file(DiskCache::fetch(key, "artifact.so", produce)), "built");
  EXPECT_EQ(produced, 2);
}

TEST_F(DiskCacheTest, ACorruptEntryInAReadOnlyCacheIsRebuiltElsewhere) {
  const std::string key = key_for("read-only");
  {
    DiskCache cache(root_);
    fs::path artifact = store(cache, key, "good");
    write_file(artifact, "evil");  // corrupt, and below we make the cache read-only
  }
  const bool root_user = ::geteuid() == 0;
  // Permissions do not bind root: the child becomes another user to feel them.
  if (root_user) {
    for (auto& p : fs::recursive_directory_iterator(dir_)) ASSERT_EQ(::lchown(p.path().c_str(), 65534, 65534), 0);
    ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);
  }
  for (auto& p : fs::recursive_directory_iterator(root_))
    if (p.is_directory()) ::chmod(p.path().c_str(), 0500);
  ::chmod(root_.c_str(), 0500);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int status = 0;
    try {
      if (root_user && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(5);
      ::setenv("ENIGMA_CACHE_DIR", root_.c_str(), 1);
      enigma::set_warning_hook([](const std::string&) {});
      fs::path got =
          DiskCache::fetch(key, "artifact.so", [](const fs::path& dir) { write_file(dir / "artifact.so", "good"); });
      if (read_file(got) != "good") status = 2;
      if (got.string().rfind(root_.string(), 0) == 0) status = 3;
      std::error_code ec;
      fs::remove_all(DiskCache::private_root(), ec);  // _exit skips the removal at exit
    } catch (...) { status = 4; }
    ::_exit(status);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (auto& p : fs::recursive_directory_iterator(root_))
    if (p.is_directory()) ::chmod(p.path().c_str(), 0700);
  ::chmod(root_.c_str(), 0700);
}
