"""First-run and cached-rerun wall time of the main job, and the calibration figures.

    python benchmarks/bench_first_run.py [--method examples.gradient_ascent:unlearn] [--models 100]

Runs the suite twice against a fresh cache directory: the first run builds the default
benchmark's ensembles and evaluates, the second reuses them. Then prints, from the figures the
conformance tests record, the noise floor, the spread of exact retraining (null sd), do-nothing
P95 and threshold for every case. Targets (issue 2, 2-CPU machine, N=100): first run < 180 s, cached
rerun < 90 s.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from suite_runs import run_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="examples.gradient_ascent:unlearn")
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = [f"--unlearn-models={args.models}", f"--unlearn-cache-dir={Path(tmp) / 'cache'}"]
        first = run_suite(args.method, *options, junit=Path(tmp) / "first.xml")
        second = run_suite(args.method, *options, junit=Path(tmp) / "second.xml")
    print(f"method: {args.method}  N={args.models}")
    print(f"{'case':<36} {'P95':>7} {'floor':>7} {'null sd':>8} {'do-nothing':>10} "
          f"{'threshold':>9}  verdict")  # fmt: skip
    for row in second.records:
        print(
            f"{row['case']:<36} {float(row['p95']):7.3f} {float(row['floor']):7.3f} "
            f"{float(row['null_sd']):8.3f} {float(row['do_nothing']):10.3f} "
            f"{float(row['threshold']):9.3f}  {row['verdict']}"
        )
    print(f"first_run_seconds: {first.seconds:.1f}")
    print(f"cached_rerun_seconds: {second.seconds:.1f}")
    print(f"cached_speedup: {first.seconds / second.seconds:.2f}")


if __name__ == "__main__":
    main()
