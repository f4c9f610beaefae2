"""Gradient ascent on the forget set: push the forget points' loss up for a few steps.

A cheap, popular, and usually inadequate heuristic (it damages the model rather than making
it look retrained). Hyper-parameters (``DEFAULTS``): per benchmark the values
``benchmarks/sweep_examples.py`` chose (``examples/tuned.json``), overridable with
``--unlearn-param``, e.g. ``lr=0.003``.

    pytest --unlearn-method=examples.gradient_ascent:unlearn
"""

import torch

from examples.hyperparameters import choose

DEFAULTS = {"lr": 0.01, "epochs": 1, "batch_size": 16}


def unlearn(model, forget, retain, context):
    hp = choose("gradient_ascent", DEFAULTS, context)
    optimizer = torch.optim.SGD(model.parameters(), lr=hp["lr"])
    model.train()
    for _ in range(hp["epochs"]):
        for inputs, targets in forget.loader(hp["batch_size"], shuffle=True):
            loss = -torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model
