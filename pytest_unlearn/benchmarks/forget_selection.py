"""How forget sets are chosen: deterministic selections shared by the benchmark definitions.

Example::

    anchor = pool[most_atypical(inputs[pool], targets[pool])]
    knn = nearest(inputs, pool, anchor, 36)
"""

from __future__ import annotations

import torch

from .spec import Dataset, ForgetSet


def most_atypical(inputs: torch.Tensor, targets: torch.Tensor) -> int:
    """Position of the example farthest (Euclidean, input space) from its own class mean.

    Its neighbourhood is a subpopulation the rest of the data does not explain, which is what
    makes do-nothing distinguishable from retraining on it.
    """
    inputs = inputs.flatten(1)  # images: one vector per example
    labels = sorted(set(targets.tolist()))
    means = {label: inputs[targets == label].mean(dim=0) for label in labels}
    centres = torch.stack([means[int(label)] for label in targets])
    return int(torch.argmax((inputs - centres).norm(dim=1)))


def nearest(
    inputs: torch.Tensor, pool: torch.Tensor, anchor: torch.Tensor | int, count: int
) -> torch.Tensor:
    """The ``count`` indices of ``pool`` nearest to ``anchor`` (squared Euclidean), nearest first.

    A stable sort resolves ties between equally distant examples the same way everywhere.
    """
    distances = (inputs[pool] - inputs[anchor]).square().flatten(1).sum(dim=1)
    return pool[torch.sort(distances, stable=True).indices[:count]]


def uniform_sample(pool: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` indices of ``pool`` drawn uniformly without replacement, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return pool[torch.randperm(len(pool), generator=generator)[:count]]


def atypical_neighbourhood(data: Dataset, size: int, noun: str) -> tuple[ForgetSet, torch.Tensor]:
    """``knn{size}``: the ``size`` training examples nearest to the most atypical one (the
    training example farthest from its class mean), a subpopulation forget set; also its
    indices nearest first (the anchor's own neighbourhood order, which other selections use).

    Example::

        knn36, nearest_first = atypical_neighbourhood(data, 36, "image")
    """
    train = data.train_indices
    anchor = train[most_atypical(data.inputs[train], data.targets[train])]
    knn = nearest(data.inputs, train, anchor, size)
    forget_set = ForgetSet(
        name=f"knn{size}",
        kind="subpopulation",
        indices=tuple(sorted(knn.tolist())),
        description=(
            f"the {size} training {noun}s nearest to {noun} {int(anchor)}, "
            f"the training {noun} farthest from its class mean"
        ),
    )
    return forget_set, knn


def random_forget_set(data: Dataset, size: int, seed: int, noun: str) -> ForgetSet:
    """``random{size}``: ``size`` training examples drawn uniformly from ``seed``.

    Example::

        random_forget_set(data, 36, seed=36, noun="image").kind
        'random'
    """
    drawn = uniform_sample(data.train_indices, size, seed)
    return ForgetSet(
        name=f"random{size}",
        kind="random",
        indices=tuple(sorted(drawn.tolist())),
        description=f"{size} training {noun}s drawn uniformly at random",
    )


def sequential_neighbourhood(
    data: Dataset, exclude: torch.Tensor, requests: int, request_size: int, noun: str
) -> ForgetSet:
    """``seq{requests}x{request_size}``: ``requests`` deletion requests arriving one after
    another, each the next ring of one neighbourhood.

    The anchor is the most atypical training example of another class than ``exclude[0]``'s
    (outside ``exclude``, e.g. another forget set nearest first); the ``requests *
    request_size`` training examples nearest to it, nearest first, are cut into consecutive
    requests, so every request still removes something the rest of the data does not explain.

    Example::

        seq = sequential_neighbourhood(data, nearest_first, 3, 12, "image")
        seq.name, len(seq.requests)
        ('seq3x12', 3)
    """
    train = data.retain_after(exclude)
    excluded_class = data.targets[exclude[0]]
    candidates = train[data.targets[train] != excluded_class]
    anchor = candidates[most_atypical(data.inputs[candidates], data.targets[candidates])]
    rings = nearest(data.inputs, train, anchor, requests * request_size)
    schedule = tuple(
        tuple(sorted(rings[k * request_size : (k + 1) * request_size].tolist()))
        for k in range(requests)
    )
    return ForgetSet(
        name=f"seq{requests}x{request_size}",
        kind="subpopulation",
        indices=tuple(sorted(rings.tolist())),
        requests=schedule,
        description=(
            f"{requests} sequential requests of {request_size} {noun}s: the neighbourhood "
            f"of {noun} {int(anchor)}, nearest first"
        ),
    )
