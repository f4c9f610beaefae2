"""Share one forget set's method calls among the xdist workers of a run, model by model.

Every member's calls (all its requests, in order) are independent of the other members' and
seeded by the member's index alone, so it does not matter which process makes them. Workers
that need the same forget set's run at the same time split its members: each claims the next
unclaimed member (an ``O_EXCL`` create of ``model-K.claim``), runs the method on it, and
publishes the result (``model-K.safetensors``, placed by atomic rename); then it waits for the
members other workers are still running and reads them. With ``--dist load`` the tests of one
forget set spread over the workers, so the method calls of one forget set, sequential chains
included, run on every worker at once instead of on one.

A member is claimed only right before it is run, so whoever waits waits for a process that is
running that member. Nothing waits on a member nobody runs: a failure is published too
(``model-K.error``), and a claim whose process has died (a crashed xdist worker) is taken over.

    Example::

        board = RunBoard(shared_dir / run_key("digits-mlp", "knn36", fingerprint))
        for index in board.claims(range(n_models)):
            board.publish(index, run_member(index))
        board.wait(range(n_models), take_over=...)
        members = [board.read(i) for i in range(n_models)]

Limitation: only processes of one host share a board (a claim is checked by process id, which
means nothing on another host). The controller's directory is given only to workers of its own
host (``pytest_unlearn.workers.shared_runs_dir``: ``-n`` and ``--tx popen`` workers); an
``--tx ssh=`` worker gets none, even when a shared file system shows it the directory, and
runs every member itself, as without sharing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..atomic_files import replace_atomically, write_atomically
from .contract_checks import ContractViolation, raised_by_method

#: Seconds between looks at a member another worker is running; short, since members take
#: well under a second on the small benchmarks, and a look is one ``stat``.
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class MemberRun:
    """One member's results: margins on every point after each request, and what it cost."""

    margins: list[torch.Tensor]  # per request (in order), shape (points,), CPU float32
    seconds: float  # the method's own time, all requests together
    certificates: list[dict]  # per request, what the call filled into context.certificate
    states: list[dict[str, torch.Tensor]] | None = None  # per request, only with keep_outputs
    #: Per request: whether the call returned its input's parameters bit for bit.
    unchanged: list[bool] = field(default_factory=list)


class MemberFailedElsewhere(Exception):
    """The method failed on a member another worker ran; that worker's test shows where."""


