"""Stores on the Hugging Face Hub: fetch ``hf://datasets/ORG/NAME@COMMIT``, publish to one.

Both go through the maintained client, ``huggingface_hub`` (the optional extra ``hub``:
``pip install 'pytest-unlearn[hub]'``); without it every use is one :class:`HubError` saying
so. The client's endpoint is ``HF_ENDPOINT`` (read when called, so a mirror or a test server
set after start-up counts), its cache ``HF_HUB_CACHE`` (``~/.cache/huggingface/hub`` by
default), its token the usual one (``hf auth login`` or ``HF_TOKEN``).

**Fetching** (:func:`materialize_hub`, what ``--unlearn-store=hf://...`` runs through
:func:`.fetch.materialize`): ``manifest.json`` and exactly the files it lists are downloaded
with ``hf_hub_download`` into the client's own cache, and that snapshot directory is verified
in place against the manifest's sha256 like a local store directory (a file changed since it
was last hashed is hashed again). Nothing is copied into pytest-unlearn's cache, which only
keeps the record of what it verified. The manifest itself is checked against the content
address the Hub served it under (the blob's name: its git sha1, or sha256 for an LFS file).

The revision must be a commit sha (40 hex digits): a branch or a tag moves, and a conformance
verdict must be reproducible. Offline (``--unlearn-offline``, or the client's
``HF_HUB_OFFLINE``) nothing is requested: the snapshot must be in the client's cache already.

>>> repo = parse_source("hf://datasets/my-lab/digits-store@" + "0" * 40)
>>> repo.repo_id, repo.revision
('my-lab/digits-store', '0000000000000000000000000000000000000000')
>>> try:
...     parse_source("hf://datasets/my-lab/digits-store@main")
... except HubError as error:
...     print(error)
store hf://datasets/my-lab/digits-store@main: revision 'main' is not a commit sha ...

**Publishing** (:func:`publish`, ``python -m pytest_unlearn publish STORE hf://datasets/ORG/NAME``):
one commit holding ``manifest.json``, every file it lists and a dataset card
(:func:`dataset_card`); it returns the commit sha to pin.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..logs import Log, human_size, quiet
from .manifest import MANIFEST_NAME, Manifest, StoreError, read_manifest

#: The scheme of a Hub source or target.
SCHEME = "hf://"
#: What to run when the client is missing.
INSTALL = "pip install 'pytest-unlearn[hub]'"
#: The card every published store carries (the Hub shows it as the dataset's page).
CARD_NAME = "README.md"
_COMMIT = re.compile(r"[0-9a-fA-F]{40}")
_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The Hub's rule for a user, organization or repository name.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
# Files downloaded at once; the client streams each.
_THREADS = 4


class HubError(StoreError):
    """A Hub source or target that cannot be used: malformed or unpinned, not reachable, not
    cached while offline, refused by the Hub, or the client is not installed. One line."""


class UnverifiedStore(StoreError):
    """:func:`publish` refused a store that does not verify; ``problems`` has one line each."""

    def __init__(self, store: Path, problems: list[str]) -> None:
        super().__init__(f"store {store} does not verify: {'; '.join(problems)}")
        self.problems = problems


@dataclass(frozen=True)
class HubRepo:
    """A dataset repository on the Hub, at a commit (a source) or at its head (a target).

    >>> HubRepo("my-lab/digits-store").at("ab" * 20).url
    'hf://datasets/my-lab/digits-store@abababababababababababababababababababab'
    """

    repo_id: str
    revision: str | None = None

    @property
    def url(self) -> str:
        pinned = f"@{self.revision}" if self.revision else ""
        return f"{SCHEME}datasets/{self.repo_id}{pinned}"

    def at(self, revision: str) -> HubRepo:
        return HubRepo(self.repo_id, revision)


def _parse(text: str, what: str) -> tuple[str, str | None]:
    """``(ORG/NAME, REVISION or None)`` of ``hf://datasets/ORG/NAME[@REVISION]``."""
    if not text.startswith(SCHEME):
        raise HubError(f"{what} {text}: expected hf://datasets/ORG/NAME")
    rest = text[len(SCHEME) :]
    path, at, revision = rest.partition("@")
    parts = path.rstrip("/").split("/")
    if parts[0] != "datasets":
        raise HubError(
            f"{what} {text}: stores live in dataset repositories: write hf://datasets/ORG/NAME"
        )
    if len(parts) != 3 or not all(_NAME.fullmatch(part) for part in parts[1:]):
        raise HubError(
            f"{what} {text}: expected hf://datasets/ORG/NAME (one repository: letters, digits, "
            "'-', '_', '.'; a store is the whole repository, not a folder in it)"
        )
    if at and "/" in revision:
        raise HubError(
            f"{what} {text}: a store is the whole repository: nothing may follow the revision"
        )
    return f"{parts[1]}/{parts[2]}", (revision if at else None)


