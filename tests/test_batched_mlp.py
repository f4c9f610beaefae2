"""Which models the batched engine takes, and what it hands back.

Its training arithmetic is checked against a per-model loop in test_ensemble_trainer.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from pytest_unlearn.benchmarks import TrainingRecipe, get_benchmark
from pytest_unlearn.training.batched_mlp import BatchedMLP, supports

RECIPE = TrainingRecipe(epochs=1, lr=0.05, batch_size=8, momentum=0.9, weight_decay=1e-3)


class ScaledLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * super().forward(x)


def frozen_bias() -> nn.Module:
    model = nn.Linear(64, 10)
    model.bias.requires_grad_(False)
    return model


SUPPORTED: dict[str, Callable[[], nn.Module]] = {
    "digits-mlp": get_benchmark("digits-mlp").build_model,
    "digits-logreg": get_benchmark("digits-logreg").build_model,
    "bias-free-hidden-layers": lambda: nn.Sequential(
        nn.Linear(64, 32, bias=False), nn.ReLU(), nn.Linear(32, 10, bias=False)
    ),
    "relu-first": lambda: nn.Sequential(nn.ReLU(inplace=True), nn.Linear(64, 10)),
    "float64": lambda: nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10)).double(),
}

UNSUPPORTED: dict[str, Callable[[], nn.Module]] = {
    "mnist1d-cnn": get_benchmark("mnist1d-cnn").build_model,
    "conv1d": lambda: nn.Sequential(
        nn.Unflatten(1, (1, 64)), nn.Conv1d(1, 4, 5), nn.Flatten(), nn.Linear(240, 10)
    ),
    "tanh": lambda: nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10)),
    "linear-subclass": lambda: ScaledLinear(64, 10),
    "nested-sequential": lambda: nn.Sequential(nn.Sequential(nn.Linear(64, 10))),
    "relu-only": lambda: nn.Sequential(nn.ReLU()),
    "frozen-bias": frozen_bias,
    "mixed-dtypes": lambda: nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10).double()),
}


@pytest.mark.parametrize("build", SUPPORTED.values(), ids=SUPPORTED.keys())
def test_supports_a_bare_linear_and_sequentials_of_linear_and_relu(build) -> None:
    assert supports(build())


@pytest.mark.parametrize("build", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_supports_rejects_every_other_model(build) -> None:
    assert not supports(build())


def test_an_unsupported_model_raises_value_error() -> None:
    members = [UNSUPPORTED["conv1d"]() for _ in range(2)]
    with pytest.raises(ValueError, match=r"nn\.Linear and nn\.ReLU"):
        BatchedMLP(members, torch.zeros(4, 64), torch.zeros(4, dtype=torch.long), RECIPE)


@pytest.mark.parametrize("name", ["digits-mlp", "digits-logreg", "float64"])
def test_parameters_are_stacked_state_dicts_with_storage_of_their_own(name: str) -> None:
    members = [SUPPORTED[name]() for _ in range(3)]
    inputs, targets = torch.rand(20, 64), torch.arange(20) % 10
    trainer = BatchedMLP(members, inputs, targets, RECIPE)
    trainer.step(torch.randint(0, 20, (3, 8)))
    params = trainer.parameters()
    state = members[0].state_dict()
    assert list(params) == list(state)
    for key, value in params.items():
        assert value.shape == (3, *state[key].shape)
        assert value.dtype == state[key].dtype
        assert value.is_contiguous()
        assert value.untyped_storage().nbytes() == value.nbytes
