// What the CUDA backend finds on this machine, and where it looks for
// libnvrtc. The backend itself registers with the device registry
// (runtime.h): open_device("cuda") / "cuda:N".
#pragma once

#include <string>
#include <vector>

namespace enigma::cuda {

struct Probe {
  bool driver_loaded = false;  // libcuda loaded and cuInit succeeded
  int driver_version = 0;      // e.g. 13000
  int device_count = 0;
  std::string unavailable_reason;  // why the backend is unavailable ("" when it is)
  std::string nvrtc_path;          // "" when libnvrtc was not found
  std::string nvrtc_version;       // "13.0"
  std::string nvrtc_error;         // why libnvrtc was not found
};
// Loads the driver and NVRTC if not loaded yet; never throws.
Probe probe();

// Directories (e.g. Python's sys.path) in which to look for the
// nvidia-cuda-nvrtc wheel's library; call before the first compile.
void set_library_hints(std::vector<std::string> dirs);

}  // namespace enigma::cuda
