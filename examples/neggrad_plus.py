"""NegGrad+: descend on the retain set and ascend on the forget set in the same step.

Introduced as a strong baseline by Kurmanji et al., "Towards Unbounded Machine Unlearning"
(NeurIPS 2023, the SCRUB paper): plain negative gradient (``examples.gradient_ascent``)
destroys the model, so each step minimizes the weighted difference

    RETAIN_WEIGHT * CE(retain batch) - (1 - RETAIN_WEIGHT) * CE(forget batch)

which pushes the forget points' loss up while the retain term holds the rest of the model in
place. One epoch is one pass over the retain set; the (much smaller) forget set is cycled
alongside it. The cross-entropy of the forget set is unbounded above, so the ascent gets a
small weight (1 %; at 10 % the CNN of mnist1d-cnn diverged, its retain loss exploding within
two epochs) and gradients are clipped to a fixed norm, keeping every weight finite.

Hyperparameters are fixed below and were never tuned on any evaluation split; the learning
rate is our own constant, not ``context.recipe.lr`` (a recipe's optimizer may not be SGD).
Cost: ``EPOCH_FRACTION`` of retraining's ``recipe.epochs`` passes over the retain set, each
step with a forget batch too.

    pytest --unlearn-method=examples.neggrad_plus:unlearn
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # types only: a method needs nothing of pytest-unlearn at run time
    from pytest_unlearn.contract import DataSplit, UnlearnContext

Batch = tuple[torch.Tensor, torch.Tensor]

#: Passes over the retain set, as a fraction of the benchmark's retraining epochs (at least
#: one): the compute scales with the benchmark's, at about a tenth of an exact retraining.
EPOCH_FRACTION = 0.1
LEARNING_RATE = 0.01
MOMENTUM = 0.9
BATCH_SIZE = 64
FORGET_BATCH_SIZE = 16
#: Weight of the retain descent; the forget ascent gets ``1 - RETAIN_WEIGHT``.
RETAIN_WEIGHT = 0.99
MAX_GRAD_NORM = 5.0


def _forever(split: DataSplit, generator: torch.Generator) -> Iterator[Batch]:
    """Forget batches without end, reshuffled at every pass (the forget set is small)."""
    while True:
        yield from split.loader(FORGET_BATCH_SIZE, shuffle=True, generator=generator)


def unlearn(
    model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
) -> nn.Module:
    """Run NegGrad+ on ``model`` in place and return it.

    >>> unlearn(model, forget, retain, context)  # doctest: +SKIP
    Sequential(...)
    """
    epochs = max(1, round(EPOCH_FRACTION * context.recipe.epochs))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    order = torch.Generator().manual_seed(context.seed)
    forget_batches = _forever(forget, order)
    model.train()
    for _ in range(epochs):
        for inputs, targets in retain.loader(BATCH_SIZE, shuffle=True, generator=order):
            forget_inputs, forget_targets = next(forget_batches)
            retain_loss = nn.functional.cross_entropy(model(inputs), targets)
            forget_loss = nn.functional.cross_entropy(model(forget_inputs), forget_targets)
            loss = RETAIN_WEIGHT * retain_loss - (1.0 - RETAIN_WEIGHT) * forget_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
            optimizer.step()
    return model
