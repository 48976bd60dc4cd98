"""JUnit reports of the generated-source checks (check-*-sources.py), so
scripts/test.sh can count them with the test runners' results."""
from __future__ import annotations

import concurrent.futures
import os
import xml.etree.ElementTree as ET


def write_junit(path, suite_name, classname, results, failure_message, skipped_reason=None):
    """`results`: (file name, ok, log, seconds) per checked file. With
    `skipped_reason`, one skipped case stands for the whole check."""
    suite = ET.Element("testsuite", name=suite_name)
    failures = 0
    if skipped_reason is not None:
        case = ET.SubElement(suite, "testcase", classname=classname, name=suite_name)
        ET.SubElement(case, "skipped", message=skipped_reason)
        tests, skipped = 1, 1
    else:
        for name, ok, log, secs in results:
            case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{secs:.3f}")
            if not ok:
                failures += 1
                ET.SubElement(case, "failure", message=failure_message).text = log
        tests, skipped = len(results), 0
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def summarize(tool, results, junit_path, write_report, verb="passed", show_warnings=False) -> int:
    """Prints the failures (and, with `show_warnings`, up to 20 files that
    passed with a log), writes the JUnit report when asked, prints the
    one-line summary and returns the exit status: 1 when a file failed."""
    failed = [r for r in results if not r[1]]
    warned = [r for r in results if r[1] and r[2]] if show_warnings else []
    for name, _, log, _ in failed:
        print(f"--- FAILED: {name}\n{log}\n")
    for name, _, log, _ in warned[:20]:
        print(f"--- warnings: {name}\n{log}\n")
    if junit_path:
        write_report(junit_path, results)
    print(f"{tool}: {len(results) - len(failed)} {verb}, {len(failed)} failed"
          + (f", {len(warned)} with warnings" if warned else ""))
    return 1 if failed else 0


def junit_writer(suite_name, classname, failure_message):
    """One check's report writer: (path, results, skipped_reason=None)."""
    def write(path, results, skipped_reason=None):
        write_junit(path, suite_name, classname, results, failure_message, skipped_reason)
    return write


def nothing_to_check(tool, directory, extension, junit_path, write_report) -> int:
    """The outcome of a check whose folder holds no files of its kind: a pass."""
    print(f"{tool}: no {extension} files in {directory}; nothing to check")
    if junit_path:
        write_report(junit_path, [])
    return 0


def check_all(tool, files, check, jobs, junit_path, write_report, **summary) -> int:
    """Runs `check(path)` -> (file name, ok, log, seconds) over `files` on
    `jobs` threads, then summarize()s the results."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(check, files))
    return summarize(tool, results, junit_path, write_report, **summary)
