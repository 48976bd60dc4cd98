// Fixtures shared by the C++ unit tests: scoped environment variables, a
// per-test temporary directory, error capture, and the short dtype/literal
// constructors the IR tests build kernels with.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "enigma/ir/builder.h"
#include "enigma/support/error.h"

namespace enigma::test {

namespace fs = std::filesystem;

// ---- IR construction ----------------------------------------------------------

inline DType S(Scalar s) { return DType::scalar(s); }
inline DType V(Scalar s, int n) { return DType::vector(s, n); }
inline Literal I(int64_t v) { return Literal::of_int(v); }
inline Literal F(double v) { return Literal::of_float(v); }

// The text of the KernelError `f` throws, or "<no error>" when it throws none.
template <class Fn>
std::string error_of(Fn&& f) {
  try {
    f();
  } catch (const KernelError& e) { return e.what(); }
  return "<no error>";
}

// ---- host environment -----------------------------------------------------------

// The text of the RuntimeError `fn` throws, or "<no RuntimeError>".
inline std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const RuntimeError& e) { return e.what(); }
  return "<no RuntimeError>";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Sets (or, with nullptr, unsets) an environment variable for one scope and
// restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (saved_)
      ::setenv(name_.c_str(), saved_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> saved_;
};

// A test fixture with a fresh temporary directory `dir_`, removed with its
// contents after the test. `prefix` names the directory, so a leftover one
// tells which test made it.
class TempDirTest : public ::testing::Test {
 protected:
  explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / (prefix_ + "-XXXXXX")).string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;

 private:
  std::string prefix_;
};

}  // namespace enigma::test
