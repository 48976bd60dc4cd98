#!/usr/bin/env bash
# Incremental developer build without pip: builds the core, the extension and
# the C++ tests in BUILD_DIR (default build/dev) and lays out an importable
# package in BUILD_DIR/python (the .py files are symlinks, so edits apply at
# once). Use:  scripts/dev-build.sh [BUILD_DIR] && PYTHONPATH=BUILD_DIR/python pytest
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/dev}
case $build in /*) ;; *) build=$root/$build ;; esac
cmake -S "$root" -B "$build" -G Ninja -DENIGMA_BUILD_TESTS=AUTO -DENIGMA_WERROR=ON \
  -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build"
pkg=$build/python/enigma
mkdir -p "$pkg"
for f in "$root"/python/enigma/*.py; do ln -sf "$f" "$pkg/"; done
for d in "$root"/python/enigma/*/; do  # subpackages (enigma.ops, enigma.runtime_dispatch, ...)
  case $d in */__pycache__/) continue ;; esac
  ln -sfn "${d%/}" "$pkg/"
done
cp -f "$build"/_core*.so "$pkg/"
echo "PYTHONPATH=$build/python"
