"""Prints how many (op, dtype, input) checks the conformance suite made."""
from ._harness import CHECKS


def pytest_terminal_summary(terminalreporter):
    if CHECKS:
        total = sum(CHECKS.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(CHECKS.items()))
        terminalreporter.write_line(f"conformance: {total} (op, dtype, input) checks ({parts})")
