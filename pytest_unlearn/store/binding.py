"""Hand a benchmark the forget sets (and recipe) its store holds.

A benchmark whose forget sets come from its store (``Benchmark.forget_sets_from_store``, e.g.
``cifar10-resnet9``) never reads a store itself: this module reads the forget sets' names and
kinds from the manifest, their indices and requests from the files it lists, checks them, and
returns a new instance bound to them and to the manifest's recipe
(``Benchmark.with_forget_sets``). The registry's instance is left as it is.

>>> from pytest_unlearn.benchmarks import get_benchmark
>>> bench = get_benchmark("digits-mlp")
>>> bind_forget_sets(bench, Path("no-store-needed")) is bench  # defines its own forget sets
True
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..benchmarks.spec import FORGET_SET_KINDS, Benchmark, DataUnavailable, ForgetSet
from .layout import forget_set_file
from .manifest import Manifest, StoreError, read_manifest
from .reader import natural_order, open_listed

if TYPE_CHECKING:
    from .reader import _Tensors


def bind_forget_sets(
    benchmark: Benchmark, store: Path, manifest: Manifest | None = None
) -> Benchmark:
    """``benchmark`` bound to the forget sets of ``store`` (read once: pass ``manifest`` when
    it is read already); ``benchmark`` itself when it defines its own forget sets."""
    if not benchmark.forget_sets_from_store:
        return benchmark
    store = Path(store)
    manifest = manifest if manifest is not None else read_manifest(store)
    if manifest.benchmark != benchmark.name:
        raise StoreError(f"{store} holds benchmark {manifest.benchmark!r}, not {benchmark.name!r}")
    # An imported benchmark declares how many training points it has: binding needs no data.
    n_train: int | None = getattr(benchmark, "n_train", None)
    forget_sets = []
    for name in sorted(manifest.forget_sets, key=natural_order):
        kind = manifest.forget_sets[name]
        if kind not in FORGET_SET_KINDS:
            raise StoreError(
                f"{store}: forget set {name!r} has kind {kind!r}; expected "
                f"{' or '.join(map(repr, FORGET_SET_KINDS))}"
            )
        plain = ForgetSet(name, "random", ())
        with open_listed(store, manifest, forget_set_file(plain)) as tensors:
            # File order: EasyDUB's published forget-split files follow it.
            indices = tensors.indices("indices", in_file_order=True)
            requests = _requests(tensors, indices)
        beyond = n_train is not None and bool(indices) and max(indices) >= n_train
        if not indices or min(indices) < 0 or beyond:
            raise StoreError(
                f"{store / forget_set_file(plain)}: 'indices' must be a non-empty 1-D integer "
                f"tensor of training points (0..{(n_train or 0) - 1})"
            )
        forget_sets.append(
            ForgetSet(
                name=name,
                kind=kind,  # type: ignore[arg-type]  # checked just above
                indices=tuple(indices),
                description=f"{benchmark.describe_imported(name)}; {len(indices)} images",
                requests=requests,
            )
        )
    try:
        return benchmark.with_forget_sets(tuple(forget_sets), recipe=manifest.recipe)
    except (DataUnavailable, ValueError) as error:
        raise StoreError(f"{store}: {error}") from None


def _requests(tensors: _Tensors, indices: list[int]) -> tuple[tuple[int, ...], ...]:
    """The deletion requests a store's forget-set file spells out (``request_1``, ...), when
    there is more than one; ``()`` for a plain forget set (one request, all its indices)."""
    requests = []
    while f"request_{len(requests) + 1}" in tensors.keys:
        requests.append(tuple(tensors.indices(f"request_{len(requests) + 1}", in_file_order=True)))
    if len(requests) <= 1:
        return ()
    if sorted(i for request in requests for i in request) != sorted(indices):
        raise tensors.fail("its requests are not a partition of 'indices'")
    return tuple(requests)
