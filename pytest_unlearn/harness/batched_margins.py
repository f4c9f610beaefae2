"""Margins of several evaluated models of one architecture, computed together.

The per-model path (``method_runner._margins_of``) runs each evaluated model on every point,
one model at a time. On a GPU a small model's evaluation is mostly kernel launches and one
synchronizing copy to the host per model. Here the models' parameters and buffers are stacked
along a leading model dimension and one copy of the architecture runs them all at once
(``torch.func.functional_call`` under ``torch.func.vmap``), chunked over models and points so
that memory stays bounded (at most ``max_pairs`` model-point pairs per forward pass).

>>> import torch
>>> from torch import nn
>>> from pytest_unlearn.metric import margins
>>> with torch.random.fork_rng(devices=[]):
...     _ = torch.manual_seed(0)
...     models = [nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)) for _ in range(5)]
...     x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
>>> together = batched_margins(models, x, y)
>>> together.shape, together.dtype
(torch.Size([5, 20]), torch.float32)
>>> one_by_one = torch.stack([margins(m(x), y).float() for m in models]).detach()
>>> bool((together - one_by_one).abs().max() < 1e-5)
True

:class:`MarginBatcher` is how the method runner uses it: ``add`` snapshots a model (the caller
may go on changing it, as the next request's method call does) and returns the tensor its
margins will be written into; ``flush`` computes everything queued. Models whose structure
differs are computed group by group; a group ``vmap`` cannot run falls back to one model at a
time (and the batcher stays per-model from then on).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..metric import margins

#: Points per forward pass, of the per-model path (``method_runner._margins_of``) too.
EVAL_BATCH = 4096
#: Model-point pairs per batched forward pass: 4 per-model batches' worth of activations.
MAX_PAIRS = 4 * EVAL_BATCH
#: Models stacked at most into one forward pass.
MAX_MODELS = 32


def structure_key(model: nn.Module) -> tuple:
    """What must agree for models to run as one stack: the modules (their ``repr`` names every
    type and setting) and every parameter's and buffer's name, shape, dtype and device.

    >>> structure_key(nn.Linear(2, 3)) == structure_key(nn.Linear(2, 3))
    True
    >>> structure_key(nn.Linear(2, 3)) == structure_key(nn.Linear(2, 4))
    False
    """
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return (repr(model), tuple((name, tuple(t.shape), t.dtype, t.device) for name, t in tensors))


@dataclass
class _Entry:
    """One queued model: its own copy of the state, the skeleton that runs it, its output."""

    key: tuple
    skeleton: nn.Module  # on the meta device: structure only
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    out: torch.Tensor  # (points,), CPU float32, written by the flush


def _entry(model: nn.Module, points: int, key: tuple, skeleton: nn.Module | None) -> _Entry:
    if skeleton is None:
        skeleton = copy.deepcopy(model).to("meta").eval()
    return _Entry(
        key=key,
        skeleton=skeleton,
        params={n: p.detach().clone() for n, p in model.named_parameters()},
        buffers={n: b.detach().clone() for n, b in model.named_buffers()},
        out=torch.full((points,), float("nan")),
    )


@torch.no_grad()
def _stacked(
    entries: Sequence[_Entry],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    max_pairs: int,
    pad_to: int = 0,
) -> torch.Tensor:
    """(models, points) float32 on the CPU for entries of one structure, ``vmap`` over them;
    the stack is padded to ``pad_to`` models with copies of the last (results dropped)."""
    skeleton = entries[0].skeleton
    padded = [*entries, *[entries[-1]] * (pad_to - len(entries))]
    params = {n: torch.stack([e.params[n] for e in padded]) for n in entries[0].params}
    buffers = {n: torch.stack([e.buffers[n] for e in padded]) for n in entries[0].buffers}

    def logits(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, (p, b), (x,))

    batched = vmap(logits, in_dims=(0, 0, None))
    step = max(1, max_pairs // len(padded))
    chunks = [
        margins(batched(params, buffers, inputs[i : i + step]), targets[i : i + step]).float()
        for i in range(0, len(targets), step)
    ]
    return torch.cat(chunks, dim=1)[: len(entries)].cpu()  # one copy to the host


@torch.no_grad()
def _one(entry: _Entry, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One model at a time, in point batches of :data:`EVAL_BATCH`, as the per-model path."""
    state = (entry.params, entry.buffers)
    return torch.cat(
        [
            margins(
                functional_call(entry.skeleton, state, (inputs[i : i + EVAL_BATCH],)),
                targets[i : i + EVAL_BATCH],
            )
            .float()
            .cpu()
            for i in range(0, len(targets), EVAL_BATCH)
        ]
    )


