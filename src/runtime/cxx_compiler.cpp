#include "enigma/runtime/cxx_compiler.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string_view>
#include <system_error>

#include "enigma/support/error.h"
#include "enigma/support/file_io.h"
#include "enigma/support/host.h"

#if defined(__APPLE__)
#include <crt_externs.h>
#else
extern char** environ;
#endif

namespace enigma {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxCapturedOutput = 16u << 20;  // keeps a runaway child from exhausting memory
constexpr size_t kMaxOutputInError = 4000;
// How often a running child's parent asks the host whether to stop (Ctrl-C).
constexpr int kInterruptPollMs = 50;

char** current_environ() {
#if defined(__APPLE__)
  return *_NSGetEnviron();  // shared libraries on macOS cannot reference `environ` directly
#else
  return environ;
#endif
}

std::string errno_text(int err) { return std::generic_category().message(err); }

// Quotes an argument the way a POSIX shell would need it, so printed command
// lines can be pasted into a terminal.
std::string shell_quote(const std::string& arg) {
  if (arg.empty()) return "''";
  bool plain = true;
  for (char c : arg) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
    if (!safe) {
      plain = false;
      break;
    }
  }
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& arg : argv) {
    if (!out.empty()) out += ' ';
    out += shell_quote(arg);
  }
  return out;
}

std::string clipped(const std::string& text, size_t limit) {
  if (text.size() <= limit) return text;
  return text.substr(0, limit) + "\n[... " + std::to_string(text.size() - limit) + " more characters]";
}

// Moves fd to a number above 2 so the child's stdin/stdout/stderr setup cannot
// clobber it. Returns 0 or an errno value.
int move_above_stdio(int& fd) {
  if (fd > 2) return 0;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return errno;
  ::close(fd);
  fd = moved;
  return 0;
}

// A pipe whose ends are close-on-exec, so children that other threads spawn at
// the same time do not inherit our write end (which would delay our EOF until
// those children exit). Returns 0 or an errno value.
int make_pipe(int fds[2]) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno;
#else
  // No pipe2 here: set the flag right after creation. The remaining window is
  // closed for our own spawns by POSIX_SPAWN_CLOEXEC_DEFAULT where available.
  if (::pipe(fds) != 0) return errno;
  ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
  int err = move_above_stdio(fds[0]);
  if (err == 0) err = move_above_stdio(fds[1]);
  if (err != 0) {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  return err;
}

// Owns the spawn attribute objects so every exit path destroys them.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  bool actions_ok = false;
  bool attr_ok = false;

  // Returns 0 or an errno value.
  int init(int write_fd) {
    int err = posix_spawn_file_actions_init(&actions);
    if (err != 0) return err;
    actions_ok = true;
    if ((err = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) != 0) return err;
    if ((err = posix_spawn_file_actions_adddup2(&actions, write_fd, 1)) != 0) return err;
    if ((err = posix_spawn_file_actions_adddup2(&actions, write_fd, 2)) != 0) return err;

    if ((err = posix_spawnattr_init(&attr)) != 0) return err;
    attr_ok = true;
    // The calling thread may block signals or ignore SIGPIPE (Python does);
    // the compiler should start with ordinary signal handling.
    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    if ((err = posix_spawnattr_setsigmask(&attr, &empty)) != 0) return err;
    if ((err = posix_spawnattr_setsigdefault(&attr, &defaults)) != 0) return err;
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
#if defined(POSIX_SPAWN_CLOEXEC_DEFAULT)
    flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
#endif
    return posix_spawnattr_setflags(&attr, flags);
  }

  ~SpawnSetup() {
    if (actions_ok) posix_spawn_file_actions_destroy(&actions);
    if (attr_ok) posix_spawnattr_destroy(&attr);
  }
};

bool is_executable_file(const fs::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Absolute path of `name` found on PATH, or "" when absent. An unset PATH
// means the usual system directories; empty entries are skipped rather than
// meaning the current directory.
std::string search_path(const std::string& name) {
  const char* env = std::getenv("PATH");
  std::string path_list = env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path_list.size()) {
    size_t end = path_list.find(':', start);
    if (end == std::string::npos) end = path_list.size();
    std::string dir = path_list.substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    if (is_executable_file(candidate)) {
      std::error_code ec;
      fs::path absolute = fs::absolute(candidate, ec);
      return ec ? candidate.string() : absolute.string();
    }
  }
  return "";
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t begin = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > begin) words.push_back(text.substr(begin, i - begin));
  }
  return words;
}

