"""The cooperative kernels of the CPU benchmarks, written as a user writes
them for a GPU: block and row reductions by a threadgroup (simd reductions,
threadgroup partials, barriers), threadgroup atomics, a threadgroup scan and
GEMMs with simdgroup matrices or enigma.gemm."""
import enigma

NEG_BIG = -3.0e38    # below every finite input: the max's identity


def simd_threads():
    """(thread position in the grid, lane, simdgroup) of a 1-D kernel."""
    return (enigma.thread_position_in_grid, enigma.thread_index_in_simdgroup(),
            enigma.simdgroup_index_in_threadgroup())


def publish(s, red, lane, sg, writer=0):
    """Lane `writer` of each simdgroup stores its simdgroup's `s` in red[sg];
    then a barrier."""
    with enigma.if_(lane == writer):
        red[sg] = s
    enigma.barrier()


def partials_total(red, lane, simd=enigma.simd_sum, ident=0.0):
    """The simdgroups' partials red[0..simdgroups) combined by a simd op."""
    return simd(enigma.where(ident, red[lane], lane < enigma.simdgroups_per_threadgroup()))


def first_simdgroup_total(red, lane, sg, store):
    """The classic second stage: only simdgroup 0 combines the partials, and
    its lane 0 passes the total to `store`."""
    with enigma.if_(sg == 0):
        t = partials_total(red, lane)
        with enigma.if_(lane == 0):
            store(t)


def group_total(v, red, lane, sg, kind="sum"):
    """Every thread's share `v` combined over the threadgroup: simd reduction,
    one partial per simdgroup in threadgroup memory, the partials reduced by
    each simdgroup. Ends with a barrier, so `red` may be reused."""
    simd = enigma.simd_sum if kind == "sum" else enigma.simd_max
    publish(simd(v), red, lane, sg)
    t = partials_total(red, lane, simd, 0.0 if kind == "sum" else NEG_BIG)
    enigma.barrier()
    return t


def row_threads():
    """The queries of a kernel whose threadgroup walks one row: (row, thread
    index in the row's group, threads per group, lane, simdgroup, a 32-float
    threadgroup array for group_total)."""
    return (enigma.threadgroup_position_in_grid("x"), enigma.thread_index_in_threadgroup(),
            enigma.threads_per_threadgroup("x"), enigma.thread_index_in_simdgroup(),
            enigma.simdgroup_index_in_threadgroup(), enigma.threadgroup_alloc("float", 32))


@enigma.kernel
def e_softmax(X: enigma.f32, n: enigma.Scalar(enigma.u32), Y: enigma.f32):
    row, lid, nth, lane, sg, red = row_threads()
    with enigma.for_range(lid, n, nth, dtype="uint", init=[enigma.metal_cast(NEG_BIG, "float")]) as (i, m):
        x = X[row * n + i]
        m[0] = enigma.where(m[0], x, x > m[0])
    mx = group_total(m[0], red, lane, sg, "max")
    with enigma.for_range(lid, n, nth, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc):
        acc[0] = acc[0] + enigma.exp(X[row * n + i] - mx)
    inv = 1.0 / group_total(acc[0], red, lane, sg)
    with enigma.for_range(lid, n, nth, dtype="uint") as i:
        Y[row * n + i] = enigma.exp(X[row * n + i] - mx) * inv


@enigma.kernel
def e_layernorm(X: enigma.f32, G: enigma.f32, Bb: enigma.f32, n: enigma.Scalar(enigma.u32), Y: enigma.f32):
    row, lid, nth, lane, sg, red = row_threads()
    nf = enigma.metal_cast(n, "float")
    with enigma.for_range(lid, n, nth, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc):
        acc[0] = acc[0] + X[row * n + i]
    mean = group_total(acc[0], red, lane, sg) / nf
    with enigma.for_range(lid, n, nth, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc2):
        d = X[row * n + i] - mean
        acc2[0] = acc2[0] + d * d
    inv = enigma.rsqrt(group_total(acc2[0], red, lane, sg) / nf + 1e-5)
    with enigma.for_range(lid, n, nth, dtype="uint") as i:
        Y[row * n + i] = (X[row * n + i] - mean) * inv * G[i] + Bb[i]


