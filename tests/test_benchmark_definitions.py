"""Every registered benchmark is a well-formed, deterministic definition.

These properties are what a store's validity rests on: a store is keyed by the fingerprint, so
the data, split, forget sets and model must come out the same on every machine and call.
"""

from __future__ import annotations

import copy
import functools
import random
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from pytest_unlearn.benchmarks import Benchmark, available_benchmarks, get_benchmark
from pytest_unlearn.benchmarks.mnist1d_cnn import Mnist1dCNN

# GPU benchmarks bring data from outside (CIFAR-10 from a file the user supplies), so their
# definitions cannot be loaded on every machine; every CPU-buildable benchmark is covered.
NAMES = [name for name in available_benchmarks() if not getattr(get_benchmark(name), "gpu", False)]


@pytest.fixture(scope="module", params=NAMES)
def bench(request: pytest.FixtureRequest) -> Benchmark:
    return get_benchmark(request.param)


@functools.cache
def fresh(name: str) -> Benchmark:
    """A second instance, built from scratch (nothing cached), as another process would.

    Cached per module run: generating MNIST-1D takes seconds, and one fresh copy is enough.
    """
    return type(get_benchmark(name))()


def expected_size(forget_set_name: str) -> int:
    """``knn36`` -> 36; a sequential ``seq3x12`` (3 requests of 12) -> 36."""
    sequential = re.search(r"(\d+)x(\d+)$", forget_set_name)
    if sequential:
        return int(sequential[1]) * int(sequential[2])
    plain = re.search(r"(\d+)$", forget_set_name)
    assert plain, f"forget set {forget_set_name!r} does not say its size"
    return int(plain[1])


def test_load_data_is_the_same_from_a_fresh_instance(bench: Benchmark) -> None:
    first, second = bench.load_data(), fresh(bench.name).load_data()
    for field in ("inputs", "targets", "train_indices", "validation_indices"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field
    assert first.num_classes == second.num_classes


def test_split_is_disjoint_and_covers_every_point(bench: Benchmark) -> None:
    data = bench.load_data()
    train, validation = data.train_indices.tolist(), data.validation_indices.tolist()
    assert not set(train) & set(validation)
    assert sorted(train + validation) == list(range(len(data.inputs)))
    assert len(data.targets) == len(data.inputs)


def test_forget_sets_lie_in_the_train_split(bench: Benchmark) -> None:
    train = set(bench.load_data().train_indices.tolist())
    for forget_set in bench.forget_sets:
        assert set(forget_set.indices) <= train, forget_set.name


def test_forget_sets_have_the_size_their_name_says(bench: Benchmark) -> None:
    for forget_set in bench.forget_sets:
        assert len(set(forget_set.indices)) == len(forget_set.indices), forget_set.name
        assert len(forget_set.indices) == expected_size(forget_set.name), forget_set.name


def test_forget_sets_are_labelled_random_and_subpopulation(bench: Benchmark) -> None:
    kinds = {forget_set.kind for forget_set in bench.forget_sets}
    assert kinds == {"random", "subpopulation"}
    assert all(forget_set.description for forget_set in bench.forget_sets)


def test_fingerprint_is_stable_across_calls_and_instances(bench: Benchmark) -> None:
    assert bench.fingerprint() == bench.fingerprint() == fresh(bench.name).fingerprint()


def test_fingerprint_changes_when_the_recipe_changes(bench: Benchmark) -> None:
    # A shallow copy keeps the cached data (no regeneration) but gets its own recipe.
    changed = copy.copy(bench)
    changed.recipe = replace(bench.recipe, epochs=bench.recipe.epochs + 1)
    assert changed.fingerprint() != bench.fingerprint()


def test_model_maps_a_batch_to_one_logit_per_class(bench: Benchmark) -> None:
    data = bench.load_data()
    logits = bench.build_model()(data.inputs[:5])
    assert logits.shape == (5, data.num_classes)


def test_digits_logreg_shares_digits_mlp_data_and_forget_sets() -> None:
    mlp, logreg = get_benchmark("digits-mlp"), get_benchmark("digits-logreg")
    assert torch.equal(mlp.load_data().train_indices, logreg.load_data().train_indices)
    assert logreg.forget_sets == mlp.forget_sets


def test_mnist1d_generation_leaves_global_random_state_alone() -> None:
    # mnist1d seeds NumPy's and Python's global generators; loading must undo that.
    np.random.seed(123)
    random.seed(123)
    expected_numpy, expected_python = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    Mnist1dCNN().load_data()
    assert (np.random.random(), random.random()) == (expected_numpy, expected_python)
