"""The manifest of an ensemble store: which files it holds, their sha256 and size, and the recipe.

A store is a directory holding ``manifest.json`` and safetensors files at the relative paths the
manifest names::

    {"schema": 1, "benchmark": "digits-mlp", "fingerprint": "24610352d6469304", "n_models": 100,
     "recipe": {...}, "forget_sets": {"knn36": "subpopulation"},
     "files": {"pretrained/weights.safetensors": {"sha256": "<64 hex>", "size": 12345}}}

A manifest may come from a remote server, so :meth:`Manifest.parse` trusts nothing in it: every
file path must stay inside the store directory once joined to it (no absolute paths, no ``..``,
no backslashes, ...), or the manifest is refused before anything is fetched or written.

>>> m = Manifest.parse('{"schema": 1, "benchmark": "b", "fingerprint": "f", "n_models": 2, '
...                    '"recipe": {}, "forget_sets": {}, "files": {}}', source="example")
>>> m.benchmark, m.files
('b', ())
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..atomic_files import write_atomically

SCHEMA = 1
SUPPORTED_SCHEMAS: tuple[int, ...] = (SCHEMA,)
MANIFEST_NAME = "manifest.json"

_SHA256 = re.compile(r"[0-9a-f]{64}")
# A drive prefix ("C:", "c:x") makes a path absolute or drive-relative on Windows.
_DRIVE = re.compile(r"[A-Za-z]:")
_BLOCK = 1 << 20
# No file is larger (the largest file size Linux allows); a bigger "size" is a hostile manifest.
_MAX_SIZE = (1 << 63) - 1
# More models than anyone trains; beyond this "n_models" is nonsense, not an ensemble size.
_MAX_MODELS_IN_MANIFEST = 1 << 31
# A forget set's name becomes a file name (forget_sets/<name>.safetensors) and a test id.
FORGET_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


class StoreError(Exception):
    """A store cannot be used: a bad manifest, a failed download, a file that does not verify."""


class OutputRefused(StoreError):
    """The directory a store should be written to holds something that is not a store: it is
    left alone (a usage error: pick another ``--out``)."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a store: its relative posix path, sha256 (lowercase hex) and size in bytes.

    >>> FileEntry("pretrained/weights.safetensors", "0" * 64, 10).size
    10
    """

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest; ``files`` is kept sorted by path, so equal stores are equal.

    Construct it with :meth:`parse` (from JSON) or :func:`build_manifest` (from a directory);
    the constructor validates the file entries as well, so no unsafe Manifest can exist.

    >>> m = Manifest(1, "b", "f", 2, {}, {}, (FileEntry("a.safetensors", "0" * 64, 3),))
    >>> Manifest.parse(m.to_json(), source="round trip") == m
    True
    """

    schema: int
    benchmark: str
    fingerprint: str
    n_models: int
    recipe: dict[str, Any] = field(hash=False)
    forget_sets: dict[str, str] = field(hash=False)
    files: tuple[FileEntry, ...]
    #: Seconds one exact retraining took when the store was built, per device kind
    #: (``"cpu"``, ``"cuda:NVIDIA H200"``); empty for an imported store. Written only when
    #: non-empty, so stores from before it existed keep their bytes.
    retrain_seconds: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        entries = tuple(sorted(self.files, key=lambda e: e.path))
        _check_counts(self.n_models, self.forget_sets, source="Manifest(...)")
        _check_entries(entries, source="Manifest(...)")
        # Frozen: normalising the order needs object.__setattr__.
        object.__setattr__(self, "files", entries)

    @classmethod
    def parse(cls, raw: bytes | str, source: str) -> Manifest:
        """Parse and validate manifest JSON; ``source`` (a path or URL) is named in every error.

        >>> try:
        ...     Manifest.parse("[]", source="https://x.org/manifest.json")
        ... except StoreError as exc:
        ...     print(exc)
        manifest https://x.org/manifest.json: expected a JSON object at the top level, got list
        """
        try:
            data = load_json(raw)
        except _DuplicateKey as exc:
            raise StoreError(
                f"manifest {source}: key {_short_repr(exc.args[0])} appears twice"
            ) from None
        except ValueError as exc:
            raise StoreError(f"manifest {source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise StoreError(
                f"manifest {source}: expected a JSON object at the top level, "
                f"got {type(data).__name__}"
            )
        schema = _get(data, "schema", int, source)
        if schema not in SUPPORTED_SCHEMAS:
            supported = ", ".join(str(s) for s in SUPPORTED_SCHEMAS)
            raise StoreError(
                f"manifest {source}: unknown schema {schema}; this version of pytest-unlearn "
                f"reads schema {supported} (a newer store needs a newer pytest-unlearn)"
            )
        benchmark = _get(data, "benchmark", str, source)
        fingerprint = _get(data, "fingerprint", str, source)
        n_models = _get(data, "n_models", int, source)
        recipe = _get(data, "recipe", dict, source)
        forget_sets = _get(data, "forget_sets", dict, source)
        files = _get(data, "files", dict, source)
        entries = []
        for path, meta in files.items():
            if not isinstance(meta, dict):
                raise StoreError(
                    f"manifest {source}: file {path!r} must map to an object with sha256 and "
                    f"size, got {type(meta).__name__}"
                )
            sha = _get(meta, "sha256", str, source, where=f"file {path!r}")
            size = _get(meta, "size", int, source, where=f"file {path!r}")
            entries.append(FileEntry(path=path, sha256=sha, size=size))
        entries.sort(key=lambda e: e.path)
        retrain_seconds = data.get("retrain_seconds", {})
        if not isinstance(retrain_seconds, dict) or not all(
            isinstance(k, str)
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and v > 0
            for k, v in retrain_seconds.items()
        ):
            raise StoreError(
                f"manifest {source}: 'retrain_seconds' must map device kinds to positive "
                f"seconds, got {_short_repr(retrain_seconds)}"
            )
        _check_counts(n_models, forget_sets, source)
        _check_entries(entries, source)
        return cls(
            schema=schema,
            benchmark=benchmark,
            fingerprint=fingerprint,
            n_models=n_models,
            recipe=recipe,
            forget_sets=dict(forget_sets),
            files=tuple(entries),
            retrain_seconds={k: float(v) for k, v in retrain_seconds.items()},
        )

    def to_json(self) -> str:
        """The manifest as JSON text (sorted keys, indent 2); ``parse`` reads it back equal."""
        data: dict[str, Any] = {
            "schema": self.schema,
            "benchmark": self.benchmark,
            "fingerprint": self.fingerprint,
            "n_models": self.n_models,
            "recipe": self.recipe,
            "forget_sets": self.forget_sets,
            "files": {e.path: {"sha256": e.sha256, "size": e.size} for e in self.files},
        }
        if self.retrain_seconds:
            data["retrain_seconds"] = self.retrain_seconds
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def content_id(self) -> str:
        """A short digest of what the store holds: the manifest without the build's measured
        timings, so two builds of the same ensembles (on two hosts, in two CI runs) share it.

        >>> m = Manifest(1, "b", "f", 2, {}, {}, ())
        >>> m.content_id() == replace(m, retrain_seconds={"cpu": 1.0}).content_id()
        True
        """
        canonical = replace(self, retrain_seconds={}).to_json().encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    def entry(self, path: str) -> FileEntry:
        """The entry for relative ``path``; ``KeyError`` naming the path if the store lacks it.

        >>> Manifest(1, "b", "f", 2, {}, {}, ()).entry("x.safetensors")
        Traceback (most recent call last):
        ...
        KeyError: "store manifest has no file 'x.safetensors'"
        """
        for candidate in self.files:
            if candidate.path == path:
                return candidate
        raise KeyError(f"store manifest has no file {path!r}")

    @property
    def total_size(self) -> int:
        """Bytes in all files of the store together."""
        return sum(e.size for e in self.files)


