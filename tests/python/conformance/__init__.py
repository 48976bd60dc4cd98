"""The conformance suite of the per-thread language (a package, so its
conftest and helpers do not shadow the suite's top-level ones)."""
