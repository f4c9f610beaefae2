"""``mnist1d-cnn``: MNIST-1D signals and a small 1-D CNN, a larger CPU-buildable benchmark.

MNIST-1D (Greydanus, 2020) renders the ten digits as 40-sample 1-D signals: a template per
class, padded, scaled, translated, sheared and noised. The ``mnist1d`` package generates it
procedurally from a fixed seed (no download: we call its generator, never its
``get_dataset``, which fetches a pickle from GitHub), so every machine gets the same 5,000
points. We keep the package's own split: the first 4,000 points train, the last 1,000
validate.

The model is a two-layer strided 1-D CNN with a small MLP head (10,218 parameters), trained
long enough to nearly memorize its training split while staying cheap enough that 500 models
(100 pretrained + 2 x 100 oracles for each of the two forget sets) build in minutes on two CPUs.

Forget sets, both of 100 training signals: ``knn100``, the neighbourhood (Euclidean, signal
space) of the most atypical training signal (farthest from its class mean), chosen with the
same rule as digits-mlp's ``knn36`` so that it is a coherent subpopulation the rest of the
training data does not explain; and ``random100``, drawn uniformly, close to a negative
control.
"""

from __future__ import annotations

import random
from functools import cached_property

import numpy as np
import torch
from torch import nn

from .forget_selection import atypical_neighbourhood, random_forget_set
from .spec import Benchmark, Dataset, ForgetSet, TrainingRecipe

#: The package's default generation arguments, pinned here so that a changed default upstream
#: cannot silently change the data (the fingerprint would catch it, but this keeps it stable).
_GENERATION = {"num_samples": 5000, "train_split": 0.8, "seed": 42}
_RANDOM_FORGET_SEED = 100
_FORGET_SIZE = 100
_LENGTH = 40


class Mnist1dCNN(Benchmark):
    """MNIST-1D, 4,000 train / 1,000 validation signals, a 1-D CNN.

    >>> from pytest_unlearn.benchmarks import get_benchmark
    >>> bench = get_benchmark("mnist1d-cnn")
    >>> [fs.name for fs in bench.forget_sets]
    ['knn100', 'random100']
    >>> bench.build_model()(torch.zeros(3, 40)).shape
    torch.Size([3, 10])
    """

    name = "mnist1d-cnn"
    description = "MNIST-1D (procedural, 40-sample signals), 1-D CNN, 4000 train / 1000 validation"
    recipe = TrainingRecipe(epochs=20, lr=0.1, batch_size=128, momentum=0.9, weight_decay=0.0)
    version = 1
    # Minutes to build on a CPU (500 models at N=100), so its tests deselect with -m "not slow".
    slow = True

    def load_data(self) -> Dataset:
        return self._data

    @cached_property
    def _data(self) -> Dataset:
        signals, labels = _generate()
        n_train = round(_GENERATION["train_split"] * len(labels))
        return Dataset(
            inputs=torch.as_tensor(signals, dtype=torch.float32),
            targets=torch.as_tensor(labels, dtype=torch.int64),
            train_indices=torch.arange(n_train),
            validation_indices=torch.arange(n_train, len(labels)),
            num_classes=10,
        )

    def build_model(self) -> nn.Module:
        # Lengths: 40 -> 18 (k5, s2) -> 8 (k3, s2); 32 channels x 8 = 256 features.
        return nn.Sequential(
            nn.Unflatten(1, (1, _LENGTH)),
            nn.Conv1d(1, 16, kernel_size=5, stride=2),
            nn.ReLU(),
            nn.Conv1d(16, 32, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(256, 32),
            nn.ReLU(),
            nn.Linear(32, 10),
        )

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        return self._forget_sets

    @cached_property
    def _forget_sets(self) -> tuple[ForgetSet, ...]:
        knn, _ = atypical_neighbourhood(self._data, _FORGET_SIZE, "signal")
        return (knn, random_forget_set(self._data, _FORGET_SIZE, _RANDOM_FORGET_SEED, "signal"))


def _generate() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 MNIST-1D signals (train first, then test) and their labels.

    ``mnist1d.data.make_dataset`` seeds NumPy's and Python's *global* generators; their states
    are restored afterwards so that loading a benchmark never perturbs the caller's randomness.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError(
            "benchmark mnist1d-cnn needs the mnist1d package: pip install 'pytest-unlearn[mnist1d]'"
        ) from None

    args = get_dataset_args()
    for key, value in _GENERATION.items():
        setattr(args, key, value)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    signals = np.concatenate([raw["x"], raw["x_test"]])
    labels = np.concatenate([raw["y"], raw["y_test"]])
    return signals, labels
