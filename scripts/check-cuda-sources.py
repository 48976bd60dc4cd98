#!/usr/bin/env python3
"""Compiles every *.cu file in DIR with NVRTC (to a cubin, for sm_90 unless
--arch says otherwise), the way the CUDA device does at run time, and reports
each failure with NVRTC's log. No GPU is needed, only libnvrtc, which is
found at run time like the runtime finds it (ENIGMA_NVRTC_LIBRARY, the
loader's path, CUDA_HOME / CUDA_PATH / /usr/local/cuda, the nvidia-cuda-nvrtc
wheel). Without libnvrtc it prints SKIPPED and exits 0.

Each file's options come from its "// nvrtc-options:" line, written by the
CUDA emitter from the same list the runtime uses.

    python scripts/check-cuda-sources.py DIR [--arch sm_90] [--junitxml FILE] [-j N]
"""
from __future__ import annotations

import argparse
import ctypes
import glob
import os
import sys
import time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from source_check_report import check_all, junit_writer, nothing_to_check  # noqa: E402

NAMES = ("libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12")
DEFAULT_OPTIONS = ["--std=c++17", "-default-device", "--fmad=false", "--ftz=false", "--prec-div=true",
                   "--prec-sqrt=true", "--minimal"]


def _candidates():
    env = os.environ.get("ENIGMA_NVRTC_LIBRARY")
    if env:
        yield env
    yield from NAMES  # the dynamic loader's own search path
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    for root in filter(None, roots):
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
            for n in NAMES:
                yield os.path.join(root, sub, n)
    for site in sys.path:
        for sub in ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"):
            for n in NAMES:
                yield os.path.join(site, sub, n)


def load_nvrtc():
    """(ctypes library, path) of the first libnvrtc that loads, or (None, reasons)."""
    tried = []
    for c in _candidates():
        if os.sep in c and not os.path.exists(c):
            continue
        try:
            lib = ctypes.CDLL(c)
            lib.nvrtcVersion  # noqa: B018 - must be NVRTC
        except (OSError, AttributeError) as e:
            tried.append(f"{c}: {e}")
            continue
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        return lib, c
    return None, tried


def nvrtc_version(lib):
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def options_of(source: str):
    for line in source.splitlines()[:8]:
        if line.startswith("// nvrtc-options:"):
            return line.split(":", 1)[1].split()
    return list(DEFAULT_OPTIONS)


def compile_source(lib, source: str, name: str, arch: str):
    """(ok, log, cubin bytes); log holds NVRTC's messages (warnings too)."""
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if rc != 0:
        return False, f"nvrtcCreateProgram: {lib.nvrtcGetErrorString(rc).decode()}", 0
    try:
        opts = options_of(source) + [f"--gpu-architecture={arch}"]
        if nvrtc_version(lib) < (12, 4):  # as the runtime does: --minimal is newer
            opts = [o for o in opts if o != "--minimal"]
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(max(size.value, 1))
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace").strip()
        if rc != 0:
            return False, f"{lib.nvrtcGetErrorString(rc).decode()} (options: {' '.join(opts)})\n{log}", 0
        cubin = ctypes.c_size_t()
        rc = lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
        if rc != 0 or cubin.value == 0:
            return False, f"no cubin: {lib.nvrtcGetErrorString(rc).decode()}\n{log}", 0
        return True, log, cubin.value
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def compile_to_ptx(lib, source: str, name: str, arch: str = "compute_90") -> str:
    """The PTX NVRTC makes of `source` (to inspect the instructions chosen);
    raises RuntimeError with NVRTC's log when it does not compile."""
    return _compile_to(lib, source, name, arch, "PTX").decode()


def compile_to_cubin(lib, source: str, name: str, arch: str = "sm_90") -> bytes:
    """The cubin NVRTC makes of `source` (for cuobjdump -sass)."""
    return _compile_to(lib, source, name, arch, "CUBIN")


def _compile_to(lib, source: str, name: str, arch: str, what: str) -> bytes:
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram: {lib.nvrtcGetErrorString(rc).decode()}")
    try:
        opts = options_of(source) + [f"--gpu-architecture={arch}"]
        if nvrtc_version(lib) < (12, 4):
            opts = [o for o in opts if o != "--minimal"]
        arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        if rc != 0:
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(max(size.value, 1))
            lib.nvrtcGetProgramLog(prog, buf)
            raise RuntimeError(f"{lib.nvrtcGetErrorString(rc).decode()}\n{buf.value.decode(errors='replace')}")
        size = ctypes.c_size_t()
        getattr(lib, f"nvrtcGet{what}Size")(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        getattr(lib, f"nvrtcGet{what}")(prog, buf)
        return buf.raw[:size.value].rstrip(b"\0") if what == "PTX" else buf.raw[:size.value]
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


write_junit = junit_writer("check-cuda-sources", "cuda_sources", "NVRTC compile failed")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--junitxml")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)

    lib, info = load_nvrtc()
    if lib is None:
        msg = "no libnvrtc found (set ENIGMA_NVRTC_LIBRARY, CUDA_HOME, or install nvidia-cuda-nvrtc)"
        print(f"check-cuda-sources: SKIPPED: {msg}")
        if args.junitxml:
            write_junit(args.junitxml, [], skipped_reason=msg)
        return 0
    files = sorted(glob.glob(os.path.join(args.dir, "*.cu")))
    if not files:
        others = glob.glob(os.path.join(args.dir, "*.cpp")) + glob.glob(os.path.join(args.dir, "*.metal"))
        if others:
            print(f"check-cuda-sources: FAILED: {args.dir} holds dumped kernel sources but no .cu files "
                  "(is 'cuda' missing from enigma.compiler.DUMP_BACKENDS?)")
            return 1
        return nothing_to_check("check-cuda-sources", args.dir, ".cu", args.junitxml, write_junit)

    major, minor = nvrtc_version(lib)
    print(f"check-cuda-sources: {len(files)} file(s), NVRTC {major}.{minor} ({info}), --gpu-architecture={args.arch}")

    def one(path):
        t0 = time.perf_counter()
        with open(path, encoding="utf-8") as f:
            src = f.read()
        ok, log, _ = compile_source(lib, src, os.path.basename(path), args.arch)
        return os.path.basename(path), ok, log, time.perf_counter() - t0

    # NVRTC may be called from several threads for different programs.
    return check_all("check-cuda-sources", files, one, args.jobs, args.junitxml, write_junit, verb="compiled",
                     show_warnings=True)


if __name__ == "__main__":
    sys.exit(main())