class _DuplicateKey(ValueError):
    pass


def load_json(raw: bytes | str) -> Any:
    """``json.loads`` for text nobody vouches for: ``ValueError`` (one line) for anything it
    cannot parse, including input nested too deeply (``RecursionError`` in ``json``), integers
    too long to convert, and a key repeated in one object (which ``json`` lets silently win).

    >>> load_json('{"a": 1}')
    {'a': 1}
    >>> load_json("[" * 100_000)
    Traceback (most recent call last):
    ...
    ValueError: nested too deeply
    """
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None


def _short_repr(value: object, limit: int = 100) -> str:
    """``repr(value)`` cut to ``limit`` characters; never fails (deep or huge values)."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_counts(n_models: object, forget_sets: dict[str, Any], source: str) -> None:
    """Refuse a nonsensical model count and forget sets that cannot name a file or a test."""
    if not isinstance(n_models, int) or isinstance(n_models, bool):
        raise StoreError(f"manifest {source}: 'n_models' must be an integer")
    if n_models < 0:
        raise StoreError(f"manifest {source}: 'n_models' must be >= 0, got {n_models}")
    if n_models > _MAX_MODELS_IN_MANIFEST:
        raise StoreError(
            f"manifest {source}: 'n_models' is {_short_repr(n_models, 30)}, more than any "
            f"ensemble (at most {_MAX_MODELS_IN_MANIFEST})"
        )
    for name, kind in forget_sets.items():
        if not isinstance(name, str) or not FORGET_SET_NAME.fullmatch(name):
            raise StoreError(
                f"manifest {source}: forget set name {_short_repr(name)} must be letters, digits "
                "and '_.+-' (starting with a letter or digit, at most 100 characters)"
            )
        if not isinstance(kind, str):
            raise StoreError(
                f"manifest {source}: forget set {name!r} kind must be a string, "
                f"got {type(kind).__name__}"
            )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object hook: a repeated key (e.g. a file listed twice) would silently win otherwise."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _get(data: dict[str, Any], key: str, kind: type, source: str, *, where: str = "") -> Any:
    """``data[key]`` checked to be a ``kind``; bool is refused for int (JSON true is no count)."""
    place = f"{where}: " if where else ""
    if key not in data:
        raise StoreError(f"manifest {source}: {place}missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise StoreError(
            f"manifest {source}: {place}{key!r} must be {_KIND_NAMES[kind]}, "
            f"got {type(value).__name__} {_short_repr(value)}"
        )
    return value


_KIND_NAMES: dict[type, str] = {int: "an integer", str: "a string", dict: "an object"}


def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` may not be a file path in a store, or None when it is safe.

    A safe path is relative, posix, and stays inside the store directory once joined to it.

    >>> unsafe_path_reason("oracles/knn36.safetensors") is None
    True
    >>> unsafe_path_reason("a/../../b")
    "contains a '..' segment"
    """
    if not path:
        return "is empty"
    if "\x00" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "contains a backslash (paths must use '/')"
    if path.startswith("/"):
        return "is absolute"
    if _DRIVE.match(path):
        return "starts with a drive letter"
    segments = path.split("/")
    if ".." in segments:
        return "contains a '..' segment"
    if "." in segments:
        return "contains a '.' segment"
    if "" in segments:
        return "contains an empty segment"
    if path == MANIFEST_NAME:
        return f"is the manifest itself ({MANIFEST_NAME})"
    return None


