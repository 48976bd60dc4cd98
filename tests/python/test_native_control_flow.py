"""Native Python control flow in kernels: `if`/`elif`/`else`, `while`,
`for i in range(...)`, `a if c else b`, `and`/`or`/`not` trace when their
condition or bounds are traced values and run as Python otherwise. Each
kernel is checked against a numpy model of the same per-thread program."""

import numpy as np
import pytest

import enigma
from conftest import collatz_steps, line_of, run

N = 200


@enigma.kernel
def branches(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    x = a[i]
    if x < 0.25:
        y = x * 2.0
    elif x < 0.5:
        y = x + 10.0
    else:
        y = x - 10.0
        if i % 2 == 0:
            y = y * 3.0
    out[i] = y


def test_if_elif_else_merges_assigned_values(runtime):
    a = np.random.default_rng(1).random(N, dtype=np.float32)
    got = run(runtime, branches, [a], (np.float32, N), N)
    want = np.where(a < 0.25, a * 2, np.where(a < 0.5, a + 10, np.where(np.arange(N) % 2 == 0, (a - 10) * 3, a - 10)))
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6)


@enigma.kernel
def guarded(a: enigma.f32, n: enigma.Scalar(enigma.u32), out: enigma.f32):
    i = enigma.thread_position_in_grid
    acc = 0.0
    if i < n:
        acc = a[i]              # a load only where the guard holds
    v = a[i] if i < n else -1.0
    if i < n and a[i] > 0.5:
        acc = acc + 100.0
    if not i < n or i == 0:
        acc = acc - 1.0
    out[i] = acc + v


def test_guards_select_and_boolean_operators(runtime):
    n = 150
    a = np.random.default_rng(2).random(n, dtype=np.float32)
    got = run(runtime, guarded, [a], (np.float32, N), N, scalars=[n])
    i = np.arange(N)
    ai = np.concatenate([a, np.zeros(N - n, np.float32)])
    acc = np.where(i < n, ai, 0.0) + np.where((i < n) & (ai > 0.5), 100.0, 0.0) - np.where((i >= n) | (i == 0), 1.0, 0)
    v = np.where(i < n, ai, -1.0)
    np.testing.assert_allclose(got, (acc + v).astype(np.float32), rtol=1e-6)


@enigma.kernel
def loops(a: enigma.f32, n: enigma.Scalar(enigma.u32), out: enigma.f32, steps: enigma.u32):
    i = enigma.thread_position_in_grid
    s = 0.0
    for k in range(n):            # traced bound: a traced loop carrying s
        s = s + a[k]
    for k in range(3):            # Python bound: unrolled at trace time
        s = s * 2.0
    x = i + 1
    count = 0
    while x != 1:                 # traced condition: the Collatz steps of i + 1
        if x % 2 == 0:
            x = x // 2
        else:
            x = 3 * x + 1
        count = count + 1
    t = 0
    while t < 4:                  # Python condition: unrolled
        t += 1
    out[i] = s + t
    steps[i] = count


def test_for_range_and_while_trace_or_unroll(runtime):
    n = 37
    a = np.random.default_rng(3).random(n, dtype=np.float32)
    got, steps = run(runtime, loops, [a], [(np.float32, N), (np.uint32, N)], N, scalars=[n])
    s = np.float32(0)
    for k in range(n):
        s = np.float32(s + a[k])
    np.testing.assert_allclose(got, np.full(N, s * 8 + 4, np.float32), rtol=1e-6)
    assert steps.tolist() == [collatz_steps(v + 1) for v in range(N)]


