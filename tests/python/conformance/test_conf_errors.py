"""Bad uses of the per-thread language raise EnigmaError at trace time, naming
the op, the dtypes and the user's file:line (SEMANTICS 3: nothing is
silently mapped)."""
import re

import pytest

import enigma
from ._harness import CHECKS

E = enigma
CASES = [
    # (what, call on the typed values in `c`, message pattern)
    ("float op on an int", lambda c: E.sqrt(c.i), r"sqrt: operand 1 must be a float.*got int.*metal_cast"),
    ("float op on a bool", lambda c: E.exp(c.b), r"exp: operand 1 must be a float.*got bool"),
    ("float op on an int vector", lambda c: E.sin(c.iv4), r"sin: .*got vec<4,int>"),
    ("float binary with an int", lambda c: E.fmin(c.f, c.i), r"fmin: operand 2 must be a float"),
    ("float predicate on an int", lambda c: E.isnan(c.u), r"isnan: .*got uint"),
    ("int op on a float", lambda c: E.popcount(c.f), r"popcount: .*integer.*got float"),
    ("int op on a half vector", lambda c: E.imin(c.hv2, c.hv2), r"imin: .*integer.*got vec<2,half>"),
    ("int op with a float literal", lambda c: E.add_sat(c.i, 1.5), r"add_sat: .*float literal"),
    ("abs of a bool", lambda c: E.abs(c.b), r"abs: .*float or integer.*got bool"),
    ("unary arity", lambda c: E.sqrt(c.f, c.f), r"sqrt: expects 1 argument\(s\) \(x\), got 2"),
    ("binary arity", lambda c: E.pow(c.f), r"pow: expects 2 argument\(s\) \(a, b\), got 1"),
    ("ternary arity", lambda c: E.clamp(c.f, c.f), r"clamp: expects 3 argument"),
    ("vector size mismatch", lambda c: E.fmax(c.v2, c.v3), r"fmax: vector sizes differ: vec<2,float> and vec<3,float>"),
    ("ternary size mismatch", lambda c: E.mix(c.v4, c.v4, c.v3), r"mix: vector sizes differ"),
    ("dot of scalars", lambda c: E.dot(c.f, c.f), r"dot: operand 1 must be a float vector, got float"),
    ("dot size mismatch", lambda c: E.dot(c.v2, c.v4), r"dot: vector sizes differ"),
    ("cross of 4-vectors", lambda c: E.cross(c.v4, c.v4), r"cross: .*float 3-vector, got vec<4,float>"),
    ("refract eta vector", lambda c: E.refract(c.v3, c.v3, c.v3), r"refract: operand 3 must be a scalar"),
    ("length of ints", lambda c: E.length(c.iv4), r"length: .*float vector.*vec<4,int>"),
    ("pack of a 3-vector", lambda c: E.pack_float_to_unorm4x8(c.v3), r"pack_float_to_unorm4x8: .*4-vector.*vec<3"),
    ("pack of a scalar", lambda c: E.pack_float_to_unorm2x16(c.f), r"pack_float_to_unorm2x16: .*2-vector"),
    ("unpack of a float", lambda c: E.unpack_unorm4x8_to_float(c.f), r"unpack_unorm4x8_to_float: .*integer scalar"),
    ("traced bit offset", lambda c: E.extract_bits(c.u, c.u, 4), r"extract_bits: offset must be a Python int"),
    ("traced bit count", lambda c: E.insert_bits(c.u, c.u, 0, c.i), r"insert_bits: bits must be a Python int"),
    ("float bit offset", lambda c: E.extract_bits(c.u, 1.0, 4), r"extract_bits: offset must be a Python int"),
    ("bit range too wide", lambda c: E.extract_bits(c.u, 30, 4), r"extract_bits: bit range offset=30, bits=4 does "
                                                                  r"not fit in 32 bits"),
    ("negative bit count", lambda c: E.insert_bits(c.u, c.u, 0, -1), r"insert_bits: bit range"),
    ("bits of a float", lambda c: E.extract_bits(c.f, 0, 4), r"extract_bits: .*integer.*got float"),
    ("traced vector lane", lambda c: E.vec_extract(c.v4, c.u), r"vec_extract: lane must be a Python int"),
    ("lane out of range", lambda c: c.v2.z, r"vec_extract: lane 2 is out of range for vec<2,float>"),
    ("make_vec arity", lambda c: E.make_vec(c.f), r"make_vec: expects 2, 3 or 4 scalars, got 1"),
    ("make_float3 arity", lambda c: E.make_float3(c.f, c.f), r"make_float3: expects 3 components, got 2"),
    ("literal overflow in make", lambda c: E.make_uchar2(300, 1), r"make_uchar2: .*300 does not fit in uchar"),
    ("as_type size", lambda c: E.as_type(c.v3, "ulong"), r"as_type: as_type needs types of the same size"),
    ("metal_cast to scalar", lambda c: E.metal_cast(c.v4, "int"), r"metal_cast: cannot convert vec<4,float> to int"),
    ("matmul of vectors", lambda c: E.matmul(c.v2, c.v2), r"matmul: needs a matrix"),
    ("transpose of a vector", lambda c: E.transpose(c.v4), r"transpose: .*matrix, got vec<4,float>"),
    ("where with int condition", lambda c: E.where(c.f, c.f, c.i), r"where: condition must be a bool"),
]


class Values:
    pass


@enigma.kernel
def misuse(F: enigma.f32, I: enigma.i32, U: enigma.u32, H: enigma.f16, Out: enigma.f32):
    t = enigma.thread_position_in_grid
    c = Values()
    c.f, c.i, c.u, c.h = F[t], I[t], U[t], H[t]
    c.b = c.f < 1.0
    c.v2, c.v3, c.v4 = E.make_float2(c.f, c.f), E.make_float3(c.f, c.f, c.f), E.make_float4(c.f, c.f, c.f, c.f)
    c.iv4 = E.make_int4(c.i, c.i, c.i, c.i)
    c.hv2 = E.make_half2(c.h, c.h)
    for what, call, pattern in CASES:
        with pytest.raises(enigma.EnigmaError) as info:
            call(c)
        msg = str(info.value)
        # The user's line (this file, the CASES entry's lambda) and the kernel name come first.
        assert re.search(r"test_conf_errors\.py:\d+: kernel 'misuse': ", msg), (what, msg)
        assert re.search(pattern, msg), (what, msg)
        CHECKS["errors"] += 1
    Out[t] = c.f


def test_bad_uses_are_enigma_errors_with_the_users_line():
    enigma.compile(misuse, emit_only=True)


def test_ops_need_a_kernel():
    for fn, args in ((E.sqrt, (1.0,)), (E.make_vec, (1, 2)), (E.register_tensor, (4,)), (E.dot, (1, 2))):
        with pytest.raises(enigma.EnigmaError, match="can only be used inside @enigma.kernel"):
            fn(*args)


def test_literals_are_weakly_typed():
    @enigma.kernel
    def lits(H: enigma.f16, I: enigma.i8, Out: enigma.f16, OutI: enigma.i8):
        t = enigma.thread_position_in_grid
        Out[t] = E.fmin(H[t], 2) + E.clamp(H[t], 0, 1.5) + E.sqrt(4)   # literals take half; sqrt(4) is float
        OutI[t] = E.imax(I[t], -3) + E.add_sat(I[t], 100)
    ck = enigma.compile(lits, emit_only=True)
    ir = ck.ir_source
    assert "fmin" in ir and ": half" in ir
    assert "convert" not in ir.split("clamp")[0].split("fmin")[1]   # no conversion of the half operand
    assert "imax" in ir and ": char" in ir
