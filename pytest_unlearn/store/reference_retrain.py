"""Exact retraining of one model, the way a method author would write it (no vmap): the
reference cost every method's cost is read against.

The suite times it once per benchmark so every method's cost can be read against the cost
of exact unlearning. ``examples/retrain.py`` is the same algorithm written as a plain method
(it must import nothing of ours, so it is kept as its own copy).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ..benchmarks.spec import Benchmark
from ..contract import DataSplit
from ..training import unstack_member


def retrain_one(
    benchmark: Benchmark, train_indices: torch.Tensor, seed: int, device: torch.device
) -> nn.Module:
    """A freshly initialized model trained with the benchmark's recipe on ``train_indices``."""
    if benchmark.recipe.optimizer != "sgd":
        # Not trained by SGD (e.g. exact minimizers): the benchmark's own trainer, one seed.
        params = benchmark.train_members(train_indices, [seed], device=device)
        return unstack_member(benchmark.build_model, params, 0).to(device)
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


def retrain_seconds(benchmark: Benchmark, device: torch.device) -> float:
    """Wall-clock seconds to retrain one model on the full training split.

    One untimed retraining on a few points first: torch's first optimizer step imports
    modules lazily, seconds that no later retraining (and no method call) pays.
    """
    train = benchmark.load_data().train_indices
    retrain_one(benchmark, train[: 2 * benchmark.recipe.batch_size], seed=0, device=device)
    started = time.perf_counter()
    retrain_one(benchmark, train, seed=0, device=device)
    return time.perf_counter() - started