def _groups(entries: Sequence[_Entry], max_models: int) -> list[list[_Entry]]:
    """Runs of consecutive entries of one structure, at most ``max_models`` long."""
    groups: list[list[_Entry]] = []
    for entry in entries:
        if groups and groups[-1][0].key == entry.key and len(groups[-1]) < max_models:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    return groups


def batched_margins(
    models: Sequence[nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    max_pairs: int = MAX_PAIRS,
    max_models: int = MAX_MODELS,
) -> torch.Tensor:
    """The margins of every model, in eval mode, on every point, shape
    ``(models, points)``, float32 on the CPU. Models of one structure (:func:`structure_key`)
    run stacked; a ``ValueError`` if their structures differ (use :class:`MarginBatcher`,
    which groups them); whatever ``vmap`` cannot run raises."""
    if not models:
        return torch.empty(0, len(targets))
    keys = [structure_key(model) for model in models]
    if len(set(keys)) > 1:
        raise ValueError(
            f"the models differ in structure ({len(set(keys))} kinds); stack each apart"
        )
    skeleton = copy.deepcopy(models[0]).to("meta").eval()
    entries = [_entry(m, len(targets), k, skeleton) for m, k in zip(models, keys, strict=True)]
    return torch.cat(
        [_stacked(group, inputs, targets, max_pairs) for group in _groups(entries, max_models)]
    )


class MarginBatcher:
    """Queue evaluated models, compute their margins in stacks at :meth:`flush`.

    ``add(model)`` snapshots ``model``'s parameters and buffers (the caller may change the
    model afterwards) and returns a CPU float32 tensor of shape ``(points,)`` that holds NaN
    until the next :meth:`flush` writes the model's margins into it. ``full`` says that
    ``stack`` models are queued. A flush that fails leaves its models queued (their tensors
    unwritten), so a caller never publishes a margin that was not computed.

    Every stack has the same shape, ``stack`` models (a short one is padded), and the same point
    chunks, so that the same kernels compute a model whichever models share its stack: its
    margins then do not depend on how the xdist workers split the run (bit for bit on the CPU,
    where it is tested; a GPU library may still pick kernels by other criteria).

    Falls back to one model at a time (:func:`_one`, the per-model path's arithmetic) for a
    group ``vmap`` cannot run, and stays there for the batcher's later flushes.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        stack: int = 16,
        max_pairs: int = MAX_PAIRS,
    ) -> None:
        self.inputs, self.targets = inputs, targets
        self.stack, self.max_pairs = stack, max_pairs
        self.stacking = True  # False once vmap failed on a group: per-model from then on
        self._queue: list[_Entry] = []
        self._skeletons: dict[tuple, nn.Module] = {}

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        return len(self._queue) >= self.stack

    def add(self, model: nn.Module) -> torch.Tensor:
        key = structure_key(model)
        entry = _entry(model, len(self.targets), key, self._skeletons.get(key))
        self._skeletons.setdefault(key, entry.skeleton)
        self._queue.append(entry)
        return entry.out

    def flush(self) -> None:
        results: list[tuple[_Entry, torch.Tensor]] = []
        for group in _groups(self._queue, self.stack):
            if self.stacking and self.stack > 1:
                try:
                    stacked = _stacked(
                        group, self.inputs, self.targets, self.max_pairs, pad_to=self.stack
                    )
                except Exception:  # an op vmap has no rule for, memory: one model at a time
                    self.stacking = False
                else:
                    results.extend(zip(group, stacked, strict=True))
                    continue
            results.extend((entry, _one(entry, self.inputs, self.targets)) for entry in group)
        for entry, values in results:  # all computed: only now is anything written
            entry.out.copy_(values)
        self._queue.clear()
