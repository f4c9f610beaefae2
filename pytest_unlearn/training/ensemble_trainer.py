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
:func:`.batched_mlp.supports` the model and the recipe is plain SGD at a constant rate.

Models with buffers (BatchNorm's running statistics) train in train mode, their buffers
stacked like the parameters and updated in place by every step; the result holds parameters
and buffers, the whole ``state_dict`` of each member. ``learning_rate`` (a per-step schedule)
and ``autocast`` (bf16 on a GPU) are for benchmarks with their own recipe (``cifar10-resnet9``);
``members_at_once`` trains the seeds in chunks of that many, to bound memory: member ``i``
depends on its seed alone, so the chunking changes no model.
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
        autocast: torch.dtype | None = None,
    ) -> None:
        for member in members:
            member.train()
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
        self._autocast = autocast
        self._device = device

    def set_learning_rate(self, lr: float) -> None:
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    def step(self, batch: torch.Tensor) -> None:
        with torch.autocast(
            self._device.type, dtype=self._autocast or torch.bfloat16, enabled=bool(self._autocast)
        ):
            logits = self._batched_logits(self._params, self._buffers, self._inputs[batch])
        logits = logits.float()
        per_example = nn.functional.cross_entropy(
            logits.flatten(0, 1), self._targets[batch].flatten(), reduction="none"
        )
        loss = per_example.view(batch.shape).mean(dim=1).sum()
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer.step()

    def parameters(self) -> dict[str, torch.Tensor]:
        """Stacked parameters and buffers (the members' whole state)."""
        return {**{k: v.detach() for k, v in self._params.items()}, **self._buffers}


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
    learning_rate: Callable[[int, int], float] | None = None,
    autocast: torch.dtype | None = None,
    members_at_once: int | None = None,
) -> dict[str, torch.Tensor]:
    """Train ``len(seeds)`` models on ``inputs[train_indices]``; return their stacked state
    (parameters, and buffers where the model has any).

    Example::

        params = train_ensemble(bench.build_model, data.inputs, data.targets,
                                data.train_indices, bench.recipe, seeds=[1, 2, 3])
        params["0.weight"].shape
        torch.Size([3, 128, 64])

    ``engine`` is ``"auto"`` (batched when the model allows it, else vmap), ``"batched"``
    (a ``ValueError`` if :func:`.batched_mlp.supports` rejects the model) or ``"vmap"``; both
    engines give the same models up to float rounding. ``learning_rate(step, total_steps)``
    gives the rate of every minibatch step (0-based; the vmap engine only), ``autocast`` a
    reduced precision for the forward pass, ``members_at_once`` a chunk size (see above).
    """
    if recipe.optimizer != "sgd" or recipe.loss != "cross_entropy":
        raise ValueError(f"the ensemble trainer supports SGD on cross-entropy only, not {recipe}")
    if engine not in ("auto", "batched", "vmap"):
        raise ValueError(f"engine must be 'auto', 'batched' or 'vmap', not {engine!r}")
    plain = learning_rate is None and autocast is None
    if engine == "batched" and not plain:
        raise ValueError("the batched engine trains at a constant rate in float32 only")
    if members_at_once is not None and members_at_once < 1:
        raise ValueError(f"members_at_once must be at least 1, got {members_at_once}")
    device = torch.device(device)
    # Once for every chunk: the trainers' own .to(device) then copies nothing.
    inputs, targets = inputs.to(device), targets.to(device)
    train_indices = train_indices.to(device)
    batched = engine == "batched" or (
        engine == "auto" and plain and supports(build_model_probe(build_model))
    )
    chunk = members_at_once or max(1, len(seeds))
    chunks = [list(seeds[i : i + chunk]) for i in range(0, len(seeds), chunk)]
    states = []
    for done, chunk_seeds in enumerate(chunks):

        def chunk_progress(epoch: int, epochs: int, done: int = done) -> None:
            if progress is not None:
                progress(done * epochs + epoch, len(chunks) * epochs)

        states.append(
            _train_members(
                build_model,
                inputs,
                targets,
                train_indices,
                recipe,
                chunk_seeds,
                device=device,
                progress=chunk_progress,
                batched=batched,
                learning_rate=learning_rate,
                autocast=autocast,
            )
        )
    if len(states) == 1:
        return states[0]
    return {key: torch.cat([state[key] for state in states]) for key in states[0]}


def build_model_probe(build_model: Callable[[], nn.Module]) -> nn.Module:
    """A throwaway instance, to ask what kind of model ``build_model`` makes (no RNG used up)."""
    with torch.random.fork_rng(devices=[]):
        return build_model()


def _train_members(
    build_model: Callable[[], nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    train_indices: torch.Tensor,
    recipe: TrainingRecipe,
    seeds: Sequence[int],
    *,
    device: torch.device,
    progress: Progress,
    batched: bool,
    learning_rate: Callable[[int, int], float] | None,
    autocast: torch.dtype | None,
) -> dict[str, torch.Tensor]:
    members = _init_members(build_model, seeds)
    # A forced "batched" on a model it cannot train raises ValueError in BatchedMLP.
    if batched:
        trainer: BatchedMLP | _VmapTrainer = BatchedMLP(
            members, inputs, targets, recipe, device=device
        )
    else:
        trainer = _VmapTrainer(members, inputs, targets, recipe, device=device, autocast=autocast)
    train_indices = train_indices.to(device)
    order_generators = [order_generator(seed) for seed in seeds]
    n = len(train_indices)
    steps_per_epoch = -(-n // recipe.batch_size)
    total_steps = recipe.epochs * steps_per_epoch
    step = 0
    for epoch in range(recipe.epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in order_generators])
        order = train_indices[order.to(device)]
        for start in range(0, n, recipe.batch_size):
            if learning_rate is not None:
                assert isinstance(trainer, _VmapTrainer)
                trainer.set_learning_rate(learning_rate(step, total_steps))
            trainer.step(order[:, start : start + recipe.batch_size])
            step += 1
        progress(epoch + 1, recipe.epochs)
    return trainer.parameters()


@torch.no_grad()
def ensemble_logits(
    build_model: Callable[[], nn.Module],
    params: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    *,
    points_at_once: int | None = None,
) -> torch.Tensor:
    """Logits of every stacked member (parameters and buffers, in eval mode) on every input,
    shape (models, points, classes); ``points_at_once`` bounds the activations held at once
    (None: all points in one pass)."""
    skeleton = build_model_probe(build_model).to("meta").eval()
    device = next(iter(params.values())).device

    def member_logits(p: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, p, (x,))

    batched = vmap(member_logits, in_dims=(0, None))
    step = points_at_once or max(1, len(inputs))
    return torch.cat(
        [batched(params, inputs[i : i + step].to(device)) for i in range(0, len(inputs), step)],
        dim=1,
    )


def unstack_member(
    build_model: Callable[[], nn.Module], params: dict[str, torch.Tensor], index: int
) -> nn.Module:
    """A fresh ``nn.Module`` holding a private copy of member ``index``'s weights."""
    model = build_model()
    model.load_state_dict({k: v[index].clone() for k, v in params.items()})
    return model
