#!/usr/bin/env python3
"""Type-checks every *.metal file in DIR with the host C++ compiler against
tests/msl/metal_stdlib, a declarations-only stand-in for Metal's standard
library, so that generated MSL which would not compile fails CI on machines
without a Mac. It also checks what the C++ compiler is told to ignore:
Metal's [[attributes]] (known names, argument types, unique buffer indices)
and that each file's "Needs Metal Shading Language" line matches its use of
bfloat. Prints a summary; exits 1 with the compiler's output on any failure.

    python scripts/check-msl-sources.py DIR [--cxx COMPILER] [-j N] [--junitxml FILE]

The compiler is --cxx, else $CXX, else clang++ or g++ (g++ >= 12 or clang++
>= 14). Warnings are errors (-Wall), except two that are about what a kernel
computes rather than how it is spelled: unused variables (a loop may copy a
carried value it does not read) and tautological comparisons (x < x).
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_check_report import check_all, junit_writer, nothing_to_check  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE_DIR = os.path.join(ROOT, "tests", "msl")

# Kernel-argument attributes and the parameter types Metal allows for them.
GRID_VECTOR = {"uint", "uint2", "uint3", "ushort", "ushort2", "ushort3"}
GRID_SCALAR = {"uint", "ushort"}
BUILTIN_ATTRIBUTES = {
    "thread_position_in_grid": GRID_VECTOR,
    "thread_position_in_threadgroup": GRID_VECTOR,
    "threadgroup_position_in_grid": GRID_VECTOR,
    "threads_per_threadgroup": GRID_VECTOR,
    "dispatch_threads_per_threadgroup": GRID_VECTOR,
    "threads_per_grid": GRID_VECTOR,
    "threadgroups_per_grid": GRID_VECTOR,
    "thread_index_in_threadgroup": GRID_SCALAR,
    "thread_index_in_simdgroup": GRID_SCALAR,
    "simdgroup_index_in_threadgroup": GRID_SCALAR,
    "threads_per_simdgroup": GRID_SCALAR,
    "simdgroups_per_threadgroup": GRID_SCALAR,
    "thread_index_in_quadgroup": GRID_SCALAR,
    "quadgroup_index_in_threadgroup": GRID_SCALAR,
    "quadgroups_per_threadgroup": GRID_SCALAR,
}
# Attributes with one integer argument, and its largest value.
INDEXED_ATTRIBUTES = {"buffer": 30, "threadgroup": 30, "function_constant": 65535}
MAX_BUFFERS = 31

ATTRIBUTE = re.compile(r"\[\[\s*(.*?)\s*\]\]", re.S)
KERNEL = re.compile(r"\bkernel\s+void\s+(\w+)\s*\(")
FUNCTION_CONSTANT = re.compile(r"(\[\[\s*function_constant\s*\(\s*\d+\s*\)\s*\]\])\s*;")
VERSION = re.compile(r"^// Needs Metal Shading Language (\d+)\.(\d+)", re.M)


def find_compiler(explicit):
    for c in (explicit, os.environ.get("CXX"), "clang++", "g++", "c++"):
        if c and shutil.which(c.split()[0]):
            return c.split()
    return None


def compiler_flags(cxx):
    out = subprocess.run(cxx + ["--version"], capture_output=True, text=True).stdout
    unknown_attributes = "-Wno-unknown-attributes" if "clang" in out else "-Wno-attributes"
    flags = ["-x", "c++", "-std=c++17", "-fsyntax-only", "-fsigned-char", "-Wall", "-Werror",
             "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-Wno-tautological-compare", unknown_attributes,
             "-I", INCLUDE_DIR]
    return flags, out.splitlines()[0] if out else cxx[0]


def split_top_level(text):
    """Splits a parameter list at commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([<":
            depth += 1
        elif ch in ")]>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


def parameter_list(source, open_paren):
    depth = 0
    for i in range(open_paren, len(source)):
        if source[i] == "(":
            depth += 1
        elif source[i] == ")":
            depth -= 1
            if depth == 0:
                return source[open_paren + 1:i]
    return None


def check_attributes(source):
    """Problems with the [[...]] attributes, which the C++ compiler ignores."""
    problems = []
    for m in ATTRIBUTE.finditer(source):
        text = m.group(1)
        name = re.match(r"\w+", text)
        name = name.group(0) if name else text
        if name in BUILTIN_ATTRIBUTES:
            if text != name:
                problems.append(f"[[{text}]]: takes no arguments")
        elif name in INDEXED_ATTRIBUTES:
            arg = re.fullmatch(rf"{name}\s*\(\s*(\d+)\s*\)", text)
            if not arg or int(arg.group(1)) > INDEXED_ATTRIBUTES[name]:
                problems.append(f"[[{text}]]: needs one integer index from 0 to {INDEXED_ATTRIBUTES[name]}")
        else:
            problems.append(f"[[{text}]]: not a Metal kernel attribute this checker knows")
    for k in KERNEL.finditer(source):
        params = parameter_list(source, k.end() - 1)
        if params is None:
            problems.append(f"kernel {k.group(1)}: unbalanced parameter list")
            continue
        buffers = {}
        grid_types = set()  # Metal wants one type for all grid-position attributes
        index_types = set()  # and uint or ushort throughout
        for p in split_top_level(params):
            attrs = ATTRIBUTE.findall(p)
            if len(attrs) != 1:
                problems.append(f"kernel {k.group(1)}: parameter '{p}' needs exactly one attribute")
                continue
            decl = ATTRIBUTE.sub("", p).strip()
            name = re.match(r"\w+", attrs[0]).group(0) if re.match(r"\w+", attrs[0]) else ""
            if name == "buffer":
                index = int(re.search(r"\d+", attrs[0]).group(0)) if re.search(r"\d+", attrs[0]) else -1
                if index in buffers:
                    problems.append(f"kernel {k.group(1)}: [[buffer({index})]] bound twice "
                                    f"('{buffers[index]}' and '{decl}')")
                buffers[index] = decl
                if not re.match(r"(const\s+)?(device|constant)\b", decl) or not re.search(r"[*&]", decl):
                    problems.append(f"kernel {k.group(1)}: '{decl}': a [[buffer]] parameter is a device or "
                                    "constant pointer or reference")
            elif name in BUILTIN_ATTRIBUTES:
                ptype = decl.split()[0] if decl.split() else ""
                if ptype not in BUILTIN_ATTRIBUTES[name]:
                    problems.append(f"kernel {k.group(1)}: '{decl}': [[{name}]] must be one of "
                                    f"{', '.join(sorted(BUILTIN_ATTRIBUTES[name]))}")
                if BUILTIN_ATTRIBUTES[name] is GRID_VECTOR:
                    grid_types.add(ptype)
                index_types.add(ptype.rstrip("23"))
        if len(grid_types) > 1 or len(index_types) > 1:
            problems.append(f"kernel {k.group(1)}: thread-position parameters mix types "
                            f"({', '.join(sorted(grid_types | index_types))}); Metal wants them alike")
        if len(buffers) > MAX_BUFFERS:
            problems.append(f"kernel {k.group(1)}: {len(buffers)} buffers, Metal binds at most {MAX_BUFFERS}")
    return problems


def check_version_line(source):
    m = VERSION.search(source)
    if not m:
        return ["no '// Needs Metal Shading Language X.Y' line"]
    version = (int(m.group(1)), int(m.group(2)))
    if re.search(r"\bbfloat\d?\b", source) and version < (3, 1):
        return [f"uses bfloat but says MSL {version[0]}.{version[1]}; bfloat needs 3.1"]
    return []


def check_file(cxx, flags, path):
    t0 = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        source = f.read()
    problems = check_version_line(source) + check_attributes(source)
    if FUNCTION_CONSTANT.search(source):
        # `constant T x [[function_constant(i)]];` takes its value from the
        # pipeline; the host compiler (constant is const) needs an initializer.
        patched = FUNCTION_CONSTANT.sub(r"\1 = {};", source)
        proc = subprocess.run(cxx + flags + ["-"], input=patched, capture_output=True, text=True)
    else:
        proc = subprocess.run(cxx + flags + [path], capture_output=True, text=True)
    log = "\n".join(problems)
    if proc.returncode != 0 or proc.stderr.strip():
        log = (log + "\n" if log else "") + (proc.stdout + proc.stderr).strip()
    ok = proc.returncode == 0 and not problems
    return os.path.basename(path), ok, log, time.perf_counter() - t0


write_junit = junit_writer("check-msl-sources", "msl_sources", "MSL check failed")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--cxx", help="host C++ compiler (default: $CXX, else clang++, else g++)")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--junitxml")
    args = ap.parse_args(argv)

    cxx = find_compiler(args.cxx)
    if cxx is None:
        print("check-msl-sources: FAILED: no C++ compiler found (set CXX or --cxx)")
        return 1
    files = sorted(glob.glob(os.path.join(args.dir, "*.metal")))
    if not files:
        return nothing_to_check("check-msl-sources", args.dir, ".metal", args.junitxml, write_junit)
    flags, version = compiler_flags(cxx)
    print(f"check-msl-sources: {len(files)} file(s) with {version}")
    return check_all("check-msl-sources", files, lambda p: check_file(cxx, flags, p), args.jobs, args.junitxml,
                     write_junit)


if __name__ == "__main__":
    sys.exit(main())
