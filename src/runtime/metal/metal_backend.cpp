// Metal's backend descriptor. The MSL emitter runs everywhere (sources,
// dumps, CI's compile check); the device exists on Apple platforms and, for
// tests, on Linux's fake Metal (metal_device.mm).
#include "enigma/backend.h"
#include "enigma/codegen/codegen.h"

namespace enigma {

#if defined(__APPLE__) || defined(ENIGMA_METAL_FAKE)
std::shared_ptr<Device> open_metal_device(int ordinal);  // metal_device.mm
bool metal_device_available();
#endif

const Backend& metal_backend() {
  static const Backend backend{
      .name = "metal",
      .language = "msl",
      .source_extension = "metal",
      .auto_rank = 0,
      .numbered = false,
      .emit = [](const Kernel& k, const SourceOptions& o) { return emit_msl(k, with_checks<MslEmitOptions>(o)); },
      // MSL computes half/bfloat math in float and rounds once, except:
      .spellings =
          {
              {"fract", Scalar::F16, "en_fract_h", "a helper: fract in float, kept below 1 after rounding"},
              {"fract", Scalar::BF16, "en_fract_b", "a helper: fract in float, kept below 1 after rounding"},
              {"isnormal", Scalar::F16, "metal::isnormal", "on the half itself: float's normal range differs"},
              // Metal's library has no expm1/log1p: helpers correct exp/log (Kahan).
              {"expm1", Scalar::F32, "en_expm1", "a helper: (exp(x) - 1) * x / log(exp(x)), x where exp(x) == 1"},
              {"log1p", Scalar::F32, "en_log1p", "a helper: log(1 + x) * x / ((1 + x) - 1), x where 1 + x == 1"},
          },
#if defined(__APPLE__) || defined(ENIGMA_METAL_FAKE)
      .open = &open_metal_device,
      .available = &metal_device_available,
#else
      .open = nullptr,
      .available = [] { return false; },
#endif
      // Also when a test build has a Metal device that is switched off.
      .unavailable =
          [](const std::string&, const std::string& built) {
            return "device 'metal' is not available: Metal needs macOS on Apple silicon, and this machine has no Metal "
                   "device (this installation has: " +
                   built +
                   "). If ENIGMA_DEVICE=metal is set, unset it to use the "
                   "default device, or set ENIGMA_DEVICE=cpu (or cuda); compiled.metal_source still gives the Metal "
                   "source on any machine";
          },
  };
  return backend;
}

}  // namespace enigma
