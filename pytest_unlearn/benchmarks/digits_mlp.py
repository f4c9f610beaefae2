"""``digits-mlp``: the embedded default benchmark.

scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), a fixed 80/20
train/validation split, and a one-hidden-layer MLP trained to memorize its training split, so
that forgetting is measurable. Two forget sets of equal size: ``knn36``, the 36 training images
nearest (in pixel space) to the most atypical training image (the one farthest from its class
mean), a coherent subpopulation that the other training data does not explain, so do-nothing
cannot pass it; and ``random36``, 36 training images drawn uniformly, close to a negative
control. (A neighbourhood of a typical image is a poor forget set: the oracles classify it
almost as confidently as the pretrained models do.)
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import nn

from .forget_selection import (
    atypical_neighbourhood,
    random_forget_set,
    sequential_neighbourhood,
)
from .spec import Benchmark, Dataset, ForgetSet, TrainingRecipe

_SPLIT_SEED = 20261127
_RANDOM_FORGET_SEED = 36
_FORGET_SIZE = 36
_REQUESTS = 3
_REQUEST_SIZE = 12
_HIDDEN = 128


class DigitsMLP(Benchmark):
    name = "digits-mlp"
    description = "scikit-learn 8x8 digits, 64-128-10 MLP, 1437 train / 360 validation"
    recipe = TrainingRecipe(epochs=40, lr=0.05, batch_size=64, momentum=0.9, weight_decay=0.0)
    version = 1

    def load_data(self) -> Dataset:
        return self._data

    @cached_property
    def _data(self) -> Dataset:
        from sklearn.datasets import load_digits

        digits = load_digits()
        inputs = torch.as_tensor(digits.data, dtype=torch.float32) / 16.0
        targets = torch.as_tensor(digits.target, dtype=torch.int64)
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(_SPLIT_SEED))
        n_train = round(0.8 * len(targets))
        return Dataset(
            inputs=inputs,
            targets=targets,
            train_indices=order[:n_train].sort().values,
            validation_indices=order[n_train:].sort().values,
            num_classes=10,
        )

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, _HIDDEN), nn.ReLU(), nn.Linear(_HIDDEN, 10))

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        return self._forget_sets

    @cached_property
    def _forget_sets(self) -> tuple[ForgetSet, ...]:
        knn, nearest_first = atypical_neighbourhood(self._data, _FORGET_SIZE, "image")
        return (
            knn,
            random_forget_set(self._data, _FORGET_SIZE, _RANDOM_FORGET_SEED, "image"),
            self._sequential(exclude=nearest_first),
        )

    def _sequential(self, exclude: torch.Tensor) -> ForgetSet:
        """``seq3x12``: three deletion requests of 12 images each, arriving one after another:
        the rings of the neighbourhood of the most atypical training image of another class
        than knn36's anchor (and outside knn36), nearest first."""
        return sequential_neighbourhood(self._data, exclude, _REQUESTS, _REQUEST_SIZE, "image")
