"""docs/ops.md is generated from the op table and must not be stale; every op
of the table is exported at top level."""
import os
import subprocess
import sys

import enigma

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_docs_ops_md_is_up_to_date():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen-op-docs.py"), "--check"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr + "\nregenerate with: python3 scripts/gen-op-docs.py"


def test_every_language_op_is_at_top_level():
    names = list(enigma.LANGUAGE_TABLE) + [
        "metal_cast", "as_type", "make_float2", "make_float3", "make_float4", "function_constant", "load_if",
        "store_if", "register_tensor", "RegisterTensor", "Carry", "pack_uint8x4", "unpack_uint8x4", "pack_int4x2",
        "unpack_int4x2", "dequantize_int8"]
    missing = [n for n in names if not callable(getattr(enigma, n, None))]
    assert not missing, missing
    assert len(enigma.LANGUAGE_TABLE) == 88
