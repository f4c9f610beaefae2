"""The vmap ensemble trainer is per-model SGD, vectorized: each member depends on its seed only.

Small models on a slice of the digits data keep every test well under a second.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from pytest_unlearn.benchmarks import TrainingRecipe, get_benchmark
from pytest_unlearn.training import ensemble_logits, train_ensemble
from pytest_unlearn.training.ensemble_trainer import order_generator

RECIPE = TrainingRecipe(epochs=1, lr=0.05, batch_size=32, momentum=0.9, weight_decay=1e-3)


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = get_benchmark("digits-mlp").load_data()
    # 100 points: 3 full minibatches and a short one, so the ragged last batch is exercised.
    return digits.inputs, digits.targets, digits.train_indices[:100]


def loop_train(
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], recipe: TrainingRecipe, seed: int
) -> dict[str, torch.Tensor]:
    """One model the plain way: an nn.Module, torch.optim.SGD, the trainer's seeding rules."""
    inputs, targets, train = data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    generator = order_generator(seed)
    for _ in range(recipe.epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {name: value.detach() for name, value in model.state_dict().items()}


def vmap_train(
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    recipe: TrainingRecipe,
    seeds: list[int],
) -> dict[str, torch.Tensor]:
    inputs, targets, train = data
    return train_ensemble(build_model, inputs, targets, train, recipe, seeds)


def test_member_does_not_depend_on_ensemble_size(data) -> None:
    two = vmap_train(data, RECIPE, [11, 12])
    three = vmap_train(data, RECIPE, [11, 13, 14])
    for name in two:
        torch.testing.assert_close(two[name][0], three[name][0], msg=name)


def test_vmap_member_equals_per_model_sgd_with_the_same_seed(data) -> None:
    stacked = vmap_train(data, RECIPE, [21, 22])
    for member, seed in enumerate([21, 22]):
        reference = loop_train(data, RECIPE, seed)
        for name, value in reference.items():
            torch.testing.assert_close(stacked[name][member], value, msg=name)


def test_training_reduces_the_loss(data) -> None:
    inputs, targets, train = data
    seeds = [31, 32, 33]
    initial = vmap_train(data, replace(RECIPE, epochs=0), seeds)
    trained = vmap_train(data, replace(RECIPE, epochs=5), seeds)

    def loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = ensemble_logits(build_model, params, inputs[train])
        return torch.stack([nn.functional.cross_entropy(z, targets[train]) for z in logits])

    # Measured: 2.30 -> 1.85 for every member after 5 epochs (20 steps).
    assert (loss(trained) < 0.9 * loss(initial)).all()
