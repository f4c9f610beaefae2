"""Verdict rates: does exact retraining pass, and do inadequate methods fail?

    python benchmarks/bench_verdicts.py [--models 100] [--seeds 5] [-n 2]

Runs, on the default benchmark at N models:
* ``examples.retrain`` with ``--unlearn-seed`` 0..S-1: every failed test is a false fail;
* ``examples.do_nothing``: must fail the forget test of every subpopulation forget set;
* gradient ascent with a destructive learning rate (lr 1.0, 5 epochs, written here): must fail
  retain and validation.
Prints each run's failures and the summary lines ``retrain_false_fail_rate``,
``do_nothing_subpopulation_forget_caught`` and ``destructive_retain_validation_caught``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from suite_runs import REPO, run_suite

DESTRUCTIVE = """
import torch

def unlearn(model, forget, retain, context):
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):
        for inputs, targets in forget.loader(16):
            loss = -torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("-n", dest="workers", default="0", help="pytest-xdist workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        common = [f"--unlearn-models={args.models}", "-n", args.workers, "--dist", "load"]
        retrain_fails, retrain_total = 0, 0
        for seed in range(args.seeds):
            run = run_suite(
                "examples.retrain:unlearn", *common, f"--unlearn-seed={seed}",
                junit=tmp_path / f"retrain-{seed}.xml",
            )  # fmt: skip
            retrain_fails += len(run.failed_ids())
            retrain_total += len(run.records)
            print(f"retrain seed {seed}: {len(run.failed_ids())}/{len(run.records)} failed "
                  f"{run.failed_ids()} ({run.seconds:.0f}s)")  # fmt: skip
            for record in run.records:
                print(f"    {record['case']:<40} P95 {float(record['p95']):6.3f} "
                      f"threshold {float(record['threshold']):6.3f}")  # fmt: skip
        do_nothing = run_suite(
            "examples.do_nothing:unlearn", *common, junit=tmp_path / "do-nothing.xml"
        )
        subpopulation_forget = [
            r["case"] for r in do_nothing.records
            if r["split"] == "forget" and r["case"].split("-")[2].startswith(("knn", "seq"))
        ]  # fmt: skip
        caught = [c for c in subpopulation_forget if c in do_nothing.failed_ids()]
        print(f"do-nothing failed: {do_nothing.failed_ids()}")
        (tmp_path / "destructive.py").write_text(DESTRUCTIVE)
        destructive = run_suite(
            "destructive:unlearn", *common, f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
            "--unlearn-cache-dir", str(_cache_dir()), cwd=tmp_path,
            junit=tmp_path / "destructive.xml",
        )  # fmt: skip
        retain_validation = [
            r["case"] for r in destructive.records if r["split"] in ("retain", "validation")
        ]
        destroyed = [c for c in retain_validation if c in destructive.failed_ids()]
        print(f"destructive gradient ascent failed: {destructive.failed_ids()}")
    print(f"retrain_false_fail_rate: {retrain_fails}/{retrain_total}")
    print(f"do_nothing_subpopulation_forget_caught: {len(caught)}/{len(subpopulation_forget)}")
    print(f"destructive_retain_validation_caught: {len(destroyed)}/{len(retain_validation)}")


def _cache_dir() -> Path:
    from pytest_unlearn.store import default_cache_dir

    return default_cache_dir()


if __name__ == "__main__":
    main()
