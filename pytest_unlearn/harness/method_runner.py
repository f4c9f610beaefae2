"""Run an unlearning method on every member of an ensemble and collect its margins."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..contract import DataSplit, UnlearnContext
from ..metric import margins
from ..store import Ensembles
from ..training import model_seed

Log = Callable[[str], None]


@dataclass(frozen=True)
class MethodRun:
    """The method's outputs on one forget set: margins of every unlearned model."""

    margins: torch.Tensor  # (models, points), on the CPU
    seconds_per_model: float


def forget_and_retain(ensembles: Ensembles, forget_set: str, device: torch.device):
    """The ``forget`` and ``retain`` splits handed to the method, on ``device``."""
    data = ensembles.benchmark.load_data()
    forget = torch.tensor(ensembles.benchmark.forget_set(forget_set).indices, dtype=torch.int64)
    retain = data.train_indices[~torch.isin(data.train_indices, forget)]

    def split(indices: torch.Tensor) -> DataSplit:
        return DataSplit(
            inputs=data.inputs[indices].to(device),
            targets=data.targets[indices].to(device),
            indices=indices.to(device),
        )

    return split(forget), split(retain)


def run_method(
    method: Callable,
    ensembles: Ensembles,
    forget_set: str,
    device: torch.device,
    *,
    log: Log | None = None,
) -> MethodRun:
    """Call ``method`` once per ensemble member and return the unlearned models' margins.

    Each call gets a private copy of the member, and the global torch RNG is seeded with the
    call's fresh ``context.seed`` (then restored), so runs are reproducible and one call's
    randomness cannot leak into the next.
    """
    benchmark = ensembles.benchmark
    data = benchmark.load_data()
    forget, retain = forget_and_retain(ensembles, forget_set, device)
    all_inputs = data.inputs.to(device)
    all_targets = data.targets.to(device)
    rows = []
    started = time.perf_counter()
    for index in range(ensembles.n_models):
        context = UnlearnContext(
            device=device,
            seed=model_seed("method", benchmark.name, forget_set, 0, index),
            model_index=index,
            request_index=0,
            recipe=benchmark.recipe,
            benchmark=benchmark.name,
            forget_set=forget_set,
            num_classes=data.num_classes,
        )
        model = ensembles.member(index).to(device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(context.seed)
            unlearned = method(model, forget, retain, context)
        if not isinstance(unlearned, nn.Module):
            raise TypeError(
                f"the method returned {type(unlearned).__name__} for model {index}; "
                "it must return a torch.nn.Module"
            )
        unlearned.eval()
        with torch.no_grad():
            logits = unlearned(all_inputs)
        rows.append(margins(logits, all_targets).float().cpu())
        if log is not None and ((index + 1) % max(1, ensembles.n_models // 4) == 0):
            log(
                f"  {benchmark.name}-{forget_set}: method ran on {index + 1}/{ensembles.n_models} "
                f"models ({time.perf_counter() - started:.1f}s)"
            )
    elapsed = time.perf_counter() - started
    return MethodRun(margins=torch.stack(rows), seconds_per_model=elapsed / ensembles.n_models)
