"""An author's list of conformance tests expected to fail, with reasons.

Like scikit-learn's ``expected_failed_checks``: a method that knowingly misses some cases
lists them, its CI stays green, and the list is strict — a listed test that passes is
reported as a failure (XPASS(strict)), so the list cannot silently rot.

File format (``--unlearn-xfail-file=PATH``), one test id per line, a reason after a colon,
``#`` comments and blank lines ignored::

    # gradient ascent does not reach retraining on subpopulations
    digits-mlp-knn36-forget: forgets too little
    digits-mlp-knn36-retain: damages neighbouring digits
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

#: Far more than any real list (an id and a reason per line): a larger file is a mistake.
MAX_BYTES = 1 << 20


def read_xfail_file(path: Path, known_ids: Iterable[str], source: str) -> dict[str, str]:
    """Parse ``path`` into ``{test id: reason}``; a usage error for unknown ids or bad lines.

    Example::

        read_xfail_file(Path("xfail.txt"), ["digits-mlp-knn36-forget"], "--unlearn-xfail-file")

        {'digits-mlp-knn36-forget': 'forgets too little'}
    """
    text = _read_text(Path(path), source)
    known = set(known_ids)
    expected: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        test_id, _, reason = line.partition(":")
        test_id, reason = test_id.strip(), reason.strip()
        if not test_id or " " in test_id:
            raise pytest.UsageError(f"{source}: {path}:{number}: expected 'TEST-ID: reason'")
        if test_id in expected:
            raise pytest.UsageError(f"{source}: {path}:{number}: {test_id} is listed twice")
        expected[test_id] = reason or "listed in the xfail file"
    unknown = sorted(set(expected) - known)
    if unknown:
        raise pytest.UsageError(
            f"{source}: {path} lists ids that are no conformance test of the selected "
            f"benchmarks: {', '.join(unknown)}"
        )
    return expected


def _read_text(path: Path, source: str) -> str:
    """The file's text: a regular file of at most :data:`MAX_BYTES`, UTF-8; else a usage error
    (``/dev/zero`` or a FIFO would never end, a binary file is a mistake)."""
    try:
        if not path.is_file():
            kind = "does not exist" if not path.exists() else "is not a regular file"
            raise pytest.UsageError(f"{source}: {path} {kind}")
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise pytest.UsageError(f"{source}: cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_BYTES:
        raise pytest.UsageError(
            f"{source}: {path} is larger than {MAX_BYTES // 1024} KiB; an xfail file lists test "
            "ids, one per line"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise pytest.UsageError(
            f"{source}: {path} is not UTF-8 text (byte {error.start}): an xfail file lists "
            "test ids, one per line"
        ) from None
