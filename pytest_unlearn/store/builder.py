"""Build a benchmark's store: train the ensembles, write safetensors and the manifest.

Layout of a store directory (every path is listed in ``manifest.json`` with sha256 and size)::

    manifest.json                     schema, benchmark, fingerprint, n_models, recipe, files,
                                      retrain_seconds (one exact retraining, per device kind)
    pretrained/weights.safetensors    stacked parameters, leading dimension = model
    pretrained/margins.safetensors    "margins": (models, points), every labelled point
    oracles/<forget>.safetensors      "half_a", "half_b": (models, points) each
    oracles/<forget>-req<k>.safetensors  the same after request k of a sequential forget set
    forget_sets/<forget>.safetensors  "indices" (and "request_<k>" for each request)

Builds are deterministic from their seeds: member ``i`` of every ensemble is seeded by
(benchmark, role, i) alone, so a store for 100 models holds the one for 8.

A build writes into ``<out>.building-<pid>-<host>`` next to ``out`` and renames it into place;
staging directories left by killed builds (their process is gone) are removed when the next
build next to them starts. ``out`` itself must be absent, empty, or a previous store.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import stat
import time
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..benchmarks.spec import Benchmark
from ..logs import Log, stderr_log
from ..metric import margins
from ..training import ensemble_logits, model_seed
from .layout import PRETRAINED_MARGINS, PRETRAINED_WEIGHTS, forget_set_file, oracle_file
from .manifest import StoreError, check_output_directory, seal_store
from .reference_retrain import device_kind, retrain_seconds

MAX_MODELS = 10_000
"""The largest ensemble size a store is built for (``build --models``, ``--unlearn-models``).

