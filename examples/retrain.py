"""Exact unlearning: re-initialize and retrain on the retain set from scratch.

Uses the benchmark's own recipe (``context.recipe``) and the call's fresh seed, so the result
is distributed exactly like the oracles; it must PASS every test. Slow by design: it is the
compute budget every other method is measured against.

    pytest --unlearn-method=examples.retrain:unlearn
"""

import torch


def unlearn(model, forget, retain, context):
    recipe = context.recipe
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
