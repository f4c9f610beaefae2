"""Concurrent builds of the same local store: one process builds, the others wait and read it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFORMANCE_IDS, IDENTITY_METHOD

_CHILD = """
import hashlib, sys, torch
from pathlib import Path
from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.store import load_or_build
torch.set_num_threads(1)
log_path = Path(sys.argv[2])

def log(message):
    if "building" in message:
        with log_path.open("a") as handle:
            handle.write(message + "\\n")

ensembles = load_or_build(get_benchmark("digits-mlp"), 2, Path(sys.argv[1]), log=log)
print(hashlib.sha256(ensembles.pretrained_margins.numpy().tobytes()).hexdigest())
"""


def test_four_processes_build_the_store_exactly_once(tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(cache), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0] * 4, [err for _, err in results]
    assert len(log.read_text().splitlines()) == 1
    assert len({out.strip() for out, _ in results}) == 1
    leftovers = [p.name for p in (cache / "digits-mlp").iterdir() if ".building-" in p.name]
    assert leftovers == []


# Each xdist worker imports this conftest: it counts the builds of all of them in one file.
_COUNTING_CONFTEST = """
import os
import torch
from pytest_unlearn.store import local_cache

torch.set_num_threads(1)
_build = local_cache.build_store


def _counted_build(benchmark, n_models, out, **kwargs):
    with open(os.environ["UNLEARN_TEST_BUILD_LOG"], "a") as log:
        log.write(f"{os.getpid()} {benchmark.name} {n_models}\\n")
    return _build(benchmark, n_models, out, **kwargs)


local_cache.build_store = _counted_build
"""


def test_xdist_workers_build_the_store_exactly_once(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "builds.log"
    monkeypatch.setenv("UNLEARN_TEST_BUILD_LOG", str(log))
    pytester.makeconftest(_COUNTING_CONFTEST)
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    # --dist load spreads one ensemble's tests over all four workers, so they all race for it.
    result = pytester.runpytest_subprocess(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-models=2",
        "-n",
        "4",
        "--dist",
        "load",
        "-v",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert "errors" not in outcomes and "error" not in outcomes, result.stdout.str()
    # At this N every case has an outcome: a verdict, or inconclusive (skipped with its reason).
    ran = sum(outcomes.get(outcome, 0) for outcome in ("passed", "failed", "skipped"))
    assert ran == len(CONFORMANCE_IDS), outcomes
    assert len(log.read_text().splitlines()) == 1
    # Every worker ran tests of that ensemble, so every worker needed the store.
    workers = re.findall(r"\[gw(\d)\] \[ *\d+%\] (?:PASSED|FAILED|SKIPPED)", result.stdout.str())
    assert len(set(workers)) == 4