def parse_source(source: str) -> HubRepo:
    """The repository and pinned commit of ``hf://datasets/ORG/NAME@COMMIT``; :class:`HubError`
    (one line) for anything else, a branch, tag or short sha included."""
    repo_id, revision = _parse(source, "store")
    if revision is None:
        raise HubError(
            f"store {source}: no revision: pin the commit sha, hf://datasets/{repo_id}@COMMIT "
            "(40 hex digits; `publish` prints it): a conformance verdict must be reproducible"
        )
    if not _COMMIT.fullmatch(revision):
        raise HubError(
            f"store {source}: revision {revision!r} is not a commit sha (40 hex digits): a "
            "branch or tag can move, and a conformance verdict must be reproducible; pin the "
            "commit (the Hub's file history shows it; `publish` prints it)"
        )
    return HubRepo(repo_id, revision.lower())


def parse_target(target: str) -> HubRepo:
    """The repository of ``hf://datasets/ORG/NAME`` to publish to (its default branch).

    >>> parse_target("hf://datasets/my-lab/digits-store").repo_id
    'my-lab/digits-store'
    """
    repo_id, revision = _parse(target, "target")
    if revision is not None:
        raise HubError(
            f"target {target}: give no revision: publish commits to the repository's default "
            f"branch and prints the new commit to pin (hf://datasets/{repo_id})"
        )
    return HubRepo(repo_id)