std::string first_line(const std::string& text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(begin, end - begin);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) return line;
    begin = end + 1;
  }
  return "";
}

// Tries one candidate; fills *out and returns "" when it works, otherwise
// returns why not.
std::string probe_compiler(std::vector<std::string> words, bool name_program, CxxCompiler* out) {
  const std::string program = words[0];
  const std::string who = name_program ? "'" + program + "' " : "";
  std::string resolved;
  if (program.find('/') != std::string::npos) {
    if (!is_executable_file(program)) return who + "is not an executable file";
    std::error_code ec;
    fs::path absolute = fs::absolute(program, ec);
    resolved = ec ? program : absolute.string();
  } else {
    resolved = search_path(program);
    if (resolved.empty()) return name_program ? who + "is not on PATH" : "not on PATH";
  }
  words[0] = resolved;
  std::vector<std::string> argv = words;
  argv.push_back("--version");
  ProcessResult result = run_process(argv);
  if (result.exit_code == -1) return result.output;
  std::string line = first_line(result.output);
  // Appending (rather than "'" + ...) sidesteps a GCC 12 -Wrestrict false positive.
  std::string why = "'";
  why += command_line(argv);
  if (result.exit_code != 0) {
    why += "' exited with " + std::to_string(result.exit_code);
    if (!line.empty()) why += ": " + line;
    return why;
  }
  if (line.empty()) return why + "' printed nothing";
  out->command = std::move(words);
  out->version = std::move(line);
  return "";
}

struct CompilerCache {
  std::mutex mutex;
  const CxxCompiler* current = nullptr;
  // Every compiler ever found stays alive, so references handed out before a
  // reset never dangle.
  std::vector<std::unique_ptr<CxxCompiler>> found;
};

CompilerCache& compiler_cache() {
  static CompilerCache cache;
  return cache;
}

void write_file(const fs::path& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);  // private, as the cache
  if (fd < 0) {
    int err = errno;
    throw RuntimeError("cannot write C++ source file '" + path.string() + "': " + errno_text(err));
  }
  if (int err = write_all(fd, data); err != 0) {
    ::close(fd);
    throw RuntimeError("cannot write C++ source file '" + path.string() + "': " + errno_text(err));
  }
  if (::close(fd) != 0) {
    int err = errno;
    throw RuntimeError("cannot write C++ source file '" + path.string() + "': " + errno_text(err));
  }
}

}  // namespace

std::string CxxCompiler::identity() const { return command_line(command) + "\n" + version; }

const CxxCompiler& find_cxx_compiler() {
  CompilerCache& cache = compiler_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  if (cache.current) return *cache.current;

  std::vector<std::string> tried;
  auto accept = [&](CxxCompiler& cc) -> const CxxCompiler& {
    cache.found.push_back(std::make_unique<CxxCompiler>(std::move(cc)));
    cache.current = cache.found.back().get();
    return *cache.current;
  };

  CxxCompiler cc;
  const char* cxx_env = std::getenv("CXX");
  if (cxx_env == nullptr) {
    tried.push_back("CXX (unset)");
  } else {
    std::vector<std::string> words = split_words(cxx_env);
    if (words.empty()) {
      tried.push_back("CXX (empty)");
    } else {
      std::string why = probe_compiler(words, words.size() > 1, &cc);
      if (why.empty()) return accept(cc);
      tried.push_back("CXX ('" + std::string(cxx_env) + "': " + why + ")");
    }
  }
  for (const char* name : {"c++", "g++", "clang++"}) {
    std::string why = probe_compiler({name}, false, &cc);
    if (why.empty()) return accept(cc);
    tried.push_back(std::string(name) + " (" + why + ")");
  }

  std::string list;
  for (const auto& item : tried) list += (list.empty() ? "" : ", ") + item;
  throw RuntimeError("the CPU backend needs a C++ compiler at run time and none was found; tried: " + list +
                     ". Install one (Debian/Ubuntu: apt-get install g++) or set CXX.");
}

void reset_cxx_compiler_cache_for_testing() {
  CompilerCache& cache = compiler_cache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.current = nullptr;
}