def _check_entries(entries: list[FileEntry] | tuple[FileEntry, ...], source: str) -> None:
    """Refuse unsafe paths, bad hashes and sizes, duplicates, and a file that is also a folder.

    ``entries`` must be sorted by path (so a folder prefix sorts right before its contents).
    """
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry.path, str):
            raise StoreError(f"manifest {source}: file path must be a string, got {entry.path!r}")
        reason = unsafe_path_reason(entry.path)
        if reason is not None:
            raise StoreError(f"manifest {source}: unsafe file path {entry.path!r}: it {reason}")
        if not isinstance(entry.sha256, str) or not _SHA256.fullmatch(entry.sha256):
            raise StoreError(
                f"manifest {source}: file {entry.path!r}: sha256 must be 64 lowercase hex "
                f"digits, got {entry.sha256!r}"
            )
        if not isinstance(entry.size, int) or isinstance(entry.size, bool) or entry.size < 0:
            raise StoreError(
                f"manifest {source}: file {entry.path!r}: size must be a non-negative integer, "
                f"got {_short_repr(entry.size)}"
            )
        if entry.size > _MAX_SIZE:
            raise StoreError(
                f"manifest {source}: file {entry.path!r}: size {_short_repr(entry.size, 30)} is "
                "larger than any file can be"
            )
        if entry.path in seen:
            raise StoreError(f"manifest {source}: file {entry.path!r} is listed twice")
        seen.add(entry.path)
    # "a" and "a/b" cannot both be files: one would have to be a directory.
    for entry in entries:
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in seen:
                raise StoreError(
                    f"manifest {source}: file {parent!r} is also a folder of {entry.path!r}"
                )


