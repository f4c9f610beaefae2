"""How long work reports progress: a ``Log`` is any ``log(message)`` callable.

>>> lines = []
>>> log: Log = lines.append
>>> log("building digits-mlp: 1100 models")
>>> lines
['building digits-mlp: 1100 models']
"""

from __future__ import annotations

import sys
from collections.abc import Callable

#: A progress line sink: the store prints build progress through it, the harness method runs.
Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    """The default sink outside pytest: one line on stderr, flushed at once."""
    print(message, file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    """A sink that drops every line."""


def human_size(size: int) -> str:
    """A byte count as progress lines show it.

    >>> human_size(1258291), human_size(512)
    ('1.2 MiB', '512 B')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
