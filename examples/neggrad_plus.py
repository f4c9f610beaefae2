"""NegGrad+: descend on the retain set and ascend on the forget set in the same step.

Introduced as a strong baseline by Kurmanji et al., "Towards Unbounded Machine Unlearning"
(NeurIPS 2023, the SCRUB paper): plain negative gradient (``examples.gradient_ascent``)
destroys the model, so each step minimizes the weighted difference

    retain_weight * CE(retain batch) - (1 - retain_weight) * CE(forget batch)

which pushes the forget points' loss up while the retain term holds the rest of the model in
place. One epoch is one pass over the retain set; the (much smaller) forget set is cycled
alongside it. The cross-entropy of the forget set is unbounded above, so the ascent gets a
small weight (1 %; at 10 % the CNN of mnist1d-cnn diverged, its retain loss exploding within
two epochs) and gradients are clipped to a fixed norm, keeping every weight finite.

Hyper-parameters (``DEFAULTS``): per benchmark the values ``benchmarks/sweep_examples.py``
chose (``examples/tuned.json``), overridable with ``--unlearn-param``; the learning rate is our
own, not ``context.recipe.lr`` (a recipe's optimizer may not be SGD).
Cost: ``epoch_fraction`` of retraining's ``recipe.epochs`` passes over the retain set, each
step with a forget batch too.

    pytest --unlearn-method=examples.neggrad_plus:unlearn
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

from examples.hyperparameters import choose

if TYPE_CHECKING:  # types only: a method needs nothing of pytest-unlearn at run time
    from pytest_unlearn.contract import DataSplit, UnlearnContext

Batch = tuple[torch.Tensor, torch.Tensor]

#: ``epoch_fraction``: passes over the retain set, as a fraction of the benchmark's retraining
#: epochs (at least one); ``retain_weight``: the retain descent's weight, the forget ascent
#: gets ``1 - retain_weight``.
DEFAULTS = {
    "lr": 0.01,
    "epoch_fraction": 0.1,
    "retain_weight": 0.99,
    "momentum": 0.9,
    "batch_size": 64,
    "forget_batch_size": 16,
    "max_grad_norm": 5.0,
}


def _forever(split: DataSplit, size: int, generator: torch.Generator) -> Iterator[Batch]:
    """Forget batches without end, reshuffled at every pass (the forget set is small)."""
    while True:
        yield from split.loader(size, shuffle=True, generator=generator)


def unlearn(
    model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
) -> nn.Module:
    """Run NegGrad+ on ``model`` in place and return it.

    >>> unlearn(model, forget, retain, context)  # doctest: +SKIP
    Sequential(...)
    """
    hp = choose("neggrad_plus", DEFAULTS, context)
    epochs = max(1, round(hp["epoch_fraction"] * context.recipe.epochs))
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    order = torch.Generator().manual_seed(context.seed)
    forget_batches = _forever(forget, hp["forget_batch_size"], order)
    weight = hp["retain_weight"]
    model.train()
    for _ in range(epochs):
        for inputs, targets in retain.loader(hp["batch_size"], shuffle=True, generator=order):
            forget_inputs, forget_targets = next(forget_batches)
            retain_loss = nn.functional.cross_entropy(model(inputs), targets)
            forget_loss = nn.functional.cross_entropy(model(forget_inputs), forget_targets)
            loss = weight * retain_loss - (1.0 - weight) * forget_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), hp["max_grad_norm"])
            optimizer.step()
    return model
