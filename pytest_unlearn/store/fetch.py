"""Materialize a store from a local directory, ``file://`` or ``http(s)://`` URL, verified.

Example::

    store = materialize("https://huggingface.co/datasets/org/name/resolve/<commit>",
                        Path("~/.cache/pytest-unlearn").expanduser())
    (store / "manifest.json").is_file()
    True

Cache layout under ``cache_dir``::

    blobs/sha256/<aa>/<sha256>     downloaded files, keyed by content, read-only once in place
    stores/<sha256 of manifest>/   a store view: manifest.json + hard links to the blobs
    sources/<key of URL>.json      which manifest (view) a URL resolved to, for offline reuse
    verified/<key of dir>.json     (path, size, mtime_ns, sha256) of local files already hashed
    locks/*.lock                   file locks (see below)

Guarantees: a blob or view is only ever created by ``os.replace`` of a fully written and
verified temporary (``<blob>.part-<pid>-<random>``, ``stores/.tmp-...``), so no reader sees a
partial file, and a failed download leaves nothing behind. A blob present at its content
address is trusted if its size matches: it was hashed before it was renamed into place.

Locking, for xdist workers and separate processes sharing one cache:

- ``locks/source-<key>.lock`` is held for the whole remote materialization of one URL. The
  first process fetches the manifest and the files; the others wait, then find the finished
  view and make no request at all. So the manifest is requested once per cache, not per
  process.
- ``locks/<sha256>.lock`` is held around check-download-rename of one blob (re-checking after
  acquiring), so two URLs serving the same content (mirrors, store versions sharing files)
  still download each blob once.
- ``locks/view-<sha256>.lock`` is held around assembling one view.
- ``locks/local-<key>.lock`` is held while verifying a local directory, so it is hashed once.

Locks are always taken in the order source, blob, view (one blob at a time): no deadlock. The
holder of a lock writes ``<lock>.holder`` (pid, host, what); a waiter names it and gives up
after ``lock_timeout`` seconds (:mod:`.locks`).

A download never hangs silently: the ``fetching`` line comes before the first request,
progress lines show the bytes received, a transfer that delivers fewer than
:data:`STALL_MIN_BYTES` in ``stall_seconds`` is abandoned (and retried), and a file not
complete ``deadline_seconds`` after its first request is given up on.

A remote view, once complete, is reused without contacting the server again: point ``source``
at an immutable URL (for Hugging Face, a ``resolve/<commit>`` URL, not ``resolve/main``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..atomic_files import write_atomically
from ..logs import Log, human_size, quiet
from .locks import DEFAULT_LOCK_TIMEOUT, held_lock
from .manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    StoreError,
    check_file,
    load_json,
    read_manifest,
    sha256_file,
)

__all__ = [
    "DownloadError",
    "IntegrityError",
    "OfflineError",
    "StoreError",
    "materialize",
]

T = TypeVar("T")

USER_AGENT = "pytest-unlearn"
_BLOCK = 1 << 20
# A manifest is a few KiB; refuse to buffer an unbounded body in memory.
_MAX_MANIFEST_BYTES = 16 << 20
# Statuses worth another try: timeouts, rate limits and server-side errors. Any other error
# status (404, 403, ...) will not change on retry.
_RETRY_STATUSES = frozenset({408, 429})
# A hash mismatch is retried once: a proxy or cache may have served a bad copy once.
_MISMATCH_ATTEMPTS = 2
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
#: A transfer that receives fewer bytes than this in ``stall_seconds`` has stalled.
STALL_MIN_BYTES = 1024
#: Default ``stall_seconds``: a minute with (almost) nothing received.
DEFAULT_STALL_SECONDS = 60.0
#: Default ``deadline_seconds``: one file, all its attempts, within an hour.
DEFAULT_DEADLINE_SECONDS = 3600.0
# Progress lines while a file downloads: at most this often.
_PROGRESS_SECONDS = 10.0


class DownloadError(StoreError):
    """A file could not be downloaded: HTTP error status, connection failure, truncated body."""


class IntegrityError(StoreError):
    """Bytes that do not match the manifest: a downloaded or local file with the wrong sha256."""


class OfflineError(StoreError):
    """Offline mode is on and the store is not in the cache."""


class StalledError(DownloadError):
    """A download stopped making progress, or did not finish before its deadline."""


@dataclass(frozen=True)
class _Policy:
    retries: int
    backoff: float
    timeout: float
    stall_seconds: float = DEFAULT_STALL_SECONDS
    deadline_seconds: float | None = DEFAULT_DEADLINE_SECONDS
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT

    @property
    def socket_timeout(self) -> float:
        """Per socket operation: a silence of ``stall_seconds`` is a stall too."""
        return min(self.timeout, self.stall_seconds)


def materialize(
    source: str,
    cache_dir: Path,
    *,
    offline: bool = False,
    log: Log | None = None,
    retries: int = 3,
    backoff: float = 0.2,
    timeout: float = 30.0,
    stall_seconds: float = DEFAULT_STALL_SECONDS,
    deadline_seconds: float | None = DEFAULT_DEADLINE_SECONDS,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> Path:
    """A local directory holding the complete, verified store ``source``.

    ``source`` is a directory path, a ``file://`` URL (returned in place once verified), an
    ``http(s)://`` base URL (downloaded into ``cache_dir``, once) or a Hugging Face Hub
    ``hf://datasets/ORG/NAME@COMMIT`` (downloaded into the Hub client's cache, verified there
    in place: :mod:`.hub`). ``retries`` is the number of
    attempts for a transient failure (5xx, connection error, timeout, truncated body, stall),
    waiting ``backoff``, ``2 * backoff``, ... between them; ``timeout`` is per socket
    operation. A transfer receiving fewer than :data:`STALL_MIN_BYTES` bytes in
    ``stall_seconds`` (default 60) has stalled; a file (the manifest included) not downloaded
    within ``deadline_seconds`` (default 3600, all attempts together; None: no deadline) is
    given up on (:class:`StalledError`). ``lock_timeout`` (default 7200; None: forever) is how
    long to wait for another process fetching the same store or file. A sha256 mismatch is
    retried once; a 404 is not retried. ``offline=True`` never touches the network and raises
    :class:`OfflineError` unless the store is already cached. Every failure is a
    :class:`StoreError` and leaves no partial or unverified file in the cache.

    Example::

        materialize("/data/stores/digits-mlp", Path("/tmp/cache"))
        PosixPath('/data/stores/digits-mlp')
        materialize("http://127.0.0.1:8000/digits", Path("/tmp/cache"))
        PosixPath('/tmp/cache/stores/5be1...')
    """
    if retries < 1:
        raise ValueError(f"retries must be at least 1 (the first attempt), got {retries}")
    if not stall_seconds > 0:
        raise ValueError(f"stall_seconds must be positive, got {stall_seconds}")
    if deadline_seconds is not None and not deadline_seconds > 0:
        raise ValueError(f"deadline_seconds must be positive or None, got {deadline_seconds}")
    say: Log = log if log is not None else quiet
    cache = Path(cache_dir).absolute()
    match = _SCHEME.match(source)
    scheme = match.group(1).lower() if match else None
    if scheme not in (None, "file", "http", "https", "hf"):
        raise StoreError(
            f"unsupported store source {source!r}: use a directory, file://, http://, https:// "
            "or hf://datasets/ORG/NAME@COMMIT"
        )
    policy = _Policy(
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        stall_seconds=stall_seconds,
        deadline_seconds=deadline_seconds,
        lock_timeout=lock_timeout,
    )
    if scheme == "hf":  # the Hugging Face Hub: its client's cache, verified in place (.hub)
        from .hub import materialize_hub

        return materialize_hub(
            source,
            lambda root: _materialize_local(root, cache, say=say, policy=policy),
            offline=offline,
            log=say,
        )
    try:
        if scheme in ("http", "https"):
            return _materialize_remote(source, cache, offline=offline, say=say, policy=policy)
        local = _file_url_path(source) if scheme == "file" else Path(source)
        return _materialize_local(local, cache, say=say, policy=policy)
    except OSError as exc:
        # Network errors never get here (they become DownloadError): this is the local disk,
        # e.g. an unwritable cache directory, a full disk, an unreadable store file.
        raise StoreError(f"store {source}: local file error in cache {cache}: {exc}") from exc


# --- local directories -------------------------------------------------------------------


def _file_url_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise StoreError(f"file URL {url!r} names host {parsed.netloc!r}; only local files work")
    return Path(urllib.request.url2pathname(parsed.path))


def _materialize_local(root: Path, cache: Path, *, say: Log, policy: _Policy) -> Path:
    """Verify the store at ``root`` in place, hashing only files changed since last verified."""
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise StoreError(f"store {root} is not a directory")
    manifest = read_manifest(root)
    key = _key(str(root))
    record_path = cache / "verified" / f"{key}.json"
    with _lock(cache, f"local-{key}", say, what=f"verifying {root}", policy=policy):
        known = _read_verified(record_path, root)
        verified: dict[str, dict[str, Any]] = {}
        problems = []
        hashed = 0
        for entry in manifest.files:
            path = root / entry.path
            try:
                # Stat before hashing: a write during hashing changes mtime, so it is re-hashed.
                st = path.stat()
            except FileNotFoundError:
                problems.append(f"{entry.path}: missing")
                continue
            fact = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": entry.sha256}
            if stat.S_ISREG(st.st_mode) and known.get(entry.path) == fact:
                verified[entry.path] = fact
                continue
            digest = None
            if stat.S_ISREG(st.st_mode) and st.st_size == entry.size:
                digest = sha256_file(path)
                hashed += 1
            problem = check_file(path, entry, sha256=digest)
            if problem is None:
                verified[entry.path] = fact
            else:
                problems.append(problem)
        if verified != known:
            _write_json_atomic(record_path, {"root": str(root), "files": verified})
    if problems:
        listing = "\n  ".join(problems)
        raise IntegrityError(f"store {root} does not match its manifest:\n  {listing}")
    if hashed:
        say(f"pytest-unlearn: verified {hashed} file(s) of {root}")
    return root


def _read_verified(record_path: Path, root: Path) -> dict[str, dict[str, Any]]:
    try:
        record = load_json(record_path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("root") != str(root):
        return {}
    files = record.get("files")
    return files if isinstance(files, dict) else {}


# --- remote stores -----------------------------------------------------------------------


def _materialize_remote(
    source: str, cache: Path, *, offline: bool, say: Log, policy: _Policy
) -> Path:
    base = source.rstrip("/")
    parsed = urllib.parse.urlsplit(base)
    if parsed.query or parsed.fragment:
        raise StoreError(f"store URL {source!r} has a query or fragment; give the base URL only")
    key = _key(base)
    ref_path = cache / "sources" / f"{key}.json"
    # Fast path, no lock and no network: views only ever appear complete (atomic rename).
    view = _cached_view(cache, ref_path, base)
    if view is not None:
        return view
    if offline:
        raise OfflineError(
            f"store {base} is not cached in {cache} and offline mode is on, so it cannot be "
            "downloaded; run once online to fill the cache, or point at a local store"
        )
    say(f"pytest-unlearn: fetching store {base} into {cache}")
    with _lock(cache, f"source-{key}", say, what=f"fetching {base}", policy=policy):
        view = _cached_view(cache, ref_path, base)
        if view is not None:
            return view
        manifest_url = f"{base}/{MANIFEST_NAME}"
        raw = _retrying(
            MANIFEST_NAME,
            manifest_url,
            policy,
            say,
            lambda deadline: _get_small(manifest_url, policy, deadline),
        )
        manifest = Manifest.parse(raw, source=manifest_url)
        manifest_sha = hashlib.sha256(raw).hexdigest()
        say(
            f"pytest-unlearn: store {base}: {len(manifest.files)} files, "
            f"{human_size(manifest.total_size)}"
        )
        blobs = {
            entry.path: _ensure_blob(cache, base, entry, policy, say) for entry in manifest.files
        }
        view = _assemble_view(cache, manifest_sha, raw, manifest, blobs, say, policy)
        _write_json_atomic(ref_path, {"source": base, "manifest_sha256": manifest_sha})
        return view


def _cached_view(cache: Path, ref_path: Path, base: str) -> Path | None:
    try:
        ref = load_json(ref_path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(ref, dict) or ref.get("source") != base:
        return None
    manifest_sha = ref.get("manifest_sha256")
    if not isinstance(manifest_sha, str) or not re.fullmatch(r"[0-9a-f]{64}", manifest_sha):
        return None
    view = cache / "stores" / manifest_sha
    return view if _view_complete(view, manifest_sha) else None


def _view_complete(view: Path, manifest_sha: str) -> bool:
    """Whether ``view`` holds its manifest and every file at the right size (no hashing)."""
    try:
        raw = (view / MANIFEST_NAME).read_bytes()
        if hashlib.sha256(raw).hexdigest() != manifest_sha:
            return False
        manifest = Manifest.parse(raw, source=str(view / MANIFEST_NAME))
        return all((view / e.path).stat().st_size == e.size for e in manifest.files)
    except (OSError, StoreError):
        return False


def _blob_path(cache: Path, sha256: str) -> Path:
    return cache / "blobs" / "sha256" / sha256[:2] / sha256


def _blob_ok(blob: Path, entry: FileEntry) -> bool:
    try:
        st = blob.stat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == entry.size


def _ensure_blob(cache: Path, base: str, entry: FileEntry, policy: _Policy, say: Log) -> Path:
    """The verified blob for ``entry``, downloaded from ``base`` unless already cached."""
    blob = _blob_path(cache, entry.sha256)
    if _blob_ok(blob, entry):
        return blob
    with _lock(cache, entry.sha256, say, what=f"downloading {entry.path}", policy=policy):
        # Another process may have finished it while we waited for the lock.
        if _blob_ok(blob, entry):
            return blob
        blob.parent.mkdir(parents=True, exist_ok=True)
        # Under the lock nobody else writes this blob: any part file is from a killed process,
        # and a blob of the wrong size is damaged.
        for stale in blob.parent.glob(f"{entry.sha256}.part-*"):
            stale.unlink(missing_ok=True)
        if blob.exists():
            _force_unlink(blob)
        url = f"{base}/{urllib.parse.quote(entry.path)}"
        say(f"pytest-unlearn: downloading {entry.path} ({human_size(entry.size)})")
        _retrying(
            entry.path,
            url,
            policy,
            say,
            lambda deadline: _download_once(
                url,
                blob,
                what=entry.path,
                checksum=("sha256", entry.sha256),
                size=entry.size,
                policy=policy,
                deadline=deadline,
                say=say,
            ),
        )
    return blob


class _Meter:
    """Watches one transfer: stalls, the file's deadline, and progress lines."""

    def __init__(
        self, policy: _Policy, deadline: float | None, say: Log | None, what: str, size: int
    ) -> None:
        self.policy, self.deadline, self.say = policy, deadline, say
        self.what, self.size = what, size
        self.received = 0
        self._window_start = self._last_report = time.monotonic()
        self._window_bytes = 0

    def check(self) -> None:
        """Raise when the transfer stalled or ran past its deadline; log progress now and
        then. Called after every read, so a read returns within the socket timeout."""
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise _Deadline(
                f"not finished within deadline_seconds={self.policy.deadline_seconds:g}s "
                f"(received {self.received} of {self.size} bytes)"
            )
        if now - self._window_start >= self.policy.stall_seconds:
            # The last few bytes of a file count as enough, however few they are.
            left = self.size - self._window_bytes if self.size else STALL_MIN_BYTES
            if self.received - self._window_bytes < min(STALL_MIN_BYTES, max(1, left)):
                raise _Stalled(
                    f"stalled: {self.received - self._window_bytes} bytes in the last "
                    f"{now - self._window_start:.1f}s (stall_seconds="
                    f"{self.policy.stall_seconds:g}: at least {STALL_MIN_BYTES} bytes expected)"
                    f", {self.received} of {self.size} bytes received"
                )
            self._window_start, self._window_bytes = now, self.received
        if self.say is not None and now - self._last_report >= _PROGRESS_SECONDS:
            self._last_report = now
            percent = 100 * self.received / self.size if self.size else 100.0
            self.say(
                f"pytest-unlearn: downloading {self.what}: {human_size(self.received)} of "
                f"{human_size(self.size)} ({percent:.0f}%)"
            )

    def add(self, block: bytes) -> None:
        self.received += len(block)
        self.check()


