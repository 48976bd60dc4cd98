// Source emitters. Every backend is a C-family language; a shared printer
// (src/codegen/c_family.*) writes expressions and structured control flow,
// and each backend supplies its spellings and lowers the execution model.
#pragma once

#include <string>

#include "enigma/ir/ir.h"
#include "enigma/codegen/cpu_abi.h"

namespace enigma {

// Metal Shading Language (MSL 3.0; bfloat needs 3.1).
std::string emit_msl(const Kernel& k);

// C++20 for the CPU backend. The source defines
//   extern "C" void <entry>(const EnigmaCpuLaunch* launch, uint64_t tg_begin, uint64_t tg_end)
// which runs the threadgroups [tg_begin, tg_end) (linear index, x fastest).
struct CpuEmitOptions {
  std::string entry = "enigma_kernel";
  bool debug = false;  // bounds-check every buffer access
};
std::string emit_cpu(const Kernel& k, const CpuEmitOptions& options = {});

}  // namespace enigma
