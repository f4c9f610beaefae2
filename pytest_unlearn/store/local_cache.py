"""Build a benchmark's ensembles once into a cache directory and reload them afterwards.

Layout under ``CACHE_DIR/<benchmark>/<fingerprint>/`` (the fingerprint hashes the recipe,
architecture, data and forget sets, so a changed recipe builds into a new directory)::

    manifest.json                   schema, benchmark, fingerprint, n_models, recipe, files
    pretrained/weights.safetensors  stacked parameters, leading dimension = model
    pretrained/margins.safetensors  "margins": (models, points)
    oracles/<forget>.safetensors    "half_a", "half_b": (models, points) each
    forget_sets/<forget>.safetensors  "indices"

Every file is written under a temporary name and renamed into place, and the whole build
runs under a file lock, so concurrent pytest processes (xdist workers) build it once and never
see a half-written store. A store built for more models serves any smaller ensemble size:
member ``i`` does not depend on how many members were built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import platformdirs
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from ..benchmarks.spec import Benchmark
from ..metric import margins
from ..training import ensemble_logits, model_seed, train_ensemble
from .ensembles import Ensembles, OracleHalves

SCHEMA = 1
MANIFEST = "manifest.json"

Log = Callable[[str], None]


def default_cache_dir() -> Path:
    """The platform's user cache directory for pytest-unlearn."""
    return Path(platformdirs.user_cache_dir("pytest-unlearn"))


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_or_build(
    benchmark: Benchmark,
    n_models: int,
    cache_dir: Path,
    *,
    device: torch.device | str = "cpu",
    log: Log = _stderr_log,
) -> Ensembles:
    """Return the ensembles of ``benchmark`` at size ``n_models``, building them if needed.

    >>> ens = load_or_build(get_benchmark("digits-mlp"), 8, Path("/tmp/cache"))  # doctest: +SKIP
    >>> ens.pretrained_margins.shape  # doctest: +SKIP
    torch.Size([8, 1797])
    """
    if n_models < 2:
        raise ValueError(f"an ensemble needs at least 2 models, got {n_models}")
    root = Path(cache_dir) / benchmark.name
    root.mkdir(parents=True, exist_ok=True)
    store = root / benchmark.fingerprint()
    with FileLock(str(store) + ".lock"):
        built = _stored_model_count(store)
        if built is None or built < n_models:
            log(
                f"pytest-unlearn: building {benchmark.name} ensembles for {n_models} models "
                f"into {store} (once; later runs reuse it)"
            )
            _build(benchmark, n_models, store, device=device, log=log)
        return _load(benchmark, store, n_models)


def _stored_model_count(store: Path) -> int | None:
    manifest_path = store / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if manifest.get("schema") != SCHEMA:
        return None
    for rel, meta in manifest["files"].items():
        path = store / rel
        if not path.is_file() or path.stat().st_size != meta["size"]:
            return None
    return int(manifest["n_models"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def _build(benchmark: Benchmark, n_models: int, store: Path, *, device, log: Log) -> None:
    data = benchmark.load_data()
    staging = store.with_name(store.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()

    def train(role: str, train_indices: torch.Tensor, count: int) -> dict[str, torch.Tensor]:
        seeds = [model_seed(benchmark.name, role, i) for i in range(count)]
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if done == total or done % max(1, total // 5) == 0:
                log(f"  {role}: {count} models, epoch {done}/{total} ({time.perf_counter() - t0:.1f}s)")

        return train_ensemble(
            benchmark.build_model,
            data.inputs,
            data.targets,
            train_indices,
            benchmark.recipe,
            seeds,
            device=device,
            progress=progress,
        )

    def ensemble_margins(params: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = ensemble_logits(benchmark.build_model, params, data.inputs)
        return margins(logits, data.targets.to(logits.device)).float().cpu()

    pretrained = train("pretrain", data.train_indices, n_models)
    _save(pretrained, staging / "pretrained" / "weights.safetensors")
    _save({"margins": ensemble_margins(pretrained)}, staging / "pretrained" / "margins.safetensors")
    for forget_set in benchmark.forget_sets:
        forget = torch.tensor(forget_set.indices, dtype=torch.int64)
        retain = data.train_indices[~torch.isin(data.train_indices, forget)]
        halves = {}
        for half in ("a", "b"):
            params = train(f"oracle-{forget_set.name}-{half}", retain, n_models)
            halves[f"half_{half}"] = ensemble_margins(params)
        _save(halves, staging / "oracles" / f"{forget_set.name}.safetensors")
        _save({"indices": forget}, staging / "forget_sets" / f"{forget_set.name}.safetensors")

    files = {}
    for path in sorted(staging.rglob("*.safetensors")):
        rel = path.relative_to(staging).as_posix()
        files[rel] = {"sha256": _sha256(path), "size": path.stat().st_size}
    manifest = {
        "schema": SCHEMA,
        "benchmark": benchmark.name,
        "fingerprint": benchmark.fingerprint(),
        "n_models": n_models,
        "recipe": asdict(benchmark.recipe),
        "forget_sets": {fs.name: fs.kind for fs in benchmark.forget_sets},
        "files": files,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    shutil.rmtree(store, ignore_errors=True)
    os.replace(staging, store)
    log(f"pytest-unlearn: built {benchmark.name} in {time.perf_counter() - started:.1f}s")


def _load(benchmark: Benchmark, store: Path, n_models: int) -> Ensembles:
    pretrained = load_file(str(store / "pretrained" / "weights.safetensors"))
    pretrained = {k: v[:n_models] for k, v in pretrained.items()}
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
        pretrained_params=pretrained,
        pretrained_margins=pretrained_margins[:n_models],
        oracles=oracles,
    )
