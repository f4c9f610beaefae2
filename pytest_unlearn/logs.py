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
