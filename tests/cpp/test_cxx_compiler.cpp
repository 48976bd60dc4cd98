#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "enigma/runtime/cxx_compiler.h"
#include "enigma/support/error.h"
#include "enigma/support/host.h"
#include "test_support.h"

namespace fs = std::filesystem;
using enigma::CxxCompiler;

namespace {

using namespace enigma::test;

class CxxCompilerTest : public TempDirTest {
 protected:
  CxxCompilerTest() : TempDirTest("enigma-cxx-test") {}
  void TearDown() override {
    // Tests that change CXX or PATH must not leave a stale compiler behind.
    enigma::reset_cxx_compiler_cache_for_testing();
    TempDirTest::TearDown();
  }
};

}  // namespace

TEST_F(CxxCompilerTest, FindsACompiler) {
  const CxxCompiler& cc = enigma::find_cxx_compiler();
  ASSERT_FALSE(cc.command.empty());
  EXPECT_TRUE(fs::path(cc.command[0]).is_absolute()) << cc.command[0];
  EXPECT_FALSE(cc.version.empty());
  EXPECT_TRUE(contains(cc.identity(), cc.version));
  EXPECT_TRUE(contains(cc.identity(), cc.command[0]));
  // Cached: the same object comes back.
  EXPECT_EQ(&enigma::find_cxx_compiler(), &cc);
}

TEST_F(CxxCompilerTest, HonoursCxx) {
  ScopedEnv cxx("CXX", "g++ -w");
  enigma::reset_cxx_compiler_cache_for_testing();
  const CxxCompiler& cc = enigma::find_cxx_compiler();
  ASSERT_EQ(cc.command.size(), 2u);
  EXPECT_EQ(fs::path(cc.command[0]).filename(), "g++");
  EXPECT_TRUE(fs::path(cc.command[0]).is_absolute());
  EXPECT_EQ(cc.command[1], "-w");
}

TEST_F(CxxCompilerTest, UnusableCxxFallsThroughToDefaults) {
  ScopedEnv cxx("CXX", "enigma-no-such-compiler");
  enigma::reset_cxx_compiler_cache_for_testing();
  const CxxCompiler& cc = enigma::find_cxx_compiler();
  ASSERT_FALSE(cc.command.empty());
  EXPECT_FALSE(contains(cc.command[0], "enigma-no-such-compiler"));
}

TEST_F(CxxCompilerTest, NoCompilerErrorNamesEveryCandidate) {
  ScopedEnv path("PATH", "");
  {
    ScopedEnv cxx("CXX", nullptr);
    enigma::reset_cxx_compiler_cache_for_testing();
    std::string message = error_message([] { enigma::find_cxx_compiler(); });
    EXPECT_TRUE(contains(message, "needs a C++ compiler at run time and none was found")) << message;
    EXPECT_TRUE(contains(message, "CXX (unset)")) << message;
    EXPECT_TRUE(contains(message, "c++ (not on PATH)")) << message;
    EXPECT_TRUE(contains(message, "g++ (not on PATH)")) << message;
    EXPECT_TRUE(contains(message, "clang++ (not on PATH)")) << message;
    EXPECT_TRUE(contains(message, "apt-get install g++")) << message;
  }
  {
    ScopedEnv cxx("CXX", "enigma-no-such-compiler");
    enigma::reset_cxx_compiler_cache_for_testing();
    std::string message = error_message([] { enigma::find_cxx_compiler(); });
    EXPECT_TRUE(contains(message, "CXX ('enigma-no-such-compiler': not on PATH)")) << message;
  }
  {
    ScopedEnv cxx("CXX", "/nonexistent/bin/c++");
    enigma::reset_cxx_compiler_cache_for_testing();
    std::string message = error_message([] { enigma::find_cxx_compiler(); });
    EXPECT_TRUE(contains(message, "CXX ('/nonexistent/bin/c++': is not an executable file)")) << message;
  }
}

TEST_F(CxxCompilerTest, CompilesASharedLibrary) {
  const CxxCompiler& cc = enigma::find_cxx_compiler();
  const fs::path output = dir_ / "tiny.so";
  enigma::compile_shared_library(cc, "extern \"C\" int enigma_tiny() { return 42; }\n",
                                 {"-O1", "-std=c++20", "-shared", "-fPIC"}, output);
  EXPECT_TRUE(fs::exists(output));
  EXPECT_GT(fs::file_size(output), 0u);
  EXPECT_TRUE(fs::exists(dir_ / "tiny.cpp")) << "the source is kept next to the library";
}

TEST_F(CxxCompilerTest, InvalidSourceReportsCompilerOutput) {
  const CxxCompiler& cc = enigma::find_cxx_compiler();
  const fs::path output = dir_ / "broken.so";
  std::string message = error_message([&] {
    enigma::compile_shared_library(cc, "int enigma_broken( { return undeclared_thing; }\n",
                                   {"-std=c++20", "-shared", "-fPIC"}, output);
  });
  EXPECT_TRUE(contains(message, "C++ compiler failed (")) << message;
  EXPECT_TRUE(contains(message, "), exit 1:\n")) << message;
  EXPECT_TRUE(contains(message, "broken.cpp")) << message;
  EXPECT_TRUE(contains(message, "error")) << message;
  EXPECT_FALSE(fs::exists(output));
}

