"""The method contract, checked on every call: what a method must return, and in what time.

A violation fails only the tests of the forget set it happened on, with one message that
names the model, the problem and what was expected.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class ContractViolation(Exception):
    """The method broke its contract (wrong return value, non-finite weights, timeout...)."""


class MethodTimeout(ContractViolation):
    """The method did not return within ``--unlearn-timeout`` seconds."""


def parameter_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Names and shapes of a model's parameters, captured before the method may change it."""
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def check_returned_model(
    returned: Any,
    expected_shapes: dict[str, tuple[int, ...]],
    device: torch.device,
    where: str,
) -> nn.Module:
    """Return ``returned`` if it is a model like the input one, else raise ContractViolation.

    >>> check_returned_model(model, parameter_shapes(model), torch.device("cpu"), "model 0")
    ...  # doctest: +SKIP
    """
    if not isinstance(returned, nn.Module):
        raise ContractViolation(
            f"{where}: the method returned {type(returned).__name__}; "
            "it must return a torch.nn.Module"
        )
    shapes = parameter_shapes(returned)
    if shapes != expected_shapes:
        missing = sorted(set(expected_shapes) - set(shapes))
        extra = sorted(set(shapes) - set(expected_shapes))
        changed = sorted(
            f"{name} {expected_shapes[name]} -> {shapes[name]}"
            for name in set(shapes) & set(expected_shapes)
            if shapes[name] != expected_shapes[name]
        )
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
            f"{where}: the returned model's parameters differ from the input model's ({details})"
        )
    for name, parameter in returned.named_parameters():
        if not _same_device(parameter.device, device):
            raise ContractViolation(
                f"{where}: parameter {name!r} is on {parameter.device}, expected {device}"
            )
        if not torch.isfinite(parameter).all():
            bad = int((~torch.isfinite(parameter)).sum())
            raise ContractViolation(
                f"{where}: parameter {name!r} has {bad} non-finite value(s) (NaN or inf)"
            )
    return returned


def _same_device(actual: torch.device, expected: torch.device) -> bool:
    if actual.type != expected.type:
        return False
    return expected.index is None or actual.index in (None, expected.index)


@contextmanager
def time_limit(seconds: float | None, where: str) -> Iterator[None]:
    """Raise :class:`MethodTimeout` in the calling thread after ``seconds``.

    Uses ``SIGALRM``, as pytest-timeout's signal method does: it interrupts Python code and
    sleeps, not a single long-running C call (that call finishes first). Where there is no
    ``SIGALRM`` (Windows) or outside the main thread, the limit is not enforced.

    >>> with time_limit(5.0, "model 0"):  # doctest: +SKIP
    ...     method(model, forget, retain, context)
    """
    usable = (
        seconds is not None
        and hasattr(signal, "SIGALRM")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise MethodTimeout(
            f"{where}: the method did not return within {seconds:g} s (--unlearn-timeout)"
        )

    previous: Callable | int | None = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
