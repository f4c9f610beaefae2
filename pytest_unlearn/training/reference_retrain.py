"""Exact retraining of one model, the way a method author would write it (no vmap).

The suite times it once per benchmark so every method's cost can be read against the cost
of exact unlearning. ``examples/retrain.py`` is the same algorithm written as a plain method
(it must import nothing of ours, so it is kept as its own copy).
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..benchmarks.spec import Benchmark
from .ensemble_trainer import unstack_member


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
    loader = DataLoader(
        TensorDataset(
            data.inputs[train_indices].to(device), data.targets[train_indices].to(device)
        ),
        batch_size=recipe.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model.train()
    for _ in range(recipe.epochs):
        for inputs, targets in loader:
            loss = nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def retrain_seconds(benchmark: Benchmark, device: torch.device) -> float:
    """Wall-clock seconds to retrain one model on the full training split."""
    started = time.perf_counter()
    retrain_one(benchmark, benchmark.load_data().train_indices, seed=0, device=device)
    return time.perf_counter() - started
