"""``digits-logreg-perturbed``: the certified-removal benchmark (Guo et al. 2020's setting).

Same data, split and forget sets as ``digits-mlp``; the model is ``nn.Linear(64, 10,
bias=False)``. Unlike ``digits-logreg`` (SGD, whose spread between members is optimization
noise), every model here is the *exact* minimizer of the loss-perturbed objective of
:mod:`pytest_unlearn.training.convex`::

    L_b(W; S) = (1/|S|) sum_{i in S} cross_entropy(W x_i, y_i) + (l2 / 2) ||W||^2 + <b, W>

with ``l2 = 1e-2`` and a fresh ``b ~ N(0, sigma^2 I)``, ``sigma = 3e-3``, per model. The members
differ only through ``b``; an oracle is the minimizer over the retain set with its own ``b``.
That is exactly the distribution a certified (epsilon, delta) removal promises to match, so
the white-box checks of :mod:`pytest_unlearn.certified` can compute the gradient residual of
a method's output exactly.

``l2`` and ``sigma`` were chosen together (docs/certified.md has the figures): one Newton
removal step leaves a gradient residual small against the budget ``sigma * epsilon / c`` for
epsilon around 1, and the noise costs about one point of validation accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch

from ..training import convex
from .digits_logreg import DigitsLogReg
from .spec import TrainingRecipe

L2_STRENGTH = 1e-2
NOISE_STD = 3e-3


@dataclass(frozen=True)
class PerturbedObjective:
    """What a white-box check needs to know about a benchmark's exact training objective.

    ``perturbation(seed)`` regenerates the ``b`` of the model trained with ``seed``.
    """

    l2: float
    noise_std: float
    parameter: str  # the state-dict entry holding W
    perturbation: Callable[[int], torch.Tensor]


class DigitsLogRegPerturbed(DigitsLogReg):
    """Loss-perturbed L2 logistic regression, solved exactly, on digits-mlp's data.

    Data, split, forget sets and model are ``digits-logreg``'s (inherited); the recipe and
    the trainer are its own.

    >>> from pytest_unlearn.benchmarks import get_benchmark
    >>> bench = get_benchmark("digits-logreg-perturbed")
    >>> bench.recipe.optimizer, bench.recipe.loss_perturbation
    ('newton', 0.003)
    """

    name = "digits-logreg-perturbed"
    description = (
        "scikit-learn 8x8 digits, loss-perturbed L2 logistic regression (l2=1e-2, "
        "sigma=3e-3), exact minimizers; digits-mlp's split and forget sets"
    )
    recipe = TrainingRecipe(
        epochs=50,
        lr=0.05,
        batch_size=64,
        momentum=0.9,
        weight_decay=L2_STRENGTH,
        optimizer="newton",
        loss_perturbation=NOISE_STD,
    )
    version = 1

    @property
    def objective(self) -> PerturbedObjective:
        return PerturbedObjective(
            l2=L2_STRENGTH,
            noise_std=NOISE_STD,
            parameter="weight",
            perturbation=lambda seed: convex.loss_perturbation(seed, (10, 64), NOISE_STD),
        )

    @cached_property
    def _unperturbed_minimizer(self) -> torch.Tensor:
        data = self.load_data()
        inputs, targets = data.inputs[data.train_indices], data.targets[data.train_indices]
        return convex.solve(inputs, targets, L2_STRENGTH, torch.zeros(1, 10, 64))

    def train_members(
        self,
        train_indices: torch.Tensor,
        seeds: list[int],
        *,
        device: torch.device | str = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        data = self.load_data()
        perturbations = torch.stack([self.objective.perturbation(seed) for seed in seeds])
        # Starting every member at the same deterministic point only shortens Newton's path.
        weights = convex.solve(
            data.inputs[train_indices],
            data.targets[train_indices],
            L2_STRENGTH,
            perturbations,
            start=self._unperturbed_minimizer,
            max_newton=self.recipe.epochs,
            progress=progress,
        )
        return {"weight": weights.float().to(device)}
