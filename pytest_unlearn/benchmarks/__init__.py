"""The registry of benchmark definitions.

>>> from pytest_unlearn.benchmarks import available_benchmarks, get_benchmark
>>> available_benchmarks()
('digits-logreg', 'digits-mlp', 'mnist1d-cnn')
>>> get_benchmark("digits-mlp").recipe.epochs
40
"""

from __future__ import annotations

from .digits_logreg import DigitsLogReg
from .digits_mlp import DigitsMLP
from .mnist1d_cnn import Mnist1dCNN
from .spec import Benchmark, Dataset, ForgetSet, TrainingRecipe

_REGISTRY: dict[str, Benchmark] = {
    bench.name: bench for bench in (DigitsMLP(), DigitsLogReg(), Mnist1dCNN())
}


def available_benchmarks() -> tuple[str, ...]:
    """Names of the benchmarks this installation can build, sorted."""
    return tuple(sorted(_REGISTRY))


def get_benchmark(name: str) -> Benchmark:
    """Return the benchmark called ``name``; ``KeyError`` names the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_benchmarks())
        raise KeyError(f"unknown benchmark {name!r} (known: {known})") from None


__all__ = [
    "Benchmark",
    "Dataset",
    "ForgetSet",
    "TrainingRecipe",
    "available_benchmarks",
    "get_benchmark",
]
