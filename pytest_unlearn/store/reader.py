"""Read a store directory back into :class:`Ensembles`, checking it fits the benchmark.

Nothing in a store is used unchecked: every file read must be listed in ``manifest.json``
(whose sha256 were verified when the store was fetched or built), and every tensor is checked
against the benchmark before use: names, dtypes and shapes of the pretrained weights against
``benchmark.build_model().state_dict()``, margins of shape (models, points) with no NaN or inf,
at least the manifest's ``n_models`` models in every ensemble, and the forget sets' indices equal
to the ones the benchmark defines. Any problem is one :class:`StoreError` naming the file.

The manifest says which forget sets a store holds (:func:`stored_forget_sets`): an imported
store may hold fewer than its benchmark publishes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ..benchmarks.spec import Benchmark, DataUnavailable, ForgetSet
from .ensembles import Ensembles, OracleHalves
from .layout import PRETRAINED_MARGINS, PRETRAINED_WEIGHTS, forget_set_file, oracle_file
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    StoreError,
    check_file,
    read_manifest,
    unlisted_files,
)


def stored_forget_sets(store: Path, *, manifest: Manifest | None = None) -> tuple[str, ...]:
    """The forget sets the store at ``store`` holds, by name, as its manifest lists them
    (numbers in names sort numerically: ``set2`` before ``set10``).

    Raises :class:`StoreError` when the manifest is unreadable or lists a forget set whose
    files it does not list.

    Example::

        stored_forget_sets(Path("stores/easydub-sets-1-4"))
        ('set1', 'set4')
    """
    store = Path(store)
    manifest = manifest if manifest is not None else read_manifest(store)
    problems = missing_files(manifest)
    if problems:
        raise StoreError(f"store {store}: {problems[0]}")
    return tuple(sorted(manifest.forget_sets, key=natural_order))


def missing_files(manifest: Manifest) -> list[str]:
    """What the store needs and ``manifest`` does not list, one line per file.

    Needed: the pretrained weights and margins, and for every forget set the manifest names,
    its ``forget_sets/`` file and its oracles (one file per request of a sequential forget set;
    the number of requests comes from the benchmark definition when this installation knows the
    benchmark, else from the oracle files listed).
    """
    listed = {entry.path for entry in manifest.files}
    known = _known_forget_sets(manifest.benchmark)
    problems = []
    if not manifest.forget_sets:
        problems.append(f"{MANIFEST_NAME}: lists no forget sets, so the store can test nothing")
    needed = [
        (PRETRAINED_WEIGHTS, "the pretrained models"),
        (PRETRAINED_MARGINS, "the pretrained models' margins"),
    ]
    for name in sorted(manifest.forget_sets, key=natural_order):
        if known is not None and name not in known:
            defined = ", ".join(sorted(known, key=natural_order))
            problems.append(
                f"{MANIFEST_NAME}: forget set {name!r} is not one benchmark "
                f"{manifest.benchmark!r} defines (known: {defined})"
            )
            continue
        plain = ForgetSet(name, "random", ())
        needed.append((forget_set_file(plain), f"forget set {name}"))
        if known is not None:
            forget_set = known[name]
        elif oracle_file(plain, 1) in listed:
            forget_set = plain
        else:
            # Unknown benchmark: a sequential forget set lists oracles/<name>-req<k> files.
            requests = 0
            while f"oracles/{name}-req{requests + 1}.safetensors" in listed:
                requests += 1
            forget_set = _with_requests(name, requests) if requests > 1 else plain
        for request in range(1, len(forget_set.requests) + 1):
            needed.append((oracle_file(forget_set, request), f"the oracles of forget set {name}"))
    problems += [
        f"{path}: needed ({why}) but not listed in {MANIFEST_NAME}"
        for path, why in needed
        if path not in listed
    ]
    return problems


def read_ensembles(
    benchmark: Benchmark, store: Path, n_models: int, *, manifest: Manifest | None = None
) -> Ensembles:
    """The first ``n_models`` members of every ensemble in ``store``, for the forget sets its
    manifest lists (:func:`stored_forget_sets`).

    Raises :class:`StoreError` (one line, naming the file) when the store belongs to another
    benchmark, was built from another recipe (fingerprint), holds fewer models than asked for,
    or holds a file or tensor that does not fit the benchmark (module docstring). The
    benchmark's data is loaded (to count its points), so missing data is a StoreError here too.

    Example::

        read_ensembles(get_benchmark("digits-mlp"), Path("/tmp/store"), 8)
    """
    store = Path(store)
    manifest = manifest if manifest is not None else read_manifest(store)
    if manifest.benchmark != benchmark.name:
        raise StoreError(f"{store} holds benchmark {manifest.benchmark!r}, not {benchmark.name!r}")
    if manifest.fingerprint != benchmark.fingerprint():
        raise StoreError(
            f"{store} was built from another recipe of {benchmark.name} (fingerprint "
            f"{manifest.fingerprint}, this installation's is {benchmark.fingerprint()})"
        )
    if manifest.n_models < n_models:
        raise StoreError(
            f"{store} holds {manifest.n_models} models per ensemble, {n_models} asked for"
        )
    forget_sets = _stored_definitions(benchmark, store, manifest)
    points = _n_points(benchmark)
    with torch.random.fork_rng(devices=[]):
        reference = benchmark.build_model().state_dict()
    with open_listed(store, manifest, PRETRAINED_WEIGHTS) as weights:
        weights.expect_keys(set(reference), "the model's state_dict")
        pretrained = {
            key: weights.rows(key, n_models, tuple(ref.shape), ref.dtype)
            for key, ref in reference.items()
        }
    with open_listed(store, manifest, PRETRAINED_MARGINS) as margins_file:
        margins_file.expect_keys({"margins"}, "pretrained margins")
        pretrained_margins = margins_file.rows("margins", n_models, (points,), "float")
    oracles = {}
    for forget_set in forget_sets:
        with open_listed(store, manifest, forget_set_file(forget_set)) as indices:
            indices.check_forget_set(forget_set)
        for request in range(1, len(forget_set.requests) + 1):
            with open_listed(store, manifest, oracle_file(forget_set, request)) as halves:
                halves.expect_keys({"half_a", "half_b"}, "oracle halves")
                oracles[forget_set.name, request] = OracleHalves(
                    half_a=halves.rows("half_a", n_models, (points,), "float"),
                    half_b=halves.rows("half_b", n_models, (points,), "float"),
                )
    return Ensembles(
        benchmark=benchmark,
        n_models=n_models,
        pretrained_params=pretrained,
        pretrained_margins=pretrained_margins,
        oracles=oracles,
        retrain_seconds=dict(manifest.retrain_seconds),
        store_id=manifest.content_id(),
    )


def natural_order(name: str) -> tuple[Any, ...]:
    """Sort key: ``set2`` before ``set10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _with_requests(name: str, requests: int) -> ForgetSet:
    """A placeholder sequential forget set of ``requests`` requests (for file names only)."""
    return ForgetSet(
        name, "random", tuple(range(requests)), requests=tuple((k,) for k in range(requests))
    )


