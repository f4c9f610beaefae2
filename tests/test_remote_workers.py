"""pytest-xdist's own ``--tx`` workers: ``popen`` workers on the controller's host share
method calls like ``-n`` workers; a worker of another host (simulated: a popen worker whose
host id differs, started in its own directory with its own cache through the environment)
makes its own calls and builds its own cache; every run's figures equal those of the same job
without xdist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import CACHE_MODELS, CONFORMANCE_IDS, ENV_PREFIX

from pytest_unlearn.workers import (
    SHARED_RUNS_HOST_KEY,
    SHARED_RUNS_KEY,
    host_id,
    shared_runs_dir,
)

pytest.importorskip("xdist")

#: Random (seeded by the harness, so the figures depend on the seeds every process derives),
#: and logs every call: which worker, forget set, member and request.
METHOD = """
import os

import torch

def unlearn(model, forget, retain, context):
    with open(os.environ["UNLEARN_TEST_CALL_LOG"], "a") as log:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
        log.write(f"{worker} {context.forget_set} {context.model_index} {context.request_index}\\n")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return model
"""

#: Loaded by every process of the inner run: a worker started with UNLEARN_TEST_HOST in its
#: environment takes that for its host id, as a worker on another machine would have another.
FAKE_HOST_CONFTEST = """
import os

if os.environ.get("UNLEARN_TEST_HOST"):
    from pytest_unlearn import workers

    workers.host_id = lambda: os.environ["UNLEARN_TEST_HOST"]
"""

#: Requests per forget set of digits-mlp.
REQUESTS = {"knn36": 1, "random36": 1, "seq3x12": 3}
#: Per-call figures that depend on the machine's load, not on the method's results.
TIMING_FIELDS = {"method_seconds_per_model", "retrain_seconds_per_model", "slower_than_retraining"}
COMMON_ARGS = [
    "--unlearn-method=mymethod:unlearn",
    f"--unlearn-models={CACHE_MODELS}",
    "--unlearn-threads=1",  # bit-identical figures whatever the process
    "-p",
    "no:cacheprovider",
]


def _figures(report: Path, *ignore: str) -> list[dict[str, Any]]:
    """The report's records without timings (and the node id, which xdist may decorate)."""
    records = json.loads(report.read_text())["records"]
    left_out = TIMING_FIELDS | {"nodeid", *ignore}
    return [{k: v for k, v in record.items() if k not in left_out} for record in records]


def _store_files(cache: Path, fingerprint: str) -> dict[str, Any]:
    """What a cached store holds: its files' sizes and sha256 digests."""
    return json.loads((cache / "digits-mlp" / fingerprint / "manifest.json").read_text())["files"]


def _project(directory: Path) -> Path:
    (directory / "mymethod.py").write_text(METHOD)
    (directory / "conftest.py").write_text(FAKE_HOST_CONFTEST)
    return directory


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((ENV_PREFIX, "PYTEST_XDIST_", "PYTEST_ADDOPTS"))
    }
    return {**env, **extra}


@pytest.fixture(scope="module")
def serial_figures(tmp_path_factory: pytest.TempPathFactory, unlearn_cache: Path) -> list[dict]:
    """The figures of the job without xdist: one process makes every call."""
    project = _project(tmp_path_factory.mktemp("serial"))
    report = project / "serial.json"
    env = _clean_env(UNLEARN_TEST_CALL_LOG=str(project / "calls.log"))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *COMMON_ARGS, f"--unlearn-cache-dir={unlearn_cache}",
         f"--unlearn-report={report}", "-q"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert report.is_file(), run.stdout[-4000:] + run.stderr[-4000:]
    figures = _figures(report)
    assert [record["test_id"] for record in figures] == CONFORMANCE_IDS
    return figures


