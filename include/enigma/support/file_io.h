// Small POSIX file helpers shared by the runtime's writers.
#pragma once

#include <string>

namespace enigma {

// Writes all of `data` to the open file `fd`, retrying interrupted writes.
// Returns 0, or the errno of the write that failed (the caller closes fd).
int write_all(int fd, const std::string& data);

}  // namespace enigma
