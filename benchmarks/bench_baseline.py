"""False alarms and detections of ``--unlearn-baseline``: does the gate see a regression, and
only a regression?

    python benchmarks/bench_baseline.py [--method examples.finetune:unlearn] [--reruns 20]
        [--models 50] [--benchmark digits-mlp]

1. The baseline: the method's quick-profile run at ``--unlearn-seed=0``, with a JSON report.
2. False alarms: ``--reruns`` reruns of the *same* method with fresh seeds (1, 2, ...) against
   that baseline. Nothing changed, so every test that fails with "regression" is a false alarm.
3. Detection: a destructive change (the method's output then 5 epochs of gradient ascent on the
   forget set at lr 1.0) against the same baseline: how many tests report a regression.

Prints one line per rerun and the summary lines ``false_alarm_rate: k/n tests`` (and per run),
``destructive_detected: k/n tests``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DESTRUCTIVE = """
import importlib
import torch

module, _, name = "{method}".partition(":")
inner = getattr(importlib.import_module(module), name)


def unlearn(model, forget, retain, context):
    model = inner(model, forget, retain, context)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):
        for inputs, targets in forget.loader(16):
            loss = -torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    return model
"""


def run(method: str, report: Path, args: argparse.Namespace, *extra: str) -> dict:
    from pytest_unlearn.report.json_report import load_report

    command = [
        sys.executable, "-m", "pytest", f"--unlearn-method={method}",
        f"--unlearn-benchmark={args.benchmark}", "--unlearn-profile=quick",
        f"--unlearn-models={args.models}", f"--unlearn-report={report}", "--unlearn-threads=1",
        "-p", "no:cacheprovider", "-q", f"--rootdir={REPO}", "-c", str(REPO / "pyproject.toml"),
        *extra,
    ]  # fmt: skip
    # The examples package lives in the repository; the scratch directory holds the rest.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    completed = subprocess.run(command, cwd=report.parent, capture_output=True, text=True, env=env)
    if completed.returncode not in (0, 1):
        sys.exit(f"pytest exited {completed.returncode}:\n{completed.stdout[-3000:]}")
    return load_report(report)


def regressions(report: dict) -> list[str]:
    return [r["test_id"] for r in report["records"] if r.get("regression") is True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="examples.finetune:unlearn")
    parser.add_argument("--reruns", type=int, default=20)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--benchmark", default="digits-mlp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        baseline = tmp / "baseline.json"
        base = run(args.method, baseline, args, "--unlearn-seed=0")
        tests = len(base["records"])
        print(f"baseline: {args.method}, N={args.models}, {tests} tests, verdicts "
              f"{[r['verdict'] for r in base['records']]}")  # fmt: skip
        alarms, runs_with_alarm = 0, 0
        for seed in range(1, args.reruns + 1):
            report = run(args.method, tmp / f"rerun-{seed}.json", args,
                         f"--unlearn-seed={seed}", f"--unlearn-baseline={baseline}")  # fmt: skip
            found = regressions(report)
            alarms += len(found)
            runs_with_alarm += bool(found)
            print(f"rerun seed {seed}: {len(found)} regression(s) {found}", flush=True)
        (tmp / "destructive.py").write_text(DESTRUCTIVE.format(method=args.method))
        destroyed = run("destructive:unlearn", tmp / "destructive.json", args,
                        f"--unlearn-baseline={baseline}")  # fmt: skip
        detected = regressions(destroyed)
        print(f"destructive change: {len(detected)} regression(s) {detected}")
    print(f"false_alarm_rate: {alarms}/{tests * args.reruns} tests, "
          f"{runs_with_alarm}/{args.reruns} runs")  # fmt: skip
    print(f"destructive_detected: {len(detected)}/{tests} tests")


if __name__ == "__main__":
    main()
