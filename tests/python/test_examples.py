"""Every examples/*.py (but the shared _*.py modules) runs as a script on the default device; each checks its
own result against numpy and exits non-zero on a mismatch."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(p for p in glob.glob(os.path.join(ROOT, "examples", "*.py"))
                  if not os.path.basename(p).startswith("_"))  # _name.py: a module the examples share


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example(path, tmp_path):
    r = subprocess.run([sys.executable, path], env=subprocess_env(), cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"{os.path.basename(path)} exited with {r.returncode}\n{r.stdout}\n{r.stderr}"
