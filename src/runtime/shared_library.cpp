#include "enigma/runtime/shared_library.h"

#include <dlfcn.h>

#include <string>
#include <system_error>
#include <utility>

#include "enigma/support/error.h"

namespace enigma {
namespace fs = std::filesystem;

SharedLibrary::SharedLibrary(void* handle, fs::path path) : handle_(handle), path_(std::move(path)) {}

SharedLibrary SharedLibrary::open(const fs::path& path) {
  // A name without '/' would make dlopen search the library path instead of
  // loading this file.
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = path;
  dlerror();  // clear any stale error
  void* handle = dlopen(absolute.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw RuntimeError("cannot load shared library '" + path.string() + "': " + (why ? why : "unknown error"));
  }
  return SharedLibrary(handle, std::move(absolute));
}

void* SharedLibrary::symbol(const char* name) const {
  if (handle_ == nullptr) {
    throw RuntimeError(std::string("cannot look up symbol '") + name + "': the shared library handle is empty");
  }
  dlerror();
  void* address = dlsym(handle_, name);
  if (address == nullptr) {
    const char* why = dlerror();
    throw RuntimeError(std::string("symbol '") + name + "' not found in shared library '" + path_.string() + "'" +
                       (why ? std::string(": ") + why : std::string()));
  }
  return address;
}

SharedLibrary::SharedLibrary(SharedLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), path_(std::move(other.path_)) {}

SharedLibrary& SharedLibrary::operator=(SharedLibrary&& other) noexcept {
  if (this != &other) {
    close();
    handle_ = std::exchange(other.handle_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

SharedLibrary::~SharedLibrary() { close(); }

void SharedLibrary::close() noexcept {
  if (handle_ != nullptr) dlclose(handle_);  // nothing useful to do if this fails
  handle_ = nullptr;
}

}  // namespace enigma
