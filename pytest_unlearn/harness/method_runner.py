"""Run an unlearning method on every member of an ensemble and collect its margins.

For a sequential forget set each member goes through the requests in order, the method
receiving its own previous output; the margins are recorded after every request.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..contract import DataSplit, UnlearnContext
from ..logs import Log
from ..metric import margins
from ..store import Ensembles
from ..training import model_seed
from .batched_margins import EVAL_BATCH, MarginBatcher
from .call_guard import guarded_call
from .contract_checks import StateSpec, evaluated_model, mark_raised_by_method, returned_state
from .shared_runs import MemberRun, RunBoard, run_key


def call_seed(salt: int, benchmark: str, forget_set: str, request: int, index: int) -> int:
    """The ``context.seed`` of one call (request 1-based): fresh per call, never an oracle's."""
    return model_seed("method", salt, benchmark, forget_set, request, index)


@dataclass(frozen=True)
class MethodRun:
    """The method's outputs on one forget set: margins of every unlearned model per request."""

    margins: dict[int, torch.Tensor]  # request (1-based) -> (models, points), on the CPU
    seconds_per_call: float
    #: The ``--unlearn-seed`` salt of the calls' seeds (:func:`call_seed`).
    seed: int = 0
    #: How many calls returned their input's parameters bit for bit, of how many.
    unchanged_calls: int = 0
    calls: int = 0

    @property
    def returned_input_unchanged(self) -> bool:
        """Every call handed back the parameters it received: the method did nothing."""
        return self.calls > 0 and self.unchanged_calls == self.calls

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


