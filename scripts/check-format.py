#!/usr/bin/env python3
"""The C++ sources in the style of .clang-format, with the clang-format that
scripts/test.sh pins (from PyPI). Lists the files it covers (git ls-files;
the op table ops.def and the stand-in Metal header are laid out by hand and
left out) and either rewrites them (--fix) or reports each file whose
formatting differs, with clang-format's replacements, as a JUnit case.

    python scripts/check-format.py [--fix] [--junitxml FILE] [--clang-format PATH]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_check_report import write_junit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATTERNS = ["src/*.cpp", "src/*.h", "src/*.mm", "include/*.h", "tests/cpp/*.cpp", "tests/cpp/*.h",
            "tests/metal_host/*.cpp", "tests/metal_host/*.mm"]
HAND_LAID_OUT = {"tests/metal_host/Metal/Metal.h"}


def sources() -> list[str]:
    out = subprocess.run(["git", "ls-files", *PATTERNS], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in out.split() if f not in HAND_LAID_OUT]


def find_clang_format(given: str | None) -> str | None:
    if given:
        return given
    try:  # the PyPI wheel's binary
        import clang_format
        path = os.path.join(os.path.dirname(clang_format.__file__), "data", "bin", "clang-format")
        if os.path.isfile(path):
            return path
    except ImportError:
        pass
    return shutil.which("clang-format")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fix", action="store_true", help="rewrite the files in place")
    ap.add_argument("--junitxml", help="write one JUnit case per file here")
    ap.add_argument("--clang-format", help="the clang-format binary (default: the PyPI wheel's, else the PATH's)")
    args = ap.parse_args()
    tool = find_clang_format(args.clang_format)
    if tool is None:
        print("check-format: no clang-format (pip install the version scripts/test.sh pins)", file=sys.stderr)
        return 1
    files = sources()
    if args.fix:
        subprocess.run([tool, "-i", *files], cwd=ROOT, check=True)
        print(f"check-format: {len(files)} files formatted with {tool}")
        return 0
    results = []
    for f in files:
        t = time.monotonic()
        r = subprocess.run([tool, "--output-replacements-xml", f], cwd=ROOT, capture_output=True, text=True)
        ok = r.returncode == 0 and "<replacement " not in r.stdout
        results.append((f, ok, r.stdout + r.stderr, time.monotonic() - t))
    bad = [f for f, ok, _, _ in results if not ok]
    if args.junitxml:
        write_junit(args.junitxml, "clang_format", "clang_format", results,
                    "not in the style of .clang-format (python scripts/check-format.py --fix)")
    for f in bad:
        print(f"check-format: {f} is not formatted (python scripts/check-format.py --fix)")
    print(f"check-format: {len(files)} files, {len(bad)} not formatted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
