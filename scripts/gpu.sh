#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU (and torch/CuPy/Triton if it
# has them): installs Enigma from this checkout into the current Python, runs
# the whole test suite on the CUDA device, NVRTC-checks every CUDA source the
# suite generated, then runs benchmarks/gpu/run.py, whose table comes last.
# Logs and JUnit reports go to $OUT when it is set (else build/gpu-logs).
# Arguments are passed to benchmarks/gpu/run.py (e.g. --only gemm --rounds 10);
# GPU_TEST_TIMEOUT and GPU_BENCH_TIMEOUT (seconds) bound the two long steps.
# Exit status: nonzero when the install or a test failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
logs=${OUT:-$root/build/gpu-logs}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1
export ENIGMA_DEVICE=cuda
export ENIGMA_CACHE_DIR=${ENIGMA_CACHE_DIR:-$root/build/gpu-cache}
export ENIGMA_SOURCE_DUMP_DIR=$root/build/gpu-sources
status=0
set -x

nvidia-smi 2>&1 | tee "$logs/nvidia-smi.txt" || true
"$python" -c 'import sys; print(sys.version)'

# Offline-safe: the build backend (scikit-build-core, nanobind, cmake, ninja)
# must already be installed; numpy too.
install() {
  "$python" -m pip install --no-build-isolation --no-deps --disable-pip-version-check -q \
    -C build-dir=build/gpu-wheel . 2>&1 | tee -a "$logs/install.log"
  return "${PIPESTATUS[0]}"
}
# Run from outside the checkout so `import enigma` is the installed package.
smoke() {
  (cd /tmp && "$python" -X faulthandler -c '
import enigma, enigma._core as c
print("enigma", enigma.__version__, enigma.__file__)
print("backends:", c.available_backends())
print("cuda_info:", c.cuda_info())
@enigma.kernel
def smoke(A: enigma.f32, B: enigma.f32):
    i = enigma.thread_position_in_grid
    B[i] = A[i] * 2.0
ck = enigma.compile(smoke)
print(ck.source("cuda").splitlines()[0])
print("smoke test passed on", enigma.MetalRuntime().device)') 2>&1 | tee "$logs/cuda-info.txt"
  return "${PIPESTATUS[0]}"
}
install || { echo "gpu.sh: pip install failed (see $logs/install.log)"; exit 1; }
if ! smoke; then
  # A toolchain that links its own libstdc++ statically into the module has
  # been seen to crash in iostreams; the system compiler does not.
  echo "gpu.sh: the build does not work with CXX=${CXX:-default}; rebuilding with the system compiler"
  export CC=/usr/bin/gcc CXX=/usr/bin/g++
  rm -rf build/gpu-wheel
  install && smoke || { echo "gpu.sh: the installed package does not work (see $logs)"; exit 1; }
fi

rm -rf "$ENIGMA_SOURCE_DUMP_DIR"
# pytest-xdist, where installed, spreads the test files over the host's cores.
parallel=()
if "$python" -c 'import xdist' 2>/dev/null; then parallel=(-n "${GPU_TEST_WORKERS:-8}" --dist loadfile); fi
timeout "${GPU_TEST_TIMEOUT:-420}" "$python" -m pytest -q -p no:cacheprovider -o addopts="" "${parallel[@]}" \
  --junitxml="$logs/pytest-cuda.xml" tests/python 2>&1 | tee "$logs/pytest-cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

"$python" scripts/check-cuda-sources.py "$ENIGMA_SOURCE_DUMP_DIR" --junitxml "$logs/check-cuda-sources.xml" \
  2>&1 | tee "$logs/check-cuda-sources.log" | tail -5
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

set +x
echo "gpu.sh: tests $([ $status -eq 0 ] && echo passed || echo FAILED) (logs in $logs)"
unset ENIGMA_SOURCE_DUMP_DIR
timeout "${GPU_BENCH_TIMEOUT:-300}" "$python" benchmarks/gpu/run.py "$@" 2>&1 | tee "$logs/bench.log"
exit $status
