"""The batched evaluation path (``harness.batched_margins``) gives the per-model path's margins,
and the method runner keeps every guarantee with it: snapshots of each returned state, shared
runs between workers, sequential requests, failures published so nobody waits."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter

import pytest
import torch
from test_harness_properties import TinyBenchmark, _forget_set
from torch import nn

from pytest_unlearn.harness import method_runner
from pytest_unlearn.harness.batched_margins import MarginBatcher, batched_margins
from pytest_unlearn.harness.contract_checks import ContractViolation
from pytest_unlearn.harness.method_runner import _margins_of, run_method
from pytest_unlearn.harness.shared_runs import MemberFailedElsewhere
from pytest_unlearn.store import Ensembles, load_or_build

CPU = torch.device("cpu")
TOLERANCE = 1e-5
REQUESTS = ((0, 1), (2,), (3, 4))  # a sequential forget set: three requests
MODELS = 5


def _mlp(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).eval()


def _points(n: int = 1797, features: int = 64, classes: int = 10, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = 3 * torch.randn(n, features, generator=generator)
    return inputs, torch.randint(0, classes, (n,), generator=generator)


def _per_model(models: list[nn.Module], inputs, targets) -> torch.Tensor:
    return torch.stack([_margins_of(model, inputs, targets) for model in models])


@pytest.mark.parametrize("max_pairs", [2**14, 1000, 7])  # one pass; point chunks; tiny chunks
def test_batched_margins_agree_with_the_per_model_path(max_pairs: int) -> None:
    models = [_mlp(seed) for seed in range(6)]
    inputs, targets = _points()
    together = batched_margins(models, inputs, targets, max_pairs=max_pairs, max_models=4)
    assert together.shape == (6, 1797) and together.dtype == torch.float32
    assert together.device == CPU
    assert (together - _per_model(models, inputs, targets)).abs().max() < TOLERANCE


def test_buffers_and_eval_mode_are_those_of_the_per_model_path() -> None:
    """Running statistics (buffers) are stacked too, and dropout is off: eval mode."""

    def model(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = nn.Sequential(
                nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3)
            )
            net[1].running_mean.normal_()
            net[1].running_var.uniform_(0.5, 2.0)
        return net.train()  # left in train mode: both paths must evaluate it in eval mode

    models = [model(seed) for seed in range(4)]
    inputs, targets = _points(50, 8, 3)
    together = batched_margins(models, inputs, targets)
    assert (together - _per_model(models, inputs, targets)).abs().max() < TOLERANCE
    assert all(m.training for m in models)  # the caller's models are left as they were


def test_models_of_another_structure_are_refused_together_and_grouped_by_the_batcher() -> None:
    inputs, targets = _points(40, 64, 10)
    wide = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    models = [_mlp(0), wide, _mlp(1)]
    with pytest.raises(ValueError, match="differ in structure"):
        batched_margins(models, inputs, targets)
    batcher = MarginBatcher(inputs, targets)
    outs = [batcher.add(model) for model in models]
    batcher.flush()
    assert batcher.stacking
    assert (torch.stack(outs) - _per_model(models, inputs, targets)).abs().max() < TOLERANCE


def test_a_models_margins_do_not_depend_on_the_models_stacked_with_it() -> None:
    """Fixed-shape stacks: whoever shares the stack, and wherever the model sits in it, its
    margins come out bit for bit the same (how workers split a run changes nothing)."""
    inputs, targets = _points()
    models = [_mlp(seed) for seed in range(7)]

    def margins_in(order: list[int]) -> dict[int, torch.Tensor]:
        batcher = MarginBatcher(inputs, targets, stack=4, max_pairs=3000)
        outs = {i: batcher.add(models[i]) for i in order}
        batcher.flush()
        return outs

    first, second = margins_in([0, 1, 2, 3, 4, 5]), margins_in([6, 5, 3, 0, 1, 4, 2])
    assert all(torch.equal(first[i], second[i]) for i in range(6))


class _DataDependent(nn.Module):
    """A forward vmap cannot run (``.item()`` on a batched tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out / max(1.0, float(out.abs().max()))


def test_a_model_vmap_cannot_run_falls_back_to_one_at_a_time() -> None:
    inputs, targets = _points(30, 4, 3)
    models = [_DataDependent().eval() for _ in range(3)]
    batcher = MarginBatcher(inputs, targets)
    outs = [batcher.add(model) for model in models]
    batcher.flush()
    assert not batcher.stacking
    assert (torch.stack(outs) - _per_model(models, inputs, targets)).abs().max() < TOLERANCE


def test_add_snapshots_the_model_and_a_failed_flush_writes_nothing() -> None:
    inputs, targets = _points(30, 64, 10)
    model = _mlp(0)
    expected = _margins_of(model, inputs, targets)
    batcher = MarginBatcher(inputs, targets, stack=2)
    out = batcher.add(model)
    with torch.no_grad():  # the next request's method changes the model it was handed
        for parameter in model.parameters():
            parameter.add_(1.0)
    assert torch.isnan(out).all() and batcher.pending == 1 and not batcher.full

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(10, 64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("disk on fire")

    batcher.add(Broken())
    assert batcher.full
    with pytest.raises(RuntimeError, match="disk on fire"):
        batcher.flush()
    assert batcher.pending == 2 and torch.isnan(out).all()  # nothing half-written
    batcher._queue.pop()  # drop the broken one: the rest flushes
    batcher.flush()
    assert batcher.pending == 0
    assert (out - expected).abs().max() < TOLERANCE


# --- the method runner with the batched path forced on the CPU ---


@pytest.fixture(scope="module")
def ensembles(tmp_path_factory: pytest.TempPathFactory) -> Ensembles:
    bench = TinyBenchmark((_forget_set(REQUESTS),))
    cache = tmp_path_factory.mktemp("tiny-cache")
    return load_or_build(bench, MODELS, cache, log=lambda message: None)


def noisy_method(model, forget, retain, context):
    """Random (seeded by the harness), depends on its previous output, changes the model it
    was handed in place (the previous request's evaluated model)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    context.certificate["requests_before"] = len(context.history)
    return model


def _assert_close_runs(a, b) -> None:
    assert sorted(a.margins) == sorted(b.margins) == [1, 2, 3]
    for k in a.margins:
        assert a.margins[k].shape == b.margins[k].shape == (MODELS, 40)
        assert not torch.isnan(a.margins[k]).any()
        assert (a.margins[k] - b.margins[k]).abs().max() < TOLERANCE, k
    assert a.certificates == b.certificates
    assert (a.unchanged_calls, a.calls) == (b.unchanged_calls, b.calls)
    for kept_a, kept_b in zip(a.outputs or [], b.outputs or [], strict=True):
        for state_a, state_b in zip(kept_a, kept_b, strict=True):
            assert all(torch.equal(state_a[n], state_b[n]) for n in state_a)


@pytest.mark.parametrize("stack", [1, 2, 16])
def test_a_batched_run_equals_the_per_model_run(ensembles, monkeypatch, stack) -> None:
    monkeypatch.setattr(
        method_runner,
        "MarginBatcher",
        lambda inputs, targets: MarginBatcher(inputs, targets, stack=stack),
    )
    per_model = run_method(noisy_method, ensembles, "fs", CPU, keep_outputs=True)
    batched = run_method(
        noisy_method, ensembles, "fs", CPU, keep_outputs=True, batched_margins=True
    )
    _assert_close_runs(batched, per_model)


def test_a_shared_batched_run_equals_the_per_model_run(ensembles, tmp_path) -> None:
    per_model = run_method(noisy_method, ensembles, "fs", CPU, keep_outputs=True)
    shared = run_method(
        noisy_method, ensembles, "fs", CPU, keep_outputs=True, shared=tmp_path,
        batched_margins=True,
    )  # fmt: skip
    _assert_close_runs(shared, per_model)


def _worker(ensembles, shared, calls, queue) -> None:
    torch.set_num_threads(1)  # a forked child must not use the parent's thread pool

    def logged(model, forget, retain, context):
        with open(calls, "a") as log:
            log.write(f"{context.model_index} {context.request_index} {os.getpid()}\n")
        return noisy_method(model, forget, retain, context)

    run = run_method(logged, ensembles, "fs", CPU, shared=shared, batched_margins=True)
    queue.put({k: v.tolist() for k, v in run.margins.items()})


@pytest.mark.parametrize("stack", [2, 16])
def test_processes_sharing_a_batched_run_make_each_call_once(
    ensembles, tmp_path, monkeypatch, stack
) -> None:
    """Members wait for their flush before they are published; the other processes wait for
    them, read them, and nobody calls the method twice."""
    monkeypatch.setattr(
        method_runner,
        "MarginBatcher",
        lambda inputs, targets: MarginBatcher(inputs, targets, stack=stack),
    )
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
    made = Counter(tuple(line.split()[:2]) for line in calls.read_text().splitlines())
    assert made == Counter({(str(m), str(k)): 1 for m in range(MODELS) for k in range(3)})
    assert results[0] == results[1] == results[2]
    local = run_method(noisy_method, ensembles, "fs", CPU)
    for k, values in local.margins.items():
        assert (torch.tensor(results[0][k]) - values).abs().max() < TOLERANCE


def test_the_cpu_default_is_the_per_model_path(ensembles, monkeypatch) -> None:
    calls = []
    original = method_runner._margins_of

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(method_runner, "_margins_of", counted)
    run_method(noisy_method, ensembles, "fs", CPU)
    assert len(calls) == MODELS * len(REQUESTS)
    calls.clear()
    run_method(noisy_method, ensembles, "fs", CPU, batched_margins=True)
    assert calls == []


def test_a_failure_in_a_batched_shared_run_leaves_no_member_waited_for(ensembles, tmp_path) -> None:
    def fails_on_model_3(model, forget, retain, context):
        if context.model_index == 3:
            raise ValueError("boom")
        return noisy_method(model, forget, retain, context)

    with pytest.raises(ValueError, match="boom"):
        run_method(fails_on_model_3, ensembles, "fs", CPU, shared=tmp_path, batched_margins=True)
    (board,) = tmp_path.iterdir()
    for index in range(MODELS):
        claimed = (board / f"model-{index}.claim").exists()
        settled = (board / f"model-{index}.safetensors").exists() or (
            board / f"model-{index}.error"
        ).exists()
        assert settled or not claimed, index  # a claim of a live process is never left open
    # Members run before the failure were published with their margins, not as failures.
    assert all((board / f"model-{i}.safetensors").exists() for i in range(3))
    with pytest.raises(MemberFailedElsewhere, match="boom"):
        run_method(noisy_method, ensembles, "fs", CPU, shared=tmp_path, batched_margins=True)


def test_a_contract_violation_is_still_one_in_the_batched_path(ensembles) -> None:
    def returns_float64(model, forget, retain, context):
        return model.double()

    with pytest.raises(ContractViolation, match="float64"):
        run_method(returns_float64, ensembles, "fs", CPU, batched_margins=True)