def sha256_file(path: Path | str) -> str:
    """The sha256 (lowercase hex) of a file, read in 1 MiB blocks so memory stays flat.

    Example::

        sha256_file(Path("/dev/null"))
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path) -> Manifest:
    """Parse ``root/manifest.json``; StoreError if it is missing or malformed."""
    path = Path(root) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(f"{root} is not a store: it has no {MANIFEST_NAME}") from None
    except OSError as exc:
        raise StoreError(f"cannot read manifest {path}: {exc}") from None
    return Manifest.parse(raw, source=str(path))


def unlisted_files(root: Path, manifest: Manifest) -> list[str]:
    """Files under ``root`` (relative posix paths, sorted) that ``manifest`` does not list,
    besides the manifest itself; entries whose name starts with ``.`` are not looked into."""
    listed = {entry.path for entry in manifest.files} | {MANIFEST_NAME}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        relative = Path(dirpath).relative_to(root)
        for name in filenames:
            path = (relative / name).as_posix()
            if not name.startswith(".") and path not in listed:
                found.append(path)
    return sorted(found)


def check_file(path: Path, entry: FileEntry, *, sha256: str | None = None) -> str | None:
    """The problem with ``path`` as a copy of ``entry``, or None if it matches.

    ``sha256`` skips hashing when the caller already knows the file's digest.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{entry.path}: missing"
    if not path.is_file():
        return f"{entry.path}: not a regular file"
    if size != entry.size:
        return f"{entry.path}: size mismatch: expected {entry.size} bytes, found {size}"
    actual = sha256 if sha256 is not None else sha256_file(path)
    if actual != entry.sha256:
        return f"{entry.path}: sha256 mismatch: expected {entry.sha256}, got {actual}"
    return None


def write_manifest(root: Path, manifest: Manifest) -> Path:
    """Write ``root/manifest.json`` atomically (temp file, then rename), so no reader sees half.

    Example::

        write_manifest(Path("/tmp/store"), manifest)
        PosixPath('/tmp/store/manifest.json')
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / MANIFEST_NAME
    write_atomically(target, manifest.to_json())
    return target


def build_manifest(
    root: Path,
    *,
    benchmark: str,
    fingerprint: str,
    n_models: int,
    recipe: dict[str, Any],
    forget_sets: dict[str, str],
    retrain_seconds: dict[str, float] | None = None,
) -> Manifest:
    """A manifest for every ``*.safetensors`` file under ``root`` (hashed now, sorted by path).

    It is returned, not written: call :func:`write_manifest` to store it.

    Example::

        m = build_manifest(Path("/tmp/store"), benchmark="digits-mlp", fingerprint="abc",
                           n_models=8, recipe={}, forget_sets={})
    """
    root = Path(root)
    entries = tuple(
        FileEntry(
            path=path.relative_to(root).as_posix(),
            sha256=sha256_file(path),
            size=path.stat().st_size,
        )
        for path in sorted(root.rglob("*.safetensors"))
        if path.is_file()
    )
    return Manifest(
        schema=SCHEMA,
        benchmark=benchmark,
        fingerprint=fingerprint,
        n_models=n_models,
        recipe=dict(recipe),
        forget_sets=dict(forget_sets),
        files=entries,
        retrain_seconds=dict(retrain_seconds or {}),
    )


def check_output_directory(out: Path) -> None:
    """Refuse to write a store over ``out`` unless it is absent, an empty directory, or a
    store (it holds ``manifest.json``): anything else may be the user's, and is never deleted.

    For example ``check_output_directory(Path.home())`` raises :class:`OutputRefused`:
    "/home/me: not empty and not a store (no manifest.json); refusing to replace it".
    """
    out = Path(out)
    if out.is_symlink():
        raise OutputRefused(f"{out}: is a symbolic link; give the directory it points to")
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputRefused(f"{out}: exists and is not a directory; refusing to replace it")
    if (out / MANIFEST_NAME).is_file():
        return
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise OutputRefused(f"{out}: cannot list it ({exc.strerror or exc})") from None
    if not empty:
        raise OutputRefused(
            f"{out}: not empty and not a store (no {MANIFEST_NAME}); refusing to replace it: "
            "give an empty or new directory"
        )


def seal_store(staging: Path, out: Path, **fields: Any) -> Manifest:
    """Hash ``staging`` into a manifest (``fields`` as for :func:`build_manifest`), write it,
    and swap the finished directory into ``out``, replacing a previous store there.

    The manifest is written last inside ``staging``, and the directory is renamed into place
    whole, so a reader never sees a store that looks complete but is not. ``out`` is checked
    again first (:func:`check_output_directory`): something that appeared there during the build
    and is not a store is left alone (:class:`OutputRefused`).

    Example::

        seal_store(Path("/tmp/out.staging"), Path("/tmp/out"), benchmark="digits-mlp",
                   fingerprint="abc", n_models=8, recipe={}, forget_sets={})
    """
    import shutil

    manifest = build_manifest(staging, **fields)
    write_manifest(staging, manifest)
    check_output_directory(out)
    old = None
    if out.exists():
        # Set the previous store (or empty directory) aside, then rename: never a moment with
        # no store at ``out`` but a half-deleted one.
        old = out.with_name(f"{out.name}.replaced-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return manifest
