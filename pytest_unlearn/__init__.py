"""pytest-unlearn: a conformance suite for machine-unlearning methods.

The public API, for scripts and notebooks (a method itself needs none of it)::

    >>> import numpy as np
    >>> from pytest_unlearn import klom, summarize
    >>> unlearned, oracle = np.zeros((100, 5)), np.zeros((80, 5))
    >>> summarize(klom(unlearned, oracle)).p95
    0.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .benchmarks import (
        Benchmark,
        ForgetSet,
        TrainingRecipe,
        available_benchmarks,
        get_benchmark,
    )
    from .contract import DataSplit, UnlearnContext, UnlearnMethod
    from .metric import KLOM_MODES, KlomSummary, klom, margins, summarize

__version__ = "0.1.0"

#: Where each public name lives. Imported on first use (PEP 562): pytest loads this package
#: as a plugin in every run, and an inert run should not pay for importing torch.
_EXPORTS = {
    "Benchmark": "benchmarks",
    "ForgetSet": "benchmarks",
    "TrainingRecipe": "benchmarks",
    "available_benchmarks": "benchmarks",
    "get_benchmark": "benchmarks",
    "DataSplit": "contract",
    "UnlearnContext": "contract",
    "UnlearnMethod": "contract",
    "KLOM_MODES": "metric",
    "KlomSummary": "metric",
    "klom": "metric",
    "margins": "metric",
    "summarize": "metric",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "KLOM_MODES",
    "Benchmark",
    "DataSplit",
    "ForgetSet",
    "KlomSummary",
    "TrainingRecipe",
    "UnlearnContext",
    "UnlearnMethod",
    "available_benchmarks",
    "get_benchmark",
    "klom",
    "margins",
    "summarize",
]