@pytest.fixture
def xdist_env(
    monkeypatch: pytest.MonkeyPatch,
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Clean xdist variables (the outer run may be an xdist worker), the project's method and
    fake-host conftest; returns the call log."""
    for name in list(os.environ):
        if name.startswith("PYTEST_XDIST_"):
            monkeypatch.delenv(name)
    _project(pytester.path)
    log = tmp_path_factory.mktemp("calls") / "calls.log"
    monkeypatch.setenv("UNLEARN_TEST_CALL_LOG", str(log))
    return log


def _calls(log: Path) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Worker -> forget set -> the (member, request) calls it made, in order."""
    made: dict[str, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for line in log.read_text().splitlines():
        worker, forget_set, member, request = line.split()
        made[worker][forget_set].append((int(member), int(request)))
    return made


def _every_call(forget_set: str) -> list[tuple[int, int]]:
    return sorted((m, k) for m in range(CACHE_MODELS) for k in range(REQUESTS[forget_set]))


def _forget_sets_run_by(result: pytest.RunResult) -> dict[str, set[str]]:
    """Worker -> the forget sets it ran tests of, from xdist's ``-v`` lines."""
    ran: dict[str, set[str]] = defaultdict(set)
    pattern = re.compile(r"\[(gw\d+)\] \[\s*\d+%\] \w+ .*test_klom\[digits-mlp-([a-z0-9]+)-")
    for line in result.outlines:
        match = pattern.search(line)
        if match:
            ran[match.group(1)].add(match.group(2))
    return ran


def test_two_popen_tx_workers_share_each_call_and_match_a_run_without_xdist(
    pytester: pytest.Pytester,
    unlearn_cache: Path,
    xdist_env: Path,
    serial_figures: list,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    scratch = tmp_path_factory.mktemp("scratch")
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the controller makes the shared dir
    result = pytester.runpytest_subprocess(
        *COMMON_ARGS, f"--unlearn-cache-dir={unlearn_cache}",
        f"--unlearn-report={pytester.path / 'tx.json'}",
        "-p", "xdist", "--tx", "2*popen", "--dist", "load", "-v",
    )  # fmt: skip
    assert "[gw1]" in result.stdout.str(), "both workers ran tests"
    assert _figures(pytester.path / "tx.json") == serial_figures
    # Workers of one host split every forget set's calls: each call is made once, overall.
    made = _calls(xdist_env)
    for forget_set in REQUESTS:
        overall = sorted(c for worker in made.values() for c in worker[forget_set])
        assert overall == _every_call(forget_set), forget_set
    assert not list(scratch.glob("pytest-unlearn-runs-*"))


def test_a_worker_of_another_host_makes_its_own_calls_with_its_own_cache(
    pytester: pytest.Pytester,
    unlearn_cache: Path,
    xdist_env: Path,
    serial_figures: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No --unlearn-cache-dir: each process takes its cache from its own environment. Host B
    # also starts in a directory of its own, as an ssh worker does (it reads the fake-host
    # conftest there).
    monkeypatch.setenv(ENV_PREFIX + "CACHE_DIR", str(unlearn_cache))
    other_cache, other_dir = pytester.path / "host-b-cache", pytester.path / "host-b"
    _project(pytester.mkdir("host-b"))
    host_b = (
        f"popen//chdir={other_dir}//env:{ENV_PREFIX}CACHE_DIR={other_cache}"
        "//env:UNLEARN_TEST_HOST=host-b"
    )
    # --dist load spreads each forget set's tests over both hosts: the case where a worker
    # that shared with another host would make only part of the calls it needs.
    result = pytester.runpytest_subprocess(
        *COMMON_ARGS, f"--unlearn-report={pytester.path / 'hosts.json'}",
        "-p", "xdist", "--tx", "popen", "--tx", host_b, "--dist", "load", "-v",
    )  # fmt: skip
    # The store id is the digest of the manifest, which records the measured seconds of one
    # retraining on the host that built it: each host's records name its own cache's store.
    without_store = [{k: v for k, v in r.items() if k != "store_id"} for r in serial_figures]
    assert _figures(pytester.path / "hosts.json", "store_id") == without_store
    # Host B built the store into its own cache: the same ensembles, file for file.
    fingerprint = serial_figures[0]["fingerprint"]
    assert _store_files(other_cache, fingerprint) == _store_files(unlearn_cache, fingerprint)
    # Every worker made every call of each forget set it ran tests of, itself, once.
    ran, made = _forget_sets_run_by(result), _calls(xdist_env)
    assert set(ran) == {"gw0", "gw1"}, ran
    for worker, forget_sets in ran.items():
        assert set(made[worker]) == forget_sets, worker
        for forget_set in forget_sets:
            assert sorted(made[worker][forget_set]) == _every_call(forget_set), (worker, forget_set)


class _WorkerConfig:
    def __init__(self, workerinput: dict[str, Any]) -> None:
        self.workerinput = workerinput


def test_a_worker_shares_the_directory_only_on_the_controllers_host(tmp_path: Path) -> None:
    here = {"workerid": "gw0", SHARED_RUNS_KEY: str(tmp_path), SHARED_RUNS_HOST_KEY: host_id()}
    assert shared_runs_dir(_WorkerConfig(here)) == tmp_path  # type: ignore[arg-type]
    elsewhere = {**here, SHARED_RUNS_HOST_KEY: "another-host"}
    assert shared_runs_dir(_WorkerConfig(elsewhere)) is None  # type: ignore[arg-type]
    no_host = {k: v for k, v in here.items() if k != SHARED_RUNS_HOST_KEY}
    assert shared_runs_dir(_WorkerConfig(no_host)) is None  # type: ignore[arg-type]


def test_a_worker_that_cannot_see_the_directory_makes_its_own_calls(tmp_path: Path) -> None:
    missing = {
        "workerid": "gw1",
        SHARED_RUNS_KEY: str(tmp_path / "only-on-the-controller"),
        SHARED_RUNS_HOST_KEY: host_id(),
    }
    assert shared_runs_dir(_WorkerConfig(missing)) is None  # type: ignore[arg-type]
