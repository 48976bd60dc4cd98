// The CUDA backend without a GPU: the emitter's interface with the runtime,
// and a clean "unavailable" without a driver (CI machines have none).
#include <gtest/gtest.h>

#include <string>

#include "enigma/codegen/codegen.h"
#include "enigma/ir/builder.h"
#include "enigma/runtime/cuda.h"
#include "enigma/runtime/runtime.h"
#include "enigma/support/error.h"

namespace enigma {
namespace {

Kernel vector_add(Scalar t) {
  Builder b("vadd");
  int a = b.add_buffer_param("A", DType::scalar(t));
  int c = b.add_buffer_param("C", DType::scalar(t));
  ValueId i = b.thread_query(ThreadQuery::ThreadPositionInGrid, 0);
  ValueId x = b.load(a, i);
  b.store(c, i, b.binary(OpCode::Add, x, x));
  return b.finish();
}

TEST(CudaCodegen, EntryAndParameters) {
  Kernel k = vector_add(Scalar::F32);
  std::string src = emit_cuda(k);
  EXPECT_EQ(cuda_entry_name(k), "vadd");
  EXPECT_NE(src.find("extern \"C\" __global__ void vadd("), std::string::npos) << src;
  EXPECT_NE(src.find("const float* __restrict__ A"), std::string::npos) << src;
  EXPECT_NE(src.find("float* __restrict__ C"), std::string::npos) << src;
  EXPECT_NE(src.find("const en_u32 en_grid2"), std::string::npos) << src;
  EXPECT_EQ(src.find("#include"), std::string::npos) << src;
}

TEST(CudaCodegen, GroupedVariantForLargeGrids) {
  EXPECT_EQ(cuda_preferred_groups_per_block(vector_add(Scalar::F32)), 4);
  EXPECT_EQ(cuda_preferred_groups_per_block(vector_add(Scalar::BF16)), 8);
  CudaEmitOptions o;
  o.groups_per_block = 4;
  std::string src = emit_cuda(vector_add(Scalar::F32), o);
  EXPECT_NE(src.find("void vadd_g4("), std::string::npos) << src;
  EXPECT_EQ(src.find("void vadd("), std::string::npos) << src;
}

TEST(CudaCodegen, OptionsAreWrittenIntoTheSource) {
  std::string src = emit_cuda(vector_add(Scalar::F32));
  std::string line = "// nvrtc-options:";
  for (const std::string& o : cuda_nvrtc_options()) line += " " + o;
  EXPECT_NE(src.find(line + "\n"), std::string::npos) << src;
}

TEST(CudaRuntime, ProbeNeverThrows) {
  cuda::Probe p = cuda::probe();
  if (!p.driver_loaded || p.device_count == 0) { EXPECT_FALSE(p.unavailable_reason.empty()); }
  EXPECT_TRUE(!p.nvrtc_path.empty() || !p.nvrtc_error.empty());
}

TEST(CudaRuntime, UnavailableDeviceSaysWhy) {
  if (cuda::probe().device_count > 0) GTEST_SKIP() << "a CUDA device is present";
  try {
    open_device("cuda");
    FAIL() << "open_device(\"cuda\") succeeded without a device";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("not available on this machine: "), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace enigma
