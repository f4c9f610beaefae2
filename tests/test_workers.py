"""xdist worker placement: one GPU per worker, a fair share of CPU threads."""

from __future__ import annotations

import pytest
import torch

from pytest_unlearn.workers import assign_device, cpu_threads


@pytest.mark.parametrize(
    ("index", "gpus", "expected"),
    [(0, 4, "cuda:0"), (3, 4, "cuda:3"), (5, 4, "cuda:1"), (1, 1, "cuda:0")],
    ids=["first", "last", "wraps-round-robin", "single-gpu"],
)
def test_bare_cuda_is_spread_over_the_visible_gpus(index: int, gpus: int, expected: str) -> None:
    assert assign_device(torch.device("cuda"), index, gpus) == torch.device(expected)


def test_explicit_gpu_index_is_kept() -> None:
    assert assign_device(torch.device("cuda:2"), 0, 4) == torch.device("cuda:2")


def test_controller_and_cpu_runs_keep_the_requested_device() -> None:
    assert assign_device(torch.device("cuda"), None, 4) == torch.device("cuda")
    assert assign_device(torch.device("cpu"), 1, 4) == torch.device("cpu")


def test_no_visible_gpu_keeps_the_requested_device() -> None:
    assert assign_device(torch.device("cuda"), 1, 0) == torch.device("cuda")


@pytest.mark.parametrize(
    ("cores", "workers", "threads"), [(2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 3, 5)]
)
def test_cpu_threads_share_the_cores(cores: int, workers: int, threads: int) -> None:
    assert cpu_threads(cores, workers) == threads


def test_auto_workers_is_xdist_default_without_a_method(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("-n", "auto", "-p", "xdist")
    result.assert_outcomes(passed=1)


class _FakeConfig:
    """Just enough of a pytest config for ``configure_worker``: no xdist worker input."""


def test_fixed_threads_apply_outside_xdist_too() -> None:
    import torch

    from pytest_unlearn.workers import configure_worker

    before = torch.get_num_threads()
    try:
        assert configure_worker(_FakeConfig(), torch.device("cpu"), threads=1).type == "cpu"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
