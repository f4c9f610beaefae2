"""An unlearning method shipped as a pytest plugin: the ``pytest_unlearn_method`` hook.

The package's ``pyproject.toml`` declares this module under the ``pytest11`` entry point group,
so once the package is installed pytest loads it at start-up (as pluggy's "eggsample" example
loads its plugins) and pytest-unlearn asks its hook for the method: no ``--unlearn-method``
needed, and the method is found by whatever runs pytest in that environment::

    pip install ./examples/plugin_package
    pytest --unlearn-profile=quick          # evaluates this package's method
    pytest -p no:unlearn_example            # this run without it (the entry point's name)

Without installing anything, load the module by name::

    PYTHONPATH=examples/plugin_package pytest -p unlearn_example_plugin

A hook implementation takes precedence over ``--unlearn-method``, and an installed one is active
in every pytest run of its environment (your other tests get the conformance suite added), so
install a method plugin where it is evaluated, e.g. in a CI job's own environment.

The method itself is a stand-in (one epoch of fine-tuning on the retain set, hyperparameters
fixed here, never tuned on evaluation splits, no import of pytest-unlearn); a real package
returns its own method from the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # types only: the method needs nothing of pytest-unlearn at run time
    import pytest

    from pytest_unlearn.contract import DataSplit, UnlearnContext

EPOCHS = 1
LEARNING_RATE = 0.01
MOMENTUM = 0.9
BATCH_SIZE = 64


def unlearn(
    model: nn.Module, forget: DataSplit, retain: DataSplit, context: UnlearnContext
) -> nn.Module:
    """Fine-tune ``model`` on ``retain`` for ``EPOCHS`` epochs, in place, and return it.

    >>> unlearn(model, forget, retain, context)  # doctest: +SKIP
    Sequential(...)
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    order = torch.Generator().manual_seed(context.seed)
    model.train()
    for _ in range(EPOCHS):
        for inputs, targets in retain.loader(BATCH_SIZE, shuffle=True, generator=order):
            loss = nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def pytest_unlearn_method(config: pytest.Config) -> Callable[..., nn.Module]:
    """pytest-unlearn's hook: the method this plugin provides.

    >>> pytest_unlearn_method(config) is unlearn  # doctest: +SKIP
    True
    """
    return unlearn
