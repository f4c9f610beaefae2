"""Fine-tuning: keep training the pretrained model on the retain set only, for a few epochs.

The oldest approximate-unlearning baseline ("FT" in Golatkar et al., "Eternal Sunshine of the
Spotless Net", CVPR 2020, and in Jia et al., "Model Sparsity Can Simplify Machine
Unlearning", NeurIPS 2023): the forget set is simply never seen again, and a few epochs of SGD
on the retain set are hoped to wash out its influence (catastrophic forgetting). It costs
``epoch_fraction`` of retraining's ``recipe.epochs`` passes over the retain set (4 of 40 on
digits-mlp, 2 of 20 on mnist1d-cnn, 20 of 200 on digits-logreg).

Hyper-parameters (``DEFAULTS``): per benchmark the values ``benchmarks/sweep_examples.py``
chose (``examples/tuned.json``), overridable with ``--unlearn-param``, e.g. ``lr=0.05``. The
learning rate is our own, not ``context.recipe.lr``: a benchmark's recipe may use another
optimizer whose ``lr`` is no SGD step size.

    pytest --unlearn-method=examples.finetune:unlearn
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from examples.hyperparameters import choose

if TYPE_CHECKING:  # types only: a method needs nothing of pytest-unlearn at run time
    from pytest_unlearn.contract import DataSplit, UnlearnContext

#: ``epoch_fraction``: passes over the retain set, as a fraction of the benchmark's retraining
#: epochs (at least one), so the compute scales with the benchmark's.
DEFAULTS = {"lr": 0.01, "epoch_fraction": 0.1, "momentum": 0.9, "batch_size": 64}


def unlearn(
    model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
) -> nn.Module:
    """Fine-tune ``model`` in place on ``retain`` and return it.

    >>> unlearn(model, forget, retain, context)  # doctest: +SKIP
    Sequential(...)
    """
    hp = choose("finetune", DEFAULTS, context)
    epochs = max(1, round(hp["epoch_fraction"] * context.recipe.epochs))
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    # A generator seeded per call: the batch order is reproducible and differs per model.
    order = torch.Generator().manual_seed(context.seed)
    model.train()
    for _ in range(epochs):
        for inputs, targets in retain.loader(hp["batch_size"], shuffle=True, generator=order):
            loss = nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model
