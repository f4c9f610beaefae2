"""l1-sparse unlearning: fine-tune on the retain set with a decaying L1 penalty on the weights.

Jia, Liu, Ram, Yao, Liu, Liu, Sharma and Liu, "Model Sparsity Can Simplify Machine
Unlearning", NeurIPS 2023. Their message is "prune first, then unlearn": approximate
unlearning closes more of the gap to retraining on a sparse model. Their "l1-sparse MU"
variant folds the sparsification into the unlearning itself, fine-tuning on the retain set
with the objective

    CE(retain batch) + gamma_t * ||theta||_1,    gamma_t = l1_strength * (1 - t / T)

over the ``T`` steps of the run: strong sparsity pressure early (while the model moves away
from the forget set's influence), none at the end (so the last steps recover accuracy). The
penalty covers every parameter, as in the paper.

Hyper-parameters (``DEFAULTS``): per benchmark the values ``benchmarks/sweep_examples.py``
chose (``examples/tuned.json``), overridable with ``--unlearn-param``; the learning rate is our
own, not ``context.recipe.lr`` (a recipe's optimizer may not be SGD). Cost: ``epoch_fraction``
of retraining's ``recipe.epochs`` passes over the retain set.

    pytest --unlearn-method=examples.l1_sparse:unlearn
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from examples.hyperparameters import choose

if TYPE_CHECKING:  # types only: a method needs nothing of pytest-unlearn at run time
    from pytest_unlearn.contract import DataSplit, UnlearnContext

#: ``epoch_fraction``: passes over the retain set, as a fraction of the benchmark's retraining
#: epochs (at least one); ``l1_strength``: ``gamma`` at the first step (it decays linearly to 0
#: at the last).
DEFAULTS = {
    "lr": 0.01,
    "epoch_fraction": 0.1,
    "l1_strength": 5e-4,
    "momentum": 0.9,
    "batch_size": 64,
}


def l1_norm(model: nn.Module) -> torch.Tensor:
    """The sum of absolute values of every parameter.

    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> _ = torch.nn.init.constant_(layer.weight, -1.5)
    >>> l1_norm(layer).item()
    3.0
    """
    return torch.stack([parameter.abs().sum() for parameter in model.parameters()]).sum()


def unlearn(
    model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
) -> nn.Module:
    """Fine-tune ``model`` in place on ``retain`` under the decaying L1 penalty; return it.

    >>> unlearn(model, forget, retain, context)  # doctest: +SKIP
    Sequential(...)
    """
    hp = choose("l1_sparse", DEFAULTS, context)
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    order = torch.Generator().manual_seed(context.seed)
    epochs = max(1, round(hp["epoch_fraction"] * context.recipe.epochs))
    total_steps = epochs * math.ceil(len(retain) / hp["batch_size"])
    step = 0
    model.train()
    for _ in range(epochs):
        for inputs, targets in retain.loader(hp["batch_size"], shuffle=True, generator=order):
            strength = hp["l1_strength"] * (1.0 - step / total_steps)
            loss = nn.functional.cross_entropy(model(inputs), targets)
            loss = loss + strength * l1_norm(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return model