@torch.no_grad()
def _margins_of(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The model's margins on every point, in eval mode, in batches so big benchmarks fit in
    memory; the model is left in the mode it came in."""
    was_training = model.training
    model.eval()
    out = [
        margins(model(inputs[i : i + EVAL_BATCH]), targets[i : i + EVAL_BATCH]).float().cpu()
        for i in range(0, len(targets), EVAL_BATCH)
    ]
    model.train(was_training)
    return torch.cat(out)


def request_splits(
    ensembles: Ensembles, forget_set: str, request: int, device: torch.device
) -> tuple[DataSplit, DataSplit]:
    """The ``forget`` (this request's points) and ``retain`` (train minus everything deleted
    so far) splits handed to the method for ``request`` (1-based)."""
    fs = ensembles.benchmark.forget_set(forget_set)
    deleted = torch.tensor(fs.deleted_after(request), dtype=torch.int64)
    forget = torch.tensor(sorted(fs.requests[request - 1]), dtype=torch.int64)
    retain = ensembles.benchmark.load_data().retain_after(deleted)
    return _split(ensembles, forget, device), _split(ensembles, retain, device)


@dataclass(frozen=True)
class RunInputs:
    """What every member's calls on one forget set read, on the device once per run.

    The splits handed to the methods are shared by every call; :meth:`restore` undoes in place
    whatever a call did to them, so each call sees its own data whatever ran before it (and
    on which xdist worker): one pristine copy per run instead of a copy per call.
    """

    splits: dict[int, tuple[DataSplit, DataSplit]]  # request (1-based) -> (forget, retain)
    inputs: torch.Tensor  # every point of the benchmark, for the margins
    targets: torch.Tensor
    pristine: dict[int, tuple[DataSplit, DataSplit]]

    @classmethod
    def of(cls, ensembles: Ensembles, forget_set: str, device: torch.device) -> RunInputs:
        data = ensembles.benchmark.load_data()
        requests = range(1, len(ensembles.benchmark.forget_set(forget_set).requests) + 1)
        splits = {k: request_splits(ensembles, forget_set, k, device) for k in requests}
        return cls(
            splits=splits,
            inputs=data.inputs.to(device),
            targets=data.targets.to(device),
            pristine={k: tuple(_copy(split) for split in pair) for k, pair in splits.items()},  # type: ignore[misc]
        )

    @torch.no_grad()
    def restore(self) -> None:
        """Put back every split tensor a call changed in place (values, shape or grad flag)."""
        for k, pair in self.splits.items():
            for split, clean in zip(pair, self.pristine[k], strict=True):
                for name in ("inputs", "targets", "indices"):
                    current, original = getattr(split, name), getattr(clean, name)
                    if current.requires_grad:
                        current.requires_grad_(False)
                    if (
                        current.shape != original.shape
                        or current.dtype != original.dtype
                        or not torch.equal(current, original)
                    ):
                        current.set_(original.clone())


def _copy(split: DataSplit) -> DataSplit:
    return DataSplit(split.inputs.clone(), split.targets.clone(), split.indices.clone())


def run_member(
    method: Callable,
    ensembles: Ensembles,
    forget_set: str,
    index: int,
    run_inputs: RunInputs,
    device: torch.device,
    *,
    timeout: float | None = None,
    seed: int = 0,
    keep_outputs: bool = False,
    params: dict[str, Any] | None = None,
    batcher: MarginBatcher | None = None,
) -> MemberRun:
    """Call ``method`` on member ``index`` for every request of the forget set, in order.

    The member is a private, freshly built copy; the global torch RNG is seeded with each
    call's fresh ``context.seed`` (then restored), so the result depends on the member's index
    alone, not on what ran before it or in which process. Every returned model is checked
    against the contract (:mod:`.contract_checks`); a violation raises ``ContractViolation``.
    With a ``batcher`` the margins are queued there: they are written at its next ``flush``.
    """
    benchmark = ensembles.benchmark
    data = benchmark.load_data()
    splits = run_inputs.splits
    sequential = len(splits) > 1
    rng_devices = [device] if device.type == "cuda" else []
    model = ensembles.member(index).to(device)
    spec = StateSpec.of(model)
    margins: list[torch.Tensor] = []
    certificates: list[dict] = []
    unchanged: list[bool] = []
    states: list[dict[str, torch.Tensor]] = []
    seconds = 0.0
    for k in sorted(splits):
        forget, retain = splits[k]
        context = UnlearnContext(
            device=device,
            seed=call_seed(seed, benchmark.name, forget_set, k, index),
            model_index=index,
            request_index=k - 1,
            recipe=benchmark.recipe,
            benchmark=benchmark.name,
            forget_set=forget_set,
            num_classes=data.num_classes,
            history=tuple(dict(c) for c in certificates),
            params=copy.deepcopy(params or {}),
        )
        where = f"{benchmark.name}/{forget_set} model {index}" + (
            f" request {k}" if sequential else ""
        )
        received = {name: t.detach().clone() for name, t in model.state_dict().items()}
        call_started = time.perf_counter()
        try:
            with torch.random.fork_rng(devices=rng_devices), guarded_call(timeout, where):
                torch.manual_seed(context.seed)
                try:
                    returned = method(model, forget, retain, context)
                except Exception as error:
                    mark_raised_by_method(error)
                    raise
        finally:
            run_inputs.restore()
        seconds += time.perf_counter() - call_started
        state = returned_state(returned, spec, device, where)
        unchanged.append(all(torch.equal(state[name], t) for name, t in received.items()))
        # The parameters are the model: what is measured, kept and handed to the next request
        # is a fresh instance holding the returned state, never the returned object itself.
        model = evaluated_model(state, benchmark.build_model, device)
        if batcher is None:
            margins.append(_margins_of(model, run_inputs.inputs, run_inputs.targets))
        else:
            margins.append(batcher.add(model))
        certificates.append(dict(context.certificate))
        if keep_outputs:
            states.append({n: t.detach().cpu().clone() for n, t in model.state_dict().items()})
        model.train()  # the next request receives it as the first one did: in training mode
    return MemberRun(
        margins=margins,
        seconds=seconds,
        certificates=certificates,
        states=states if keep_outputs else None,
        unchanged=unchanged,
    )


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
    shared: Path | None = None,
    params: dict[str, Any] | None = None,
    batched_margins: bool | None = None,
) -> MethodRun:
    """Call ``method`` on every ensemble member (and request) and return the margins.

    ``keep_outputs`` also keeps every returned state dict and certificate (certified checks).
    ``shared``, a directory all xdist workers of the run see, lets the workers that need this
    forget set at the same time split its members (:mod:`.shared_runs`); the results are the
    same as without it.

    ``batched_margins`` evaluates the returned models in stacks (:mod:`.batched_margins`)
    instead of one by one; None (the default): on CUDA only, where it pays.

    Example::

        run = run_method(method, ensembles, "knn36", torch.device("cpu"))
        run.margins[1].shape
        torch.Size([16, 1797])
    """
    benchmark = ensembles.benchmark
    run_inputs = RunInputs.of(ensembles, forget_set, device)
    requests = sorted(run_inputs.splits)
    n_models = ensembles.n_models
    if batched_margins is None:
        batched_margins = device.type == "cuda"
    batcher = MarginBatcher(run_inputs.inputs, run_inputs.targets) if batched_margins else None
    started = time.perf_counter()
    done = 0

    def member(index: int) -> MemberRun:
        nonlocal done
        result = run_member(
            method, ensembles, forget_set, index, run_inputs, device,
            timeout=timeout, seed=seed, keep_outputs=keep_outputs, params=params,
            batcher=batcher,
        )  # fmt: skip
        done += 1
        if log is not None and done % max(1, n_models // 4) == 0:
            log(
                f"  {benchmark.name}-{forget_set}: method ran on {done} models "
                f"({time.perf_counter() - started:.1f}s)"
            )
        return result

    if shared is None:
        members = []
        for index in range(n_models):
            members.append(member(index))
            if batcher is not None and (batcher.full or index == n_models - 1):
                batcher.flush()
    else:
        members = _run_shared(
            member, shared, ensembles, forget_set, seed, device, keep_outputs, batcher
        )
    calls = n_models * len(requests)
    return MethodRun(
        margins={k: torch.stack([m.margins[k - 1] for m in members]) for k in requests},
        seconds_per_call=sum(m.seconds for m in members) / calls,
        seed=seed,
        unchanged_calls=sum(sum(m.unchanged) for m in members),
        calls=calls,
        outputs=[m.states for m in members] if keep_outputs else None,  # type: ignore[misc]
        certificates=[m.certificates for m in members] if keep_outputs else None,
    )


def _run_shared(
    member: Callable[[int], MemberRun],
    shared: Path,
    ensembles: Ensembles,
    forget_set: str,
    seed: int,
    device: torch.device,
    keep_outputs: bool,
    batcher: MarginBatcher | None = None,
) -> list[MemberRun]:
    benchmark = ensembles.benchmark
    # No store in the key: the board lives in this run's own directory, whose workers all read
    # the one store the run's settings name (workers of another host get no board at all).
    identity = (benchmark.fingerprint(), seed, ensembles.n_models, device.type, keep_outputs)
    board = RunBoard(shared / run_key(benchmark.name, forget_set, *identity))
    indices = range(ensembles.n_models)
    # With a batcher a member waits here until its margins are computed (a flush), then is
    # published: never an uncomputed margin, never a member claimed by us left unpublished.
    unpublished: dict[int, MemberRun] = {}

    def publish_ready(flush: bool) -> None:
        if batcher is not None and (flush or batcher.full):
            batcher.flush()
        if batcher is None or not batcher.pending:
            for index in list(unpublished):
                board.publish(index, unpublished[index])
                del unpublished[index]

    def settle_unpublished(error: BaseException) -> None:
        """After ``error``: publish the members run before it, or their failure if their
        margins cannot be computed (or on an interrupt: no more work)."""
        try:
            if not isinstance(error, Exception):
                raise error
            publish_ready(flush=True)
        except BaseException as unpublishable:
            for index in unpublished:
                board.publish_failure(index, unpublishable)
            unpublished.clear()

    def run_and_publish(index: int, *, last: bool = False) -> None:
        try:
            unpublished[index] = member(index)
            publish_ready(flush=last)
        except BaseException as error:  # even an interrupt: others must not wait for it
            board.publish_failure(index, error)
            unpublished.pop(index, None)
            settle_unpublished(error)
            raise

    for index in board.claims(indices):
        run_and_publish(index)
    try:
        publish_ready(flush=True)
    except BaseException as error:
        settle_unpublished(error)
        raise
    board.wait(indices, take_over=lambda index: run_and_publish(index, last=True))
    return [board.read(index) for index in indices]
