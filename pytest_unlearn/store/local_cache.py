"""The default store source: build a benchmark's ensembles once into the cache directory.

``CACHE_DIR/<benchmark>/<fingerprint>/`` holds the store (see :mod:`.builder` for its
layout); the fingerprint hashes recipe, architecture, data and forget sets, so a changed
recipe builds into a new directory. The check-and-build runs under a file lock, so concurrent
pytest processes (xdist workers) build once and never read a half-written store; a process
waiting for another's build names it, and gives up after ``lock_timeout`` seconds
(:mod:`.locks`). A store for more models serves any smaller ensemble size.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
import torch

from ..benchmarks.spec import Benchmark
from ..logs import Log, stderr_log
from .builder import build_store, check_ensemble_size
from .ensembles import Ensembles
from .locks import DEFAULT_LOCK_TIMEOUT, held_lock
from .manifest import Manifest, StoreError, read_manifest
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
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> Ensembles:
    """Return the ensembles of ``benchmark`` at size ``n_models``, building them if needed.

    A cached store that is incomplete, or that the reader refuses (a tampered manifest, a
    file it does not list, ...), is rebuilt. ``lock_timeout`` is how many seconds to wait for
    another process building the same store (None: forever) before :class:`.LockTimeout`.

    Example::

        ens = load_or_build(get_benchmark("digits-mlp"), 8, Path("/tmp/cache"))
        ens.pretrained_margins.shape
        torch.Size([8, 1797])
    """
    check_ensemble_size(n_models)
    store = Path(cache_dir) / benchmark.name / benchmark.fingerprint()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create the cache {store.parent}: {error.strerror or error}"
        ) from None
    lock = store.with_name(store.name + ".lock")
    what = f"the build of {benchmark.name} into {store}"
    with held_lock(lock, what=what, say=log, timeout=lock_timeout):
        manifest = _complete_manifest(store)
        if manifest is not None and manifest.n_models >= n_models:
            try:
                return read_ensembles(benchmark, store, n_models, manifest=manifest)
            except StoreError as error:
                log(f"pytest-unlearn: the cached store cannot be used ({error}); rebuilding it")
        build_store(benchmark, n_models, store, device=device, log=log)
        return read_ensembles(benchmark, store, n_models)


def _complete_manifest(store: Path) -> Manifest | None:
    """The cached store's manifest, if every file it lists is there at its size; else None
    (absent, incomplete or unreadable).

    Only sizes are checked: the files were hashed when this machine wrote them.
    """
    try:
        manifest = read_manifest(store)
    except StoreError:
        return None
    for entry in manifest.files:
        path = store / entry.path
        if not path.is_file() or path.stat().st_size != entry.size:
            return None
    return manifest