TEST_F(CxxCompilerTest, LongCompilerOutputIsClipped) {
  const CxxCompiler& cc = enigma::find_cxx_compiler();
  std::string source;
  for (int i = 0; i < 200; ++i) {
    source += "int f" + std::to_string(i) + "() { return missing_" + std::to_string(i) + "; }\n";
  }
  std::string message = error_message(
      [&] { enigma::compile_shared_library(cc, source, {"-shared", "-fPIC", "-fmax-errors=0"}, dir_ / "many.so"); });
  EXPECT_TRUE(contains(message, "more characters]")) << message.substr(0, 200);
  EXPECT_LT(message.size(), 5000u);
}

TEST_F(CxxCompilerTest, CompilerKilledBySignalOrMissingOutput) {
  CxxCompiler killed{{"/bin/sh", "-c", "kill -KILL $$"}, "fake"};
  std::string message =
      error_message([&] { enigma::compile_shared_library(killed, "int x;\n", {}, dir_ / "killed.so"); });
  EXPECT_TRUE(contains(message, "killed by signal 9")) << message;

  CxxCompiler lazy{{"/bin/sh", "-c", "exit 0"}, "fake"};
  message = error_message([&] { enigma::compile_shared_library(lazy, "int x;\n", {}, dir_ / "lazy.so"); });
  EXPECT_TRUE(contains(message, "did not create")) << message;

  CxxCompiler missing{{"/nonexistent/enigma-cc"}, "fake"};
  message = error_message([&] { enigma::compile_shared_library(missing, "int x;\n", {}, dir_ / "missing.so"); });
  EXPECT_TRUE(contains(message, "cannot run the C++ compiler")) << message;
  EXPECT_TRUE(contains(message, "/nonexistent/enigma-cc")) << message;
}

TEST_F(CxxCompilerTest, RunProcessCapturesOutputAndStatus) {
  enigma::ProcessResult r = enigma::run_process({"sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_TRUE(contains(r.output, "to-stdout\n")) << r.output;
  EXPECT_TRUE(contains(r.output, "to-stderr\n")) << r.output;

  // Arguments reach the program verbatim: no shell in between.
  r = enigma::run_process({"printf", "%s|", "a b", "$HOME", "'quoted'", ""});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "a b|$HOME|'quoted'||");

  // stdin is /dev/null, so a program reading it does not hang.
  r = enigma::run_process({"cat"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "");
}

TEST_F(CxxCompilerTest, RunProcessLargeOutputDoesNotDeadlock) {
  enigma::ProcessResult r = enigma::run_process({"head", "-c", "3000000", "/dev/zero"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output.size(), 3000000u);
}

TEST_F(CxxCompilerTest, RunProcessMissingProgramAndSignals) {
  enigma::ProcessResult r = enigma::run_process({"enigma-no-such-program"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_TRUE(contains(r.output, "enigma-no-such-program")) << r.output;

  r = enigma::run_process({"sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(r.term_signal, 15);
  EXPECT_EQ(r.exit_code, 128 + 15);

  EXPECT_THROW(enigma::run_process({}), enigma::RuntimeError);
}

TEST_F(CxxCompilerTest, RunProcessFromManyThreads) {
  std::vector<std::thread> threads;
  std::vector<int> failures(6, 0);
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 15; ++i) {
        std::string word = "t";  // appended piecewise: GCC 12 -Wrestrict false positive on "lit" + string
        word += std::to_string(t) + "i" + std::to_string(i);
        enigma::ProcessResult r = enigma::run_process({"echo", word});
        if (r.exit_code != 0 || r.output != word + "\n") ++failures[t];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

namespace {
// The child writes its pid here; the host asks to stop once it has.
std::string g_pid_file;
bool stop_once_the_child_runs() {
  std::error_code ec;
  return fs::file_size(g_pid_file, ec) > 0 && !ec;
}
}  // namespace

TEST(RunProcess, AnInterruptKillsTheChild) {
  g_pid_file = (fs::temp_directory_path() / ("enigma-run-process-" + std::to_string(::getpid()))).string();
  fs::remove(g_pid_file);
  enigma::set_interrupt_hook(&stop_once_the_child_runs);
  EXPECT_THROW(enigma::run_process({"sh", "-c", "echo $$ > " + g_pid_file + "; exec sleep 600"}), enigma::Interrupted);
  enigma::set_interrupt_hook(nullptr);
  std::ifstream in(g_pid_file);
  pid_t pid = 0;
  in >> pid;
  fs::remove(g_pid_file);
  ASSERT_GT(pid, 0);
  // Killed and reaped: the pid no longer names a process (not even a zombie of ours).
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_EQ(enigma::run_process({"true"}).exit_code, 0);
}
