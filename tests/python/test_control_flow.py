"""for_range (with and without carried values), if_, while_, range_constexpr,
and the errors for values that escape their region."""

import numpy as np
import pytest

import enigma
from conftest import collatz_steps, line_of, run


def compile_error_at(kernel, marker, match=None):
    """Compiling `kernel` raises an EnigmaError (matching `match`) that names
    this file's line holding `marker`; returns the message."""
    with pytest.raises(enigma.EnigmaError, match=match) as e:
        enigma.compile(kernel, emit_only=True)
    msg = str(e.value)
    assert f"test_control_flow.py:{line_of(kernel.fn, marker)}" in msg, msg
    return msg


# --------------------------------------------------------------------------
# for_range

@enigma.kernel
def loops(a: enigma.f32, n: enigma.Scalar(enigma.i32), step: enigma.Scalar(enigma.i32),
          o_plain: enigma.f32, o_carry: enigma.f32, o_count: enigma.u32, o_neg: enigma.i32, o_dyn: enigma.f32,
          o_nested: enigma.f32, o_dstep: enigma.i32, o_types: enigma.i64):
    t = enigma.thread_position_in_grid
    # no init: binds the induction variable
    with enigma.for_range(0, 4) as i:
        o_plain[t * 4 + i] = a[t] * metal_float(i)
    # several carried values of different dtypes
    with enigma.for_range(0, n, init=[0.0, 1.0, 0]) as (i, c):
        c[0] = c[0] + a[i]
        c[1] = c[1] * 2.0
        c[2] = c[2] + 1
    o_carry[t * 2] = c[0] + metal_float(t)
    o_carry[t * 2 + 1] = c[1]
    o_count[t] = c[2]
    # negative step: i = 10, 7, 4, 1
    with enigma.for_range(10, 0, -3, init=[0]) as (i, c2):
        c2[0] = c2[0] * 100 + i
    o_neg[t] = c2[0]
    # dynamic bounds from the thread id and a Scalar
    with enigma.for_range(t, n, init=[0.0]) as (i, s):
        s[0] = s[0] + a[i]
    o_dyn[t] = s[0]
    # nested loops, both carrying: sum over i < t+1, j < i of a[j]
    with enigma.for_range(0, t + 1, init=[0.0]) as (i, outer):
        with enigma.for_range(0, i, init=[0.0]) as (j, inner):
            inner[0] = inner[0] + a[j]
        outer[0] = outer[0] + inner[0]
    o_nested[t] = outer[0]
    # dynamic (negative or positive) step from a Scalar: count the iterations from 20 towards 0
    with enigma.for_range(20, 0, step, init=[0]) as (i, k):
        k[0] = k[0] + 1
    with enigma.for_range(0, 20, 0 - step, init=[0]) as (i, k2):
        k2[0] = k2[0] + 1
    o_dstep[t * 2] = k[0]
    o_dstep[t * 2 + 1] = k2[0]
    # dtype= sets the loop variable's dtype
    with enigma.for_range(0, 3, dtype="long", init=[enigma.metal_cast(0, "long")]) as (i, w):
        w[0] = w[0] + (i << 40)
    o_types[t] = w[0]


def metal_float(v):
    return enigma.metal_cast(v, "float")


