"""Fetch the files a benchmark's data comes from (``Benchmark.remote_files``) into the cache.

Benchmarks never download: this module fetches each :class:`~..benchmarks.spec.RemoteFile`
through the same transfer code as store files (:mod:`.fetch`: progress lines, stall and
deadline limits, retries), verifies it against its published md5, and hands the benchmark the
local paths (``Benchmark.with_data_files``, a new instance).

Cache layout under ``cache_dir``::

    md5/<md5>/<filename>        a verified file, read-only, renamed into place whole
    locks/data-<md5>.lock       held while one process downloads it

A file present at its checksum's path was verified before it was renamed there, so it is
reused without contacting the server (offline too).

Example::

    bench = provide_data(get_benchmark("cifar10-resnet9"), cache / "data")
    bench.load_data().inputs.shape
    torch.Size([60000, 3, 32, 32])
"""

from __future__ import annotations

from pathlib import Path

from ..benchmarks.spec import Benchmark, RemoteFile
from ..logs import Log, human_size, stderr_log

# The transfer machinery of store downloads, shared so both behave alike.
from .fetch import (
    DEFAULT_DEADLINE_SECONDS,
    DEFAULT_STALL_SECONDS,
    OfflineError,
    _download_once,
    _lock,
    _Policy,
    _retrying,
)
from .manifest import StoreError

#: A file of unknown size larger than this is refused: no benchmark's data is bigger.
MAX_DATA_BYTES = 8 << 30


def provide_data(
    benchmark: Benchmark,
    cache_dir: Path,
    *,
    offline: bool = False,
    log: Log = stderr_log,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    deadline_seconds: float | None = DEFAULT_DEADLINE_SECONDS,
    retries: int = 3,
    backoff: float = 1.0,
) -> Benchmark:
    """``benchmark`` with its remote data files fetched (a new instance), or ``benchmark``
    itself when it needs none. :class:`StoreError` (one line) when a file cannot be fetched or
    does not match its checksum; :class:`OfflineError` when offline and not cached."""
    remote = benchmark.remote_files()
    if not remote:
        return benchmark
    policy = _Policy(
        retries=retries,
        backoff=backoff,
        timeout=stall_seconds,
        stall_seconds=stall_seconds,
        deadline_seconds=deadline_seconds,
    )
    files = {
        file.filename: fetch_data_file(
            file, Path(cache_dir), offline=offline, say=log, policy=policy
        )
        for file in remote
    }
    return benchmark.with_data_files(files)


def cached_path(file: RemoteFile, cache_dir: Path) -> Path:
    """Where ``file`` lives in the cache once verified."""
    return Path(cache_dir) / "md5" / file.md5.lower() / file.filename


def fetch_data_file(
    file: RemoteFile, cache_dir: Path, *, offline: bool, say: Log, policy: _Policy
) -> Path:
    """The verified local copy of ``file``, downloaded unless cached."""
    target = cached_path(file, cache_dir)
    if target.is_file():
        return target
    if offline:
        raise OfflineError(
            f"offline mode is on and {file.filename} ({file.url}) is not in the cache "
            f"{cache_dir}; run once online, or name a local copy (see the benchmark's docs)"
        )
    what = f"downloading {file.filename}"
    with _lock(Path(cache_dir), f"data-{file.md5.lower()}", say, what=what, policy=policy):
        if target.is_file():  # another process finished it while we waited
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the data cache {target.parent}: {error.strerror or error}"
            ) from None
        for stale in target.parent.glob(f"{target.name}.part-*"):
            stale.unlink(missing_ok=True)  # left by a killed process (we hold the lock)
        size = f" ({human_size(file.size)})" if file.size else ""
        say(f"pytest-unlearn: fetching {file.filename}{size} from {file.url} into {cache_dir}")
        _retrying(
            file.filename,
            file.url,
            policy,
            say,
            # md5 because that is the checksum the data's publisher gives; it guards against
            # corrupted and truncated transfers, and the URL is the publisher's own.
            lambda deadline: _download_once(
                file.url,
                target,
                what=file.filename,
                checksum=("md5", file.md5.lower()),
                size=file.size,
                limit=MAX_DATA_BYTES,
                policy=policy,
                deadline=deadline,
                say=say,
            ),
        )
    say(f"pytest-unlearn: {file.filename} verified (md5 {file.md5}) at {target}")
    return target
