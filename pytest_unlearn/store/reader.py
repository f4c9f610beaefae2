"""Read a store directory back into :class:`Ensembles`, checking it fits the benchmark."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from ..benchmarks.spec import Benchmark
from .ensembles import Ensembles, OracleHalves
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
        raise StoreError(f"{store} holds {manifest.n_models} models per ensemble, {n_models} asked for")
    pretrained = load_file(str(store / "pretrained" / "weights.safetensors"))
    pretrained_margins = load_file(str(store / "pretrained" / "margins.safetensors"))["margins"]
    oracles = {}
    for forget_set in benchmark.forget_sets:
        halves = load_file(str(store / "oracles" / f"{forget_set.name}.safetensors"))
        oracles[forget_set.name] = OracleHalves(
            half_a=halves["half_a"][:n_models], half_b=halves["half_b"][:n_models]
        )
    return Ensembles(
        benchmark=benchmark,
        n_models=n_models,
        pretrained_params={k: v[:n_models] for k, v in pretrained.items()},
        pretrained_margins=pretrained_margins[:n_models],
        oracles=oracles,
    )
