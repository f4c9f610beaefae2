"""Train an ensemble of identically-architected models in lockstep with ``torch.func.vmap``.

Every member gets its own initialization seed and its own per-epoch data order, both derived
from its seed alone, so member ``i`` is the same model whatever the ensemble size (a store built
for 100 models contains the one for 8). The parameters are stacked along a leading model
dimension and optimized with one ``torch.optim.SGD`` over the stacks: SGD is elementwise and the
loss is a sum of per-model losses, so this is exactly per-model SGD, only vectorized.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..benchmarks.spec import TrainingRecipe

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with the number of epochs finished."""


def model_seed(*parts: object) -> int:
    """A stable 63-bit seed from a tuple of names and numbers.

    >>> model_seed("digits-mlp", "pretrain", 0) == model_seed("digits-mlp", "pretrain", 0)
    True
    """
    blob = "/".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def order_generator(seed: int) -> torch.Generator:
    """The generator behind member ``seed``'s data order: every epoch it draws one
    ``perm = torch.randperm(len(train_indices), generator=...)``, and the epoch's minibatches
    are consecutive ``batch_size`` slices of ``train_indices[perm]`` (the last may be short).

    Public so that a per-model reference loop (tests, ``benchmarks/bench_build.py``) can
    reproduce a member exactly:

    >>> a, b = order_generator(7), order_generator(7)
    >>> torch.equal(torch.randperm(10, generator=a), torch.randperm(10, generator=b))
    True
    """
    # XOR with a constant keeps the order stream distinct from the init stream (same seed).
    return torch.Generator().manual_seed(seed ^ 0x5EED)


def _init_members(build_model: Callable[[], nn.Module], seeds: Sequence[int]) -> list[nn.Module]:
    members = []
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(seed)
            members.append(build_model())
    return members


def train_ensemble(
    build_model: Callable[[], nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    train_indices: torch.Tensor,
    recipe: TrainingRecipe,
    seeds: Sequence[int],
    *,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``len(seeds)`` models on ``inputs[train_indices]``; return stacked parameters.

    >>> params = train_ensemble(bench.build_model, data.inputs, data.targets,
    ...                         data.train_indices, bench.recipe, seeds=[1, 2, 3])  # doctest: +SKIP
    >>> params["0.weight"].shape  # doctest: +SKIP
    torch.Size([3, 128, 64])
    """
    if recipe.optimizer != "sgd" or recipe.loss != "cross_entropy":
        raise ValueError(f"the vmap trainer supports SGD on cross-entropy only, not {recipe}")
    device = torch.device(device)
    members = _init_members(build_model, seeds)
    params, buffers = stack_module_state(members)
    params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    skeleton = copy.deepcopy(members[0]).to("meta")
    inputs, targets = inputs.to(device), targets.to(device)
    train_indices = train_indices.to(device)
    order_generators = [order_generator(seed) for seed in seeds]

    def member_logits(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, (p, b), (x,))

    batched_logits = vmap(member_logits)
    optimizer = torch.optim.SGD(
        list(params.values()),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
    )
    n = len(train_indices)
    for epoch in range(recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in order_generators])
        order = train_indices[order.to(device)]
        for start in range(0, n, recipe.batch_size):
            batch = order[:, start : start + recipe.batch_size]
            logits = batched_logits(params, buffers, inputs[batch])
            per_example = nn.functional.cross_entropy(
                logits.flatten(0, 1), targets[batch].flatten(), reduction="none"
            )
            loss = per_example.view(batch.shape).mean(dim=1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch + 1, recipe.epochs)
    return {k: v.detach() for k, v in params.items()}


@torch.no_grad()
def ensemble_logits(
    build_model: Callable[[], nn.Module],
    params: dict[str, torch.Tensor],
    inputs: torch.Tensor,
) -> torch.Tensor:
    """Logits of every stacked member on every input, shape (models, points, classes)."""
    skeleton = build_model().to("meta")
    device = next(iter(params.values())).device

    def member_logits(p: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, p, (x,))

    return vmap(member_logits, in_dims=(0, None))(params, inputs.to(device))


def unstack_member(
    build_model: Callable[[], nn.Module], params: dict[str, torch.Tensor], index: int
) -> nn.Module:
    """A fresh ``nn.Module`` holding a private copy of member ``index``'s weights."""
    model = build_model()
    model.load_state_dict({k: v[index].clone() for k, v in params.items()})
    return model
