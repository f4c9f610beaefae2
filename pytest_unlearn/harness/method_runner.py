"""Run an unlearning method on every member of an ensemble and collect its margins.

For a sequential forget set each member goes through the requests in order, the method
receiving its own previous output; the margins are recorded after every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..contract import DataSplit, UnlearnContext
from ..metric import margins
from ..store import Ensembles
from ..training import model_seed
from .contract_checks import check_returned_model, parameter_shapes, time_limit

Log = Callable[[str], None]


@dataclass(frozen=True)
class MethodRun:
    """The method's outputs on one forget set: margins of every unlearned model per request."""

    margins: dict[int, torch.Tensor]  # request (1-based) -> (models, points), on the CPU
    seconds_per_call: float
    #: Only with ``keep_outputs``: per model, per request, the returned state dict (CPU) and
    #: the certificate the call filled in.
    outputs: list[list[dict[str, torch.Tensor]]] | None = None
    certificates: list[list[dict]] | None = None


def _split(ensembles: Ensembles, indices: torch.Tensor, device: torch.device) -> DataSplit:
    data = ensembles.benchmark.load_data()
    return DataSplit(
        inputs=data.inputs[indices].to(device),
        targets=data.targets[indices].to(device),
        indices=indices.to(device),
    )


_EVAL_BATCH = 4096


@torch.no_grad()
def _margins_of(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The model's margins on every point, in batches so big benchmarks fit in memory."""
    was_training = model.training
    model.eval()
    out = [
        margins(model(inputs[i : i + _EVAL_BATCH]), targets[i : i + _EVAL_BATCH]).float().cpu()
        for i in range(0, len(targets), _EVAL_BATCH)
    ]
    model.train(was_training)  # the next request's call gets the model as the method left it
    return torch.cat(out)


def request_splits(
    ensembles: Ensembles, forget_set: str, request: int, device: torch.device
) -> tuple[DataSplit, DataSplit]:
    """The ``forget`` (this request's points) and ``retain`` (train minus everything deleted
    so far) splits handed to the method for ``request`` (1-based)."""
    fs = ensembles.benchmark.forget_set(forget_set)
    train = ensembles.benchmark.load_data().train_indices
    deleted = torch.tensor(fs.deleted_after(request), dtype=torch.int64)
    forget = torch.tensor(sorted(fs.requests[request - 1]), dtype=torch.int64)
    retain = train[~torch.isin(train, deleted)]
    return _split(ensembles, forget, device), _split(ensembles, retain, device)


def run_method(
    method: Callable,
    ensembles: Ensembles,
    forget_set: str,
    device: torch.device,
    *,
    timeout: float | None = None,
    seed: int = 0,
    log: Log | None = None,
    keep_outputs: bool = False,
) -> MethodRun:
    """Call ``method`` on every ensemble member (and request) and return the margins.

    Each member is a private, freshly built copy; the global torch RNG is seeded with the
    call's fresh ``context.seed`` (then restored), so runs are reproducible and one call's
    randomness cannot leak into the next. Every returned model is checked against the
    contract (:mod:`.contract_checks`); a violation raises ``ContractViolation``.
    ``keep_outputs`` also keeps every returned state dict and certificate (certified checks).
    """
    benchmark = ensembles.benchmark
    data = benchmark.load_data()
    fs = benchmark.forget_set(forget_set)
    requests = range(1, len(fs.requests) + 1)
    splits = {k: request_splits(ensembles, forget_set, k, device) for k in requests}
    all_inputs, all_targets = data.inputs.to(device), data.targets.to(device)
    rows: dict[int, list[torch.Tensor]] = {k: [] for k in requests}
    method_seconds = 0.0
    started = time.perf_counter()
    rng_devices = [device] if device.type == "cuda" else []
    outputs: list[list[dict[str, torch.Tensor]]] = []
    certificates: list[list[dict]] = []
    for index in range(ensembles.n_models):
        model = ensembles.member(index).to(device)
        shapes = parameter_shapes(model)
        history: list[dict] = []
        kept: list[dict[str, torch.Tensor]] = []
        for k in requests:
            forget, retain = splits[k]
            context = UnlearnContext(
                device=device,
                seed=model_seed("method", seed, benchmark.name, forget_set, k, index),
                model_index=index,
                request_index=k - 1,
                recipe=benchmark.recipe,
                benchmark=benchmark.name,
                forget_set=forget_set,
                num_classes=data.num_classes,
                history=tuple(dict(c) for c in history),
            )
            where = f"{benchmark.name}/{forget_set} model {index}" + (
                f" request {k}" if fs.sequential else ""
            )
            call_started = time.perf_counter()
            with torch.random.fork_rng(devices=rng_devices), time_limit(timeout, where):
                torch.manual_seed(context.seed)
                returned = method(model, forget, retain, context)
            method_seconds += time.perf_counter() - call_started
            model = check_returned_model(returned, shapes, device, where)
            rows[k].append(_margins_of(model, all_inputs, all_targets))
            history.append(dict(context.certificate))
            if keep_outputs:
                kept.append({n: t.detach().cpu().clone() for n, t in model.state_dict().items()})
        if keep_outputs:
            outputs.append(kept)
            certificates.append(history)
        if log is not None and (index + 1) % max(1, ensembles.n_models // 4) == 0:
            log(
                f"  {benchmark.name}-{forget_set}: method ran on {index + 1}/{ensembles.n_models} "
                f"models ({time.perf_counter() - started:.1f}s)"
            )
    calls = ensembles.n_models * len(requests)
    return MethodRun(
        margins={k: torch.stack(rows[k]) for k in requests},
        seconds_per_call=method_seconds / calls,
        outputs=outputs if keep_outputs else None,
        certificates=certificates if keep_outputs else None,
    )