@enigma.kernel
def e_histogram(X: enigma.u32, n: enigma.Scalar(enigma.u32), H: enigma.u32):
    # 256 bins: a threadgroup histogram with threadgroup atomics, merged into
    # the global one with device atomics.
    lid, nth = enigma.thread_index_in_threadgroup(), enigma.threads_per_threadgroup("x")
    tg, ntg = enigma.threadgroup_position_in_grid("x"), enigma.threadgroups_per_grid("x")
    loc = enigma.threadgroup_alloc("uint", 256)
    with enigma.for_range(lid, 256, nth, dtype="uint") as i:
        loc[i] = 0
    enigma.barrier()
    with enigma.for_range(tg * nth + lid, n, nth * ntg, dtype="uint") as i:
        enigma.atomic_fetch_add(loc, X[i] & 255, 1)
    enigma.barrier()
    with enigma.for_range(lid, 256, nth, dtype="uint") as i:
        enigma.atomic_fetch_add(H, i, loc[i])


@enigma.kernel
def e_block_sum(A: enigma.f32, Out: enigma.f32):
    tid, lane, sg = simd_threads()
    part = enigma.threadgroup_alloc("float", 32)
    publish(enigma.simd_sum(A[tid]), part, lane, sg)
    first_simdgroup_total(part, lane, sg, lambda t: Out.__setitem__(enigma.threadgroup_position_in_grid(), t))


def newton_rsqrt(x):
    # 1/sqrt(x) by Newton steps from a bit-trick guess (the math catalogue is
    # a separate change); 4 steps reach float precision.
    i = enigma.as_type(x, "uint")
    y = enigma.as_type(enigma.metal_cast(0x5F375A86, "uint") - (i >> 1), "float")
    for _ in range(4):
        y = y * (1.5 - 0.5 * x * y * y)
    return y


@enigma.kernel
def e_rmsnorm(X: enigma.f32, W: enigma.f32, n: enigma.Scalar(enigma.u32), Y: enigma.f32):
    row, lid, nth, lane, sg, red = row_threads()
    with enigma.for_range(lid, n, nth, dtype="uint", init=[enigma.metal_cast(0.0, "float")]) as (i, acc):
        x = X[row * n + i]
        acc[0] = acc[0] + x * x
    publish(enigma.simd_sum(acc[0]), red, lane, sg)
    first_simdgroup_total(red, lane, sg, lambda t: red.__setitem__(0, t))
    enigma.barrier()
    inv = newton_rsqrt(red[0] / enigma.metal_cast(n, "float") + 1e-6)
    with enigma.for_range(lid, n, nth, dtype="uint") as i:
        Y[row * n + i] = X[row * n + i] * inv * W[i]


@enigma.kernel
def e_scan(X: enigma.f32, Y: enigma.f32):
    # Inclusive prefix sum of each threadgroup's 1024 elements.
    tid, lane, sg = simd_threads()
    part = enigma.threadgroup_alloc("float", 32)
    s = enigma.simd_prefix_inclusive_sum(X[tid])
    publish(s, part, lane, sg, writer=31)
    with enigma.if_(sg == 0):
        part[lane] = enigma.simd_prefix_exclusive_sum(part[lane])
    enigma.barrier()
    Y[tid] = s + part[sg]


@enigma.kernel
def e_sgmm8(A: enigma.f32, B: enigma.f32, n: enigma.Scalar(enigma.u32), C: enigma.f32):
    # One simdgroup (a threadgroup of 32) per 8x8 tile of C, K in steps of 8.
    tx = enigma.threadgroup_position_in_grid("x")
    ty = enigma.threadgroup_position_in_grid("y")
    c0 = enigma.make_filled_simdgroup_matrix(0.0)
    with enigma.for_range(0, n, 8, dtype="uint", init=[c0]) as (k, acc):
        a = enigma.simdgroup_matrix_load(A, n, origin=ty * 8 * n + k)
        b = enigma.simdgroup_matrix_load(B, n, origin=k * n + tx * 8)
        acc[0] = enigma.simdgroup_multiply_accumulate(a, b, acc[0])
    enigma.simdgroup_matrix_store(acc[0], C, n, origin=ty * 8 * n + tx * 8)


