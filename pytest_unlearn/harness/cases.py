"""The conformance matrix: which (benchmark, forget set, request, split) cases exist, and ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..benchmarks import get_benchmark

Split = Literal["forget", "retain", "validation"]
SPLITS: tuple[Split, ...] = ("forget", "retain", "validation")


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
        request = f"-req{self.request}" if self.sequential else ""
        return f"{self.benchmark}-{self.forget_set}{request}-{self.split}"

    @property
    def group(self) -> str:
        """Cases sharing one method run; xdist's ``loadgroup`` keeps them on one worker."""
        return f"{self.benchmark}-{self.forget_set}"


def conformance_cases(benchmarks: Iterable[str], profile: str = "full") -> list[ConformanceCase]:
    """Every case of the selected benchmarks, sorted by id.

    The ``quick`` profile keeps the forget sets that test forgetting hardest: subpopulations
    and sequential schedules (random forget sets are close to a negative control).
    """
    cases = [
        ConformanceCase(name, fs.name, split, request, fs.sequential)
        for name in benchmarks
        for fs in get_benchmark(name).forget_sets
        if profile == "full" or fs.kind == "subpopulation" or fs.sequential
        for request in range(1, len(fs.requests) + 1)
        for split in SPLITS
    ]
    return sorted(cases, key=lambda case: case.id)
