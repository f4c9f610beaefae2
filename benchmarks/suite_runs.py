"""Shared by the benchmark scripts: run the conformance suite in a subprocess, read its records.

Records come from the JUnit XML the suite writes (every figure is a ``unlearn_*`` property),
so the scripts measure exactly what a user's run reports.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SuiteRun:
    seconds: float
    exit_code: int
    records: list[dict[str, str]]  # one per conformance test, "outcome" added

    def failed_ids(self) -> list[str]:
        return [r["case"] for r in self.records if r["outcome"] == "failed"]


def run_suite(method: str, *args: str, cwd: Path = REPO, junit: Path) -> SuiteRun:
    """``python -m pytest --unlearn-method=METHOD ARGS --junitxml=JUNIT``, timed."""
    command = [
        sys.executable, "-m", "pytest", f"--unlearn-method={method}", f"--junitxml={junit}",
        "-p", "no:cacheprovider", "-q", *args,
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        sys.exit(f"pytest exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
    return SuiteRun(seconds, completed.returncode, read_records(junit))


def read_records(junit: Path) -> list[dict[str, str]]:
    records = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "unlearn_case" not in props:
            continue
        record = {k.removeprefix("unlearn_"): v for k, v in props.items()}
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None  # an INCONCLUSIVE case
        record["outcome"] = "failed" if failed else "inconclusive" if skipped else "passed"
        records.append(record)
    return sorted(records, key=lambda record: record["case"])
