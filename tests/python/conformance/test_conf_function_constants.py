"""Function constants: function_constant(dtype, index) bound at dispatch with
constants={index: (type_name, value)} (reference 15); each set of values is a
specialised, cached compile; the MSL declares them at file scope."""
import numpy as np
import pytest

import enigma
from ._harness import Report, runtime

TYPES = [("float", "float", 2.5, np.float32), ("int", "i32", -7, np.int32), ("uint", "u32", 4000000000, np.uint32),
         ("bool", "i1", 1, np.bool_), ("half", "f16", 0.3, np.float16), ("short", "short", -300, np.int16),
         ("uchar", "u8", 255, np.uint8), ("long", "i64", -(2 ** 40), np.int64)]


@enigma.kernel
def constants_kernel(A: enigma.f32, F: enigma.f32, I: enigma.i32, U: enigma.u32, B: enigma.b1, H: enigma.f16,
                     S: enigma.i16, C: enigma.u8, L: enigma.i64):
    i = enigma.thread_position_in_grid
    outs = [F, I, U, B, H, S, C, L]
    for k, (dtype, _, _, _) in enumerate(TYPES):
        outs[k][i] = enigma.function_constant(dtype, k)
    scale = enigma.function_constant("float", 0)       # the same constant again
    F[i + 4] = A[i] * scale


def run_with(values, n=4):
    a = np.arange(n, dtype=np.float32)
    consts = {k: (tag, v) for k, ((_, tag, _, _), v) in enumerate(zip(TYPES, values))}
    sizes = [8 * np.dtype(t[3]).itemsize * n for t in TYPES]
    return runtime().execute(enigma.compile(constants_kernel), [a], grid=(n, 1, 1), threads=(n, 1, 1),
                             output_sizes=sizes, constants=consts)


def test_values_of_every_type_and_specialisation_cache():
    ck = enigma.compile(constants_kernel)
    assert ck._core.function_constants == [(k, t[0]) for k, t in enumerate(TYPES)]
    msl = ck.metal_source
    head = msl[:msl.index("kernel void")]
    for k, (dtype, _, _, _) in enumerate(TYPES):
        assert f"constant {dtype} en_fc{k} [[function_constant({k})]];" in head
    rep = Report("function constants")
    for values in ([t[2] for t in TYPES], [-1.0, 5, 0, 0, -2.0, 7, 3, 9]):
        raws = run_with(values)
        for k, (dtype, _, _, npt) in enumerate(TYPES):
            got = np.frombuffer(raws[k], npt)[:4]
            want = np.array([values[k]] * 4).astype(npt)
            rep.add("function_constant", dtype, got == want, lambda m: f"{got[m]} != {want[m]}")
        scaled = np.frombuffer(raws[0], np.float32)[4:8]
        rep.add("function_constant", "float", scaled == np.arange(4, dtype=np.float32) * np.float32(values[0]),
                lambda m: f"{scaled}")
    rep.finish()
    ck2 = enigma.compile(constants_kernel)
    before = ck2._core.num_programs
    run2 = lambda vals: runtime().execute(ck2, [np.zeros(4, np.float32)], grid=(4, 1, 1), threads=(4, 1, 1),  # noqa
                                          output_sizes=[64] * 8, constants={k: (t[1], v) for k, (t, v) in
                                                                            enumerate(zip(TYPES, vals))})
    run2([t[2] for t in TYPES])
    run2([t[2] for t in TYPES])
    assert ck2._core.num_programs == before + 1          # same values: one specialised program
    run2([1.0] + [t[2] for t in TYPES[1:]])
    assert ck2._core.num_programs == before + 2          # new values: another
    cpu = ck.source("cpu", constants={k: (t[1], t[2]) for k, t in enumerate(TYPES)})
    assert "en_fc" not in cpu and "2.5f" in cpu


@enigma.kernel
def branchy(A: enigma.f32, Out: enigma.f32):
    i = enigma.thread_position_in_grid
    with enigma.if_(enigma.function_constant("bool", 3)) as (then_, else_):
        with then_:
            Out[i] = A[i] * 2.0
        with else_:
            Out[i] = A[i] + enigma.metal_cast(enigma.function_constant("int", 9), "float")


def test_prepare_and_control_flow():
    a = np.arange(8, dtype=np.float32)
    rt = runtime()
    ck = enigma.compile(branchy)
    p = rt.prepare(ck, [a], 32, constants={3: ("bool", True), 9: ("int", 0)})
    p.dispatch((8, 1, 1), (8, 1, 1))
    assert np.array_equal(np.frombuffer(p.read_output(), np.float32), a * 2)
    p.release()
    out = rt.execute(ck, [a], 32, (8, 1, 1), (8, 1, 1), constants={3: ("bool", 0), 9: ("int", 10)})
    assert np.array_equal(np.frombuffer(out, np.float32), a + 10)


@pytest.mark.parametrize("constants, message", [
    (None, r"uses function constant 3 \(bool\), but constants= gives it no value"),
    ({3: ("bool", 1)}, r"function constant 9 \(int\)"),
    ({3: ("bool", 1), 9: ("float", 1.0)}, r"constants\[9\]: kernel 'branchy' declares function constant 9 as int"),
    ({3: ("bool", 1), 9: ("int", 1), 4: ("int", 1)}, r"declares no function constant 4 \(it declares: 3 \(bool\), 9"),
    ({3: True, 9: ("int", 1)}, r"constants\[3\] must be \(type_name, value\) tuple, got True"),
    ({3: ("double", 1), 9: ("int", 1)}, r"constants\[3\]: unknown type 'double'. Expected one of \["),
    ({3: ("bool", 1), 9: ("int", 2 ** 40)}, r"function constant 9 \(int\) cannot hold"),
    ({3: ("bool", 1), 9: ("int", 1.5)}, r"function constant 9 \(int\) needs an integer"),
])
def test_dispatch_errors(constants, message):
    with pytest.raises(RuntimeError, match=message):
        runtime().execute(enigma.compile(branchy), [np.zeros(2, np.float32)], 8, (2, 1, 1), (2, 1, 1),
                          constants=constants)


def test_declaration_errors():
    @enigma.kernel
    def bad(Out: enigma.f32):
        with pytest.raises(enigma.EnigmaError, match=r"test_conf_function_constants.py:\d+.*already declared as float"):
            enigma.function_constant("float", 1)
            enigma.function_constant("int", 1)
        with pytest.raises(enigma.EnigmaError, match="other than bfloat"):
            enigma.function_constant("bfloat", 2)
        with pytest.raises(enigma.EnigmaError, match="Python int"):
            enigma.function_constant("int", enigma.thread_position_in_grid)
        with pytest.raises(enigma.EnigmaError, match="unknown dtype"):
            enigma.function_constant("double", 3)
        Out[0] = 1.0
    enigma.compile(bad, emit_only=True)
    with pytest.raises(enigma.EnigmaError, match="only be used inside"):
        enigma.function_constant("int", 0)
