"""Read a store directory back into :class:`Ensembles`, checking it fits the benchmark."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from ..benchmarks.spec import Benchmark
from .ensembles import Ensembles, OracleHalves
from .layout import PRETRAINED_MARGINS, PRETRAINED_WEIGHTS, oracle_file
from .manifest import StoreError, read_manifest


def read_ensembles(benchmark: Benchmark, store: Path, n_models: int) -> Ensembles:
    """The first ``n_models`` members of every ensemble in ``store``.

    Raises :class:`StoreError` when the store belongs to another benchmark, was built from
    another recipe (fingerprint), or holds fewer models than asked for.

    >>> read_ensembles(get_benchmark("digits-mlp"), Path("/tmp/store"), 8)  # doctest: +SKIP
    """
    manifest = read_manifest(store)
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
    pretrained = load_file(str(store / PRETRAINED_WEIGHTS))
    pretrained_margins = load_file(str(store / PRETRAINED_MARGINS))["margins"]
    oracles = {}
    for forget_set in benchmark.forget_sets:
        for request in range(1, len(forget_set.requests) + 1):
            halves = load_file(str(store / oracle_file(forget_set, request)))
            oracles[forget_set.name, request] = OracleHalves(
                half_a=halves["half_a"][:n_models], half_b=halves["half_b"][:n_models]
            )
    return Ensembles(
        benchmark=benchmark,
        n_models=n_models,
        pretrained_params={k: v[:n_models] for k, v in pretrained.items()},
        pretrained_margins=pretrained_margins[:n_models],
        oracles=oracles,
    )
