"""Prints how many (op, dtype, input) checks the conformance suite made."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _harness import CHECKS  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    if CHECKS:
        total = sum(CHECKS.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(CHECKS.items()))
        terminalreporter.write_line(f"conformance: {total} (op, dtype, input) checks ({parts})")
