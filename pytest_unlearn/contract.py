"""What an unlearning method receives: the data splits and the context.

A method is a plain function and needs to import nothing from this package::

    def unlearn(model, forget, retain, context):
        opt = torch.optim.SGD(model.parameters(), lr=context.recipe.lr)
        for x, y in retain.loader(batch_size=context.recipe.batch_size):
            ...
        return model

The objects below only document (and type) what arrives in ``forget``, ``retain`` and
``context``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
)


@dataclass(frozen=True)
class TrainingRecipe:
    """How every pretrained and oracle model of a benchmark is trained.

    Methods receive it through ``context.recipe`` so they can scale their compute, and an
    exact-unlearning baseline can retrain with it:

    Example::

        recipe = TrainingRecipe(epochs=30, lr=0.05, batch_size=64)
        torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                        weight_decay=recipe.weight_decay)

    The data order is a fresh random permutation of the training split every epoch, in
    minibatches of ``batch_size`` (the last one may be smaller); the loss is the mean
    cross-entropy of the minibatch; the optimizer is ``torch.optim.SGD``.

    ``optimizer="newton"`` marks a convex benchmark whose models are *exact* minimizers of
    their objective (see :mod:`pytest_unlearn.training.convex`): ``epochs`` is then the cap
    on Newton steps, and ``lr``, ``batch_size`` and ``momentum`` are only SGD settings that
    a fine-tuning method may use. ``loss_perturbation`` is the standard deviation of the
    objective's random linear term ``<b, W>`` (Guo et al. 2020), 0 for none.
    """

    epochs: int
    lr: float
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    loss: str = "cross_entropy"
    loss_perturbation: float = 0.0


@dataclass(frozen=True)
class DataSplit:
    """A labelled data split, already on the evaluation device.

    ``indices`` are the points' positions in the benchmark's full data set, so a method that
    keeps per-point state across sequential requests can key it.

    Example::

        for inputs, targets in forget.loader(batch_size=32, shuffle=False):
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return len(self.targets)

    def loader(
        self,
        batch_size: int = 64,
        *,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
    ) -> DataLoader:
        """Minibatches of ``(inputs, targets)``; with ``shuffle`` a fresh order every epoch.

        The batches are those of ``DataLoader(..., batch_size, shuffle, generator)``, but each
        is gathered with one indexing operation rather than one per example (on a GPU that is
        one kernel launch instead of ``batch_size``).
        """
        dataset = TensorDataset(self.inputs, self.targets)
        if shuffle:
            order = RandomSampler(dataset, generator=generator)
        else:
            order = SequentialSampler(dataset)
        # The loader draws its base seed from ``generator`` too, as the plain one does, so the
        # generator's stream (and every later batch order) is unchanged.
        return DataLoader(
            dataset,
            sampler=BatchSampler(order, batch_size, drop_last=False),
            batch_size=None,
            generator=generator,
        )


@dataclass
class UnlearnContext:
    """Everything about the call that is not the model or the data.

    ``seed`` is fresh for each (forget set, request, model) and differs from every seed used
    to train the oracles; the global torch RNG is also seeded with it before the call.
    ``certificate`` is a dict the method may fill (certified methods report their bounds here,
    see :mod:`pytest_unlearn.certified.claim`); ``history`` holds the certificates of this
    model's earlier requests in a sequential schedule (oldest first), so state can be carried.
    ``params`` holds the run's ``--unlearn-param KEY=VALUE`` settings (a fresh dict per call),
    so one method file serves a hyper-parameter sweep. ``request_index`` counts from 0 (test
    ids count requests from 1: ``...-req1-...`` is ``request_index == 0``).
    """

    device: torch.device
    seed: int
    model_index: int
    request_index: int
    recipe: TrainingRecipe
    benchmark: str
    forget_set: str
    num_classes: int
    certificate: dict[str, Any] = field(default_factory=dict)
    history: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


class UnlearnMethod(Protocol):
    """The method contract: ``unlearn(model, forget, retain, context) -> nn.Module``."""

    def __call__(
        self, model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
    ) -> nn.Module: ...
