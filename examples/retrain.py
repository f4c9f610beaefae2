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
    steps_per_epoch = -(-len(retain.targets) // recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    device = retain.inputs.device
    # A recipe may ask for bf16 autocast on a GPU (cifar10-resnet9 does); float32 elsewhere.
    bf16 = device.type == "cuda" and getattr(recipe, "precision", "") == "bf16_autocast"
    model.train()
    step = 0
    for _ in range(recipe.epochs):
        for inputs, targets in retain.loader(recipe.batch_size, shuffle=True, generator=order):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(recipe, step, total_steps, steps_per_epoch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return model


def _learning_rate(recipe, step, total_steps, steps_per_epoch):
    """The recipe's rate at ``step``: constant, or ``lr_schedule == "one_cycle_linear"``
    (linear warm-up from ``lr / initial_lr_divisor`` to ``lr`` at epoch ``peak_epoch``, then
    linear decay to ``lr / (initial_lr_divisor * final_lr_divisor)`` at the last step)."""
    if getattr(recipe, "lr_schedule", "constant") != "one_cycle_linear":
        return recipe.lr
    start = recipe.lr / recipe.initial_lr_divisor
    end = start / recipe.final_lr_divisor
    last = max(1, total_steps - 1)
    peak = min(recipe.peak_epoch * steps_per_epoch, last)
    if step <= peak:
        return start + (recipe.lr - start) * (step / peak if peak else 1.0)
    return recipe.lr + (end - recipe.lr) * (step - peak) / max(1, last - peak)


def _solve_again(model, retain, context):
    from pytest_unlearn.training import convex

    recipe = context.recipe
    b = convex.loss_perturbation(context.seed, tuple(model.weight.shape), recipe.loss_perturbation)
    inputs, targets = retain.inputs.cpu(), retain.targets.cpu()
    weight = convex.solve(inputs, targets, recipe.weight_decay, b[None])[0]
    with torch.no_grad():
        model.weight.copy_(weight.float().to(model.weight.device))
    return model
