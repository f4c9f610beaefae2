"""First-run and cached-rerun wall time of the main job, and the calibration figures.

Runs ``python -m pytest --unlearn-method=METHOD`` twice against a fresh cache directory: the
first run builds the digits-mlp ensembles and evaluates, the second reuses them. Then prints,
from the JUnit properties the conformance tests record, the noise floor, do-nothing P95,
threshold and the method's P95 for every forget set and split.

    python benchmarks/bench_first_run.py [--method examples.gradient_ascent:unlearn] [--models 100]

Targets (issue 2, 2-CPU machine, N=100): first run < 180 s, cached rerun < 90 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(method: str, models: int, cache: Path, junit: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "pytest",
        f"--unlearn-method={method}",
        f"--unlearn-models={models}",
        f"--unlearn-cache-dir={cache}",
        f"--junitxml={junit}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        sys.exit(f"pytest exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
    return elapsed


def figures(junit: Path) -> list[dict[str, str]]:
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "unlearn_p95" in props:
            rows.append({k.removeprefix("unlearn_"): v for k, v in props.items()})
    return sorted(rows, key=lambda row: (row["forget_set"], row["split"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="examples.gradient_ascent:unlearn")
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache, junit = Path(tmp) / "cache", Path(tmp) / "junit.xml"
        first = run(args.method, args.models, cache, junit)
        second = run(args.method, args.models, cache, junit)
        rows = figures(junit)
    print(f"method: {args.method}  N={args.models}")
    print(
        f"{'case':<32} {'P95':>7} {'floor':>7} {'null max':>8} {'do-nothing':>10} "
        f"{'threshold':>9}  verdict"
    )
    for row in rows:
        case = f"{row['benchmark']}-{row['forget_set']}-{row['split']}"
        print(
            f"{case:<32} {float(row['p95']):7.3f} {float(row['floor']):7.3f} "
            f"{float(row['null_max']):8.3f} {float(row['do_nothing']):10.3f} "
            f"{float(row['threshold']):9.3f}  {row['verdict']}"
            + ("" if row["separable"] == "True" else " (do-nothing indistinguishable)")
        )
    print(f"first_run_seconds: {first:.1f}")
    print(f"cached_rerun_seconds: {second:.1f}")
    print(f"cached_speedup: {first / second:.2f}")


if __name__ == "__main__":
    main()
