"""The method contract, checked on every call: what a method must return, and in what time.

What is measured is the returned module's *state* (parameters and buffers), loaded into a fresh
instance of the benchmark's architecture in eval mode: a patched ``forward``, extra attributes
or a wrapper that keeps another model are never measured. A violation fails only the tests of
the forget set it happened on, with one message that names the model, the problem and what
was expected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: Set on an exception the method itself raised: only those are reported as the method's.
_RAISED_BY_METHOD = "_pytest_unlearn_raised_by_method"


def mark_raised_by_method(error: BaseException) -> None:
    # An exception type with __slots__ cannot be marked: it stays attributed to the suite.
    with contextlib.suppress(AttributeError):
        setattr(error, _RAISED_BY_METHOD, True)


def raised_by_method(error: BaseException) -> bool:
    """Whether ``error`` came out of the method's own code (not the suite's, not the store's)."""
    return bool(getattr(error, _RAISED_BY_METHOD, False))


class ContractViolation(Exception):
    """The method broke its contract (wrong return value, non-finite weights, timeout...)."""


@dataclass(frozen=True)
class StateSpec:
    """What the benchmark's architecture holds: every state entry's shape and dtype."""

    entries: dict[str, tuple[tuple[int, ...], torch.dtype]]

    @classmethod
    def of(cls, model: nn.Module) -> StateSpec:
        return cls({k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()})


def returned_state(
    returned: Any, spec: StateSpec, device: torch.device, where: str
) -> dict[str, torch.Tensor]:
    """The state (parameters and buffers) of what the method returned, checked against the
    benchmark's architecture; a ContractViolation names what is wrong.

    Only the state counts (it is what a deployer ships): read with ``nn.Module.state_dict``
    itself, so an overridden ``state_dict``, ``forward`` or extra attribute changes nothing.

    >>> model = torch.nn.Linear(2, 3)
    >>> sorted(returned_state(model, StateSpec.of(model), torch.device("cpu"), "model 0"))
    ['bias', 'weight']
    """
    if not isinstance(returned, nn.Module):
        raise ContractViolation(
            f"{where}: the method returned {type(returned).__name__}; "
            "it must return a torch.nn.Module"
        )
    try:
        state = nn.Module.state_dict(returned)
    except Exception as error:  # a module whose state cannot even be read
        raise ContractViolation(
            f"{where}: the returned model's state could not be read "
            f"({type(error).__name__}: {error})"
        ) from None
    expected = spec.entries
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    changed = sorted(
        f"{name} {expected[name][0]} -> {tuple(state[name].shape)}"
        for name in set(state) & set(expected)
        if tuple(state[name].shape) != expected[name][0]
    )
    if missing or extra or changed:
        details = "; ".join(
            part
            for part in (
                f"missing {missing}" if missing else "",
                f"unexpected {extra}" if extra else "",
                f"reshaped {changed}" if changed else "",
            )
            if part
        )
        raise ContractViolation(
            f"{where}: the returned model's parameters and buffers differ from the "
            f"benchmark's architecture ({details}); return the model you were given, "
            "updated in place or with the same modules"
        )
    for name, tensor in state.items():
        dtype = expected[name][1]
        if tensor.dtype != dtype:
            raise ContractViolation(
                f"{where}: {name!r} is {tensor.dtype}, but the benchmark's models are {dtype}; "
                f"convert the model back (model.to({dtype})) before returning it"
            )
        if not _same_device(tensor.device, device):
            raise ContractViolation(
                f"{where}: {name!r} is on {tensor.device}, expected {device} (context.device)"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ContractViolation(f"{where}: {name!r} has {bad} non-finite value(s) (NaN or inf)")
    return state


def evaluated_model(
    state: dict[str, torch.Tensor],
    build_model: Callable[[], nn.Module],
    device: torch.device,
) -> nn.Module:
    """A fresh instance of the benchmark's architecture holding ``state``, in eval mode: the
    model that is measured (and handed to the next request of a sequential schedule)."""
    with torch.random.fork_rng(devices=[]):  # building must not move the global RNG
        model = build_model()
    model.load_state_dict({k: v.detach() for k, v in state.items()}, strict=True)
    return model.to(device).eval()


def _same_device(actual: torch.device, expected: torch.device) -> bool:
    if actual.type != expected.type:
        return False
    return expected.index is None or actual.index in (None, expected.index)