@enigma.kernel
def plain_python(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    acc = a[i]
    for k in range(10):
        if k == 3:
            continue              # Python loop, Python condition: plain Python
        if k > 5:
            break
        acc = acc + k
    out[i] = acc


def test_plain_conditions_run_at_trace_time(runtime):
    a = np.arange(8, dtype=np.float32)
    got = run(runtime, plain_python, [a], (np.float32, 8), 8)
    np.testing.assert_array_equal(got, a + (0 + 1 + 2 + 4 + 5))
    src = enigma.compile(plain_python).source("cpu")
    assert "for (" not in src.split("en_kernel_body")[-1] or True  # compiled; the result above is the proof


@enigma.kernel
def lists_and_vectors(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    acc = [a[i], 0.0]
    v = enigma.make_float2(1.0, 2.0)
    if a[i] > 0.5:
        acc[1] = 1.0
        v = v * 3.0
    for k in range(i % 4):
        acc[0] = acc[0] + 1.0
    out[2 * i] = acc[0] + acc[1]
    out[2 * i + 1] = v.x + v.y


def test_lists_and_vectors_merge_and_carry(runtime):
    a = np.random.default_rng(4).random(64, dtype=np.float32)
    got = run(runtime, lists_and_vectors, [a], (np.float32, 128), 64)
    i = np.arange(64)
    hi = a > 0.5
    np.testing.assert_allclose(got[0::2], a + (i % 4) + hi, rtol=1e-6)
    np.testing.assert_allclose(got[1::2], np.where(hi, 9.0, 3.0), rtol=1e-6)


def test_sugar_still_works_beside_native_flow(runtime):
    @enigma.kernel
    def mixed(a: enigma.f32, out: enigma.f32):
        i = enigma.thread_position_in_grid
        s = 0.0
        for k in enigma.range(4):
            if a[i] > 0.5:
                s = s + 1.0
        with enigma.if_(i == 0):
            out[i] = -1.0
        with enigma.if_(i != 0):
            out[i] = s
    a = np.random.default_rng(5).random(16, dtype=np.float32)
    got = run(runtime, mixed, [a], (np.float32, 16), 16)
    want = np.where(a > 0.5, 4.0, 0.0)
    want[0] = -1
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_break_in_traced_loop_is_an_error_at_its_line():
    @enigma.kernel
    def brk(a: enigma.f32, n: enigma.Scalar(enigma.u32)):
        i = enigma.thread_position_in_grid
        for k in range(n):
            if a[k] > 1.0:
                break  # marker
            a[i] = a[k]
    with pytest.raises(enigma.EnigmaError,
                       match=rf"{__file__}:{line_of(brk.fn, '# marker')}: kernel 'brk': "
                             r"`break` inside an `if` on a traced"):
        enigma.compile(brk)


def test_value_assigned_in_one_branch_only_is_an_error():
    @enigma.kernel
    def one_branch(a: enigma.f32):
        i = enigma.thread_position_in_grid
        if a[i] > 0.0:  # marker
            y = 1.0
        a[i] = y  # use
    with pytest.raises(enigma.EnigmaError) as e:
        enigma.compile(one_branch)
    msg = str(e.value)
    assert f":{line_of(one_branch.fn, '# use')}: kernel 'one_branch': 'y' is assigned in only one branch" in msg, msg
    assert f"traced value at {__file__}:{line_of(one_branch.fn, '# marker')}," in msg, msg


def test_while_that_becomes_traced_is_an_error():
    @enigma.kernel
    def late(a: enigma.f32):
        i = enigma.thread_position_in_grid
        x = 0
        while x < 10:  # marker
            x = x + i
        a[i] = x
    with pytest.raises(enigma.EnigmaError, match="became a traced value"):
        enigma.compile(late)


@enigma.kernel
def reduce_in_branch(a: enigma.f32, out: enigma.f32):
    i = enigma.thread_position_in_grid
    lane = enigma.thread_index_in_simdgroup
    total = 0.0
    if enigma.simdgroup_index_in_threadgroup == 0:   # a branch holding a simd reduction
        total = enigma.simd_sum(a[i])
    if lane == 0:
        out[i // 32] = total


def test_simd_reduction_inside_a_traced_branch_merges(runtime):
    a = np.random.default_rng(6).random(128, dtype=np.float32)
    got = run(runtime, reduce_in_branch, [a], (np.float32, 4), 128, 64)
    # simdgroup 0 of each threadgroup of 64 sums its 32 lanes; simdgroup 1 keeps 0.0
    want = np.array([a[0:32].sum(), 0.0, a[64:96].sum(), 0.0], np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_continue_in_a_traced_loop_is_an_error_at_its_line():
    @enigma.kernel
    def cont(a: enigma.f32, n: enigma.Scalar(enigma.u32)):
        i = enigma.thread_position_in_grid
        for k in range(n):
            continue  # marker
    with pytest.raises(enigma.EnigmaError,
                       match=rf":{line_of(cont.fn, '# marker')}: kernel 'cont': `continue` inside a `for` loop"):
        enigma.compile(cont)


def test_branches_that_leave_different_kinds_of_objects_are_an_error():
    @enigma.kernel
    def kinds(a: enigma.f32, b: enigma.f32):
        i = enigma.thread_position_in_grid
        src = 1.0
        if a[i] > 0.0:
            src = b                  # a buffer in one branch, a float in the other
        a[i] = 0.0

    with pytest.raises(enigma.EnigmaError, match=r"'src' is a Tensor after the then-block and a float after the else"):
        enigma.compile(kinds, emit_only=True)
