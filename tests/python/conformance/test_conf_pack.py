"""The 6 pack_float_to_* and 6 unpack_*_to_float functions with Metal's
normalized-integer rules: NaN is 0, clamp, scale by 2^n - 1 (snorm: 2^(n-1)
- 1), round to nearest even; unpacking divides (snorm: at least -1); sRGB
encodes x, y, z and leaves w linear."""
import numpy as np

import enigma
from ._harness import Report, float_ok, run, tolerance

PACK = {  # name: (lanes, [(bits, scale, signed, srgb) per lane])
    "pack_float_to_unorm4x8": (4, [(8, 255, False, False)] * 4),
    "pack_float_to_snorm4x8": (4, [(8, 127, True, False)] * 4),
    "pack_float_to_unorm2x16": (2, [(16, 65535, False, False)] * 2),
    "pack_float_to_snorm2x16": (2, [(16, 32767, True, False)] * 2),
    "pack_float_to_srgb_unorm4x8": (4, [(8, 255, False, True)] * 3 + [(8, 255, False, False)]),
    "pack_float_to_unorm10a2": (4, [(10, 1023, False, False)] * 3 + [(2, 3, False, False)]),
}
UNPACK = {name.replace("pack_float_to_", "unpack_") + "_to_float": spec for name, spec in PACK.items()}


def linear_to_srgb(c):
    c = np.where(np.isnan(c), 0.0, np.clip(c, 0.0, 1.0))
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def srgb_to_linear(s):
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)


def code(x, bits, scale, signed, srgb):
    """The packed field of one component, as the backends compute it (float32)."""
    with np.errstate(invalid="ignore"):
        if srgb:
            x = linear_to_srgb(x)
        lo = -1.0 if signed else 0.0
        c = np.where(np.isnan(x), 0.0, np.clip(x, lo, 1.0)).astype(np.float32)
        r = np.rint(c * np.float32(scale)).astype(np.int64)
    return r & ((1 << bits) - 1)


def unpacked(p, bits, shift, scale, signed, srgb):
    c = (p >> shift) & ((1 << bits) - 1)
    if signed:
        c = np.where(c >= 1 << (bits - 1), c - (1 << bits), c)
        return np.maximum(c.astype(np.float32) / np.float32(scale), np.float32(-1)).astype(np.float64)
    f = c.astype(np.float32) / np.float32(scale)
    return srgb_to_linear(f.astype(np.float64)) if srgb else f.astype(np.float64)


def test_pack_unpack():
    special = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, np.nan, np.inf, -np.inf, 1 / 255, 0.5 / 255, 1.5 / 255,
               127.5 / 255, 1 / 127, 0.5 / 127, -0.5 / 127, -1.5 / 127, 0.5 / 65535, 1.5 / 32767, 0.5 / 1023,
               1 / 3, 0.5 / 3, 0.0031308, 0.04045, 0.9999, 1e-30]
    rng = np.random.default_rng(5)
    vals = np.concatenate([special, rng.uniform(-1.2, 1.2, 40), rng.uniform(0, 1, 40)]).astype(np.float32)
    n = len(vals)
    lanes = np.stack([np.roll(vals, -k) for k in range(4)], 1)  # every value in every lane
    words = np.concatenate([np.array([0, 0xFFFFFFFF, 0x80808080, 0x7F7F7F7F, 0x80008000, 0x7FFF7FFF, 0x01FF01FF,
                                      0xC0000000, 0x3FFFFFFF, 0x12345678], np.uint32),
                            rng.integers(0, 1 << 32, n - 10, dtype=np.uint64).astype(np.uint32)])

    @enigma.kernel
    def pack(V: enigma.f32, W: enigma.u32, P: enigma.u32, U: enigma.f32):
        i = enigma.thread_position_in_grid
        v4 = enigma.make_float4(V[4 * i], V[4 * i + 1], V[4 * i + 2], V[4 * i + 3])
        v2 = enigma.make_float2(V[4 * i], V[4 * i + 1])
        for j, (name, (nl, _)) in enumerate(PACK.items()):
            P[j * n + i] = getattr(enigma, name)(v4 if nl == 4 else v2)
        for j, (name, (nl, _)) in enumerate(UNPACK.items()):
            r = getattr(enigma, name)(W[i])
            for k in range(nl):
                U[(j * 4 + k) * n + i] = r[k]

    ck, (p, u) = run(pack, [lanes.ravel(), words], [("uint", 6 * n), ("float", 24 * n)], n)
    rep = Report("pack/unpack")
    for j, (name, (nl, fields)) in enumerate(PACK.items()):
        got = p[j * n:(j + 1) * n].astype(np.int64)
        tol = tolerance(name, "float")
        shift, ok = 0, np.ones(n, bool)
        for k, (bits, scale, signed, srgb) in enumerate(fields):
            want = code(lanes[:, k].astype(np.float64), bits, scale, signed, srgb)
            g = (got >> shift) & ((1 << bits) - 1)
            ok &= np.abs(g - want) <= (tol[1] if tol[0] == "step" else 0)
            shift += bits
        rep.add(name, "float4" if nl == 4 else "float2", ok, lambda k: f"{lanes[k, :nl]} -> {got[k]:#x}")
    for j, (name, (nl, fields)) in enumerate(UNPACK.items()):
        shift = 0
        tol = tolerance(name, "float")
        for k, (bits, scale, signed, srgb) in enumerate(fields):
            got = u[(j * 4 + k) * n:(j * 4 + k + 1) * n]
            want = unpacked(words.astype(np.int64), bits, shift, scale, signed, srgb)
            ok = float_ok(got, want, "float", tol)
            rep.add(name, "uint", ok, lambda m, got=got, want=want: f"{words[m]:#x} lane -> {got[m]}, want {want[m]}")
            shift += bits
    for name in list(PACK) + list(UNPACK):
        assert f"metal::{name}(" in ck.metal_source
    rep.finish()
