"""The registry of benchmark definitions.

>>> from pytest_unlearn.benchmarks import available_benchmarks, get_benchmark
>>> available_benchmarks()
('cifar10-resnet9', 'digits-logreg', 'digits-logreg-perturbed', 'digits-mlp', 'mnist1d-cnn')
>>> get_benchmark("digits-mlp").recipe.epochs
40
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .cifar10_resnet9 import CIFAR10ResNet9
from .digits_logreg import DigitsLogReg
from .digits_logreg_perturbed import DigitsLogRegPerturbed
from .digits_mlp import DigitsMLP
from .mnist1d_cnn import Mnist1dCNN
from .spec import Benchmark, Dataset, ForgetSet, TrainingRecipe

#: Read-only: a run that needs a benchmark bound to its store's forget sets gets a new instance
#: (``store.bind_forget_sets``), so no run changes what another sees.
_REGISTRY: Mapping[str, Benchmark] = MappingProxyType(
    {
        bench.name: bench
        for bench in (
            DigitsMLP(),
            DigitsLogReg(),
            DigitsLogRegPerturbed(),
            Mnist1dCNN(),
            CIFAR10ResNet9(),
        )
    }
)


def available_benchmarks() -> tuple[str, ...]:
    """Names of the benchmarks this installation knows, sorted (``cifar10-resnet9`` is not
    built locally: it comes from an imported store)."""
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
