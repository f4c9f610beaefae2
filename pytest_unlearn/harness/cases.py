"""The conformance matrix: which (benchmark, forget set, split) cases exist, and their ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..benchmarks import get_benchmark

Split = Literal["forget", "retain", "validation"]
SPLITS: tuple[Split, ...] = ("forget", "retain", "validation")


@dataclass(frozen=True, order=True)
class ConformanceCase:
    """One conformance test: a split of a forget set of a benchmark.

    >>> ConformanceCase("digits-mlp", "knn36", "forget").id
    'digits-mlp-knn36-forget'
    """

    benchmark: str
    forget_set: str
    split: Split

    @property
    def id(self) -> str:
        """The stable, readable test id (part of the public API: ``-k`` and xfail lists use it)."""
        return f"{self.benchmark}-{self.forget_set}-{self.split}"

    @property
    def group(self) -> str:
        """Cases sharing one method run; xdist's ``loadgroup`` keeps them on one worker."""
        return f"{self.benchmark}-{self.forget_set}"


def conformance_cases(benchmarks: Iterable[str]) -> list[ConformanceCase]:
    """Every case of the selected benchmarks, sorted by id."""
    cases = [
        ConformanceCase(name, forget_set.name, split)
        for name in benchmarks
        for forget_set in get_benchmark(name).forget_sets
        for split in SPLITS
    ]
    return sorted(cases, key=lambda case: case.id)