SG_T = 32   # C tile per threadgroup of the tiled simdgroup GEMM (4 simdgroups, 2x2 tiles of 8x8 each)


@enigma.kernel
def e_sgmm_tiled(A: enigma.f32, B: enigma.f32, n: enigma.Scalar(enigma.u32), C: enigma.f32):
    # A GPU user's tiling: a 32x32 tile of C per threadgroup of 4 simdgroups,
    # each accumulating a 16x16 quarter (2x2 matrices) over K in steps of 8
    # straight from device memory.
    tx = enigma.threadgroup_position_in_grid("x")
    ty = enigma.threadgroup_position_in_grid("y")
    sg = enigma.simdgroup_index_in_threadgroup()
    r0 = ty * SG_T + (sg // 2) * 16
    c0 = tx * SG_T + (sg % 2) * 16
    z = enigma.make_filled_simdgroup_matrix(0.0)
    with enigma.for_range(0, n, 8, dtype="uint", init=[z, z, z, z]) as (k, acc):
        a0 = enigma.simdgroup_matrix_load(A, n, origin=r0 * n + k)
        a1 = enigma.simdgroup_matrix_load(A, n, origin=(r0 + 8) * n + k)
        b0 = enigma.simdgroup_matrix_load(B, n, origin=k * n + c0)
        b1 = enigma.simdgroup_matrix_load(B, n, origin=k * n + c0 + 8)
        acc[0] = enigma.simdgroup_multiply_accumulate(a0, b0, acc[0])
        acc[1] = enigma.simdgroup_multiply_accumulate(a0, b1, acc[1])
        acc[2] = enigma.simdgroup_multiply_accumulate(a1, b0, acc[2])
        acc[3] = enigma.simdgroup_multiply_accumulate(a1, b1, acc[3])
    enigma.simdgroup_matrix_store(acc[0], C, n, origin=r0 * n + c0)
    enigma.simdgroup_matrix_store(acc[1], C, n, origin=r0 * n + c0 + 8)
    enigma.simdgroup_matrix_store(acc[2], C, n, origin=(r0 + 8) * n + c0)
    enigma.simdgroup_matrix_store(acc[3], C, n, origin=(r0 + 8) * n + c0 + 8)


GEMM_T = 32   # enigma.gemm's tile: 32x32 of C per threadgroup, K steps of 32


@enigma.kernel
def e_tile_gemm(A: enigma.f32, B: enigma.f32, n: enigma.Scalar(enigma.u32), C: enigma.f32):
    # A and B tiles staged in threadgroup memory, enigma.gemm (32x32x32)
    # accumulating into a threadgroup C tile.
    T = GEMM_T
    gx = enigma.threadgroup_position_in_grid("x")
    gy = enigma.threadgroup_position_in_grid("y")
    lid = enigma.thread_index_in_threadgroup()
    nth = enigma.threads_per_threadgroup("x")
    As = enigma.threadgroup_alloc("float", T * T)
    Bs = enigma.threadgroup_alloc("float", T * T)
    Cs = enigma.threadgroup_alloc("float", T * T)
    with enigma.for_range(lid, T * T, nth, dtype="uint") as i:
        Cs[i] = 0.0
    with enigma.for_range(0, n, T, dtype="uint") as k0:
        enigma.barrier()
        with enigma.for_range(lid, T * T, nth, dtype="uint") as i:
            As[i] = A[(gy * T + i // T) * n + k0 + i % T]
            Bs[i] = B[(k0 + i // T) * n + gx * T + i % T]
        enigma.gemm(As, Bs, Cs, M=T, N=T, K=T)
    enigma.barrier()
    with enigma.for_range(lid, T * T, nth, dtype="uint") as i:
        C[(gy * T + i // T) * n + gx * T + i % T] = Cs[i]
