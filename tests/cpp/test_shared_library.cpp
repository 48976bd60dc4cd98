#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>

#include "enigma/runtime/cxx_compiler.h"
#include "enigma/runtime/shared_library.h"
#include "enigma/support/error.h"
#include "test_support.h"

namespace fs = std::filesystem;
using enigma::SharedLibrary;

namespace {

class SharedLibraryTest : public enigma::test::TempDirTest {
 protected:
  SharedLibraryTest() : TempDirTest("enigma-shlib-test") {}
};

}  // namespace

TEST_F(SharedLibraryTest, LoadsAndCallsCompiledFunction) {
  const fs::path output = dir_ / "adder.so";
  enigma::compile_shared_library(enigma::find_cxx_compiler(),
                                 "extern \"C\" int enigma_add(int a, int b) { return a + b; }\n"
                                 "extern \"C\" int enigma_counter = 7;\n",
                                 {"-O1", "-std=c++20", "-shared", "-fPIC"}, output);
  SharedLibrary lib = SharedLibrary::open(output);
  ASSERT_TRUE(lib.valid());
  auto add = reinterpret_cast<int (*)(int, int)>(lib.symbol("enigma_add"));
  EXPECT_EQ(add(40, 2), 42);
  EXPECT_EQ(*static_cast<int*>(lib.symbol("enigma_counter")), 7);

  try {
    lib.symbol("enigma_missing");
    FAIL() << "expected an error";
  } catch (const enigma::RuntimeError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("'enigma_missing'"), std::string::npos) << message;
    EXPECT_NE(message.find("adder.so"), std::string::npos) << message;
  }

  // Move-only ownership: the moved-to handle works, the moved-from is empty.
  SharedLibrary moved = std::move(lib);
  EXPECT_FALSE(lib.valid());  // NOLINT(bugprone-use-after-move): checking the documented state
  EXPECT_TRUE(moved.valid());
  EXPECT_EQ(reinterpret_cast<int (*)(int, int)>(moved.symbol("enigma_add"))(1, 2), 3);
  EXPECT_THROW(lib.symbol("enigma_add"), enigma::RuntimeError);

  SharedLibrary other;
  EXPECT_FALSE(other.valid());
  other = std::move(moved);
  EXPECT_TRUE(other.valid());
}

TEST_F(SharedLibraryTest, RelativePathLoadsThatFile) {
  const fs::path output = dir_ / "rel.so";
  enigma::compile_shared_library(enigma::find_cxx_compiler(), "extern \"C\" int enigma_rel() { return 5; }\n",
                                 {"-shared", "-fPIC"}, output);
  const fs::path saved = fs::current_path();
  fs::current_path(dir_);
  SharedLibrary lib = SharedLibrary::open("rel.so");  // no '/': must not search the library path
  fs::current_path(saved);
  EXPECT_EQ(reinterpret_cast<int (*)()>(lib.symbol("enigma_rel"))(), 5);
}

TEST_F(SharedLibraryTest, BadPathErrorNamesThePath) {
  const fs::path missing = dir_ / "does-not-exist.so";
  try {
    SharedLibrary::open(missing);
    FAIL() << "expected an error";
  } catch (const enigma::RuntimeError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("cannot load shared library '" + missing.string() + "'"), std::string::npos) << message;
  }
  // Not a shared library at all.
  const fs::path junk = dir_ / "junk.so";
  FILE* f = std::fopen(junk.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("not an ELF file", f);
  std::fclose(f);
  EXPECT_THROW(SharedLibrary::open(junk), enigma::RuntimeError);
}
