// Owning handle to a shared library loaded at run time (dlopen), used for the
// CPU backend's compiled kernels.
#pragma once

#include <filesystem>

namespace enigma {

class SharedLibrary {
 public:
  // An empty handle; valid() is false.
  SharedLibrary() = default;

  // Loads `path` with all symbols resolved now and kept private to the
  // library. Throws RuntimeError("cannot load shared library '<path>': ...").
  static SharedLibrary open(const std::filesystem::path& path);

  // Address of the exported symbol `name`. Throws RuntimeError naming the
  // symbol and the library when it is missing or the handle is empty.
  void* symbol(const char* name) const;

  bool valid() const { return handle_ != nullptr; }
  const std::filesystem::path& path() const { return path_; }

  SharedLibrary(SharedLibrary&& other) noexcept;
  SharedLibrary& operator=(SharedLibrary&& other) noexcept;
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;
  ~SharedLibrary();

 private:
  SharedLibrary(void* handle, std::filesystem::path path);
  void close() noexcept;

  void* handle_ = nullptr;
  std::filesystem::path path_;
};

}  // namespace enigma
