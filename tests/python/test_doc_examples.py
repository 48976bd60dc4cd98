"""Every ```python block of README.md and docs/*.md runs (each in a fresh
interpreter, in a temporary directory, on the default device) and must
exit 0. A block preceded by the line `<!-- doc-test: skip (reason) -->` is
skipped, for examples that need a GPU or a Mac."""
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import subprocess_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP = re.compile(r"<!--\s*doc-test:\s*skip\s*\(([^)]*)\)\s*-->")


def blocks():
    out = []
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))):
        lines = open(path, encoding="utf-8").read().splitlines()
        k = 0
        while k < len(lines):
            if lines[k].strip() == "```python":
                start = k + 1
                end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
                prev = next((lines[j] for j in range(k - 1, -1, -1) if lines[j].strip()), "")
                skip = SKIP.search(prev)
                out.append(pytest.param("\n".join(lines[start:end]) + "\n",
                                        id=f"{os.path.relpath(path, ROOT)}:{start}",
                                        marks=[pytest.mark.skip(reason=skip.group(1))] if skip else []))
                k = end
            k += 1
    return out


BLOCKS = blocks()


def test_the_docs_have_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", BLOCKS)
def test_doc_example(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], env=subprocess_env(), cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, f"exit {r.returncode}\n{code}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
