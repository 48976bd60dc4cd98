"""The CUDA code generator, without a GPU: the source's shape, and NVRTC
compiling every op, dtype, conversion and query (skipped without libnvrtc)."""
from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

import enigma
from conftest import load_example
from cuda_zoo import zoo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _checker():
    spec = importlib.util.spec_from_file_location("check_cuda_sources",
                                                  os.path.join(ROOT, "scripts", "check-cuda-sources.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def nvrtc():
    mod = _checker()
    lib, _ = mod.load_nvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found")
    return mod, lib


@enigma.kernel
def saxpy(X: enigma.f32, a: enigma.Scalar(enigma.f32), h: enigma.Scalar(enigma.f16), Y: enigma.f32):
    i = enigma.thread_position_in_grid
    Y[i] = a * X[i] + Y[i] + h


def test_source_shape():
    src = enigma.compile(saxpy, emit_only=True).source("cuda")
    assert 'extern "C" __global__ void saxpy(' in src
    assert "const float* __restrict__ X" in src       # read-only: const, through the read-only cache
    assert "float* __restrict__ Y" in src and "const float* __restrict__ Y" not in src
    assert "const float a" in src                     # scalars by value
    assert "const en_u16 en_arg2" in src and "const float h = en_h2f(en_arg2);" in src
    assert "#include" not in src                      # NVRTC gets no host headers
    assert "// nvrtc-options: " in src and "--fmad=false" in src
    # Threads past the grid's edge return before the body.
    assert "if (lx >= en_ex || ly >= en_ey || lz >= en_ez) return;" in src


def test_signed_arithmetic_wraps_in_unsigned():
    src = enigma.compile(_zoo_kernel("zoo_arith_i32"), emit_only=True).source("cuda")
    assert "static_cast<en_i32>(static_cast<en_u32>(" in src


def test_debug_source_checks_bounds():
    src = enigma.compile(saxpy, emit_only=True, debug=True).source("cuda")
    assert "en_u64* __restrict__ en_err" in src and "const en_u64 en_len0" in src
    assert "atomicCAS(en_err, 0ull, 1ull)" in src


def test_sources_are_dumped_for_ci():
    # ENIGMA_SOURCE_DUMP_DIR gets every kernel's CUDA for scripts/check-cuda-sources.py.
    assert "cuda" in enigma.compiler.DUMP_BACKENDS


def _zoo_kernel(name):
    for k, _, _ in zoo():
        if k.name == name:
            return k
    raise KeyError(name)


def test_nvrtc_compiles_every_op_and_dtype(nvrtc):
    mod, lib = nvrtc
    sources = []
    for k, _, _ in zoo():
        for debug in (False, True):
            ck = enigma.compile(k, emit_only=True, debug=debug)
            sources.append((f"{k.name}{'-debug' if debug else ''}", ck.source("cuda")))
            if ck._core.cuda_groups_per_block > 1:
                g = ck._core.cuda_groups_per_block
                sources.append((f"{k.name}-g{g}", ck._core.source("cuda", groups_per_block=g)))

    def one(item):
        name, src = item
        ok, log, size = mod.compile_source(lib, src, name + ".cu", "sm_90")
        return name, ok, log, size

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(one, sources))
    failed = [f"{n}:\n{log}" for n, ok, log, _ in results if not ok]
    assert not failed, "\n\n".join(failed[:5])
    warned = [f"{n}:\n{log}" for n, ok, log, _ in results if ok and log]
    assert not warned, "NVRTC warnings:\n" + "\n\n".join(warned[:5])


def test_check_script_skips_or_checks(tmp_path, nvrtc):
    mod, _ = nvrtc
    (tmp_path / "good.cu").write_text(enigma.compile(saxpy, emit_only=True).source("cuda"))
    assert mod.main([str(tmp_path), "--junitxml", str(tmp_path / "r.xml")]) == 0
    (tmp_path / "bad.cu").write_text('extern "C" __global__ void k() { undefined_thing(); }\n')
    assert mod.main([str(tmp_path)]) == 1


def test_large_grid_variant_runs_several_groups_per_block():
    ck = enigma.compile(saxpy, emit_only=True)
    assert ck._core.cuda_groups_per_block == 4  # 4-byte elements; 2-byte ones get 8
    src = ck._core.source("cuda", groups_per_block=4)
    assert 'extern "C" __global__ void saxpy_g4(' in src and "#pragma unroll" in src
    assert "_g4" not in ck.source("cuda")
    assert enigma.compile(saxpy, emit_only=True, debug=True)._core.cuda_groups_per_block == 1


@enigma.kernel
def add_bf16_rows(A: enigma.bf16, B: enigma.bf16, C: enigma.bf16):
    i = enigma.thread_position_in_grid
    C[i] = A[i] + B[i]


def test_bfloat_large_grid_variant_merges_accesses_into_16_bytes(nvrtc, tmp_path):
    """Each thread of the 8-groups variant runs 8 consecutive grid positions,
    so its bfloat accesses cover 16 contiguous bytes: NVRTC's PTX holds 128-bit
    accesses on the aligned path (and scalar ones on the others)."""
    mod, lib = nvrtc
    ck = enigma.compile(add_bf16_rows, emit_only=True)
    assert ck._core.cuda_groups_per_block == 8
    src = ck._core.source("cuda", groups_per_block=8)
    assert "__builtin_assume_aligned(" in src and "en_aligned" in src
    ptx = mod.compile_to_ptx(lib, src, "add_bf16_rows.cu", "compute_90")
    assert ptx.count("ld.global.v4.u32") == 2 and ptx.count("st.global.v4.u32") == 1, ptx[-3000:]


def _gemm_example():
    return load_example("gemm_bf16")


def test_gemm_example_runs_on_tensor_cores(nvrtc, tmp_path):
    """The bfloat16 GEMM example's tensor-core entry: mma.sync products,
    ldmatrix loads and cp.async copies in NVRTC's PTX (the plain entry has no
    mma)."""
    mod, lib = nvrtc
    ck = enigma.compile(_gemm_example().gemm_bf16, emit_only=True)
    assert ck._core.cuda_uses_matrices
    src = ck._core.source("cuda", matrix_fragments=True)
    assert 'void gemm_bf16_tc(' in src
    ptx = mod.compile_to_ptx(lib, src, "gemm_bf16_tc.cu", "compute_90")
    assert ptx.count("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32") == 32  # two 8x8 products each
    assert "ldmatrix.sync.aligned.m8n8.x1.shared.b16" in ptx and "cp.async.cg.shared.global" in ptx
    assert "mma.sync" not in mod.compile_to_ptx(lib, ck.source("cuda"), "gemm_bf16.cu", "compute_90")


def _cuobjdump():
    """cuobjdump on the PATH, else the one of the nvidia-cuda-cuobjdump wheel (test extras)."""
    found = shutil.which("cuobjdump")
    if found:
        return found
    for site in sys.path:
        path = os.path.join(site, "nvidia", "cu13", "bin", "cuobjdump")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def test_gemm_example_sass_has_hmma(nvrtc, tmp_path):
    """cuobjdump -sass of the tensor-core entry's cubin shows HMMA (skipped
    where cuobjdump is missing; the PTX test above still runs)."""
    mod, lib = nvrtc
    src = enigma.compile(_gemm_example().gemm_bf16, emit_only=True)._core.source("cuda", matrix_fragments=True)
    cuobjdump = _cuobjdump()
    if cuobjdump is None:
        pytest.skip("no cuobjdump (PATH or the nvidia-cuda-cuobjdump wheel): the PTX was checked, the SASS is not")
    cubin = tmp_path / "gemm_bf16_tc.cubin"
    cubin.write_bytes(mod.compile_to_cubin(lib, src, "gemm_bf16_tc.cu", "sm_90"))
    # cuobjdump runs nvdisasm, found beside it (the wheels) or on the PATH.
    env = dict(os.environ, PATH=os.path.dirname(cuobjdump) + os.pathsep + os.environ.get("PATH", ""))
    sass = subprocess.run([cuobjdump, "-sass", str(cubin)], capture_output=True, text=True, check=True,
                          env=env).stdout
    assert "HMMA" in sass, sass[:2000]
