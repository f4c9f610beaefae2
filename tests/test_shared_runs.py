"""xdist workers split one forget set's method calls model by model, through a shared
directory, and get exactly the results of a run that made every call itself."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFORMANCE_IDS
from hypothesis import given, settings
from hypothesis import strategies as st
from test_harness_properties import TinyBenchmark, _forget_set

from pytest_unlearn.harness.contract_checks import ContractViolation
from pytest_unlearn.harness.method_runner import MethodRun, run_method
from pytest_unlearn.harness.shared_runs import MemberFailedElsewhere, MemberRun, RunBoard
from pytest_unlearn.store import Ensembles, load_or_build

REQUESTS = ((0, 1), (2,), (3, 4))
MODELS = 4
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def ensembles(tmp_path_factory: pytest.TempPathFactory) -> Ensembles:
    bench = TinyBenchmark((_forget_set(REQUESTS),))
    cache = tmp_path_factory.mktemp("tiny-cache")
    return load_or_build(bench, MODELS, cache, log=lambda message: None)


def noisy_method(model, forget, retain, context):
    """Random (seeded by the harness), certifies something, depends on its previous output."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    context.certificate["gradient_residual_bound"] = float(len(context.history))
    context.certificate["perturbation"] = torch.randn(2, dtype=torch.float64)
    return model


def _assert_same_run(a: MethodRun, b: MethodRun) -> None:
    assert sorted(a.margins) == sorted(b.margins)
    for k in a.margins:
        assert torch.equal(a.margins[k], b.margins[k]), k
    assert _plain(a.certificates) == _plain(b.certificates)
    assert (a.outputs is None) == (b.outputs is None)
    for kept_a, kept_b in zip(a.outputs or [], b.outputs or [], strict=True):
        for state_a, state_b in zip(kept_a, kept_b, strict=True):
            assert state_a.keys() == state_b.keys()
            assert all(torch.equal(state_a[n], state_b[n]) for n in state_a)


def _plain(certificates: list[list[dict]] | None) -> object:
    """Certificates with every tensor as (dtype, values), for ``==``."""
    return [
        [{k: (v.dtype, v.tolist()) if torch.is_tensor(v) else v for k, v in c.items()} for c in m]
        for m in certificates or []
    ]


def test_a_shared_run_equals_a_run_that_makes_every_call(ensembles, tmp_path) -> None:
    local = run_method(noisy_method, ensembles, "fs", CPU, keep_outputs=True)
    shared = run_method(noisy_method, ensembles, "fs", CPU, keep_outputs=True, shared=tmp_path)
    _assert_same_run(local, shared)
    assert shared.seconds_per_call > 0


def test_a_second_worker_reads_published_members_without_calling_the_method(
    ensembles, tmp_path
) -> None:
    first = run_method(noisy_method, ensembles, "fs", CPU, shared=tmp_path)

    def must_not_run(model, forget, retain, context):
        raise AssertionError("every member was published already")

    second = run_method(must_not_run, ensembles, "fs", CPU, shared=tmp_path)
    _assert_same_run(first, second)


