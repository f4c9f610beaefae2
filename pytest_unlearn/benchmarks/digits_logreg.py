"""``digits-logreg``: the convex benchmark, where certified-removal bounds can be checked.

Same data, split and forget sets as ``digits-mlp`` (taken from it, not recomputed: the 8x8
digits scaled to [0, 1], the fixed 1,438 / 359 split, and every forget set digits-mlp defines:
``knn36``, ``random36``, the sequential ``seq3x12``), with a multinomial logistic regression
instead of the MLP: one ``nn.Linear(64, 10, bias=False)``.

The training objective is strongly convex, so it has one minimizer ``W*`` that every
pretrained model approaches and one ``W*_{-S}`` per forget set ``S`` that every oracle
approaches. With ``n`` training points ``(x_i, y_i)`` and ``lambda = recipe.weight_decay``::

    F(W) = (1/n) * sum_i cross_entropy(W x_i, y_i) + (lambda / 2) * ||W||_F^2

``torch.optim.SGD(weight_decay=lambda)`` adds ``lambda * W`` to the minibatch gradient of the
mean cross-entropy, i.e. it follows the stochastic gradient of exactly ``F``. There is no
bias: it would be regularized too (SGD's ``weight_decay`` applies to every parameter), and
``W`` alone keeps the objective, its gradient and its Hessian the textbook ones
(``lambda``-strongly convex; the Hessian of the loss part is bounded by
``max_i ||x_i||^2 / 2 <= 32`` since every pixel lies in [0, 1]).

Constant-step SGD does not reach ``W*`` exactly: after 200 epochs at lr 0.05 the members
still differ by about 1% of ``||W||`` (seed-dependent data order and initialization); that
spread is what the oracle ensembles' noise floor measures.
"""

from __future__ import annotations

from functools import cached_property

from torch import nn

from .digits_mlp import DigitsMLP
from .spec import Benchmark, Dataset, ForgetSet, TrainingRecipe

#: The L2 strength ``lambda`` of the objective (see the module docstring).
L2_STRENGTH = 1e-3


class DigitsLogReg(Benchmark):
    """L2-regularized multinomial logistic regression on digits-mlp's data and forget sets.

    >>> from pytest_unlearn.benchmarks import get_benchmark
    >>> bench = get_benchmark("digits-logreg")
    >>> bench.build_model()
    Linear(in_features=64, out_features=10, bias=False)
    >>> bench.recipe.weight_decay
    0.001
    """

    name = "digits-logreg"
    description = (
        "scikit-learn 8x8 digits, L2-regularized multinomial logistic regression "
        "(lambda=1e-3), digits-mlp's split and forget sets"
    )
    recipe = TrainingRecipe(
        epochs=200, lr=0.05, batch_size=64, momentum=0.9, weight_decay=L2_STRENGTH
    )
    version = 1

    @cached_property
    def _source(self) -> DigitsMLP:
        # digits-mlp owns the data, the split and the forget-set selection; sharing them makes
        # the two benchmarks directly comparable (same points deleted, same evaluation points).
        return DigitsMLP()

    def load_data(self) -> Dataset:
        return self._source.load_data()

    def build_model(self) -> nn.Module:
        return nn.Linear(64, 10, bias=False)

    @property
    def forget_sets(self) -> tuple[ForgetSet, ...]:
        return self._source.forget_sets