def _download_once(
    url: str,
    target: Path,
    *,
    what: str,
    checksum: tuple[str, str],
    size: int | None,
    policy: _Policy,
    deadline: float | None,
    say: Log,
    limit: int | None = None,
) -> None:
    """One attempt: stream ``url`` into a part file next to ``target``, check its size and
    ``checksum`` (algorithm, lowercase hex digest), rename it into place read-only.

    ``size`` None: not known beforehand; the Content-Length, if any, is then what a complete
    body has, and ``limit`` bounds what is accepted.
    """
    algorithm, expected_digest = checksum
    part = target.with_name(f"{target.name}.part-{os.getpid()}-{secrets.token_hex(4)}")
    most = size if size is not None else limit
    assert most is not None, "give the size or a limit"
    try:
        digest = hashlib.new(algorithm, usedforsecurity=False)
        meter = _Meter(policy, deadline, say, what, size or 0)
        with _open(url, policy, meter) as response, open(part, "xb") as out:
            announced = _content_length(response)
            if size is None and announced is not None:
                meter.size = announced
            while True:
                # Never read more than one byte past the expected size: enough to notice.
                want = min(_BLOCK, most + 1 - meter.received)
                block = _read(response, want, meter, policy)
                if not block:
                    break
                meter.add(block)
                if meter.received > most:
                    raise _Mismatch(
                        f"expected {size} bytes ({algorithm} {expected_digest}), the server "
                        "sent more"
                        if size is not None
                        else f"the server sent more than {human_size(most)}"
                    )
                digest.update(block)
                out.write(block)
        received = meter.received
        known = [n for n in (size, announced) if n is not None]
        if known and received < max(known):
            expected = max(known)
            raise _Transient(
                f"truncated body: expected {expected} bytes, received {received}"
                + (f" (Content-Length {announced})" if announced not in (None, expected) else "")
            )
        actual = digest.hexdigest()
        if actual != expected_digest:
            raise _Mismatch(f"expected {algorithm} {expected_digest}, got {actual}")
        # Read-only: a blob is shared through hard links by every view that holds it.
        os.chmod(part, 0o444)
        os.replace(part, target)
    finally:
        if part.exists():
            _force_unlink(part)


