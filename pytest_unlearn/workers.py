"""Parallel runs with pytest-xdist: one GPU per worker, a fair share of CPU threads.

Worker ``gwK`` of ``W`` gets GPU ``K mod G`` of the ``G`` GPUs it can see (``-n auto`` starts one
worker per GPU, so each has its own); on the CPU each worker gets ``cores // W`` torch threads, so
``-n 2`` on two cores does not run four threads fighting over them. ``CUDA_VISIBLE_DEVICES`` is
respected: torch numbers the visible GPUs from 0, and so do we.

The controller also hands every worker one scratch directory, through which workers that
need the same forget set split its method calls model by model (:mod:`.harness.shared_runs`),
and its :func:`host_id`.

Limitations: a worker's GPU is fixed for the whole run (no rebalancing by memory); with more
workers than GPUs, workers share GPUs round-robin. ``W`` counts the workers of every host, so
a ``--tx`` run over hosts of unequal size wants ``--unlearn-threads`` (or a per-host
``//env:PYTEST_UNLEARN_THREADS=N``). Only workers on the controller's host share method calls
(``-n``, ``--tx popen``, whatever its ``//chdir=`` or ``//env:``): a worker of another host
(``--tx ssh=``) makes every call of the forget sets it has tests of itself, as a run without
xdist does, because its :func:`host_id` differs from the one the controller passes or the
directory does not exist there. It never shares through a file system that both hosts see: a
claim names its process by pid, which means nothing on another host. Its figures are the same
(given the same store and threads: seeds depend on the member and the request only), but a
forget set whose tests land on two hosts is computed on both. Each worker resolves its options
on its own host (environment and ini too), so ``//env:PYTEST_UNLEARN_CACHE_DIR=DIR`` gives a
host its own cache.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch


def worker_index(config: pytest.Config) -> int | None:
    """This process's xdist worker number (``gw3`` -> 3), or None on the controller."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    return int(str(workerinput["workerid"]).removeprefix("gw"))


def worker_count(config: pytest.Config) -> int:
    workerinput = getattr(config, "workerinput", None)
    return int(workerinput["workercount"]) if workerinput else 1


def assign_device(requested: torch.device, index: int | None, gpu_count: int) -> torch.device:
    """The device worker ``index`` uses when ``requested`` was asked for.

    An explicit index (``cuda:1``) is kept; a bare ``cuda`` is spread round-robin.

    >>> assign_device(torch.device("cuda"), 3, 2)
    device(type='cuda', index=1)
    >>> assign_device(torch.device("cpu"), 3, 2)
    device(type='cpu')
    """
    if requested.type != "cuda" or requested.index is not None or index is None or gpu_count < 1:
        return requested
    return torch.device("cuda", index % gpu_count)


def cpu_threads(cores: int, workers: int) -> int:
    """Torch threads per worker so that the workers together use the cores once.

    >>> cpu_threads(2, 2), cpu_threads(16, 3), cpu_threads(2, 4)
    (1, 5, 1)
    """
    return max(1, cores // max(1, workers))


def configure_worker(
    config: pytest.Config, device: torch.device, threads: int | None = None
) -> torch.device:
    """Pin this worker (no-op outside xdist workers); returns the device it should use.

    ``threads`` (``--unlearn-threads``) fixes torch's CPU threads in every process; without
    it an xdist worker on the CPU gets its share of the cores. A thread count changes how
    matrix products are summed, so only a fixed one gives bit-identical figures across ``-n``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    index = worker_index(config)
    if index is None:
        return device
    if device.type == "cpu" and threads is None:
        torch.set_num_threads(cpu_threads(os.cpu_count() or 1, worker_count(config)))
    return assign_device(device, index, torch.cuda.device_count())


def auto_workers() -> int | None:
    """Workers for ``-n auto``: the number of visible GPUs, or None (xdist's CPU default)."""
    gpus = torch.cuda.device_count()
    return gpus if gpus > 0 else None


#: The ``workerinput`` keys of the run's shared scratch directory and the controller's host.
SHARED_RUNS_KEY = "unlearn_shared_runs"
SHARED_RUNS_HOST_KEY = "unlearn_shared_runs_host"


def host_id() -> str:
    """What processes that may share a scratch directory have in common: the host name and,
    on Linux, the kernel's boot id and this process's pid namespace (a claim on the directory
    names its process by pid, which only a process of the same namespace can check).

    >>> host_id() == host_id() and socket.gethostname() in host_id()
    True
    """
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return " ".join(parts)


class SharedRunsDirectory:
    """Controller-only plugin: one scratch directory per run, given to every xdist worker
    (``pytest_configure_node``) and removed when the run ends."""

    def __init__(self) -> None:
        self.path: Path | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.path is None:
            self.path = Path(tempfile.mkdtemp(prefix="pytest-unlearn-runs-"))
        node.workerinput[SHARED_RUNS_KEY] = str(self.path)
        node.workerinput[SHARED_RUNS_HOST_KEY] = host_id()

    def pytest_unconfigure(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def shared_runs_dir(config: pytest.Config) -> Path | None:
    """This worker's shared scratch directory; None on the controller, without xdist, or on a
    worker of another host than the controller's (another :func:`host_id`, or the directory
    does not exist here): that worker then makes its own method calls."""
    workerinput = getattr(config, "workerinput", None)
    if not workerinput or SHARED_RUNS_KEY not in workerinput:
        return None
    if workerinput.get(SHARED_RUNS_HOST_KEY) != host_id():
        return None
    path = Path(workerinput[SHARED_RUNS_KEY])
    return path if path.is_dir() else None
