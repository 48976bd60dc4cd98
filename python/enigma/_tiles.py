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

    Simdgroup path (M, N, K multiples of 8, C a Tensor): blocks of the 8x8
    tiles of C (2x2 tiles when there are 16 tiles or more) are shared out
    over the simdgroups; each loads its block, accumulates it with
    simdgroup_multiply_accumulate in a loop over K and stores it back. A
    barrier first makes A/B written by other threads visible. Scalar path: C is a register
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
        mt, nt = M // 8, N // 8
        # Each simdgroup takes blocks of up to 2x2 tiles of C (single tiles
        # while that leaves fewer than 4 blocks, so small C still spreads
        # over the simdgroups) and accumulates them over K in a loop of
        # 8-deep steps: a block's products share their A and B tiles, and
        # the CPU keeps the block in registers for the whole loop. Every
        # tile still accumulates its products in k order.
        bm, bn = (2, 2) if mt * nt >= 16 else (1, 2) if mt * nt >= 8 and nt >= 2 else (1, 1)

        def a_tile(mi, k):
            if transpose_A:
                return simdgroup_matrix_load(A_s, lda, origin=a_offset + k * lda + mi * 8, transpose=True)
            return simdgroup_matrix_load(A_s, lda, origin=a_offset + (mi * 8) * lda + k)

        def b_tile(ni, k):
            if transpose_B:
                return simdgroup_matrix_load(B_s, ldb, origin=b_offset + (ni * 8) * ldb + k, transpose=True)
            return simdgroup_matrix_load(B_s, ldb, origin=b_offset + k * ldb + ni * 8)

        def products(mis, nis, k, cs):
            a = [a_tile(mi, k) for mi in mis]
            b = [b_tile(ni, k) for ni in nis]
            out = list(cs)
            for j in range(len(nis)):      # A tiles innermost: products sharing b side by side
                for i in range(len(mis)):
                    out[i * len(nis) + j] = simdgroup_multiply_accumulate(a[i], b[j], cs[i * len(nis) + j])
            return out

        def one_block(mis, nis):
            orgs = [c_offset + (mi * 8) * ldc + ni * 8 for mi in mis for ni in nis]
            cs = [simdgroup_matrix_load(C, ldc, origin=o) for o in orgs]
            if K == 8:
                cs = products(mis, nis, 0, cs)
            else:
                with for_range(0, K, 8, dtype="uint", init=cs) as (k, acc):
                    new = products(mis, nis, k, [acc[i] for i in range(len(cs))])
                    for i, v in enumerate(new):
                        acc[i] = v
                cs = [acc[i] for i in range(len(cs))]
            for o, c in zip(orgs, cs):
                simdgroup_matrix_store(c, C, ldc, origin=o)

        if bm > 1 or bn > 1:
            # Whole blocks: rounds of one block per simdgroup (block
            # b0 + sg), one copy of the code for all of them.
            nbm, nbn = mt // bm, nt // bn
            if mt % bm == 0 and nt % bn == 0:
                with for_range(0, nbm * nbn, nsg, dtype="uint") as b0:
                    blk = b0 + sg
                    with if_(blk < nbm * nbn):
                        mi0, ni0 = (blk // nbn) * bm, (blk % nbn) * bn
                        one_block([mi0 + i for i in range(bm)], [ni0 + j for j in range(bn)])
                return
        block = 0
        for mi0 in range(0, mt, bm):
            for ni0 in range(0, nt, bn):
                with if_(sg == block % nsg):
                    one_block(range(mi0, min(mi0 + bm, mt)), range(ni0, min(ni0 + bn, nt)))
                block += 1
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