def _get_small(url: str, policy: _Policy, deadline: float | None) -> bytes:
    """The whole body of ``url`` (at most 16 MiB), for the manifest."""
    meter = _Meter(policy, deadline, None, MANIFEST_NAME, 0)
    with _open(url, policy, meter) as response:
        announced = _content_length(response)
        meter.size = announced or 0
        chunks = []
        while block := _read(response, _BLOCK, meter, policy):
            meter.add(block)
            if meter.received > _MAX_MANIFEST_BYTES:
                raise _Permanent(
                    f"body larger than {human_size(_MAX_MANIFEST_BYTES)}, not a manifest"
                )
            chunks.append(block)
    received = meter.received
    if announced is not None and received < announced:
        raise _Transient(f"truncated body: expected {announced} bytes, received {received}")
    return b"".join(chunks)


# --- HTTP and retries --------------------------------------------------------------------


class _Transient(Exception):
    """A failure worth retrying (5xx, connection, timeout, truncated body)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Permanent(_Transient):
    """A failure that another attempt will not fix (404, 403, ...)."""


class _Mismatch(_Transient):
    """Complete bytes that do not match the manifest."""


class _Stalled(_Transient):
    """Too few bytes for too long; retried, and a :class:`StalledError` when given up."""


class _Deadline(_Permanent):
    """The file's deadline passed: no further attempt."""