A build trains all ``1 + 2 * requests`` ensembles of that size (15 for digits-mlp), each with
its members held in memory at once, plus a (models x points) float32 margins matrix per
ensemble: time and memory grow linearly in N, and 10,000 is already about 100 times the
default of 100 (hours of CPU time, gigabytes of memory). Ask for more and the build is
refused up front instead of running out of memory after hours.
"""


def check_ensemble_size(n_models: int) -> None:
    """``ValueError`` (one line) unless ``2 <= n_models <= MAX_MODELS``."""
    if n_models < 2:
        raise ValueError(f"an ensemble needs at least 2 models, got {n_models}")
    if n_models > MAX_MODELS:
        raise ValueError(
            f"at most {MAX_MODELS} models per ensemble, got {n_models}: a build holds every "
            "member in memory and takes time in proportion (see MAX_MODELS)"
        )


def _file_mode(directory: Path) -> int:
    """The permissions a plain new file in ``directory`` gets (0o666 less the umask, or what
    a default ACL says), found by creating one: safetensors writes its files 0600."""
    probe = directory / f".mode-probe-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
        probe.unlink()


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``tensors`` to ``path`` as safetensors, readable like any file the user writes
    (safetensors itself creates files 0600, which a server run by another user cannot read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))
    os.chmod(path, _file_mode(path.parent))


_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"


def staging_name(out: Path, kind: str = "building", *, hidden: bool = False) -> Path:
    """``<out>.<kind>-<pid>-<host>`` (with a leading ``.`` if ``hidden``): where this process
    stages a store for ``out``; :func:`remove_stale_staging` knows these names."""
    return out.with_name(f"{'.' if hidden else ''}{out.name}.{kind}-{os.getpid()}-{_HOST}")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` (on this host) exists; True when that cannot be told."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate it on Windows: keep the directory
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a pid no process can have): leave it
    return True


def remove_stale_staging(out: Path, log: Log = stderr_log) -> list[Path]:
    """Remove staging directories next to ``out`` left by builds or imports whose process is
    gone (``<out>.building-<pid>[-<host>]``, ``<out>.replaced-<pid>``, and the importer's
    ``.<out>.importing-<pid>``), on this host; returns what was removed.

    A directory of a live process, of another host, or of any other name is left alone.
    """
    out = Path(out)
    name = re.escape(out.name)
    pattern = re.compile(
        rf"(?:{name}\.(?:building|importing)|\.{name}\.importing|{name}\.replaced)"
        r"-(\d{1,10})(?:-([A-Za-z0-9._]+))?"
    )
    removed = []
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_dir() or path.is_symlink():
            continue
        pid, host = int(match.group(1)), match.group(2)
        if (host is not None and host != _HOST) or pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            log(f"pytest-unlearn: removed {path}, left by a build that was killed (pid {pid})")
            removed.append(path)
    return removed


def build_store(
    benchmark: Benchmark,
    n_models: int,
    out: Path,
    *,
    device: torch.device | str = "cpu",
    log: Log = stderr_log,
    measure_retrain: bool = True,
) -> Path:
    """Train and write the store for ``n_models`` into ``out``.

    ``measure_retrain`` times one exact retraining on ``device`` (the reference every
    method's cost is read against) and records it in the manifest, so runs never retrain to
    print it.

    ``out`` must be absent, an empty directory, or a previous store (it holds
    ``manifest.json``), which is replaced; anything else is refused (:class:`OutputRefused`)
    before any work. Everything is written into a staging directory next to ``out`` and
    renamed into place at the end, so an interrupted build never leaves a store that looks
    complete. ``ValueError`` for an ensemble size outside ``2..MAX_MODELS``; any failure to
    write (unwritable directory, full disk) is one :class:`StoreError`.

    Example::

        build_store(get_benchmark("digits-mlp"), 8, Path("/tmp/store"))
        PosixPath('/tmp/store')
    """
    check_ensemble_size(n_models)
    if not benchmark.buildable:
        raise StoreError(unbuildable_message(benchmark))
    out = Path(out)
    check_output_directory(out)
    staging = staging_name(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out, log)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as error:
        raise StoreError(f"cannot write store {out}: {error.strerror or error}") from None
    try:
        _build_into(
            benchmark,
            n_models,
            out,
            staging,
            device=device,
            log=log,
            measure_retrain=measure_retrain,
        )
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise StoreError(f"cannot write store {out}: {error.strerror or error}{where}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def unbuildable_message(benchmark: Benchmark) -> str:
    """Why ``benchmark`` cannot be built here, and what to do instead (one line)."""
    return (
        f"{benchmark.name} cannot be built locally: import its published ensembles "
        "(python -m pytest_unlearn import-easydub) and pass --unlearn-store"
    )


def _build_into(
    benchmark: Benchmark,
    n_models: int,
    out: Path,
    staging: Path,
    *,
    device: torch.device | str,
    log: Log,
    measure_retrain: bool,
) -> None:
    data = benchmark.load_data()
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
        return ensemble_margins_of(benchmark, params, data.inputs, data.targets)

    log(f"pytest-unlearn: building {benchmark.name}: {total_models} models into {out}")
    pretrained = train("pretrain", data.train_indices)
    save_tensors(pretrained, staging / PRETRAINED_WEIGHTS)
    save_tensors({"margins": ensemble_margins(pretrained)}, staging / PRETRAINED_MARGINS)
    for forget_set in benchmark.forget_sets:
        for request in range(1, len(forget_set.requests) + 1):
            deleted = torch.tensor(forget_set.deleted_after(request), dtype=torch.int64)
            retain = data.retain_after(deleted)
            # Plain forget sets keep the role names (and so the seeds) they always had.
            role = forget_set.name + (f"-req{request}" if forget_set.sequential else "")
            halves = {
                f"half_{half}": ensemble_margins(train(f"oracle-{role}-{half}", retain))
                for half in ("a", "b")
            }
            save_tensors(halves, staging / oracle_file(forget_set, request))
        indices = {"indices": torch.tensor(forget_set.indices, dtype=torch.int64)}
        for k, request_indices in enumerate(forget_set.requests, start=1):
            indices[f"request_{k}"] = torch.tensor(request_indices, dtype=torch.int64)
        save_tensors(indices, staging / forget_set_file(forget_set))
    retrain: dict[str, float] = {}
    if measure_retrain:
        log(f"  {benchmark.name}: timing one exact retraining on {device}")
        retrain[device_kind(device)] = retrain_seconds(benchmark, device)
        log(f"  {benchmark.name}: one exact retraining takes {next(iter(retrain.values())):.2f}s")
    seal_store(
        staging,
        out,
        benchmark=benchmark.name,
        fingerprint=benchmark.fingerprint(),
        n_models=n_models,
        recipe=asdict(benchmark.recipe),
        forget_sets={fs.name: fs.kind for fs in benchmark.forget_sets},
        retrain_seconds=retrain,
    )
    log(f"pytest-unlearn: built {benchmark.name} in {time.perf_counter() - started:.1f}s")


#: Members whose margins are computed in one vmapped pass (bounds memory with big models).
_MARGIN_MEMBERS_AT_ONCE = 25


def ensemble_margins_of(
    benchmark: Benchmark,
    params: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """(models, points) float32 margins of the stacked members on every point, on the CPU;
    members and points in chunks where the benchmark says its models are big
    (``eval_points_at_once``), all at once otherwise."""
    points: int | None = getattr(benchmark, "eval_points_at_once", None)
    n = next(iter(params.values())).shape[0]
    step = _MARGIN_MEMBERS_AT_ONCE if points is not None else n
    rows = []
    for start in range(0, n, step):
        chunk = {k: v[start : start + step] for k, v in params.items()}
        logits = ensemble_logits(benchmark.build_model, chunk, inputs, points_at_once=points)
        rows.append(margins(logits, targets.to(logits.device)).float().cpu())
    return torch.cat(rows)
