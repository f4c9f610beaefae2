"""Progress lines for long work (building ensembles, running the method) that reach the
terminal live, even from inside a test whose output pytest is capturing."""

from __future__ import annotations

import sys

import pytest

from .logs import Log


def progress_writer(config: pytest.Config) -> Log:
    """A ``log(message)`` that prints past pytest's capture (``-q`` does not hide it).

    Example::

        log = progress_writer(config)
        log("building digits-mlp ...")
    """

    def log(message: str) -> None:
        capture = config.pluginmanager.get_plugin("capturemanager")
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else _nothing():
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(message)
            else:  # xdist workers have no terminal reporter; their stderr is the terminal's
                print(message, file=sys.__stderr__, flush=True)

    return log


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