def _open(url: str, policy: _Policy, meter: _Meter) -> http.client.HTTPResponse:
    meter.check()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=policy.socket_timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        detail = f"HTTP {exc.code} {exc.reason}"
        if exc.code >= 500 or exc.code in _RETRY_STATUSES:
            raise _Transient(detail) from None
        raise _Permanent(detail) from None
    except urllib.error.URLError as exc:
        raise _Transient(_reason(exc.reason, policy)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(_reason(exc, policy)) from None


def _read(response: http.client.HTTPResponse, size: int, meter: _Meter, policy: _Policy) -> bytes:
    """What one socket read delivers (at most ``size`` bytes; ``b""`` at the end): ``read1``,
    not ``read``, so that a trickle of bytes returns to :meth:`_Meter.check` after each one
    instead of blocking until ``size`` bytes have arrived."""
    try:
        return response.read1(size)
    except http.client.IncompleteRead as exc:
        # Raised by some read paths when the peer closes early; the caller sees the shortfall.
        return exc.partial
    except TimeoutError:
        meter.check()  # a passed deadline says so
        raise _Stalled(
            f"stalled: no data for {policy.socket_timeout:g}s after {meter.received} bytes"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Transient(f"connection lost after {meter.received} bytes: {exc!r}") from None


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reason(exc: object, policy: _Policy) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {policy.socket_timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    return f"connection failed: {exc}"


def _retrying(
    what: str, url: str, policy: _Policy, say: Log, attempt: Callable[[float | None], T]
) -> T:
    """Run ``attempt(deadline)`` until it succeeds; turn the last failure into one clear
    StoreError. ``deadline`` (``time.monotonic()`` seconds, or None) covers every attempt."""
    failures = mismatches = 0
    deadline = (
        None if policy.deadline_seconds is None else time.monotonic() + policy.deadline_seconds
    )
    while True:
        try:
            return attempt(deadline)
        except _Deadline as exc:
            raise StalledError(f"cannot download {what} from {url}: {exc.detail}") from None
        except _Permanent as exc:
            raise DownloadError(f"cannot download {what}: {url} answered {exc.detail}") from None
        except _Mismatch as exc:
            mismatches += 1
            if mismatches >= _MISMATCH_ATTEMPTS:
                raise IntegrityError(
                    f"{what} downloaded from {url} does not match the manifest "
                    f"({mismatches} attempts): {exc.detail}"
                ) from None
            reason = exc.detail
        except _Transient as exc:
            failures += 1
            if failures >= policy.retries:
                error = StalledError if isinstance(exc, _Stalled) else DownloadError
                raise error(
                    f"cannot download {what} from {url}: {exc.detail} "
                    f"(gave up after {failures} attempt{'s' if failures > 1 else ''})"
                ) from None
            reason = exc.detail
        delay = policy.backoff * 2 ** (failures + mismatches - 1)
        if deadline is not None and time.monotonic() + delay > deadline:
            raise StalledError(
                f"cannot download {what} from {url}: {reason}; no time left for another attempt "
                f"within deadline_seconds={policy.deadline_seconds:g}s"
            )
        say(
            f"pytest-unlearn: {what}: {reason}; retrying in {delay:.2g}s "
            f"(attempt {failures + mismatches + 1})"
        )
        time.sleep(delay)


# --- views, locks, small files -----------------------------------------------------------


def _assemble_view(
    cache: Path,
    manifest_sha: str,
    raw: bytes,
    manifest: Manifest,
    blobs: dict[str, Path],
    say: Log,
    policy: _Policy,
) -> Path:
    """``stores/<manifest sha>/``: the manifest bytes plus hard links to the blobs."""
    stores = cache / "stores"
    stores.mkdir(parents=True, exist_ok=True)
    view = stores / manifest_sha
    with _lock(cache, f"view-{manifest_sha}", say, what="assembling the store view", policy=policy):
        if _view_complete(view, manifest_sha):
            return view
        prefix = f".tmp-{manifest_sha[:16]}-"
        # Under the view lock, leftovers with this prefix are from killed processes.
        for stale in stores.glob(prefix + "*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = stores / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            for entry in manifest.files:
                target = tmp / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(blobs[entry.path], target)
                except OSError:
                    # Filesystems without hard links (or across devices): a copy is fine.
                    shutil.copyfile(blobs[entry.path], target)
            (tmp / MANIFEST_NAME).write_bytes(raw)
            if view.exists():
                # Incomplete (someone deleted files from it): set aside, then replace.
                trash = stores / f".trash-{manifest_sha[:16]}-{os.getpid()}-{secrets.token_hex(4)}"
                os.replace(view, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, view)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    say(f"pytest-unlearn: store ready at {view}")
    return view


@contextmanager
def _lock(cache: Path, name: str, say: Log, *, what: str, policy: _Policy) -> Iterator[None]:
    """Hold ``cache/locks/<name>.lock``; when another process makes us wait, name it, and give
    up after ``policy.lock_timeout`` seconds (:class:`.LockTimeout`)."""
    with held_lock(
        cache / "locks" / f"{name}.lock", what=what, say=say, timeout=policy.lock_timeout
    ):
        yield


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(data, indent=1, sort_keys=True))


def _force_unlink(path: Path) -> None:
    # Blobs are read-only; Windows refuses to delete a read-only file.
    try:
        path.unlink()
    except PermissionError:
        os.chmod(path, 0o644)
        path.unlink()
    except FileNotFoundError:
        pass


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
