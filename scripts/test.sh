#!/usr/bin/env bash
# Builds Enigma from this checkout and runs every test: the C++ unit tests
# (CTest), the Python suite (pytest, on the default device: ENIGMA_DEVICE
# selects it), the Python lint (ruff) and the source checks (the MSL and CUDA
# of every kernel the suite compiled must compile for Metal and for NVIDIA
# GPUs, even without one).
# The last line is the summary: "tests: N passed, N failed, N skipped".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=build/test
python=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check --upgrade pip

# On Linux the Metal device is also compiled and run on the fake Metal of
# tests/metal_host (docs/metal.md). It needs clang, GNUstep's Foundation and
# GCC's Objective-C runtime headers; as root with apt-get they are installed
# when missing, elsewhere those tests are skipped with the reason.
metal_fake_packages="clang libgnustep-base-dev gobjc++"
have_metal_fake_toolchain() {
  command -v clang++ >/dev/null && command -v gnustep-config >/dev/null && command -v gcc >/dev/null &&
    [ -f "$(gcc -print-file-name=include)/objc/objc.h" ]
}
metal_fake=OFF
metal_fake_skip=""
if [ "$(uname -s)" = Linux ]; then
  if ! have_metal_fake_toolchain && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing the fake-Metal toolchain: $metal_fake_packages"
    # shellcheck disable=SC2086
    apt-get install -y -q $metal_fake_packages >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $metal_fake_packages >/dev/null 2>&1; } || true
  fi
  if have_metal_fake_toolchain; then
    metal_fake=ON
  else
    metal_fake_skip="the fake-Metal toolchain is missing (apt-get install $metal_fake_packages)"
  fi
else
  metal_fake_skip="the fake Metal is for Linux; on a Mac ENIGMA_DEVICE=metal runs the real one"
fi
# One build tree for the package and the C++ tests; warnings are errors.
python -m pip install --quiet --disable-pip-version-check \
  -C build-dir=$build -C cmake.define.ENIGMA_BUILD_TESTS=ON -C cmake.define.ENIGMA_WERROR=ON \
  -C cmake.define.ENIGMA_METAL_FAKE=$metal_fake ".[test]"

reports=build/reports
sources=build/test-sources
rm -rf "$reports" "$sources"
mkdir -p "$reports"
export ENIGMA_CACHE_DIR=${ENIGMA_CACHE_DIR:-$root/build/test-cache}
export ENIGMA_SOURCE_DUMP_DIR=$root/$sources

status=0
# Python lint (ruff, a pinned development tool; rules in pyproject.toml): findings fail the run.
python -m pip install --quiet --disable-pip-version-check "ruff==0.17.6"
if ! python -m ruff check --output-format junit --output-file "$reports/ruff.xml" .; then
  python -m ruff check --output-format concise . || true
  status=1
fi
# C++ style (clang-format, a pinned development tool; style in .clang-format): differences fail the run.
python -m pip install --quiet --disable-pip-version-check "clang-format==23.1.3"
python scripts/check-format.py --junitxml "$reports/clang-format.xml" || status=1
ctest --test-dir $build --output-on-failure -j2 --output-junit "$root/$reports/ctest.xml" || status=1
python -m pytest -q -p no:cacheprovider --junitxml="$reports/pytest.xml" tests/python || status=1
# MetalRuntime on the fake Metal (an Apple M3): its own tests and the runtime
# page's. Two seed-page tests need debug-mode bounds checks, which the MSL
# does not have yet (docs/metal.md).
if [ "$metal_fake" = ON ]; then
  ENIGMA_METAL_FAKE=apple9 ENIGMA_DEVICE=metal python -m pytest -q -p no:cacheprovider \
    --junitxml="$reports/pytest-metal-fake.xml" -o junit_suite_name=metal_runtime_fake \
    tests/python/test_metal_runtime_fake.py tests/python/test_seed_page.py \
    --deselect tests/python/test_seed_page.py::test_dispatch_error_contents \
    --deselect tests/python/test_seed_page.py::test_debug_mode_from_environment || status=1
else
  echo "skipping the fake-Metal tests: $metal_fake_skip"
  python -c 'import sys; sys.path.insert(0, "scripts"); from source_check_report import write_junit
write_junit(sys.argv[1], "metal_runtime_fake", "metal_runtime_fake", [], "", skipped_reason=sys.argv[2])' \
    "$reports/pytest-metal-fake.xml" "$metal_fake_skip"
fi
for check in scripts/check-msl-sources.py scripts/check-cuda-sources.py; do
  if [ -f "$check" ]; then
    python "$check" "$sources" --junitxml "$reports/$(basename "$check" .py).xml" || status=1
  fi
done

python - "$reports" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in sorted(glob.glob(f"{sys.argv[1]}/*.xml")):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    for s in suites:
        n, f = int(s.get("tests", 0)), int(s.get("failures", 0)) + int(s.get("errors", 0))
        k = int(s.get("skipped", 0) or s.get("disabled", 0) or 0)
        passed += n - f - k
        failed += f
        skipped += k
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
