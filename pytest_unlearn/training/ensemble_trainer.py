"""Train an ensemble of identically-architected models in lockstep, one engine for all of them.

Every member gets its own initialization seed and its own per-epoch data order, both derived
from its seed alone, so member ``i`` is the same model whatever the ensemble size (a store built
for 100 models contains the one for 8). :func:`train_ensemble` owns those rules and hands each
minibatch (one row per member) to one of two engines that take the same SGD step:

* ``"batched"`` (:mod:`.batched_mlp`): a hand-written batched forward and backward pass for a
  bare ``nn.Linear`` or an ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``; on a CPU about
  2.5 times faster than ``"vmap"`` for digits-mlp and 7 times for digits-logreg.
* ``"vmap"``: any architecture, through ``torch.func.vmap`` over ``functional_call`` and
  autograd. The parameters are stacked along a leading model dimension and optimized with one
  ``torch.optim.SGD`` over the stacks: SGD is elementwise and the loss is a sum of per-model
  losses, so this is exactly per-model SGD, only vectorized.

``engine="auto"`` (the default, what store builds use) picks ``"batched"`` whenever
:func:`.batched_mlp.supports` the model.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

if TYPE_CHECKING:
    from ..contract import TrainingRecipe
from .batched_mlp import BatchedMLP, supports

Engine = Literal["auto", "batched", "vmap"]

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


class _VmapTrainer:
    """The generic engine: ``torch.func.vmap`` over ``functional_call``, autograd, and one
    ``torch.optim.SGD`` over the stacked parameters; same ``step``/``parameters`` as
    :class:`.batched_mlp.BatchedMLP`."""

    def __init__(
        self,
        members: Sequence[nn.Module],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        recipe: TrainingRecipe,
        *,
        device: torch.device,
    ) -> None:
        params, buffers = stack_module_state(members)
        self._params = {k: v.detach().to(device).requires_grad_() for k, v in params.items()}
        self._buffers = {k: v.to(device) for k, v in buffers.items()}
        skeleton = copy.deepcopy(members[0]).to("meta")

        def member_logits(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(skeleton, (p, b), (x,))

        self._batched_logits = vmap(member_logits)
        self._inputs, self._targets = inputs.to(device), targets.to(device)
        self._optimizer = torch.optim.SGD(
            list(self._params.values()),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )

    def step(self, batch: torch.Tensor) -> None:
        logits = self._batched_logits(self._params, self._buffers, self._inputs[batch])
        per_example = nn.functional.cross_entropy(
            logits.flatten(0, 1), self._targets[batch].flatten(), reduction="none"
        )
        loss = per_example.view(batch.shape).mean(dim=1).sum()
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer.step()

    def parameters(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self._params.items()}


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
    engine: Engine = "auto",
) -> dict[str, torch.Tensor]:
    """Train ``len(seeds)`` models on ``inputs[train_indices]``; return stacked parameters.

    Example::

        params = train_ensemble(bench.build_model, data.inputs, data.targets,
                                data.train_indices, bench.recipe, seeds=[1, 2, 3])
        params["0.weight"].shape
        torch.Size([3, 128, 64])

    ``engine`` is ``"auto"`` (batched when the model allows it, else vmap), ``"batched"``
    (a ``ValueError`` if :func:`.batched_mlp.supports` rejects the model) or ``"vmap"``; both
    engines give the same models up to float rounding.
    """
    if recipe.optimizer != "sgd" or recipe.loss != "cross_entropy":
        raise ValueError(f"the ensemble trainer supports SGD on cross-entropy only, not {recipe}")
    if engine not in ("auto", "batched", "vmap"):
        raise ValueError(f"engine must be 'auto', 'batched' or 'vmap', not {engine!r}")
    device = torch.device(device)
    members = _init_members(build_model, seeds)
    # A forced "batched" on a model it cannot train raises ValueError in BatchedMLP.
    batched = engine == "batched" or (engine == "auto" and supports(members[0]))
    trainer_type = BatchedMLP if batched else _VmapTrainer
    trainer = trainer_type(members, inputs, targets, recipe, device=device)
    train_indices = train_indices.to(device)
    order_generators = [order_generator(seed) for seed in seeds]
    n = len(train_indices)
    for epoch in range(recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in order_generators])
        order = train_indices[order.to(device)]
        for start in range(0, n, recipe.batch_size):
            trainer.step(order[:, start : start + recipe.batch_size])
        if progress is not None:
            progress(epoch + 1, recipe.epochs)
    return trainer.parameters()


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
