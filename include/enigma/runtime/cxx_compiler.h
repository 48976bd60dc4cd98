// Finding and running the system C++ compiler, which the CPU backend uses at
// run time to turn generated C++ into shared libraries.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace enigma {

struct CxxCompiler {
  // Program and leading arguments, e.g. {"/usr/bin/g++"} or
  // {"/usr/bin/ccache", "g++"} from CXX="ccache g++". The program is an
  // absolute path, so later runs do not depend on PATH.
  std::vector<std::string> command;
  // First line of `<command> --version`.
  std::string version;

  // Command plus version: changes whenever the compiler does, so it belongs in
  // cache keys of compiled artifacts.
  std::string identity() const;
};

// Finds a working compiler: $CXX (split on whitespace; the first word is looked
// up on PATH unless it contains '/'), then c++, g++ and clang++ on PATH. A
// candidate works when `<command> --version` exits with 0. An unusable CXX
// falls through to the defaults; why it was skipped appears in the error if
// nothing works. The result is cached for the process (thread-safe); failures
// are not cached. Throws RuntimeError listing every candidate when none works.
const CxxCompiler& find_cxx_compiler();

// Forgets the cached compiler so the next find_cxx_compiler() searches again.
// References returned earlier stay valid.
void reset_cxx_compiler_cache_for_testing();

// Compiles `source` into the shared library `output`. The source is written
// next to it as `output` with extension .cpp (kept for debugging), then the
// compiler runs without a shell as: command... <source> flags... -o <output>.
// Throws RuntimeError with the command line and the compiler's output when it
// cannot be started, fails, is killed by a signal or creates no output, and
// Interrupted (the compiler killed) when the host asks to stop (Ctrl-C).
// Relative paths are made absolute, so none reads as a compiler option.
void compile_shared_library(const CxxCompiler& cc, const std::string& source, const std::vector<std::string>& flags,
                            const std::filesystem::path& output);

struct ProcessResult {
  // Exit status; -1 when the program could not be started (output then says
  // why); 128 + signal number when it was killed by a signal.
  int exit_code;
  // Everything the program wrote to stdout and stderr, interleaved.
  std::string output;
  // The signal that killed the program, 0 otherwise.
  int term_signal = 0;
};

// Runs argv[0] (looked up on PATH unless it contains '/') with the given
// arguments, without a shell, stdin from /dev/null. Safe to call from several
// threads at once. Throws RuntimeError if argv is empty, and Interrupted after
// killing the program when host_interrupt_requested() (polled every 50 ms).
ProcessResult run_process(const std::vector<std::string>& argv);

}  // namespace enigma