def _known_forget_sets(benchmark: str) -> dict[str, ForgetSet] | None:
    """The forget sets ``benchmark`` defines by name, or None when they come from the store
    itself (``forget_sets_from_store``) or this installation does not know the benchmark."""
    from ..benchmarks import get_benchmark

    try:
        bench = get_benchmark(benchmark)
    except KeyError:
        return None
    if bench.forget_sets_from_store:
        return None
    return {fs.name: fs for fs in bench.forget_sets}


def _stored_definitions(benchmark: Benchmark, store: Path, manifest: Manifest) -> list[ForgetSet]:
    """The benchmark's definitions of the forget sets the manifest lists, in the benchmark's
    order; StoreError for one it does not define or labels with another kind."""
    if not manifest.forget_sets:
        raise StoreError(f"{store / MANIFEST_NAME}: lists no forget sets")
    defined = {fs.name: fs for fs in benchmark.forget_sets}
    for name, kind in manifest.forget_sets.items():
        if name not in defined:
            known = ", ".join(defined) or "none"
            raise StoreError(
                f"{store / MANIFEST_NAME}: forget set {name!r} is not one {benchmark.name} "
                f"defines (known: {known})"
            )
        if defined[name].kind != kind:
            raise StoreError(
                f"{store / MANIFEST_NAME}: forget set {name!r} is labelled {kind!r}; "
                f"{benchmark.name} defines it as {defined[name].kind!r}"
            )
    return [fs for fs in benchmark.forget_sets if fs.name in manifest.forget_sets]


def _n_points(benchmark: Benchmark) -> int:
    """Labelled points of the benchmark's data (train and validation): the margins' second
    dimension. Loading the data here also means data that is missing (an imported benchmark's
    local CIFAR-10 copy) is reported as the store problem it is (a StoreError), before any
    method runs."""
    try:
        return len(benchmark.load_data().targets)
    except DataUnavailable as error:
        raise StoreError(str(error)) from None