def test_for_range_forms(runtime):
    n_threads = 6
    a = np.arange(1, 9, dtype=np.float32)  # 8 values
    n = 5
    step = -4
    outs = run(runtime, loops, [a], [(np.float32, 4 * n_threads), (np.float32, 2 * n_threads),
                                    (np.uint32, n_threads), (np.int32, n_threads), (np.float32, n_threads),
                                    (np.float32, n_threads), (np.int32, 2 * n_threads), (np.int64, n_threads)],
               n_threads, scalars=[n, step])
    o_plain, o_carry, o_count, o_neg, o_dyn, o_nested, o_dstep, o_types = outs
    t = np.arange(n_threads)
    assert np.array_equal(o_plain.reshape(n_threads, 4), a[:n_threads, None] * np.arange(4)[None, :])
    carry = o_carry.reshape(n_threads, 2)
    assert np.array_equal(carry[:, 0], a[:n].sum() + t)
    assert np.array_equal(carry[:, 1], np.full(n_threads, 2.0 ** n))
    assert o_count.tolist() == [n] * n_threads
    assert o_neg.tolist() == [10070401] * n_threads          # ((10*100+7)*100+4)*100+1
    assert o_dyn.tolist() == [a[k:n].sum() for k in range(n_threads)]
    assert o_nested.tolist() == [sum(a[:j].sum() for j in range(k + 1)) for k in range(n_threads)]
    assert o_dstep.reshape(n_threads, 2).tolist() == [[5, 5]] * n_threads  # 20,16,12,8,4 and 0,4,...,16
    assert o_types.tolist() == [(1 << 40) + (2 << 40)] * n_threads


def test_for_range_typing():
    seen = {}

    @enigma.kernel
    def loop_types(n: enigma.Scalar(enigma.u32), out: enigma.f32):
        with enigma.for_range(0, 3) as i:
            seen["default"] = i.dtype
        with enigma.for_range(0, n, dtype="uint") as i:
            seen["uint"] = i.dtype
        with enigma.for_range(0, 3, 1, "i16") as i:       # dtype positionally
            seen["i16"] = i.dtype
        with enigma.for_range(0, 3, init=[]) as (i, c):  # empty init still binds (i, carry)
            seen["empty"] = len(c)
        with enigma.for_range(0, 4, init=[0.0, 0]) as (i, c):
            c[1] = c[1] + 1
            seen["carry"] = (c[0].dtype, c[1].dtype, len(c), c[-1].dtype)
        seen["after"] = (c[0].dtype, c[1].dtype)
        out[0] = c[0]

    enigma.compile(loop_types, emit_only=True)
    assert seen == {"default": "int", "uint": "uint", "i16": "short", "empty": 0,
                    "carry": ("float", "uint", 2, "uint"), "after": ("float", "uint")}


# --------------------------------------------------------------------------
# if_

@enigma.kernel
def branches(a: enigma.i32, o_one: enigma.i32, o_two: enigma.i32, o_else: enigma.i32, o_loop: enigma.i32):
    t = enigma.thread_position_in_grid
    x = a[t]
    o_one[t] = 7
    with enigma.if_(x > 0):                       # one-armed
        o_one[t] = x * 10
    with enigma.if_(enigma.cmp_eq(x % 2, 0)) as (then_, else_):
        with then_:
            o_two[t] = 1
        with else_:
            o_two[t] = 2
    with enigma.if_(x >= 3) as (then_, else_):    # else-only
        with else_:
            o_else[t] = -x
    with enigma.for_range(0, 6, init=[0]) as (i, c):   # if_ inside a loop, storing per iteration
        with enigma.if_(enigma.cmp_lt(i, x)):
            o_loop[t * 6 + i] = i + 100
        c[0] = c[0] + enigma.where(0, 1, enigma.cmp_lt(i, x))
    o_loop[t * 6 + 5] = c[0]


def test_if_forms(runtime):
    a = np.array([-3, 0, 1, 2, 3, 4, 5, -8], np.int32)
    n = a.size
    o_one, o_two, o_else, o_loop = run(runtime, branches, [a], [(np.int32, n)] * 3 + [(np.int32, 6 * n)], n)
    assert o_one.tolist() == [x * 10 if x > 0 else 7 for x in a]
    assert o_two.tolist() == [1 if x % 2 == 0 else 2 for x in a]      # C remainder: -3 % 2 == -1 -> odd
    assert o_else.tolist() == [0 if x >= 3 else -x for x in a]
    loop = o_loop.reshape(n, 6)
    for k, x in enumerate(a):
        want = [i + 100 if i < x else 0 for i in range(5)] + [min(max(int(x), 0), 6)]
        assert loop[k].tolist() == want, (x, loop[k])


