"""Files that appear whole or not at all: written beside their final name, then renamed.

Every writer of a file another process (or a later run) may read goes through here: the JSON
report and plots, store manifests and fetch records, and the members xdist workers share.

Example::

    write_atomically(Path("out/report.json"), "{}")
    replace_atomically(Path("out/plot.png"), lambda tmp: figure.savefig(tmp))
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` (same directory, so ``os.replace`` is a rename on
    one file system) for an atomic write.

    Not ``tempfile.mkstemp``: its files are private (0600), and what we write should get the
    permissions the user's umask gives any other file.

    Example::

        temporary_sibling(Path("out/unlearn.json")).name
        '.unlearn.json.12345.9f2c4e1a.tmp'
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temporary)``, then rename the temporary file to ``path``; on any failure the
    temporary file is removed and ``path`` is left as it was."""
    temporary = temporary_sibling(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, creating its directory, so that no reader ever sees
    a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        with temporary.open("x", encoding="utf-8") as stream:
            stream.write(text)

    replace_atomically(path, write)