ProcessResult run_process(const std::vector<std::string>& argv) {
  if (argv.empty()) throw RuntimeError("run_process: the argument list is empty");

  int fds[2];
  if (int err = make_pipe(fds); err != 0) {
    return {-1, "cannot create a pipe to run '" + argv[0] + "': " + errno_text(err)};
  }

  SpawnSetup setup;
  if (int err = setup.init(fds[1]); err != 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return {-1, "cannot prepare to run '" + argv[0] + "': " + errno_text(err)};
  }

  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& arg : argv) cargv.push_back(const_cast<char*>(arg.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = -1;
  int spawn_err = posix_spawnp(&pid, argv[0].c_str(), &setup.actions, &setup.attr, cargv.data(), current_environ());
  ::close(fds[1]);  // only the child writes; EOF arrives when it exits
  if (spawn_err != 0) {
    ::close(fds[0]);
    return {-1, "cannot start '" + argv[0] + "': " + errno_text(spawn_err)};
  }

  // Drain the pipe while the child runs so it never blocks on a full pipe;
  // between reads, a host interrupt (Ctrl-C) kills the child.
  ProcessResult result{0, {}};
  bool truncated = false;
  char buffer[65536];
  for (;;) {
    struct pollfd pfd = {fds[0], POLLIN, 0};
    int ready = ::poll(&pfd, 1, kInterruptPollMs);
    if (ready == 0 || (ready < 0 && errno == EINTR)) {
      if (host_interrupt_requested()) {
        ::kill(pid, SIGKILL);
        ::close(fds[0]);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        throw Interrupted();
      }
      continue;
    }
    ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n > 0) {
      size_t room = kMaxCapturedOutput - std::min(kMaxCapturedOutput, result.output.size());
      size_t take = std::min(room, static_cast<size_t>(n));
      result.output.append(buffer, take);
      truncated = truncated || take < static_cast<size_t>(n);
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    break;  // unreadable pipe: the child gets SIGPIPE once we close it
  }
  ::close(fds[0]);
  if (truncated) result.output += "\n[output truncated]";

  int status = 0;
  pid_t waited;
  do { waited = ::waitpid(pid, &status, 0); } while (waited < 0 && errno == EINTR);
  if (waited < 0) {
    int err = errno;
    result.exit_code = -1;
    result.output += "\n[cannot wait for '" + argv[0] + "': " + errno_text(err) + "]";
    return result;
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
    result.exit_code = 128 + result.term_signal;
  } else {
    result.exit_code = -1;
  }
  return result;
}

void compile_shared_library(const CxxCompiler& cc, const std::string& source, const std::vector<std::string>& flags,
                            const fs::path& output) {
  if (cc.command.empty()) throw RuntimeError("cannot compile C++: the compiler command is empty");
  // Absolute paths: a relative one starting with '-' would read as an option.
  std::error_code ec;
  fs::path output_path = output.is_absolute() ? output : fs::absolute(output, ec);
  if (ec) output_path = fs::path(".") / output;
  fs::path source_path = output_path;
  source_path.replace_extension(".cpp");
  if (source_path == output_path) {
    throw RuntimeError("cannot compile C++ into '" + output.string() +
                       "': the output name must not end in .cpp (the source is written there)");
  }
  write_file(source_path, source);
  // A stale library must not pass for a fresh one if the compiler misbehaves.
  ::unlink(output_path.c_str());

  std::vector<std::string> argv = cc.command;
  argv.push_back(source_path.string());
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.push_back("-o");
  argv.push_back(output_path.string());

  ProcessResult result = run_process(argv);
  const std::string cmd = command_line(argv);
  // Ctrl-C in a terminal reaches the compiler too: that is an interrupt, not a failure.
  if (result.term_signal == SIGINT && host_interrupt_requested()) throw Interrupted();
  if (result.exit_code == -1) {
    throw RuntimeError("cannot run the C++ compiler (" + cmd + "): " + clipped(result.output, kMaxOutputInError));
  }
  if (result.term_signal != 0) {
    std::string hint = result.term_signal == SIGKILL ? " (often a sign that the system ran out of memory)" : "";
    throw RuntimeError("C++ compiler was killed by signal " + std::to_string(result.term_signal) + hint + " (" + cmd +
                       "):\n" + clipped(result.output, kMaxOutputInError));
  }
  if (result.exit_code != 0) {
    throw RuntimeError("C++ compiler failed (" + cmd + "), exit " + std::to_string(result.exit_code) + ":\n" +
                       clipped(result.output, kMaxOutputInError));
  }
  if (::access(output_path.c_str(), F_OK) != 0) {
    throw RuntimeError("C++ compiler (" + cmd + ") reported success but did not create '" + output_path.string() +
                       "'; its output:\n" + clipped(result.output, kMaxOutputInError));
  }
}

}  // namespace enigma
