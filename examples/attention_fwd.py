"""Attention forward, O = softmax(Q K^T * scale [+ causal mask]) V, for
bfloat16 Q, K, V of shape (batch * heads, seq, D), written with simdgroup
matrices and threadgroup memory in one pass over the keys (online softmax,
as in FlashAttention).

Each threadgroup of 4 simdgroups takes 64 query rows of one head; each
simdgroup 16 of them, whose Q tiles it keeps in registers. The keys and
values go through threadgroup memory 32 rows at a time. For each block:

1. every simdgroup computes its 16 x 32 scores S = Q K^T as simdgroup
   matrices (two 8-row tiles sharing each K tile: one tensor-core product
   on CUDA) and stores them to its own scratch in threadgroup memory;
2. two lanes per row read the row's scores, scale them (log2 domain),
   apply the causal mask, and update the row's running maximum m and sum l:
   p = 2^(s - m), written to threadgroup memory as bfloat;
3. the output accumulators (16 x D, in registers) are rescaled by
   2^(m_old - m_new) through the same scratch (the language has no
   element access to a simdgroup matrix), then O += P V.

At the end each row is divided by its sum and written as bfloat. Everything
stays within 32 KiB of threadgroup memory (every device offers that).
`seq` must be a multiple of 64 (pad the keys with masked rows otherwise);
D is 64 or 128.

On an NVIDIA GPU the products run on the tensor cores; on the CPU the same
kernel runs exactly.

    python examples/attention_fwd.py [HEADS SEQ D [causal]]
"""
import math
import sys

import numpy as np

import enigma

BQ, BKV, SG_ROWS = 64, 32, 16       # query rows per threadgroup, keys per block, rows per simdgroup
THREADS = 128                        # 4 simdgroups
LOG2E = 1.4426950408889634
NEG_BIG = -1.0e30                    # the running max before any key: finite, so 2^(m_old - m) is 0, never NaN