def test_if_misuse_is_an_error():
    @enigma.kernel
    def stray_code(a: enigma.i32, out: enigma.i32):
        with enigma.if_(a[0] > 0) as (then_, else_):
            with then_:
                out[0] = 1
            out[1] = 2  # STRAY
            with else_:
                out[0] = 3

    with pytest.raises(enigma.EnigmaError, match="belongs to no branch") as e:
        enigma.compile(stray_code, emit_only=True)
    assert "stray_code" in str(e.value)

    @enigma.kernel
    def non_bool_condition(a: enigma.i32, out: enigma.i32):
        with enigma.if_(a[0]):
            out[0] = 1

    with pytest.raises(enigma.EnigmaError, match="bool"):
        enigma.compile(non_bool_condition, emit_only=True)


# --------------------------------------------------------------------------
# while_

@enigma.kernel
def whiles(a: enigma.u32, limit: enigma.Scalar(enigma.u32), counter: enigma.u32, steps: enigma.u32,
           fin: enigma.u32):
    t = enigma.thread_position_in_grid
    # reference form: no carried values; the condition re-reads memory the body updates
    counter[t] = a[t]
    with enigma.while_(lambda: enigma.cmp_ult(counter[t], limit)):
        counter[t] = counter[t] + 3
        with enigma.if_(enigma.cmp_eq(counter[t] % 2, 0)):
            counter[t] = counter[t] + 1
    # carried form: Collatz steps of a[t] + 1
    with enigma.while_(lambda c: enigma.cmp_ne(c[0], 1), init=[a[t] + 1, 0]) as c:
        c[0] = enigma.where(c[0] * 3 + 1, c[0] / 2, enigma.cmp_eq(c[0] % 2, 0))
        c[1] = c[1] + 1
    steps[t] = c[1]
    fin[t] = c[0]


def test_while_forms(runtime):
    a = np.array([0, 1, 5, 26, 40, 97, 100, 6], np.uint32)
    limit = 40
    n = a.size
    counter, steps, fin = run(runtime, whiles, [a], [(np.uint32, n)] * 3, n, scalars=[limit])
    want = []
    for x in a.tolist():
        while x < limit:
            x += 3
            if x % 2 == 0:
                x += 1
        want.append(x)
    assert counter.tolist() == want
    assert steps.tolist() == [collatz_steps(int(x) + 1) for x in a]
    assert fin.tolist() == [1] * n


# --------------------------------------------------------------------------
# range_constexpr

