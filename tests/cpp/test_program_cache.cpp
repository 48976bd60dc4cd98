// The compiled-program cache the devices share: programs in memory by key
// (live while used, built once), artifacts on disk, and the key format.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "enigma/runtime/program_cache.h"
#include "enigma/support/sha256.h"
#include "test_support.h"

namespace {

using namespace enigma;
using namespace enigma::test;

struct CountedProgram : Program {};

class ProgramCacheTest : public TempDirTest {
 protected:
  ProgramCacheTest() : TempDirTest("enigma-program-cache") {}
};

TEST(ProgramCache, KeyHashesKindToolchainOptionsTargetAndSource) {
  // The devices' keys name their cache entries: the format must not drift.
  Sha256 h;
  h.update("enigma-cpu-kernel\n3\ng++ 12\n-O3 -fPIC \nx86_64-avx2|model\nsource text");
  EXPECT_EQ(program_key("enigma-cpu-kernel", {"3", "g++ 12"}, {"-O3", "-fPIC"}, {"x86_64-avx2|model"}, "source text"),
            h.hex_digest());
  Sha256 none;
  none.update("kind\n\nsrc");
  EXPECT_EQ(program_key("kind", {}, {}, {}, "src"), none.hex_digest());
  EXPECT_NE(program_key("kind", {}, {}, {}, "src"), program_key("kind", {}, {"-g"}, {}, "src"));
}

TEST(ProgramCache, BuildsOncePerKeyWhileTheProgramLives) {
  ProgramCache cache;
  int builds = 0;
  auto build = [&] {
    ++builds;
    return std::make_shared<CountedProgram>();
  };
  std::shared_ptr<Program> a = cache.get("k1", build);
  EXPECT_EQ(cache.get("k1", build), a);
  EXPECT_EQ(builds, 1);
  std::shared_ptr<Program> b = cache.get("k2", build);
  EXPECT_NE(a, b);
  EXPECT_EQ(builds, 2);
  // Held weakly: once released, the next request builds again.
  a.reset();
  std::shared_ptr<Program> again = cache.get("k1", build);
  EXPECT_EQ(builds, 3);
}

TEST(ProgramCache, FailedBuildsAreNotRemembered) {
  ProgramCache cache;
  EXPECT_THROW(cache.get("k", []() -> std::shared_ptr<Program> { throw RuntimeError("no compiler"); }), RuntimeError);
  int builds = 0;
  cache.get("k", [&] {
    ++builds;
    return std::make_shared<CountedProgram>();
  });
  EXPECT_EQ(builds, 1);
}

TEST_F(ProgramCacheTest, ArtifactBytesAreMadeOnceThenReadFromDisk) {
  ScopedEnv env("ENIGMA_CACHE_DIR", (dir_ / "cache").c_str());
  const std::string key = program_key("enigma-test-kernel", {}, {}, {}, "bytes");
  int made = 0;
  auto make = [&] {
    ++made;
    return std::string(
        "\x7f"
        "ELF image\0with a zero",
        21);
  };
  const std::string first = ProgramCache::artifact_bytes(key, "kernel.bin", make, "test");
  const std::string second = ProgramCache::artifact_bytes(key, "kernel.bin", make, "test");
  EXPECT_EQ(made, 1);
  EXPECT_EQ(first, second);
  EXPECT_EQ(first.size(), 21u);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "cache" / key.substr(0, 2) / key / "kernel.bin"));
}

TEST_F(ProgramCacheTest, ArtifactPathsComeFromTheDiskCache) {
  ScopedEnv env("ENIGMA_CACHE_DIR", (dir_ / "cache").c_str());
  const std::string key = program_key("enigma-test-kernel", {}, {}, {}, "path");
  int made = 0;
  auto produce = [&](const std::filesystem::path& d) {
    ++made;
    std::ofstream(d / "lib.so") << "library";
  };
  std::filesystem::path p = ProgramCache::artifact(key, "lib.so", produce);
  EXPECT_EQ(ProgramCache::artifact(key, "lib.so", produce), p);
  EXPECT_EQ(made, 1);
  EXPECT_EQ(p, dir_ / "cache" / key.substr(0, 2) / key / "lib.so");
}

}  // namespace
