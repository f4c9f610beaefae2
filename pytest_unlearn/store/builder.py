"""Build a benchmark's store: train the ensembles, write safetensors and the manifest.

Layout of a store directory (every path is listed in ``manifest.json`` with sha256 and size)::

    manifest.json                     schema, benchmark, fingerprint, n_models, recipe, files
    pretrained/weights.safetensors    stacked parameters, leading dimension = model
    pretrained/margins.safetensors    "margins": (models, points), every labelled point
    oracles/<forget>.safetensors      "half_a", "half_b": (models, points) each
    oracles/<forget>-req<k>.safetensors  the same after request k of a sequential forget set
    forget_sets/<forget>.safetensors  "indices" (and "request_<k>" for each request)

Builds are deterministic from their seeds: member ``i`` of every ensemble is seeded by
(benchmark, role, i) alone, so a store for 100 models holds the one for 8.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..benchmarks.spec import Benchmark
from ..metric import margins
from ..training import ensemble_logits, model_seed
from .layout import PRETRAINED_MARGINS, PRETRAINED_WEIGHTS, forget_set_file, oracle_file
from .manifest import StoreError, seal_store

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def build_store(
    benchmark: Benchmark,
    n_models: int,
    out: Path,
    *,
    device: torch.device | str = "cpu",
    log: Log = stderr_log,
) -> Path:
    """Train and write the store for ``n_models`` into ``out`` (replaced if it exists).

    Everything is written into a staging directory next to ``out`` and renamed into place at
    the end, so an interrupted build never leaves a store that looks complete.

    >>> build_store(get_benchmark("digits-mlp"), 8, Path("/tmp/store"))  # doctest: +SKIP
    PosixPath('/tmp/store')
    """
    if n_models < 2:
        raise ValueError(f"an ensemble needs at least 2 models, got {n_models}")
    if not getattr(benchmark, "buildable", True):
        raise StoreError(
            f"{benchmark.name} cannot be built locally: import its published ensembles "
            "(python -m pytest_unlearn import-easydub) and pass --unlearn-store"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = benchmark.load_data()
    staging = out.with_name(out.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    total_models = n_models * (1 + 2 * sum(len(fs.requests) for fs in benchmark.forget_sets))
    trained = 0

    def train(role: str, train_indices: torch.Tensor) -> dict[str, torch.Tensor]:
        nonlocal trained
        seeds = [model_seed(benchmark.name, role, i) for i in range(n_models)]
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if done == total or done % max(1, total // 4) == 0:
                log(
                    f"  {benchmark.name} {role}: epoch {done}/{total} "
                    f"[{trained + n_models}/{total_models} models, {time.perf_counter() - t0:.1f}s]"
                )

        params = benchmark.train_members(train_indices, seeds, device=device, progress=progress)
        trained += n_models
        return params

    def ensemble_margins(params: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = ensemble_logits(benchmark.build_model, params, data.inputs)
        return margins(logits, data.targets.to(logits.device)).float().cpu()

    log(f"pytest-unlearn: building {benchmark.name}: {total_models} models into {out}")
    try:
        pretrained = train("pretrain", data.train_indices)
        _save(pretrained, staging / PRETRAINED_WEIGHTS)
        _save({"margins": ensemble_margins(pretrained)}, staging / PRETRAINED_MARGINS)
        for forget_set in benchmark.forget_sets:
            for request in range(1, len(forget_set.requests) + 1):
                deleted = torch.tensor(forget_set.deleted_after(request), dtype=torch.int64)
                retain = data.train_indices[~torch.isin(data.train_indices, deleted)]
                # Plain forget sets keep the role names (and so the seeds) they always had.
                role = forget_set.name + (f"-req{request}" if forget_set.sequential else "")
                halves = {
                    f"half_{half}": ensemble_margins(train(f"oracle-{role}-{half}", retain))
                    for half in ("a", "b")
                }
                _save(halves, staging / oracle_file(forget_set, request))
            indices = {"indices": torch.tensor(forget_set.indices, dtype=torch.int64)}
            for k, request_indices in enumerate(forget_set.requests, start=1):
                indices[f"request_{k}"] = torch.tensor(request_indices, dtype=torch.int64)
            _save(indices, staging / forget_set_file(forget_set))
        seal_store(
            staging,
            out,
            benchmark=benchmark.name,
            fingerprint=benchmark.fingerprint(),
            n_models=n_models,
            recipe=asdict(benchmark.recipe),
            forget_sets={fs.name: fs.kind for fs in benchmark.forget_sets},
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"pytest-unlearn: built {benchmark.name} in {time.perf_counter() - started:.1f}s")
    return out