def test_range_constexpr_unrolls(runtime):
    @enigma.kernel
    def unrolled(a: enigma.f32, out: enigma.f32):
        t = enigma.thread_position_in_grid
        acc = a[t]
        for k in enigma.range_constexpr(1, 8, 3):     # k = 1, 4, 7 at trace time
            acc = acc * 2.0 + float(k)
            out[t * 4 + k // 3] = acc
        for k in enigma.range_constexpr(2):
            out[t * 4 + 3] = out[t * 4 + 3] + metal_float(k + 1)

    ck = enigma.compile(unrolled)
    assert " for " not in ck.ir_source            # no loop op: unrolled at trace time
    a = np.array([1.0, -2.0], np.float32)
    got = run(runtime, ck, [a], (np.float32, 8), 2).reshape(2, 4)
    for r, x in zip(got, a):
        v1 = x * 2 + 1
        v2 = v1 * 2 + 4
        v3 = v2 * 2 + 7
        assert r.tolist() == [v1, v2, v3, 3.0]
    assert list(enigma.range_constexpr(3)) == [0, 1, 2]
    with pytest.raises(enigma.EnigmaError, match="1-3 arguments"):
        enigma.range_constexpr()
    with pytest.raises(enigma.EnigmaError, match="1-3 arguments"):
        enigma.range_constexpr(1, 2, 3, 4)


# --------------------------------------------------------------------------
# errors: escaping values, carry misuse, bool(traced)

def test_value_escaping_a_loop_is_an_error():
    @enigma.kernel
    def escape_loop(a: enigma.f32, out: enigma.f32):
        with enigma.for_range(0, 4) as i:
            v = a[i] * 2.0
        out[0] = v  # ESCAPE

    msg = compile_error_at(escape_loop, '# ESCAPE')
    assert "escape_loop" in msg and "region" in msg


def test_value_escaping_an_if_is_an_error():
    @enigma.kernel
    def escape_if(a: enigma.f32, out: enigma.f32):
        with enigma.if_(a[0] > 0.0):
            v = a[1] + 1.0
        out[0] = v * 3.0  # ESCAPE

    compile_error_at(escape_if, '# ESCAPE')


def test_loop_variable_escaping_is_an_error():
    @enigma.kernel
    def escape_iv(out: enigma.i32):
        with enigma.for_range(0, 4) as i:
            out[i] = i
        out[5] = i  # ESCAPE

    compile_error_at(escape_iv, '# ESCAPE')


def test_value_escaping_a_while_is_an_error():
    @enigma.kernel
    def escape_while(a: enigma.u32, out: enigma.u32):
        out[0] = a[0]
        with enigma.while_(lambda: enigma.cmp_ult(out[0], 10)):
            v = out[0] + 1
            out[0] = v
        out[1] = v  # ESCAPE

    compile_error_at(escape_while, '# ESCAPE')


def test_assigning_carry_after_the_loop_is_an_error():
    @enigma.kernel
    def carry_after(a: enigma.f32, out: enigma.f32):
        with enigma.for_range(0, 4, init=[0.0]) as (i, c):
            c[0] = c[0] + a[i]
        c[0] = 1.0  # AFTER
        out[0] = c[0]

    compile_error_at(carry_after, '# AFTER', match="Cannot assign to carry")


def test_carry_dtype_mismatch_is_an_error():
    @enigma.kernel
    def carry_float_into_int(a: enigma.f32, out: enigma.f32):
        with enigma.for_range(0, 4, init=[0]) as (i, c):
            c[0] = c[0] + a[i]
        out[0] = c[0]

    with pytest.raises(enigma.EnigmaError, match="init"):
        enigma.compile(carry_float_into_int, emit_only=True)


def test_bool_of_traced_value_in_a_helper_is_an_error():
    # Native `if`/`and` on traced values trace in a kernel body (test_native_control_flow.py);
    # a helper function the kernel calls runs as plain Python, so it names the with-block forms.
    def helper_if(a, out):
        if a[0] > 0.0:  # PYIF
            out[0] = 1.0

    @enigma.kernel
    def python_if(a: enigma.f32, out: enigma.f32):
        helper_if(a, out)

    with pytest.raises(enigma.EnigmaError) as e:
        enigma.compile(python_if, emit_only=True)
    msg = str(e.value)
    assert "if_" in msg and "where" in msg and "helper" in msg, msg
    assert f"test_control_flow.py:{line_of(helper_if, '# PYIF')}" in msg, msg

    def helper_and(a):
        return (a[0] > 0.0) and (a[1] > 0.0)

    @enigma.kernel
    def python_and(a: enigma.f32, out: enigma.f32):
        out[0] = enigma.where(0.0, 1.0, helper_and(a))

    with pytest.raises(enigma.EnigmaError, match="truth value"):
        enigma.compile(python_and, emit_only=True)


def test_control_flow_outside_a_kernel():
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        with enigma.for_range(0, 4):
            pass
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        with enigma.if_(True):
            pass
    with pytest.raises(enigma.EnigmaError, match="inside @enigma.kernel"):
        with enigma.while_(lambda: True):
            pass


def test_negative_literal_with_unsigned_loop_variable_is_an_error():
    @enigma.kernel
    def uint_countdown(out: enigma.u32):
        with enigma.for_range(10, 0, -1, dtype="uint") as i:
            out[i] = i

    with pytest.raises(enigma.EnigmaError, match="negative.*unsigned") as e:
        enigma.compile(uint_countdown, emit_only=True)
    assert "uint_countdown" in str(e.value)