def _plain(value: object) -> object:
    """JSON for what methods put in certificates besides Python numbers and tensors: numpy
    scalars and arrays (``.tolist()``); anything else as its ``repr``."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return repr(value)


def run_key(benchmark: str, forget_set: str, *identity: object) -> str:
    """The directory name of one run: readable, and unique to everything that fixes its
    results (``identity``: fingerprint, seed, ensemble size, device type, ...).

    >>> run_key("digits-mlp", "knn36", "ae50e5e1bab1e6fc", 0)
    'digits-mlp-knn36-45988ac4428d4910'
    """
    digest = hashlib.sha256(
        json.dumps([benchmark, forget_set, *map(str, identity)]).encode()
    ).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{benchmark}-{forget_set}")
    return f"{safe[:80]}-{digest}"


class RunBoard:
    """The shared directory of one run: claims, published members, published failures."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, index: int, suffix: str) -> Path:
        return self.directory / f"model-{index}.{suffix}"

    def claims(self, indices: Iterable[int]) -> Iterator[int]:
        """Yield the members this process claims, one at a time, each right before it is run
        (the caller runs it before asking for the next, and publishes it then or, with a margin
        batcher, at the batcher's next flush, which this process makes before it waits). Stops
        at the first failure anyone published: the run is failed, the rest is wasted work."""
        for index in indices:
            if self._failure_published():
                return
            if self._path(index, "safetensors").exists():
                continue
            try:
                handle = os.open(self._path(index, "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            with os.fdopen(handle, "w") as claim:
                claim.write(str(os.getpid()))
            yield index

    def publish(self, index: int, member: MemberRun) -> None:
        """Make ``member`` visible to every worker at once (write aside, then rename)."""
        # Copies: safetensors refuses tensors that share memory (tied weights, a certificate
        # holding a view of a parameter).
        tensors = {f"margins.{k}": m.clone() for k, m in enumerate(member.margins)}
        for k, state in enumerate(member.states or []):
            tensors.update({f"state.{k}.{name}": t.clone() for name, t in state.items()})
        # Tensors in a certificate (a retrained model's perturbation) travel as tensors, so a
        # check sees what it would have seen in the process that made the call.
        plain: list[dict] = []
        for k, certificate in enumerate(member.certificates):
            plain.append({})
            for key, value in certificate.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"certificate.{k}.{key}"] = value.detach().cpu().clone()
                else:
                    plain[k][key] = value
        metadata = {
            "seconds": repr(member.seconds),
            "certificates": json.dumps(plain, default=_plain),
            "requests": str(len(member.margins)),
            "states": "1" if member.states is not None else "0",
            "unchanged": json.dumps(member.unchanged),
        }
        replace_atomically(
            self._path(index, "safetensors"),
            lambda temporary: save_file(tensors, str(temporary), metadata=metadata),
        )

    def publish_failure(self, index: int, error: BaseException) -> None:
        """Record that the method failed on member ``index`` so nobody waits for it."""
        payload = {
            "contract": isinstance(error, ContractViolation),
            "by_method": raised_by_method(error),
            "type": type(error).__name__,
            "message": str(error),
            "worker": os.environ.get("PYTEST_XDIST_WORKER") or f"pid {os.getpid()}",
            "model": index,
        }
        try:
            write_atomically(self._path(index, "error"), json.dumps(payload))
        except OSError:
            # Can't say why: at least release the claim, so another worker runs the member
            # itself (and meets the failure in its own test) instead of waiting for us.
            self._path(index, "claim").unlink(missing_ok=True)

    def _failure_published(self) -> dict | None:
        for path in self.directory.glob("model-*.error"):
            with contextlib.suppress(OSError, ValueError):
                return json.loads(path.read_text())
        return None

    def raise_if_failed(self) -> None:
        failure = self._failure_published()
        if failure is None:
            return
        if failure["contract"]:
            raise ContractViolation(failure["message"])
        if not failure.get("by_method", True):
            raise MemberFailedElsewhere(
                f"pytest-unlearn could not evaluate model {failure['model']} of this forget set "
                f"in xdist worker {failure['worker']} (not the method's fault): "
                f"{failure['type']}: {failure['message']}"
            )
        raise MemberFailedElsewhere(
            f"the method raised {failure['type']}: {failure['message']} on model "
            f"{failure['model']} of this forget set, in xdist worker {failure['worker']} (its "
            "test of this forget set shows the traceback)"
        )

    def pending(self, indices: Iterable[int]) -> list[int]:
        """Members not published yet."""
        return [i for i in indices if not self._path(i, "safetensors").exists()]

    def orphaned(self, index: int) -> bool:
        """Whether nobody is running member ``index``: its claim was released, or belongs to a
        process that no longer exists."""
        try:
            pid = int(self._path(index, "claim").read_text() or "0")
        except FileNotFoundError:
            return not self._path(index, "safetensors").exists()
        except (OSError, ValueError):
            return False  # being written: its owner is alive
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def wait(
        self, indices: Iterable[int], take_over: Callable[[int], None], poll: float = POLL_SECONDS
    ) -> None:
        """Block until every member in ``indices`` is published; ``take_over(index)`` (which
        must publish it) runs a member whose claimant died. Raises as soon as anyone publishes
        a failure."""
        indices = list(indices)
        while True:
            self.raise_if_failed()
            missing = self.pending(indices)
            if not missing:
                return
            for index in missing:
                if self.orphaned(index):
                    take_over(index)
            time.sleep(poll)

    def read(self, index: int) -> MemberRun:
        with safe_open(str(self._path(index, "safetensors")), framework="pt") as handle:
            metadata = handle.metadata()
            # One open for metadata and tensors; safe_open is not iterable, hence .keys().
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        requests = int(metadata["requests"])
        states = None
        if metadata["states"] == "1":
            states = []
            for k in range(requests):
                prefix = f"state.{k}."
                states.append(
                    {n.removeprefix(prefix): t for n, t in tensors.items() if n.startswith(prefix)}
                )
        certificates = json.loads(metadata["certificates"])
        for name, tensor in tensors.items():
            if name.startswith("certificate."):
                _, k, key = name.split(".", 2)
                certificates[int(k)][key] = tensor
        return MemberRun(
            margins=[tensors[f"margins.{k}"] for k in range(requests)],
            seconds=float(metadata["seconds"]),
            certificates=certificates,
            states=states,
            unchanged=json.loads(metadata.get("unchanged", "[]")),
        )