def make_attention(d: int, causal: bool):
    """The kernel for head dimension `d` (64 or 128), causal or not."""
    if d not in (64, 128):
        raise ValueError(f"attention_fwd: head dimension D={d} must be 64 or 128")
    ld = d + 8                        # padded rows: the 8 rows of a tile in different banks
    lds, ldp = BKV + 4, BKV + 8       # score (float) and probability (bfloat) scratch rows
    dt = d // 8                       # 8-wide tiles across D

    @enigma.kernel
    def attention_fwd(Q: enigma.bf16, K: enigma.bf16, V: enigma.bf16, seq: enigma.Scalar(enigma.u32),
                      scale: enigma.Scalar(enigma.f32), O: enigma.bf16):
        qb = enigma.threadgroup_position_in_grid("x")            # block of 64 query rows
        head = enigma.threadgroup_position_in_grid("y")
        sg = enigma.simdgroup_index_in_threadgroup()
        lane = enigma.thread_index_in_simdgroup()
        kv = enigma.threadgroup_alloc("bfloat", 2 * BKV * ld)    # K block, then V block; first Q
        ss = enigma.threadgroup_alloc("float", 4 * SG_ROWS * lds)
        ps = enigma.threadgroup_alloc("bfloat", 4 * SG_ROWS * ldp)
        rowm = enigma.threadgroup_alloc("float", BQ)
        rowl = enigma.threadgroup_alloc("float", BQ)
        rowa = enigma.threadgroup_alloc("float", BQ)
        base = head * seq * d                                      # this head's rows
        q0 = qb * BQ
        s_org = sg * SG_ROWS * lds
        p_org = sg * SG_ROWS * ldp
        r = lane // 2                                              # the row this lane updates, with its partner
        h = lane % 2                                               # which half of the block's keys
        qrow = q0 + sg * SG_ROWS + r
        c = scale * LOG2E

        # Q's 64 rows into threadgroup memory (16 per simdgroup), then into registers.
        enigma.async_copy_wait(enigma.async_copy_2d_d2t(kv, sg * SG_ROWS * ld, ld, Q, base + (q0 + sg * SG_ROWS) * d,
                                                        d, d, SG_ROWS))
        enigma.barrier()
        qt = [enigma.simdgroup_matrix_load(kv, ld, origin=(sg * SG_ROWS + i * 8) * ld + kk * 8)
              for i in range(2) for kk in range(dt)]
        with enigma.if_(h == 0):
            rowm[sg * SG_ROWS + r] = NEG_BIG
            rowl[sg * SG_ROWS + r] = 0.0
        enigma.barrier()

        blocks = (q0 + BQ) // BKV if causal else seq // BKV
        zero = enigma.make_filled_simdgroup_matrix(0.0, "float")
        with enigma.for_range(0, blocks, 1, dtype="uint", init=[zero] * (2 * dt)) as (t, acc):
            k0 = t * BKV
            # This block's K and V rows (8 each per simdgroup).
            ek = enigma.async_copy_2d_d2t(kv, sg * 8 * ld, ld, K, base + (k0 + sg * 8) * d, d, d, 8)
            ev = enigma.async_copy_2d_d2t(kv, (BKV + sg * 8) * ld, ld, V, base + (k0 + sg * 8) * d, d, d, 8)
            enigma.async_copy_wait([ek, ev])
            enigma.barrier()
            # 1. S = Q K^T: K tiles loaded transposed, shared by the two 8-row halves.
            for j in range(BKV // 8):
                s0, s1 = zero, zero
                for kk in range(dt):
                    kt = enigma.simdgroup_matrix_load(kv, ld, origin=j * 8 * ld + kk * 8, transpose=True)
                    s0 = enigma.simdgroup_multiply_accumulate(qt[kk], kt, s0)
                    s1 = enigma.simdgroup_multiply_accumulate(qt[dt + kk], kt, s1)
                enigma.simdgroup_matrix_store(s0, ss, lds, origin=s_org + j * 8)
                enigma.simdgroup_matrix_store(s1, ss, lds, origin=s_org + 8 * lds + j * 8)
            enigma.simd_barrier()
            # 2. The row's new maximum and sum; P = 2^(s - m) as bfloat.
            half = BKV // 2
            srow = s_org + r * lds + h * half
            mx = NEG_BIG
            for e in range(half):
                v = ss[srow + e] * c
                if causal:
                    v = enigma.where(v, -math.inf, k0 + h * half + e > qrow)
                ss[srow + e] = v
                mx = enigma.fmax(mx, v)
            mx = enigma.fmax(mx, enigma.simd_shuffle_xor(mx, 1))
            m_old = rowm[sg * SG_ROWS + r]
            m_new = enigma.fmax(m_old, mx)
            total = 0.0
            for e in range(half):
                p = enigma.exp2(ss[srow + e] - m_new)
                ps[p_org + r * ldp + h * half + e] = p
                total = total + p
            total = total + enigma.simd_shuffle_xor(total, 1)
            alpha = enigma.exp2(m_old - m_new)
            with enigma.if_(h == 0):
                rowm[sg * SG_ROWS + r] = m_new
                rowl[sg * SG_ROWS + r] = rowl[sg * SG_ROWS + r] * alpha + total
                rowa[sg * SG_ROWS + r] = alpha
            enigma.simd_barrier()
            # 3. O = O * alpha (per row, through the scratch, BKV columns at a time), then O += P V.
            out = list(acc)
            for c0 in range(0, dt, BKV // 8):
                for i in range(2):
                    for j in range(BKV // 8):
                        enigma.simdgroup_matrix_store(out[i * dt + c0 + j], ss, lds,
                                                      origin=s_org + i * 8 * lds + j * 8)
                enigma.simd_barrier()
                a = rowa[sg * SG_ROWS + r]
                for e in range(half):
                    ss[srow + e] = ss[srow + e] * a
                enigma.simd_barrier()
                for i in range(2):
                    for j in range(BKV // 8):
                        out[i * dt + c0 + j] = enigma.simdgroup_matrix_load(ss, lds, origin=s_org + i * 8 * lds + j * 8)
                enigma.simd_barrier()
            pt = [enigma.simdgroup_matrix_load(ps, ldp, origin=p_org + i * 8 * ldp + kk * 8)
                  for i in range(2) for kk in range(BKV // 8)]
            for j in range(dt):
                for kk in range(BKV // 8):
                    vt = enigma.simdgroup_matrix_load(kv, ld, origin=(BKV + kk * 8) * ld + j * 8)
                    out[j] = enigma.simdgroup_multiply_accumulate(pt[kk], vt, out[j])
                    out[dt + j] = enigma.simdgroup_multiply_accumulate(pt[BKV // 8 + kk], vt, out[dt + j])
            for i in range(2 * dt):
                acc[i] = out[i]
            enigma.barrier()                                       # K/V are read: the next block may overwrite

        # O / l, as bfloat, through the scratch BKV columns at a time.
        inv = 1.0 / rowl[sg * SG_ROWS + r]
        orow = base + qrow * d
        for c0 in range(0, dt, BKV // 8):
            for i in range(2):
                for j in range(BKV // 8):
                    enigma.simdgroup_matrix_store(acc[i * dt + c0 + j], ss, lds, origin=s_org + i * 8 * lds + j * 8)
            enigma.simd_barrier()
            for e in range(BKV // 2):
                O[orow + c0 * 8 + h * (BKV // 2) + e] = ss[s_org + r * lds + h * (BKV // 2) + e] * inv
            enigma.simd_barrier()

    return attention_fwd


def launch_shape(bh: int, seq: int):
    """grid (in threads) and threadgroup size."""
    return (seq // BQ * THREADS, bh, 1), (THREADS, 1, 1)


def reference(q, k, v, causal):
    """float64 attention of float64 copies of the inputs."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
    if causal:
        n = s.shape[-1]
        s = np.where(np.triu(np.ones((n, n), bool), 1), -np.inf, s)
    s = np.exp(s - s.max(-1, keepdims=True))
    return (s / s.sum(-1, keepdims=True)) @ v


def main(argv) -> int:
    import ml_dtypes
    heads, seq, d = (int(a) for a in argv[1:4]) if len(argv) > 3 else (2, 128, 64)
    causal = len(argv) > 4 and argv[4] == "causal"
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((heads, seq, d)).astype(ml_dtypes.bfloat16) for _ in range(3))
    ck = enigma.compile(make_attention(d, causal))
    rt = enigma.MetalRuntime()
    grid, threads = launch_shape(heads, seq)
    raw = rt.execute(ck, [q, k, v], q.size * 2, grid, threads, scalars=[seq, 1.0 / math.sqrt(d)])
    o = np.frombuffer(raw, ml_dtypes.bfloat16).reshape(q.shape).astype(np.float64)
    ref = reference(q, k, v, causal)
    err = float(np.abs(o - ref).max())
    ok = err < 2e-2
    print(f"attention_fwd: heads={heads} seq={seq} D={d}{' causal' if causal else ''} on {rt.device}: "
          f"{'OK' if ok else 'MISMATCH'} (max abs error {err:.1e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
