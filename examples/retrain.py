"""Exact unlearning: re-initialize and retrain on the retain set from scratch.

Uses the benchmark's own recipe (``context.recipe``) and the call's fresh seed, so the result
is distributed exactly like the oracles; it must PASS every test. Slow by design: it is the
compute budget every other method is measured against. On a benchmark of exact minimizers
(``recipe.optimizer == "newton"``, e.g. digits-logreg-perturbed) retraining means solving the
objective again, with a fresh loss perturbation.

    pytest --unlearn-method=examples.retrain:unlearn
"""

import torch


def unlearn(model, forget, retain, context):
    recipe = context.recipe
    if recipe.optimizer == "newton":
        return _solve_again(model, retain, context)
    torch.manual_seed(context.seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    order = torch.Generator().manual_seed(context.seed)
    model.train()
    for _ in range(recipe.epochs):
        for inputs, targets in retain.loader(recipe.batch_size, shuffle=True, generator=order):
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model


def _solve_again(model, retain, context):
    from pytest_unlearn.training import convex

    recipe = context.recipe
    b = convex.loss_perturbation(context.seed, tuple(model.weight.shape), recipe.loss_perturbation)
    inputs, targets = retain.inputs.cpu(), retain.targets.cpu()
    weight = convex.solve(inputs, targets, recipe.weight_decay, b[None])[0]
    with torch.no_grad():
        model.weight.copy_(weight.float().to(model.weight.device))
    return model