def client() -> ModuleType:
    """The ``huggingface_hub`` module, or :class:`HubError` naming how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(
            f"hf:// stores need the Hugging Face client, huggingface_hub: {INSTALL}"
        ) from None
    return huggingface_hub


def endpoint() -> str | None:
    """``HF_ENDPOINT`` as it is now (None: the client's default, https://huggingface.co)."""
    return os.environ.get("HF_ENDPOINT") or None


def _hub_cache() -> str | None:
    """``HF_HUB_CACHE`` as it is now (None: the client's default)."""
    return os.environ.get("HF_HUB_CACHE") or None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    text = text[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _client_offline(hub: ModuleType) -> bool:
    return bool(getattr(getattr(hub, "constants", None), "HF_HUB_OFFLINE", False))


def _download_error(
    error: Exception, source: str, repo: HubRepo, path: str, offline: bool
) -> HubError:
    """One line for a failed ``hf_hub_download`` (the client's classes, by name: they moved
    between its versions)."""
    kind = type(error).__name__
    where = f"store {source}"
    if offline and kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return HubError(
            f"{where}: {path} is not in the Hugging Face cache and offline mode is on "
            "(--unlearn-offline or HF_HUB_OFFLINE), so it cannot be downloaded; run once online "
            "to fill the cache"
        )
    if kind == "RevisionNotFoundError":
        return HubError(f"{where}: the repository has no commit {repo.revision}")
    if kind == "RepositoryNotFoundError":
        return HubError(
            f"{where}: no dataset repository {repo.repo_id} on {endpoint() or 'the Hub'} (or it "
            "is private or gated: log in with a token that can read it, hf auth login or HF_TOKEN)"
        )
    if kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
        if path == MANIFEST_NAME:
            return HubError(f"{where}: not a store: no {MANIFEST_NAME} at commit {repo.revision}")
        return HubError(
            f"{where}: {path} is listed in {MANIFEST_NAME} but not in the repository at commit "
            f"{repo.revision}"
        )
    return HubError(f"{where}: cannot download {path}: {_first_line(error)}")


def _content_address_problem(path: Path) -> str | None:
    """Whether ``path`` (a link into the client's blobs) still holds what the Hub served: the
    client names each blob after its ETag, a regular file's git sha1 or an LFS file's sha256.
    None when it does, or when there is no name to compare with (a copy, where the filesystem
    has no symbolic links)."""
    name = Path(os.path.realpath(path)).name
    data = path.read_bytes()
    if _SHA256.fullmatch(name):
        actual = hashlib.sha256(data).hexdigest()
    elif _SHA1.fullmatch(name):
        actual = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    else:
        return None
    if actual == name:
        return None
    return f"{path.name}: does not match the blob the Hub served (expected {name}, got {actual})"


def snapshot(source: str, *, offline: bool = False, log: Log | None = None) -> Path:
    """The client's snapshot directory of ``source`` (``hf://datasets/ORG/NAME@COMMIT``),
    holding ``manifest.json`` and every file it lists, downloaded once into the client's cache
    (``hf_hub_download``; ``local_files_only`` when ``offline``). Not verified against the
    manifest: :func:`materialize_hub` does that. Every failure is one :class:`HubError`.
    """
    repo = parse_source(source)
    hub = client()
    say = log or quiet
    offline = offline or _client_offline(hub)
    options = {
        "repo_id": repo.repo_id,
        "repo_type": "dataset",
        "revision": repo.revision,
        "endpoint": endpoint(),
        "cache_dir": _hub_cache(),
        "local_files_only": offline,
    }

    def download(path: str) -> Path:
        try:
            return Path(hub.hf_hub_download(filename=path, **options))
        except Exception as error:  # the client's own classes, which vary between versions
            raise _download_error(error, source, repo, path, offline) from None

    manifest_path = download(MANIFEST_NAME)
    root = manifest_path.parent
    problem = _content_address_problem(manifest_path)
    if problem is not None:
        raise HubError(
            f"store {source}: refused: {problem} in the Hugging Face cache ({root}); delete "
            "the cached copy to fetch it again"
        )
    manifest = read_manifest(root)
    missing = [entry for entry in manifest.files if not (root / entry.path).is_file()]
    if missing:
        size = sum(entry.size for entry in missing)
        say(
            f"pytest-unlearn: fetching store {source} into the Hugging Face cache: "
            f"{len(missing)} files, {human_size(size)}"
        )
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        paths = list(pool.map(download, [entry.path for entry in manifest.files]))
    for entry, path in zip(manifest.files, paths, strict=True):
        if path != root / entry.path:
            raise HubError(
                f"store {source}: the client put {entry.path} at {path}, not in the snapshot "
                f"{root} with {MANIFEST_NAME}"
            )
    return root


def materialize_hub(
    source: str,
    verify: Callable[[Path], Path],
    *,
    offline: bool = False,
    log: Log | None = None,
) -> Path:
    """``source``'s snapshot in the client's cache (:func:`snapshot`), checked by
    ``verify(directory)`` (:func:`.fetch.materialize` passes its in-place check of a local store
    directory) and returned in place. A problem is one line naming the source and the file.
    """
    root = snapshot(source, offline=offline, log=log)
    try:
        return verify(root)
    except StoreError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = "; ".join(lines[1:]) if len(lines) > 1 else (lines[0] if lines else "")
        raise type(error)(
            f"store {source}: refused: the copy in the Hugging Face cache does not match its "
            f"manifest: {detail} (delete the cached copy, {root.parent.parent}, to fetch it "
            "again)"
        ) from None
    except OSError as error:
        raise HubError(f"store {source}: cannot verify {root}: {error}") from None


# --- publishing --------------------------------------------------------------------------


def dataset_card(
    manifest: Manifest,
    *,
    repo: HubRepo,
    built_with: str,
    floors: Iterable[tuple[str, float, float]] = (),
    floors_note: str | None = None,
) -> str:
    """The ``README.md`` a published store carries: what it holds (benchmark, fingerprint, N,
    forget sets, recipe, every file's sha256), how it was built (``built_with``, a command),
    how to run against it, and per case the floor and do-nothing P95 KLoM when given
    (``floors``: ``(case id, floor, do-nothing)``).

    >>> m = Manifest(1, "digits-mlp", "ae50e5e1bab1e6fc", 4, {"epochs": 2}, {"knn36": "random"},
    ...              ())
    >>> card = dataset_card(m, repo=HubRepo("lab/store"), built_with="python -m pytest_unlearn "
    ...                     "build digits-mlp --out store --models 4")
    >>> "| fingerprint | `ae50e5e1bab1e6fc` |" in card, "hf://datasets/lab/store@COMMIT" in card
    (True, True)
    """
    forget_sets = ", ".join(f"`{name}` ({kind})" for name, kind in manifest.forget_sets.items())
    lines = [
        "---",
        f'pretty_name: "pytest-unlearn store: {manifest.benchmark}, N={manifest.n_models}"',
        "tags:",
        "- pytest-unlearn",
        "- machine-unlearning",
        "viewer: false",
        "---",
        "",
        f"# pytest-unlearn ensemble store: {manifest.benchmark}",
        "",
        "Pretrained models and oracle models retrained without each forget set, for evaluating",
        "machine-unlearning methods with the pytest-unlearn conformance suite (KLoM against the",
        "oracles).",
        "",
        "| | |",
        "| --- | --- |",
        f"| benchmark | `{manifest.benchmark}` |",
        f"| fingerprint | `{manifest.fingerprint}` |",
        f"| models per ensemble (N) | {manifest.n_models} |",
        f"| forget sets | {forget_sets or 'none'} |",
        f"| files | {len(manifest.files)}, {human_size(manifest.total_size)} |",
        f"| manifest schema | {manifest.schema} |",
        "",
        "## Run a method against it",
        "",
        "```bash",
        "pip install 'pytest-unlearn[hub]'",
        f"pytest --unlearn-method=mymethod:unlearn --unlearn-store={repo.at('COMMIT').url}",
        "```",
        "",
        "`COMMIT` is the commit of this repository that holds this card (40 hex digits; the",
        "publisher was given it, and the repository's history lists it). A branch or tag name is",
        "refused: a conformance verdict must be reproducible. The files are downloaded once",
        "into the Hugging Face cache and checked against the sha256 in `manifest.json`; the",
        "fingerprint must equal the installed pytest-unlearn's definition of the benchmark.",
        "",
        "## How it was built",
        "",
        "```bash",
        built_with,
        f"python -m pytest_unlearn publish STORE {repo.url}",
        "```",
        "",
        "Training recipe (from `manifest.json`):",
        "",
        "```json",
        json.dumps(manifest.recipe, indent=2, sort_keys=True),
        "```",
        "",
    ]
    rows = list(floors)
    lines += ["## Floors", ""]
    if rows:
        lines += [
            f"P95 KLoM per case at N={manifest.n_models}, against oracle half A: **floor** is",
            "oracle half B (what exact retraining scores by chance), **do-nothing** the",
            "unchanged pretrained models. A run's threshold adds the spread of exact retraining,",
            "computed when it runs.",
            "",
            "| case | floor | do-nothing |",
            "| --- | --- | --- |",
            *(f"| `{case}` | {floor:.3f} | {nothing:.3f} |" for case, floor, nothing in rows),
        ]
    else:
        lines.append(floors_note or "Not computed when this store was published.")
    lines += [
        "",
        "## Files",
        "",
        "| path | size | sha256 |",
        "| --- | --- | --- |",
        *(f"| `{e.path}` | {e.size} | `{e.sha256}` |" for e in manifest.files),
        "",
    ]
    return "\n".join(lines)


def publish(
    store: Path,
    target: str,
    *,
    card: str,
    verified: bool = False,
    log: Log | None = None,
) -> str:
    """Upload the store at ``store`` to ``target`` (``hf://datasets/ORG/NAME``, created if
    absent) as one commit on its default branch: ``manifest.json``, every file it lists, and
    ``card`` as ``README.md``. Returns the commit sha to pin.

    The store is verified first (:func:`.reader.verify_directory`; :class:`UnverifiedStore`
    lists the problems) unless the caller did so (``verified``). Files on disk the manifest does
    not list are not uploaded. Any failure of the client or the Hub is one :class:`HubError`.
    """
    repo = parse_target(target)
    hub = client()
    say = log or quiet
    store = Path(store)
    if not verified:
        from .reader import verify_directory

        problems = verify_directory(store)
        if problems:
            raise UnverifiedStore(store, problems)
    manifest = read_manifest(store)
    operations = [
        hub.CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(store / path))
        for path in [*(entry.path for entry in manifest.files), MANIFEST_NAME]
    ]
    operations.append(hub.CommitOperationAdd(path_in_repo=CARD_NAME, path_or_fileobj=card.encode()))
    say(
        f"pytest-unlearn: publishing {store} ({len(manifest.files)} files, "
        f"{human_size(manifest.total_size)}) to {repo.url}"
    )
    api = hub.HfApi(endpoint=endpoint())
    try:
        api.create_repo(repo.repo_id, repo_type="dataset", exist_ok=True)
        info = api.create_commit(
            repo.repo_id,
            operations,
            commit_message=(
                f"pytest-unlearn store: {manifest.benchmark} {manifest.fingerprint}, "
                f"N={manifest.n_models}"
            ),
            repo_type="dataset",
        )
    except Exception as error:  # the client's own classes, which vary between versions
        raise HubError(f"cannot publish to {repo.url}: {_first_line(error)}") from None
    oid = str(getattr(info, "oid", "") or "")
    if not _COMMIT.fullmatch(oid):
        raise HubError(f"cannot publish to {repo.url}: the Hub answered no commit sha ({oid!r})")
    return oid.lower()