class _Tensors:
    """One open safetensors file of a store; every check raises StoreError naming it."""

    def __init__(self, path: Path, handle: Any, n_models: int) -> None:
        self.path = path
        self._handle = handle
        self._n_models = n_models
        self.keys = set(handle.keys())

    def fail(self, problem: str) -> StoreError:
        return StoreError(f"{self.path}: {problem}")

    def expect_keys(self, expected: set[str], what: str) -> None:
        missing = sorted(expected - self.keys)
        unexpected = sorted(self.keys - expected)
        if missing or unexpected:
            raise self.fail(
                f"tensor names do not match {what}: missing {_few(missing)}, "
                f"unexpected {_few(unexpected)}"
            )

    def _slice(self, key: str) -> Any:
        try:
            return self._handle.get_slice(key)
        except Exception as error:  # safetensors raises its own SafetensorError, ...
            raise self.fail(f"cannot read tensor {key!r} ({_first_line(error)})") from None

    def rows(
        self, key: str, n: int, shape: tuple[int, ...], dtype: torch.dtype | str
    ) -> torch.Tensor:
        """The first ``n`` models of ``key``, which must be ``(models, *shape)`` with at least
        the manifest's ``n_models`` models, of ``dtype`` (``"float"``: any floating dtype),
        and finite."""
        tensor_slice = self._slice(key)
        stored = tuple(tensor_slice.get_shape())
        if len(stored) != 1 + len(shape) or stored[1:] != shape:
            raise self.fail(
                f"{key!r} has shape {stored}; expected (models, {', '.join(map(str, shape))})"
            )
        if stored[0] < self._n_models:
            raise self.fail(f"{key!r} holds {stored[0]} models; the manifest says {self._n_models}")
        try:
            tensor = tensor_slice[:n]
        except Exception as error:
            raise self.fail(f"cannot read tensor {key!r} ({_first_line(error)})") from None
        if dtype == "float" and not tensor.is_floating_point():
            raise self.fail(f"{key!r} is {tensor.dtype}; expected floating-point margins")
        if isinstance(dtype, torch.dtype) and tensor.dtype != dtype:
            raise self.fail(f"{key!r} is {tensor.dtype}; expected {dtype} (the model's)")
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise self.fail(f"{key!r} holds {bad} NaN or infinite values")
        return tensor

    def indices(self, key: str, *, in_file_order: bool = False) -> list[int]:
        tensor_slice = self._slice(key)
        if len(tensor_slice.get_shape()) != 1:
            raise self.fail(f"{key!r} must be a 1-D tensor of indices")
        try:
            tensor = tensor_slice[:]
        except Exception as error:
            raise self.fail(f"cannot read tensor {key!r} ({_first_line(error)})") from None
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise self.fail(f"{key!r} is {tensor.dtype}; expected integer indices")
        values = [int(i) for i in tensor.tolist()]
        return values if in_file_order else sorted(values)

    def check_forget_set(self, forget_set: ForgetSet) -> None:
        """``indices`` (and ``request_<k>`` per request) hold what the benchmark defines."""
        requests = len(forget_set.requests)
        expected = {"indices"} | {f"request_{k}" for k in range(1, requests + 1)}
        if requests == 1:  # a plain forget set may or may not spell out its one request
            self.expect_keys(expected & self.keys | {"indices"}, f"forget set {forget_set.name}")
        else:
            self.expect_keys(expected, f"sequential forget set {forget_set.name}")
        checks = [("indices", forget_set.indices)]
        checks += [(f"request_{k}", r) for k, r in enumerate(forget_set.requests, start=1)]
        for key, defined in checks:
            if key in self.keys and self.indices(key) != sorted(defined):
                raise self.fail(
                    f"{key!r} does not hold the {len(defined)} indices benchmark forget set "
                    f"{forget_set.name} defines"
                )


@contextmanager
def open_listed(store: Path, manifest: Manifest, relative: str) -> Iterator[_Tensors]:
    """Open the store file ``relative``, which the manifest must list (at its size)."""
    path = store / relative
    try:
        entry = manifest.entry(relative)
    except KeyError:
        raise StoreError(
            f"{path}: not listed in {store / MANIFEST_NAME}, so it was never verified; "
            "refusing to read it"
        ) from None
    try:
        size = path.stat().st_size
    except OSError as error:
        raise StoreError(f"{path}: cannot read it ({error.strerror or error})") from None
    if size != entry.size:
        raise StoreError(f"{path}: {size} bytes; the manifest says {entry.size}")
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as error:  # SafetensorError, OSError, ...
        raise StoreError(
            f"{path}: not a readable safetensors file ({_first_line(error)})"
        ) from None
    with handle:
        yield _Tensors(path, handle, manifest.n_models)


def _few(names: list[str]) -> str:
    return "[" + ", ".join(map(repr, names[:4])) + (", ...]" if len(names) > 4 else "]")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


def verify_directory(root: Path) -> list[str]:
    """Check the store at ``root`` against its manifest; the problems found, one line each.

    Every listed file must match its size and sha256; every file on disk must be listed (a file
    the manifest does not list was never verified, so no reader may trust it; names starting
    with ``.`` are skipped, e.g. ``.git``); and every file the store's forget sets need
    (:func:`missing_files`) must be listed. An empty list means the store is good.

    Example::

        verify_directory(Path("/path/to/store"))
        ['pretrained/weights.safetensors: sha256 mismatch: expected 3f..., got 9c...']
    """
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except StoreError as exc:
        return [str(exc)]
    problems = []
    for entry in manifest.files:
        try:
            problem = check_file(root / entry.path, entry)
        except OSError as exc:
            problem = f"{entry.path}: cannot read it ({exc.strerror or exc})"
        if problem is not None:
            problems.append(problem)
    problems += [
        f"{path}: on disk but not listed in {MANIFEST_NAME} (never verified: remove it)"
        for path in unlisted_files(root, manifest)
    ]
    problems += missing_files(manifest)
    return problems
