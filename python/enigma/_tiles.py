"""The tile library: helpers built from the cooperative ops of ``_cooperative``
(threadgroup memory, barriers, simdgroup matrices) and the traced control flow
of ``_tracing``, for whole tiles at a time: ``copy``, ``Pipeline`` (multi-
buffered threadgroup memory) and ``gemm``. They add no op of their own; what
they trace is what the same calls written by hand would trace."""
from __future__ import annotations

from ._cooperative import (
    barrier, simdgroup_matrix_load, simdgroup_matrix_store, simdgroup_multiply_accumulate, threadgroup_alloc,
)
from ._tensor import Tensor
from ._tracing import (
    EnigmaError, IRValue, for_range, if_, metal_cast, simdgroup_index_in_threadgroup, simdgroups_per_threadgroup,
)
from .typing import dtype_name


def copy(src, dst, count, src_offset=0, dst_offset=0, mask_fn=None, coalesced_width=1):
    """Every thread copies ``count`` elements ``dst[dst_offset + i] =
    src[src_offset + i]``; with ``mask_fn(i)`` only where it holds (masked-off
    elements are neither read nor written). ``coalesced_width`` (1, 2, 4)
    copies that many elements per iteration when the count and offsets allow."""
    if coalesced_width not in (1, 2, 4):
        raise EnigmaError(f"copy: coalesced_width must be 1, 2, or 4, got {coalesced_width}")
    w = coalesced_width
    wide = (w > 1 and isinstance(count, int) and count % w == 0 and mask_fn is None
            and isinstance(src_offset, int) and isinstance(dst_offset, int)
            and src_offset % w == 0 and dst_offset % w == 0)
    if wide:
        with for_range(0, count // w) as g:
            for k in range(w):
                dst[g * w + dst_offset + k] = src[g * w + src_offset + k]
        return
    n = count if isinstance(count, IRValue) else int(count)
    with for_range(0, n) as i:
        si = i + src_offset if not (isinstance(src_offset, int) and src_offset == 0) else i
        di = i + dst_offset if not (isinstance(dst_offset, int) and dst_offset == 0) else i
        if mask_fn is None:
            dst[di] = src[si]
        else:
            m = mask_fn(i)
            with if_(m):
                dst[di] = src[si]


class Pipeline:
    """``stages`` threadgroup buffers used round-robin. ``stage(k)`` is buffer
    ``(phase + k) % stages``; ``advance()`` moves the phase. The rotation
    happens while tracing (Python side): calling ``advance()`` inside a traced
    loop body rotates once, not per iteration — unroll with
    ``range_constexpr`` (or index buffers by the loop variable) for per-
    iteration rotation."""

    def __init__(self, dtype, size, stages=2):
        if stages < 2:
            raise EnigmaError(f"Pipeline: stages must be >= 2, got {stages}")
        self.dtype = dtype_name(dtype, "pipeline")
        self.size = size
        self.stages = stages
        self._phase = 0
        self._buffers = [threadgroup_alloc(self.dtype, size) for _ in range(stages)]

    def stage(self, k):
        if not 0 <= k < self.stages:
            raise EnigmaError(f"Pipeline.stage: k={k} out of range for stages={self.stages}")
        return self._buffers[(self._phase + k) % self.stages]

    def front(self):
        return self.stage(0)

    def back(self):
        return self.stage(self.stages - 1)

    def advance(self):
        self._phase = (self._phase + 1) % self.stages

    def swap(self):
        if self.stages != 2:
            raise EnigmaError("Pipeline.swap() is only valid for stages=2. Use advance() for >=3.")
        self.advance()


def pipeline(dtype, size, stages=2):
    """A multi-buffered threadgroup pipeline (see Pipeline)."""
    return Pipeline(dtype, size, stages)


def gemm(A_s, B_s, C, *, M, N, K, transpose_A=False, transpose_B=False, accum_dtype="float", use_simdgroup=None,
         lda=None, ldb=None, ldc=None, a_offset=0, b_offset=0, c_offset=0):
    """Accumulating ``C += A @ B`` for an M x N x K block.

    Row-major operands: A[m, k] is ``A_s[a_offset + m * lda + k]``
    (``k * lda + m`` with ``transpose_A``), B[k, n] is
    ``B_s[b_offset + k * ldb + n]`` (``n * ldb + k`` with ``transpose_B``),
    C[m, n] is ``C[c_offset + m * ldc + n]``. Leading dimensions default to
    the packed ones (K, N, N; M, K when transposed).

    Simdgroup path (M, N, K multiples of 8, C a Tensor): the 8x8 tiles of C
    are shared out over the simdgroups; each loads its C tile, accumulates
    with simdgroup_multiply_accumulate and stores it back. A barrier first
    makes A/B written by other threads visible. Scalar path: C is a register
    tensor (per thread) and every thread computes the whole block.
    """
    for n_, v in (("M", M), ("N", N), ("K", K)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise EnigmaError(f"gemm: {n_} must be a Python int, got {v!r}")
    if M <= 0 or N <= 0 or K <= 0:
        raise EnigmaError(f"gemm: M/N/K must be positive, got M={M}, N={N}, K={K}")
    acc = dtype_name(accum_dtype, "gemm")
    tiles_ok = M % 8 == 0 and N % 8 == 0 and K % 8 == 0
    simd_ok = acc in ("float", "half") and tiles_ok
    if use_simdgroup is None:
        use_simdgroup = simd_ok and isinstance(C, Tensor)
    if use_simdgroup and not simd_ok:
        raise EnigmaError(f"gemm: use_simdgroup=True but shape ({M}x{N}x{K}, elem={acc}) is not made of 8x8x8 tiles "
                          "(M, N, K multiples of 8, accum_dtype float or half)")
    lda = lda if lda is not None else (M if transpose_A else K)
    ldb = ldb if ldb is not None else (K if transpose_B else N)
    ldc = ldc if ldc is not None else N
    if use_simdgroup:
        if not isinstance(C, Tensor):
            raise EnigmaError("gemm: the simdgroup path stores into a Tensor C (device or threadgroup memory); "
                              "pass use_simdgroup=False to accumulate into a register_tensor")
        barrier()
        sg = simdgroup_index_in_threadgroup()
        nsg = simdgroups_per_threadgroup()
        tile = 0
        for mi in range(M // 8):
            for ni in range(N // 8):
                with if_(sg == tile % nsg):
                    c_org = c_offset + (mi * 8) * ldc + ni * 8
                    c = simdgroup_matrix_load(C, ldc, origin=c_org)
                    for ki in range(K // 8):
                        if transpose_A:
                            a = simdgroup_matrix_load(A_s, lda, origin=a_offset + (ki * 8) * lda + mi * 8,
                                                      transpose=True)
                        else:
                            a = simdgroup_matrix_load(A_s, lda, origin=a_offset + (mi * 8) * lda + ki * 8)
                        if transpose_B:
                            b = simdgroup_matrix_load(B_s, ldb, origin=b_offset + (ni * 8) * ldb + ki * 8,
                                                      transpose=True)
                        else:
                            b = simdgroup_matrix_load(B_s, ldb, origin=b_offset + (ki * 8) * ldb + ni * 8)
                        c = simdgroup_multiply_accumulate(a, b, c)
                    simdgroup_matrix_store(c, C, ldc, origin=c_org)
                tile += 1
        return
    if isinstance(C, Tensor):
        raise EnigmaError("gemm: the scalar path accumulates into a per-thread register_tensor((M, N), ...); "
                          "got a Tensor (use the simdgroup path for memory)")
    if tuple(getattr(C, "shape", ())) != (M, N):
        raise EnigmaError(f"gemm: register tensor shape {getattr(C, 'shape', None)} does not match (M={M}, N={N})")
    for m in range(M):
        for n in range(N):
            with for_range(0, K, init=[C[m, n]]) as (k, carry):
                ai = (k * lda + m if transpose_A else m * lda + k) + a_offset
                bi = (n * ldb + k if transpose_B else k * ldb + n) + b_offset
                a, b = A_s[ai], B_s[bi]
                if a.dtype != acc:
                    a = metal_cast(a, acc)
                if b.dtype != acc:
                    b = metal_cast(b, acc)
                carry[0] = carry[0] + a * b
            C[m, n] = carry[0]


__all__ = ["copy", "pipeline", "Pipeline", "gemm"]
