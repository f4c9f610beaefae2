"""pytest-unlearn: a conformance suite for machine-unlearning methods.

The public API, for scripts and notebooks (a method itself needs none of it)::

    >>> import numpy as np
    >>> from pytest_unlearn import klom, summarize
    >>> unlearned, oracle = np.zeros((100, 5)), np.zeros((80, 5))
    >>> summarize(klom(unlearned, oracle)).p95
    0.0
"""

from .benchmarks import Benchmark, ForgetSet, TrainingRecipe, available_benchmarks, get_benchmark
from .contract import DataSplit, UnlearnContext, UnlearnMethod
from .metric import KLOM_MODES, KlomSummary, klom, margins, summarize

__version__ = "0.1.0"

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
