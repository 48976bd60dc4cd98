// The backend registry: one descriptor per backend, registered once
// (src/runtime/backends.cpp). Everything that loops over backends reads it:
// the runtime (device specs, availability, "auto"), the bindings
// (source(backend), available_backends, backend_table), compiler.py (which
// sources to dump, their file extensions) and the emitters' spelling table.
// Adding a backend: docs/architecture.md, "Adding a backend".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "enigma/codegen/spelling.h"
#include "enigma/ir/ir.h"
#include "enigma/runtime/runtime.h"

namespace enigma {

// What source(backend) and the devices ask of an emitter. Each backend reads
// the fields it has (the CUDA variants only exist on CUDA).
struct SourceOptions {
  bool debug = false;
  bool bounds_check = true;
  int groups_per_block = 1;       // CUDA: threadgroups per block (CudaEmitOptions)
  bool matrix_fragments = false;  // CUDA: the tensor-core entry (CudaEmitOptions)
};

struct Backend {
  const char* name;              // "cpu", "cuda", "metal": device specs and source(name)
  const char* language;          // also accepted by source(): "msl" for Metal ("" none)
  const char* source_extension;  // of its source files: "cpp", "cu", "metal"
  int auto_rank;                 // "auto" opens the available backend of lowest rank
  bool numbered;                 // devices are named name:N (several per machine)
  std::string (*emit)(const Kernel& k, const SourceOptions& options);
  std::vector<BackendSpelling> spellings;  // functions it spells its own way (spelling.h)
  // The device side; open is null where this build has no device for the backend.
  std::shared_ptr<Device> (*open)(int ordinal);
  bool (*available)();
  // The error text when no device can be opened for `spec`; `built` lists
  // the backends this installation has devices for. Null: a plain one.
  std::string (*unavailable)(const std::string& spec, const std::string& built);
};

// Every backend, by name.
const std::vector<const Backend*>& backends();
// The backend called `name` (or whose language it is), or nullptr.
const Backend* find_backend(const std::string& name);
// Backends in the order "auto" tries them.
std::vector<const Backend*> backends_by_preference();

// Declarations of the registered backends (each in its own folder).
const Backend& cpu_backend();    // src/runtime/cpu/
const Backend& cuda_backend();   // src/runtime/cuda/
const Backend& metal_backend();  // src/runtime/metal/

}  // namespace enigma
