"""Wall time of the suite at ``-n 0`` and ``-n 2`` (pytest-xdist), same method, same cache.

    python benchmarks/bench_suite.py [--method examples.retrain:unlearn] [--models 50]
        [--threads 1]

The ensembles are built (or found in the user cache) first, untimed, so both timed runs measure
evaluation only. The ``-n 2`` run uses ``--dist load``: both workers need every forget set and
split its method calls model by model (``pytest_unlearn.harness.shared_runs``). Both timed runs
use ``--unlearn-threads=THREADS`` (default 1, the fastest setting for these small models on the
2-CPU machine), so their figures must agree bit for bit: the script checks that both give the
same ids and verdicts and that every record's figures other than the timings are identical
(``records_identical``). With ``--threads 0`` each run keeps its default (all cores at ``-n 0``,
one per worker at ``-n 2``) and the P95 drift between them is printed instead. Last line:
``xdist_speedup: <ratio>`` (target >= 1.6 on the 2-CPU machine).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from suite_runs import run_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="examples.retrain:unlearn")
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--cache-dir", default=None, help="default: the user cache dir")
    parser.add_argument("--threads", type=int, default=1, help="0: each run's default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = [f"--unlearn-models={args.models}"]
        if args.threads > 0:
            options.append(f"--unlearn-threads={args.threads}")
        if args.cache_dir:
            options.append(f"--unlearn-cache-dir={args.cache_dir}")
        run_suite("examples.do_nothing:unlearn", *options, junit=Path(tmp) / "warm.xml")
        serial = run_suite(args.method, *options, junit=Path(tmp) / "n0.xml")
        parallel = run_suite(
            args.method, *options, "-n", "2", "--dist", "load", junit=Path(tmp) / "n2.xml"
        )
    same = [(r["case"], r["verdict"]) for r in serial.records] == [
        (r["case"], r["verdict"]) for r in parallel.records
    ]
    timings = {"method_seconds_per_model", "retrain_seconds_per_model", "slower_than_retraining"}
    identical = [{k: v for k, v in r.items() if k not in timings} for r in serial.records] == [
        {k: v for k, v in r.items() if k not in timings} for r in parallel.records
    ]
    # Without fixed threads, figures agree to float noise only: -n 2 gives each worker one
    # torch thread where -n 0 uses all cores, and matmul sums in another order move SGD.
    drift = max(
        abs(float(a["p95"]) - float(b["p95"]))
        for a, b in zip(serial.records, parallel.records, strict=True)
    )
    print(f"method: {args.method}  N={args.models}  tests: {len(serial.records)}")
    print(f"n0_seconds: {serial.seconds:.1f}")
    print(f"n2_seconds: {parallel.seconds:.1f}")
    print(f"threads: {args.threads or 'default'}")
    print(f"same_ids_and_verdicts: {same}")
    print(f"records_identical: {identical}")
    print(f"max_p95_difference: {drift:.4f}")
    print(f"xdist_speedup: {serial.seconds / parallel.seconds:.2f}")


if __name__ == "__main__":
    main()
