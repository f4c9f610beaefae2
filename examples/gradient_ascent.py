"""Gradient ascent on the forget set: push the forget points' loss up for a few steps.

A cheap, popular, and usually inadequate heuristic (it damages the model rather than making
it look retrained); hyperparameters are fixed here, never tuned on evaluation splits.

    pytest --unlearn-method=examples.gradient_ascent:unlearn
"""

import torch

LEARNING_RATE = 0.01
EPOCHS = 1
BATCH_SIZE = 16


def unlearn(model, forget, retain, context):
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    model.train()
    for _ in range(EPOCHS):
        for inputs, targets in forget.loader(BATCH_SIZE, shuffle=True):
            loss = -torch.nn.functional.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model
