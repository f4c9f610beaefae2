"""The default store source: build a benchmark's ensembles once into the cache directory.

``CACHE_DIR/<benchmark>/<fingerprint>/`` holds the store (see :mod:`.builder` for its
layout); the fingerprint hashes recipe, architecture, data and forget sets, so a changed
recipe builds into a new directory. The check-and-build runs under a file lock, so concurrent
pytest processes (xdist workers) build once and never read a half-written store. A store for
more models serves any smaller ensemble size.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
import torch
from filelock import FileLock

from ..benchmarks.spec import Benchmark
from .builder import Log, build_store, stderr_log
from .ensembles import Ensembles
from .manifest import StoreError, read_manifest
from .reader import read_ensembles


def default_cache_dir() -> Path:
    """The platform's user cache directory for pytest-unlearn."""
    return Path(platformdirs.user_cache_dir("pytest-unlearn"))


def load_or_build(
    benchmark: Benchmark,
    n_models: int,
    cache_dir: Path,
    *,
    device: torch.device | str = "cpu",
    log: Log = stderr_log,
) -> Ensembles:
    """Return the ensembles of ``benchmark`` at size ``n_models``, building them if needed.

    >>> ens = load_or_build(get_benchmark("digits-mlp"), 8, Path("/tmp/cache"))  # doctest: +SKIP
    >>> ens.pretrained_margins.shape  # doctest: +SKIP
    torch.Size([8, 1797])
    """
    if n_models < 2:
        raise ValueError(f"an ensemble needs at least 2 models, got {n_models}")
    store = Path(cache_dir) / benchmark.name / benchmark.fingerprint()
    store.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(store) + ".lock"):
        if _stored_models(store) < n_models:
            build_store(benchmark, n_models, store, device=device, log=log)
        return read_ensembles(benchmark, store, n_models)


def _stored_models(store: Path) -> int:
    """How many models the cached store holds; 0 when absent, incomplete or unreadable.

    Only sizes are checked: the files were hashed when this machine wrote them.
    """
    try:
        manifest = read_manifest(store)
    except StoreError:
        return 0
    for entry in manifest.files:
        path = store / entry.path
        if not path.is_file() or path.stat().st_size != entry.size:
            return 0
    return manifest.n_models
