"""Exact retraining of one model, the way a method author would write it (no vmap): the
reference cost every method's cost is read against.

A store build times it once (:func:`retrain_seconds`) and writes the figure into the manifest
under the device kind it ran on (:func:`device_kind`); runs read it from there, so no run
retrains just to print the figure. ``examples/retrain.py`` is the same algorithm written as a
plain method (it must import nothing of ours, so it is kept as its own copy).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..benchmarks.spec import Benchmark
from ..contract import DataSplit
from ..training import unstack_member


def device_kind(device: torch.device | str) -> str:
    """The kind of device a time was measured on: ``"cpu"``, or ``"cuda:"`` and the GPU's name
    (two GPUs of one model are one kind).

    >>> device_kind("cpu")
    'cpu'
    """
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def _own_trainer(benchmark: Benchmark) -> bool:
    """Whether the benchmark trains with its own rules (a schedule, an exact solver) rather
    than the plain SGD loop below."""
    return (
        benchmark.recipe.optimizer != "sgd"
        or type(benchmark).train_members is not Benchmark.train_members
    )


def retrain_one(
    benchmark: Benchmark, train_indices: torch.Tensor, seed: int, device: torch.device
) -> nn.Module:
    """A freshly initialized model trained with the benchmark's recipe on ``train_indices``."""
    if _own_trainer(benchmark):
        # Exact minimizers, or a schedule the loop below does not follow: the benchmark's own
        # trainer, one seed (one member: what one retraining costs).
        params = benchmark.train_members(train_indices, [seed], device=device)
        return unstack_member(benchmark.build_model, params, 0).to(torch.device(device))
    data = benchmark.load_data()
    recipe = benchmark.recipe
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = benchmark.build_model().to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    # The same batches as ``DataSplit.loader`` (what examples/retrain.py uses), so the time
    # measured here is the time of that method.
    split = DataSplit(
        data.inputs[train_indices].to(device), data.targets[train_indices].to(device), train_indices
    )
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(recipe.epochs):
        for inputs, targets in split.loader(recipe.batch_size, shuffle=True, generator=order):
            loss = nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def retrain_seconds(benchmark: Benchmark, device: torch.device | str) -> float:
    """Wall-clock seconds to retrain one model on the full training split.

    One untimed retraining on a few points first: torch's first optimizer step imports
    modules lazily, seconds that no later retraining (and no method call) pays.
    """
    device = torch.device(device)
    train = benchmark.load_data().train_indices
    retrain_one(benchmark, train[: 2 * benchmark.recipe.batch_size], seed=0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    retrain_one(benchmark, train, seed=0, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
