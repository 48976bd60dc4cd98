#!/usr/bin/env bash
# Builds Enigma from this checkout and runs every test: the C++ unit tests
# (CTest), the Python suite (pytest, on the default device: ENIGMA_DEVICE
# selects it) and the source checks (the MSL and CUDA of every kernel the
# suite compiled must compile for Metal and for NVIDIA GPUs, even without one).
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
# One build tree for the package and the C++ tests; warnings are errors.
python -m pip install --quiet --disable-pip-version-check \
  -C build-dir=$build -C cmake.define.ENIGMA_BUILD_TESTS=ON -C cmake.define.ENIGMA_WERROR=ON ".[test]"

reports=build/reports
sources=build/test-sources
rm -rf "$reports" "$sources"
mkdir -p "$reports"
export ENIGMA_CACHE_DIR=${ENIGMA_CACHE_DIR:-$root/build/test-cache}
export ENIGMA_SOURCE_DUMP_DIR=$root/$sources

status=0
ctest --test-dir $build --output-on-failure -j2 --output-junit "$root/$reports/ctest.xml" || status=1
python -m pytest -q -p no:cacheprovider --junitxml="$reports/pytest.xml" tests/python || status=1
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
