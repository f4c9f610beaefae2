"""SCRUB: teacher/student distillation that moves away from the teacher on the forget set only.

Kurmanji, Triantafillou, Hayes and Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS 2023. The input model is copied into a frozen *teacher*; the *student* (the model
itself) starts equal to it and alternates

* **max-steps** (the first ``max_fraction`` of the epochs, one pass over the forget set each):
  maximize ``KL(teacher || student)`` on forget batches, pushing the student's predictions on
  the forgotten points away from what the original model said;
* **min-steps** (every epoch, one pass over the retain set): minimize
  ``ce_weight * CE(student, labels) + kl_weight * KL(teacher || student)`` on retain batches,
  keeping the student faithful to the teacher (and the labels) everywhere else.

Both KL terms are on temperature-softened outputs (``temperature``, scaled by its square as in
Hinton et al.'s distillation loss). Gradients are clipped to a fixed norm because the max-step
objective is unbounded.

Note on the published data-unlearning-bench implementation (RoyRin/data-unlearning-bench,
``data-unlearning/unlearning.py``): it builds its optimizer over the *teacher's* parameters
while computing the losses with the student, so ``optimizer.step()`` never updates the student
(its gradients are never stepped; the teacher gets none) and the returned "unlearned" model is
an unchanged copy of the input, i.e. do-nothing. Here the optimizer holds the student's
parameters; ``tests/test_examples_methods.py`` checks that the returned student differs from
its input.

Hyper-parameters (``DEFAULTS``): the paper's usual choices where it has them (temperature 4, CE
weight 0.99), our constants otherwise; per benchmark the values ``benchmarks/sweep_examples.py``
chose (``examples/tuned.json``; its grid includes the paper's reference retain-KL weight 0.001
and learning rate 0.0005), overridable with ``--unlearn-param``. The learning rate is our own,
not ``context.recipe.lr`` (a recipe's optimizer may not be SGD). Cost: ``epoch_fraction`` of
retraining's ``recipe.epochs`` passes over the retain set (plus a teacher forward pass per
batch) and half as many over the forget set.

    pytest --unlearn-method=examples.scrub:unlearn
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from examples.hyperparameters import choose

if TYPE_CHECKING:  # types only: a method needs nothing of pytest-unlearn at run time
    from pytest_unlearn.contract import DataSplit, UnlearnContext

#: ``epoch_fraction``: passes over the retain set, as a fraction of the benchmark's retraining
#: epochs (at least one); ``max_fraction``: the share of the epochs (the first ones) that begin
#: with a max-step pass over the forget set.
DEFAULTS = {
    "lr": 0.01,
    "epoch_fraction": 0.1,
    "max_fraction": 0.5,
    "kl_weight": 0.1,
    "ce_weight": 0.99,
    "temperature": 4.0,
    "momentum": 0.9,
    "batch_size": 64,
    "forget_batch_size": 16,
    "max_grad_norm": 5.0,
}


def distillation_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """``KL(teacher || student)`` of the temperature-softened outputs, batch mean, times T^2.

    >>> distillation_kl(torch.zeros(2, 10), torch.zeros(2, 10)).item()
    0.0
    """
    student = nn.functional.log_softmax(student_logits / temperature, dim=1)
    teacher = nn.functional.log_softmax(teacher_logits / temperature, dim=1)
    kl = nn.functional.kl_div(student, teacher, log_target=True, reduction="batchmean")
    # T^2 keeps the gradient scale independent of the temperature (Hinton et al., 2015).
    return kl * temperature**2


def unlearn(
    model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
) -> nn.Module:
    """Run SCRUB with ``model`` as the student (updated in place) and return the student.

    The teacher is a private frozen copy; the returned student is ``model`` itself, trained.

    >>> student = unlearn(model, forget, retain, context)  # doctest: +SKIP
    """
    hp = choose("scrub", DEFAULTS, context)
    temperature = hp["temperature"]
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    student = model.train()
    # The student's parameters, not the teacher's: see the module docstring.
    optimizer = torch.optim.SGD(student.parameters(), lr=hp["lr"], momentum=hp["momentum"])
    order = torch.Generator().manual_seed(context.seed)
    epochs = max(1, round(hp["epoch_fraction"] * context.recipe.epochs))
    max_epochs = max(1, round(hp["max_fraction"] * epochs))

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), hp["max_grad_norm"])
        optimizer.step()

    for epoch in range(epochs):
        if epoch < max_epochs:
            for inputs, _ in forget.loader(hp["forget_batch_size"], shuffle=True, generator=order):
                with torch.no_grad():
                    teacher_logits = teacher(inputs)
                step(-distillation_kl(student(inputs), teacher_logits, temperature))
        for inputs, targets in retain.loader(hp["batch_size"], shuffle=True, generator=order):
            with torch.no_grad():
                teacher_logits = teacher(inputs)
            logits = student(inputs)
            loss = hp["ce_weight"] * nn.functional.cross_entropy(logits, targets)
            step(loss + hp["kl_weight"] * distillation_kl(logits, teacher_logits, temperature))
    return student
