#!/usr/bin/env python3
"""Counts how much of the reference package's public surface
(tests/data/reference-api.txt) this build provides: compatible names, names
with a different kind or signature, missing names. -v lists every difference."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
import reference_api  # noqa: E402

results = reference_api.check_all(reference_api.sample_instances())
if "-v" in sys.argv:
    for r in results:
        if r.status != "compatible":
            print(f"{r.status:9} {r.entry.module}.{r.entry.name}: {'; '.join(r.problems)}")
c = reference_api.counts(results)
print(f"{len(results)} names: {c['compatible']} compatible, {c['different']} different signature or kind, "
      f"{c['missing']} missing")