def test_two_boards_on_one_directory_never_claim_the_same_member(tmp_path) -> None:
    a, b = RunBoard(tmp_path).claims(range(6)), RunBoard(tmp_path).claims(range(6))
    claimed = {"a": [], "b": []}
    for name, claims in [("a", a), ("b", b), ("b", b), ("a", a), ("b", b), ("a", a)]:
        claimed[name].append(next(claims))
    assert not set(claimed["a"]) & set(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == list(range(6))


def _worker(ensembles: Ensembles, shared: Path, calls: Path, queue) -> None:
    torch.set_num_threads(1)

    def logged(model, forget, retain, context):
        with calls.open("a") as log:
            log.write(f"{context.model_index} {context.request_index} {os.getpid()}\n")
        return noisy_method(model, forget, retain, context)

    run = run_method(logged, ensembles, "fs", CPU, shared=shared)
    queue.put({k: v.tolist() for k, v in run.margins.items()})


def test_processes_sharing_a_run_call_the_method_once_per_member_and_request(
    ensembles, tmp_path
) -> None:
    context = multiprocessing.get_context("fork")
    queue, calls = context.Queue(), tmp_path / "calls.log"
    workers = [
        context.Process(target=_worker, args=(ensembles, tmp_path / "shared", calls, queue))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    lines = [line.split() for line in calls.read_text().splitlines()]
    made = Counter((model, request) for model, request, _ in lines)
    assert made == Counter({(str(m), str(k)): 1 for m in range(MODELS) for k in range(3)})
    # A member's requests run in one process: its chain is never split.
    assert all(len({pid for m, _, pid in lines if m == str(model)}) == 1 for model in range(4))
    assert results[0] == results[1] == results[2]
    local = run_method(noisy_method, ensembles, "fs", CPU)
    assert results[0] == {k: v.tolist() for k, v in local.margins.items()}


def test_a_failure_published_by_another_worker_fails_this_run_with_its_message(
    ensembles, tmp_path
) -> None:
    run_key_dir = _board_dir(ensembles, tmp_path)
    RunBoard(run_key_dir).publish_failure(2, ValueError("boom in model 2"))
    with pytest.raises(MemberFailedElsewhere, match="ValueError: boom in model 2"):
        run_method(noisy_method, ensembles, "fs", CPU, shared=tmp_path)


def test_a_contract_violation_elsewhere_is_reported_as_a_contract_violation(
    ensembles, tmp_path
) -> None:
    board = RunBoard(_board_dir(ensembles, tmp_path))
    board.publish_failure(0, ContractViolation("fs model 0: returned int"))
    with pytest.raises(ContractViolation, match="fs model 0: returned int"):
        run_method(noisy_method, ensembles, "fs", CPU, shared=tmp_path)


def test_a_method_that_raises_publishes_the_failure_and_raises_its_own_error(
    ensembles, tmp_path
) -> None:
    def fails_on_model_1(model, forget, retain, context):
        if context.model_index == 1:
            raise KeyError("model 1 is broken")
        return model

    with pytest.raises(KeyError, match="model 1 is broken"):
        run_method(fails_on_model_1, ensembles, "fs", CPU, shared=tmp_path)
    with pytest.raises(MemberFailedElsewhere, match="model 1 is broken"):
        RunBoard(_board_dir(ensembles, tmp_path)).raise_if_failed()


def test_a_claim_left_by_a_dead_process_is_taken_over(ensembles, tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    directory = _board_dir(ensembles, tmp_path)
    directory.mkdir(parents=True)
    (directory / "model-3.claim").write_text(str(dead.pid))
    run = run_method(noisy_method, ensembles, "fs", CPU, shared=tmp_path)
    _assert_same_run(run, run_method(noisy_method, ensembles, "fs", CPU))


def test_published_member_round_trips_states_and_certificate_tensors(tmp_path) -> None:
    member = MemberRun(
        margins=[torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.25])],
        seconds=0.125,
        certificates=[
            {"gradient_residual_bound": np.float32(0.5), "perturbation": torch.tensor([0.25])},
            {"retrained": True, "noise": np.array([1.5, 2.0])},
        ],
        states=[{"weight": torch.ones(2, 3)}, {"weight": torch.zeros(2, 3)}],
    )
    board = RunBoard(tmp_path)
    board.publish(7, member)
    read = board.read(7)
    assert read.seconds == member.seconds
    first, second = read.certificates
    assert first["gradient_residual_bound"] == 0.5
    assert torch.equal(first["perturbation"], torch.tensor([0.25]))  # still a tensor
    assert second == {"retrained": True, "noise": [1.5, 2.0]}
    assert all(torch.equal(a, b) for a, b in zip(read.margins, member.margins, strict=True))
    assert read.states is not None
    pairs = zip(read.states, member.states or [], strict=True)
    assert all(torch.equal(a["weight"], b["weight"]) for a, b in pairs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-7.safetensors"]


def _board_dir(ensembles: Ensembles, shared: Path) -> Path:
    """The directory ``run_method(..., shared=shared)`` uses for forget set ``fs``."""
    from pytest_unlearn.harness.shared_runs import run_key

    bench = ensembles.benchmark
    identity = (bench.fingerprint(), 0, ensembles.n_models, "cpu", False)
    return shared / run_key(bench.name, "fs", *identity)


# Each xdist worker imports this conftest; the method logs every call of every worker.
_LOGGING_METHOD = """
import os

def unlearn(model, forget, retain, context):
    with open(os.environ["UNLEARN_TEST_CALL_LOG"], "a") as log:
        log.write(f"{context.forget_set} {context.model_index} {context.request_index}\\n")
    return model
"""


def test_xdist_workers_call_the_method_once_per_member_and_request(
    pytester: pytest.Pytester, unlearn_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    log = Path(tempfile.mkdtemp()) / "calls.log"
    monkeypatch.setenv("UNLEARN_TEST_CALL_LOG", str(log))
    scratch = Path(tempfile.mkdtemp())
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the controller makes the shared dir
    pytester.makepyfile(mymethod=_LOGGING_METHOD)
    # --dist load spreads each forget set's tests over the workers: all of them need its run.
    result = pytester.runpytest_subprocess(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-cache-dir={unlearn_cache}",
        "--unlearn-models=4",
        "--unlearn-threads=1",
        "-n",
        "3",
        "--dist",
        "load",
        "-p",
        "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    # At this N every case has an outcome: a verdict, or inconclusive (skipped with its reason).
    ran = sum(outcomes.get(outcome, 0) for outcome in ("passed", "failed", "skipped"))
    assert ran == len(CONFORMANCE_IDS), outcomes
    made = Counter(tuple(line.split()) for line in log.read_text().splitlines())
    requests = {"knn36": 1, "random36": 1, "seq3x12": 3}
    expected = {
        (f, str(m), str(k)) for f, n in requests.items() for m in range(4) for k in range(n)
    }
    assert set(made) == expected
    assert set(made.values()) == {1}
    # The controller removes the shared directory when the run ends.
    assert not list(scratch.glob("pytest-unlearn-runs-*"))


@settings(max_examples=20, deadline=None, database=None)
@given(turns=st.lists(st.sampled_from("ab"), min_size=MODELS, max_size=3 * MODELS))
def test_any_interleaving_of_two_workers_makes_each_call_once(turns: list[str]) -> None:
    """Two workers taking turns at claiming, in any order, split the members between them
    with none run twice; both then read the same run as one worker alone would make."""
    with tempfile.TemporaryDirectory() as shared:
        boards = {name: RunBoard(Path(shared)) for name in "ab"}
        claims = {name: boards[name].claims(range(MODELS)) for name in "ab"}
        ran: dict[str, list[int]] = {"a": [], "b": []}
        for name in [*turns, "a", "b"] + ["a", "b"] * MODELS:  # then both finish
            index = next(claims[name], None)
            if index is not None:
                boards[name].publish(index, _member(index))
                ran[name].append(index)
        assert sorted(ran["a"] + ran["b"]) == list(range(MODELS))
        for board in boards.values():
            board.wait(range(MODELS), take_over=lambda index: pytest.fail("nothing orphaned"))
            read = [board.read(index) for index in range(MODELS)]
            assert [m.margins[0].tolist() for m in read] == [[float(i)] for i in range(MODELS)]


def _member(index: int) -> MemberRun:
    return MemberRun(margins=[torch.tensor([float(index)])], seconds=0.0, certificates=[{}])
