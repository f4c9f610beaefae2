"""Property tests of the harness on a tiny benchmark: whatever the forget sets and request
sequences, the method sees exactly what the contract promises, and the matrix is stable."""

from __future__ import annotations

import tempfile
from functools import cached_property
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from pytest_unlearn.benchmarks.spec import Benchmark, Dataset, ForgetSet, TrainingRecipe
from pytest_unlearn.harness.cases import ConformanceCase
from pytest_unlearn.harness.method_runner import run_method
from pytest_unlearn.store import load_or_build

N_POINTS, N_TRAIN = 40, 30


class TinyBenchmark(Benchmark):
    """30 training and 10 validation points in 4 dimensions; a linear model, one epoch."""

    name = "tiny"
    description = "synthetic, for property tests"
    recipe = TrainingRecipe(epochs=1, lr=0.1, batch_size=8)

    def __init__(self, forget_sets: tuple[ForgetSet, ...]) -> None:
        self._sets = forget_sets

    @cached_property
    def _data(self) -> Dataset:
        generator = torch.Generator().manual_seed(0)
        return Dataset(
            inputs=torch.randn(N_POINTS, 4, generator=generator),
            targets=torch.randint(0, 3, (N_POINTS,), generator=generator),
            train_indices=torch.arange(N_TRAIN),
            validation_indices=torch.arange(N_TRAIN, N_POINTS),
            num_classes=3,
        )

    def load_data(self) -> Dataset:
        return self._data

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 3))

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        return self._sets


@st.composite
def schedules(draw: st.DrawFn) -> tuple[tuple[int, ...], ...]:
    """1-3 disjoint, non-empty requests of training points."""
    points = draw(st.permutations(range(N_TRAIN)))
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    requests, start = [], 0
    for size in sizes:
        requests.append(tuple(sorted(points[start : start + size])))
        start += size
    return tuple(requests)


def _forget_set(requests: tuple[tuple[int, ...], ...]) -> ForgetSet:
    indices = tuple(sorted(i for request in requests for i in request))
    return ForgetSet("fs", "random", indices, requests=requests)


#: A bias no trained model has: marks parameters the recorder wrote.
_MARK = 1234.0


class Recorder:
    """A method that records what it was given and tags what it returns, in its parameters
    (the parameters are the model: nothing else of a returned object reaches the next call)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, model, forget, retain, context):
        bias = model[0].bias.detach()
        received = (int(bias[0]), int(bias[1])) if float(bias[2]) == _MARK else None
        self.calls.append(
            {
                "model_index": context.model_index,
                "request_index": context.request_index,
                "forget": forget.indices.tolist(),
                "retain": retain.indices.tolist(),
                "received_tag": received,
                "received_attribute": getattr(model, "tag", None),
                "seed": context.seed,
            }
        )
        with torch.no_grad():
            model[0].bias.copy_(torch.tensor([context.model_index, context.request_index, _MARK]))
        model.tag = (context.model_index, context.request_index)
        return model


_SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@_SETTINGS
@given(requests=schedules())
def test_method_sees_each_request_and_its_own_previous_output(requests) -> None:
    bench = TinyBenchmark((_forget_set(requests),))
    with tempfile.TemporaryDirectory() as cache:
        ensembles = load_or_build(bench, 2, Path(cache), log=lambda message: None)
        recorder = Recorder()
        run = run_method(recorder, ensembles, "fs", torch.device("cpu"))
    deleted: set[int] = set()
    calls = iter(recorder.calls)
    for model_index in range(2):
        for k, request in enumerate(requests):
            call = next(calls)
            deleted |= set(request) if model_index == 0 else set()
            so_far = {i for r in requests[: k + 1] for i in r}
            assert call["model_index"] == model_index and call["request_index"] == k
            assert call["forget"] == sorted(request)
            assert set(call["retain"]) == set(range(N_TRAIN)) - so_far  # never validation
            assert call["received_tag"] == (None if k == 0 else (model_index, k - 1))
            assert call["received_attribute"] is None  # only the state carries over
    assert sorted(run.margins) == list(range(1, len(requests) + 1))
    assert all(m.shape == (2, N_POINTS) for m in run.margins.values())


@_SETTINGS
@given(requests=schedules())
def test_every_call_gets_a_distinct_seed(requests) -> None:
    bench = TinyBenchmark((_forget_set(requests),))
    with tempfile.TemporaryDirectory() as cache:
        ensembles = load_or_build(bench, 2, Path(cache), log=lambda message: None)
        recorder = Recorder()
        run_method(recorder, ensembles, "fs", torch.device("cpu"))
    seeds = [call["seed"] for call in recorder.calls]
    assert len(set(seeds)) == len(seeds)


@_SETTINGS
@given(requests=schedules())
def test_store_holds_one_oracle_pair_per_request(requests) -> None:
    bench = TinyBenchmark((_forget_set(requests),))
    with tempfile.TemporaryDirectory() as cache:
        ensembles = load_or_build(bench, 2, Path(cache), log=lambda message: None)
    assert sorted(ensembles.oracles) == [("fs", k) for k in range(1, len(requests) + 1)]


@given(
    names=st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, unique=True),
    request=st.integers(1, 5),
)
def test_case_ids_are_unique_and_readable(names: list[str], request: int) -> None:
    cases = [
        ConformanceCase("bench", name, split, request, sequential)
        for name in names
        for split in ("forget", "retain", "validation")
        for sequential in (False, True)
    ]
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids)
    assert all(" " not in case_id and case_id.startswith("bench-") for case_id in ids)
