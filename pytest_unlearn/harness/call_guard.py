"""Guard one method call: a time limit it cannot swallow, a backstop that never lets a hung call
hang CI, exits turned into contract violations, and torch's global state restored afterwards.

* **Time limit** (``--unlearn-timeout``): ``SIGALRM`` raises :class:`CallInterrupted` in the
  method's frame, a ``BaseException``, so ``except Exception`` in a training loop cannot
  swallow it; a call that returns after its limit anyway (it caught ``BaseException``) fails as
  late. Where there is no ``SIGALRM`` (Windows) or outside the main thread, only the late
  return and the backstop apply.
* **Backstop**: a call still running ``BACKSTOP_FACTOR`` times its limit later (at least
  ``BACKSTOP_MIN_GRACE`` seconds after it) ignored the interrupt, e.g. in a C loop or with its
  own ``SIGALRM`` handler. The process then prints a message and every thread's stack
  (``faulthandler``) and exits with status 1: a CI job never hangs. It replaces a
  ``faulthandler_timeout`` pytest may have armed for the test.
* **Exits**: ``sys.exit`` and ``os._exit`` inside the call are contract violations, not an
  early end of the run (a run that ended at exit 0 before writing its report would look green).
* **Global state**: default dtype, CPU threads, grad mode, deterministic-algorithms mode,
  default device, matmul precision and anomaly detection are restored after the call, so what
  a method sets never reaches the plugin or the next call (the RNG is forked by the runner).

>>> with guarded_call(None, "model 0"):
...     torch.set_default_dtype(torch.float64)  # a method's global change...
>>> torch.get_default_dtype()  # ...is undone when the call ends
torch.float32
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from .contract_checks import ContractViolation

#: Called by the backstop before it writes: undoes pytest's output capturing (which points
#: file descriptor 2 at a temporary file), so the message and the stacks reach the terminal.
#: The plugin sets it; see :func:`release_output_with`.
_release_output: Callable[[], object] | None = None

#: The backstop fires at this multiple of the limit...
BACKSTOP_FACTOR = 2.0
#: ...and at least this many seconds after the limit.
BACKSTOP_MIN_GRACE = 5.0


class MethodTimeout(ContractViolation):
    """The method did not return within ``--unlearn-timeout`` seconds."""


class CallInterrupted(BaseException):
    """Raised in the method's frame when its time is up. Not an ``Exception``: a training loop's
    ``except Exception`` must not swallow it (as ``KeyboardInterrupt`` is not)."""


class _ExitRequested(BaseException):
    """``os._exit`` called inside the method: turned into a contract violation."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class TorchState:
    """torch's process-wide settings a method may change."""

    default_dtype: torch.dtype
    threads: int
    grad_enabled: bool
    deterministic: bool
    deterministic_warn_only: bool
    matmul_precision: str
    anomaly: bool
    default_device: Any

    @classmethod
    def capture(cls) -> TorchState:
        get_device = getattr(torch, "get_default_device", None)
        return cls(
            default_dtype=torch.get_default_dtype(),
            threads=torch.get_num_threads(),
            grad_enabled=torch.is_grad_enabled(),
            deterministic=torch.are_deterministic_algorithms_enabled(),
            deterministic_warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
            matmul_precision=torch.get_float32_matmul_precision(),
            anomaly=torch.is_anomaly_enabled(),
            default_device=get_device() if get_device is not None else None,
        )

    def restore(self) -> None:
        if torch.get_default_dtype() != self.default_dtype:
            torch.set_default_dtype(self.default_dtype)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        torch.set_grad_enabled(self.grad_enabled)
        if (
            torch.are_deterministic_algorithms_enabled() != self.deterministic
            or torch.is_deterministic_algorithms_warn_only_enabled() != self.deterministic_warn_only
        ):
            torch.use_deterministic_algorithms(
                self.deterministic, warn_only=self.deterministic_warn_only
            )
        if torch.get_float32_matmul_precision() != self.matmul_precision:
            torch.set_float32_matmul_precision(self.matmul_precision)
        if torch.is_anomaly_enabled() != self.anomaly:
            torch.set_anomaly_enabled(self.anomaly)
        get_device = getattr(torch, "get_default_device", None)
        if get_device is not None and get_device() != self.default_device:
            torch.set_default_device(self.default_device)


@contextmanager
def guarded_call(timeout: float | None, where: str) -> Iterator[None]:
    """Run the ``with`` body as one guarded method call (see the module docstring).

    Raises :class:`MethodTimeout` for a call over its limit and :class:`ContractViolation` for
    an exit; restores torch's global state in every case.
    """
    state = TorchState.capture()
    started = time.perf_counter()
    try:
        with _alarm(timeout), _backstop(timeout, where), _exits_refused():
            yield
    except CallInterrupted:
        raise MethodTimeout(
            f"{where}: the method did not return within {timeout:g} s (--unlearn-timeout)"
        ) from None
    except _ExitRequested as exit_:
        raise ContractViolation(
            f"{where}: the method called os._exit({exit_.status}); a method must return its model"
        ) from None
    except SystemExit as exit_:
        raise ContractViolation(
            f"{where}: the method called sys.exit({exit_.code!r}); a method must return its model"
        ) from None
    finally:
        state.restore()
    elapsed = time.perf_counter() - started
    if timeout is not None and elapsed > timeout:
        raise MethodTimeout(
            f"{where}: the method returned after {elapsed:.1f} s, over the {timeout:g} s limit "
            "(--unlearn-timeout); it caught the interrupt instead of stopping"
        )


@contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    usable = (
        seconds is not None
        and hasattr(signal, "SIGALRM")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CallInterrupted()

    previous: Callable | int | None = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def backstop_seconds(timeout: float) -> float:
    """When the backstop fires, counted from the start of the call.

    >>> backstop_seconds(1.0), backstop_seconds(60.0)
    (6.0, 120.0)
    """
    return max(BACKSTOP_FACTOR * timeout, timeout + BACKSTOP_MIN_GRACE)


@contextmanager
def _backstop(timeout: float | None, where: str) -> Iterator[None]:
    if timeout is None:
        yield
        return
    deadline = backstop_seconds(timeout)
    message = (
        f"\npytest-unlearn: {where}: the method ignored --unlearn-timeout={timeout:g} and is "
        f"still running after {deadline:g} s; stopping the run (exit status 1). Its stack:\n"
    )
    # The message comes from a Python thread just before faulthandler's own C thread dumps the
    # stacks and exits: that one fires even while the method holds the GIL.
    announcer = threading.Timer(max(0.0, deadline - 0.05), _announce, args=(message,))
    announcer.daemon = True
    announcer.start()
    faulthandler.dump_traceback_later(deadline, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        announcer.cancel()


def release_output_with(release: Callable[[], object] | None) -> None:
    """Register how to undo output capturing before the backstop writes (the plugin passes
    pytest's capture manager's ``suspend_global_capture``)."""
    global _release_output
    _release_output = release


def _announce(message: str) -> None:
    try:
        if _release_output is not None:
            _release_output()
        sys.__stderr__.write(message)
        sys.__stderr__.flush()
    except Exception:  # the process is about to end: nothing left to protect
        pass


@contextmanager
def _exits_refused() -> Iterator[None]:
    real_exit = os._exit

    def refuse(status: int) -> None:
        raise _ExitRequested(status)

    os._exit = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real_exit
