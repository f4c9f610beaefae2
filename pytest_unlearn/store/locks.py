"""File locks that say who holds them, and give up after a deadline.

A process holding ``<name>.lock`` writes ``<name>.lock.holder`` (JSON: pid, host, since, what);
a process that has to wait names that holder, repeats the message every minute, and gives up
with :class:`LockTimeout` after ``timeout`` seconds instead of hanging forever behind a hung
process. The lock itself is an OS lock (``filelock``): a killed holder releases it.

Only the standard library and ``filelock``: the fetch module uses this without torch.

Example::

    with held_lock(Path("/tmp/x.lock"), what="building digits-mlp", say=print,
                   timeout=60):
        ...
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from ..atomic_files import write_atomically
from ..logs import Log
from .manifest import StoreError, load_json

#: Default for ``lock_timeout``: how long to wait for another process's build or download of
#: the same store (the largest local build takes minutes; a download of a big store can take
#: an hour on a slow link) before giving up.
DEFAULT_LOCK_TIMEOUT = 2 * 3600.0

# While waiting, say again who holds the lock this often.
_REPORT_EVERY = 60.0
_MAX_HOLDER_BYTES = 4096


class LockTimeout(StoreError):
    """Another process held a lock for longer than the caller agreed to wait."""


def holder_path(lock_path: Path) -> Path:
    """``<lock>.holder``: who holds ``lock_path`` right now (written by the holder)."""
    return lock_path.with_name(lock_path.name + ".holder")


def describe_holder(lock_path: Path) -> str:
    """``'process 1234 on host h (since 2026-01-01T10:00:00Z, building digits-mlp)'``, or
    ``'another process'`` when the holder did not (or could not) say."""
    try:
        with open(holder_path(lock_path), "rb") as handle:
            data = load_json(handle.read(_MAX_HOLDER_BYTES))
    except (OSError, ValueError):
        return "another process"
    if not isinstance(data, dict):
        return "another process"
    pid, host = data.get("pid"), data.get("host")
    since, what = data.get("since"), data.get("what")
    if not isinstance(pid, int) or not isinstance(host, str):
        return "another process"
    details = [str(value)[:100] for value in (since, what) if isinstance(value, str)]
    suffix = f" (since {', '.join(details)})" if details else ""
    return f"process {pid} on host {host[:100]}{suffix}"


@contextmanager
def held_lock(lock_path: Path, *, what: str, say: Log, timeout: float | None) -> Iterator[None]:
    """Hold the file lock ``lock_path`` for the ``with`` block (creating its directory).

    ``what`` says what the holder does (shown to waiters); ``timeout`` is the most seconds to
    wait (None: forever), after which :class:`LockTimeout` names the lock and its holder.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _wait(lock, lock_path, what=what, say=say, timeout=timeout)
    sidecar = holder_path(lock_path)
    try:
        with suppress(OSError):  # only a courtesy to waiters
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "what": what,
            }
            write_atomically(sidecar, json.dumps(record))
        yield
    finally:
        # Removed while still held: the next holder writes its own after acquiring.
        with suppress(OSError):
            sidecar.unlink(missing_ok=True)
        lock.release()


def _wait(lock: FileLock, lock_path: Path, *, what: str, say: Log, timeout: float | None) -> None:
    started = time.monotonic()
    limit = "" if timeout is None else f"; giving up after {timeout:g}s"
    say(
        f"pytest-unlearn: waiting for {describe_holder(lock_path)}, which holds {lock_path} "
        f"({what}{limit})"
    )
    while True:
        waited = time.monotonic() - started
        left = None if timeout is None else timeout - waited
        if left is not None and left <= 0:
            raise LockTimeout(
                f"gave up after waiting {waited:.0f}s for {lock_path} ({what}): held by "
                f"{describe_holder(lock_path)}; stop that process if it is stuck, or allow a "
                "longer wait (lock_timeout)"
            )
        step = _REPORT_EVERY if left is None else min(_REPORT_EVERY, left)
        try:
            lock.acquire(timeout=step)
            return
        except Timeout:
            if left is None or left > step:
                say(
                    f"pytest-unlearn: still waiting ({time.monotonic() - started:.0f}s) for "
                    f"{describe_holder(lock_path)} ({what})"
                )
