"""The conformance matrix: which (benchmark, forget set, request, split) cases exist, and ids."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from ..benchmarks import Benchmark, ForgetSet, get_benchmark

if TYPE_CHECKING:
    pass

Split = Literal["forget", "retain", "validation"]
SPLITS: tuple[Split, ...] = ("forget", "retain", "validation")


def _prefix(benchmark: str, forget_set: str, request: int, sequential: bool) -> str:
    """``<benchmark>-<forget set>[-req<k>]``: the start of every id of one method run."""
    return f"{benchmark}-{forget_set}" + (f"-req{request}" if sequential else "")


#: Names a benchmark: the registry's (:func:`get_benchmark`), or a run's own instance (one
#: bound to its store's forget sets).
Resolve = Callable[[str], Benchmark]


def requests_of(
    benchmarks: Iterable[str], profile: str, resolve: Resolve = get_benchmark
) -> Iterator[tuple[str, ForgetSet, int]]:
    """(benchmark, forget set, request) of every request the profile keeps.

    The ``quick`` profile keeps the forget sets that test forgetting hardest: subpopulations
    and sequential schedules (random forget sets are close to a negative control).
    """
    for name in benchmarks:
        for fs in resolve(name).declared_forget_sets:
            if profile == "full" or fs.kind == "subpopulation" or fs.sequential:
                for request in range(1, len(fs.requests) + 1):
                    yield name, fs, request


@dataclass(frozen=True)
class ConformanceCase:
    """One conformance test: a split of a forget set of a benchmark, after one request.

    Ids are part of the public API (``-k``, xfail files, reports), stable and readable:

    >>> ConformanceCase("digits-mlp", "knn36", "forget").id
    'digits-mlp-knn36-forget'
    >>> ConformanceCase("digits-mlp", "seq3x12", "retain", request=2, sequential=True).id
    'digits-mlp-seq3x12-req2-retain'
    """

    benchmark: str
    forget_set: str
    split: Split
    request: int = 1
    sequential: bool = False

    @property
    def id(self) -> str:
        prefix = _prefix(self.benchmark, self.forget_set, self.request, self.sequential)
        return f"{prefix}-{self.split}"

    @property
    def group(self) -> str:
        """Cases sharing one method run (the ``xdist_group`` ``--dist loadgroup`` would keep on
        one worker; workers share the run's calls either way)."""
        return _prefix(self.benchmark, self.forget_set, 1, False)


def conformance_cases(
    benchmarks: Iterable[str], profile: str = "full", resolve: Resolve = get_benchmark
) -> list[ConformanceCase]:
    """Every case of the selected benchmarks (and ``profile``), sorted by id; ``resolve``
    gives the benchmark whose declared forget sets count (a run's store-bound one)."""
    cases = [
        ConformanceCase(name, fs.name, split, request, fs.sequential)
        for name, fs, request in requests_of(benchmarks, profile, resolve)
        for split in SPLITS
    ]
    return sorted(cases, key=lambda case: case.id)


@dataclass(frozen=True)
class CertifiedCase:
    """One certified-claim test: a registered check (:mod:`.certified_checks`, by its name)
    of a forget set of a benchmark, after one request.

    >>> CertifiedCase("digits-logreg-perturbed", "knn36", "whitebox").id
    'digits-logreg-perturbed-knn36-whitebox'
    """

    benchmark: str
    forget_set: str
    check: str
    request: int = 1
    sequential: bool = False

    @property
    def id(self) -> str:
        prefix = _prefix(self.benchmark, self.forget_set, self.request, self.sequential)
        return f"{prefix}-{self.check}"

    @property
    def group(self) -> str:
        """The same group as the KLoM cases: both use one method run."""
        return _prefix(self.benchmark, self.forget_set, 1, False)


def split_indices(benchmark: Benchmark, case: ConformanceCase) -> torch.Tensor:
    """The evaluation points of a case on ``benchmark``: everything deleted so far, what is
    retained, or the validation split."""
    data = benchmark.load_data()
    deleted = torch.tensor(
        benchmark.forget_set(case.forget_set).deleted_after(case.request), dtype=torch.int64
    )
    if case.split == "forget":
        return deleted
    if case.split == "retain":
        return data.retain_after(deleted)
    return data.validation_indices
