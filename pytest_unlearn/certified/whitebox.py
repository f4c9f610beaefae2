"""White-box checks of a certified claim on a benchmark with an exact convex objective.

For each model and request the suite knows the method's output ``W`` and the retain set, so
it computes the exact gradient of the benchmark's regularized, loss-perturbed objective (see
:mod:`pytest_unlearn.training.convex`) and holds the method to what it reported:

* **residual**: ``||grad L_b(W; retain)||`` must not exceed the certificate's
  ``gradient_residual_bound``;
* **budget**: the reported bounds accumulate over a sequential schedule (a release per
  request: the privacy losses add up) until a call says it ``retrained``; the running sum must
  stay within the claim's ``noise_std * epsilon / c``; once it would not, the method has to
  retrain;
* **noise**: the perturbations ``b`` behind the outputs (inherited from the pretrained model,
  or regenerated for a call that retrained) must be as large as the declared ``noise_std``
  (one-sided chi-square test on ``sum(b^2) / noise_std^2`` over every coordinate of every
  model, at ``NOISE_TEST_ALPHA``): a claim of more noise than the models were trained with
  fails. (Every ``b`` comes from a seed the suite knows, so none can be a shared,
  data-dependent shift; that check of earlier versions could no longer fail and is gone.)
  Only a call that retrained has a new ``b``, and it is not the method's to choose: any
  output minimizes *some* perturbed objective exactly, so a freely chosen ``b`` would make the
  residual check vacuous. A retraining draws ``b = fresh_perturbation(context.seed, shape,
  noise_std)``; the suite regenerates it from that call's seed and checks the residual
  against it, and a declared ``perturbation`` that differs fails the check.

One model (zero weights, 3 classes, 4 features), one request, a reported bound far below its
true residual:

>>> claim = CertifiedClaim(epsilon=1.0, delta=1e-5, noise_std=3e-3)
>>> inputs, targets = torch.ones(6, 4, dtype=torch.float64), torch.arange(6) % 3
>>> b = fresh_perturbation(0, (3, 4), claim.noise_std)
>>> weights, certificates = [[torch.zeros(3, 4)]], [[{"gradient_residual_bound": 1e-4}]]
>>> report = check_case(claim, weights, certificates, [b], [(inputs, targets)], l2=1e-2)
>>> report.passed, report.failures[0].split(" (")[0]
(False, 'gradient residual exceeds the reported bound on 1 of 1 models')
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import torch

from ..training import convex
from .claim import CertifiedClaim

#: False-alarm rate of the noise check for an honest method (chi-square lower tail).
NOISE_TEST_ALPHA = 1e-3
#: Float slack when comparing an exact residual with a reported bound.
_RELATIVE_SLACK, _ABSOLUTE_SLACK = 1e-6, 1e-10


def chi_square_lower_quantile(dof: int, alpha: float) -> float:
    """The ``alpha`` quantile of chi-square with ``dof`` degrees of freedom (Wilson-Hilferty;
    relative error below 1e-3 from ``dof`` ~ 100 on, and the checks use tens of thousands)."""
    z = NormalDist().inv_cdf(alpha)
    scale = 2.0 / (9.0 * dof)
    return dof * max(0.0, 1.0 - scale + z * math.sqrt(scale)) ** 3


def chi_square_upper_quantile(dof: int, alpha: float) -> float:
    """The ``1 - alpha`` quantile of chi-square with ``dof`` degrees of freedom."""
    return chi_square_lower_quantile(dof, 1.0 - alpha)


@dataclass(frozen=True)
class ModelCheck:
    """One model's figures after the checked request."""

    residual: float
    reported_bound: float | None
    accumulated_bound: float | None


@dataclass
class WhiteBoxReport:
    """Every model's figures for one (forget set, request) and what failed."""

    models: list[ModelCheck]
    budget: float
    measured_noise_std: float
    declared_noise_std: float
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def max_residual(self) -> float:
        return max(m.residual for m in self.models)

    @property
    def max_accumulated(self) -> float | None:
        sums = [m.accumulated_bound for m in self.models if m.accumulated_bound is not None]
        return max(sums) if sums else None


def _bound(certificate: Mapping[str, Any], where: str) -> float:
    value = certificate.get("gradient_residual_bound")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)  # numpy scalars included
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(
            f"{where}: the certificate has no finite 'gradient_residual_bound' "
            f"(got {value!r}); a claim with noise_std must report one per call"
        )
    if value < 0:
        raise ValueError(f"{where}: 'gradient_residual_bound' is negative ({value})")
    return float(value)


def fresh_perturbation(seed: int, shape: tuple[int, ...], noise_std: float) -> torch.Tensor:
    """The ``b ~ N(0, noise_std^2 I)`` a call that retrains must draw, from its
    ``context.seed`` (float64): the suite regenerates it from the same seed.

    >>> b = fresh_perturbation(7, (10, 64), 3e-3)
    >>> bool(torch.equal(b, fresh_perturbation(7, (10, 64), 3e-3))), tuple(b.shape)
    (True, (10, 64))
    """
    return convex.loss_perturbation(seed, shape, noise_std)


def _perturbation(
    certificate: Mapping[str, Any],
    inherited: torch.Tensor,
    regenerate: Callable[[], torch.Tensor],
    where: str,
) -> torch.Tensor:
    """The ``b`` behind a call's output: inherited, or (after a retraining) the one the suite
    regenerates from the call's seed, which a declared ``perturbation`` must equal."""
    value = certificate.get("perturbation")
    retrained = bool(certificate.get("retrained"))
    if value is None and not retrained:
        return inherited
    if not retrained:
        # Any output minimizes *some* perturbed objective exactly; only a model trained from
        # scratch has a b of its own.
        raise ValueError(
            f"{where}: the certificate names a 'perturbation' without 'retrained': True; a "
            "method keeps the b its input model was trained with unless it retrains"
        )
    fresh = regenerate()
    if value is None:
        return fresh
    if not isinstance(value, torch.Tensor) or value.shape != inherited.shape:
        raise ValueError(
            f"{where}: 'perturbation' must be a tensor of shape {tuple(inherited.shape)}, "
            f"got {getattr(value, 'shape', type(value).__name__)}"
        )
    declared = value.detach().double().cpu()
    if not torch.allclose(declared, fresh, rtol=1e-6, atol=1e-12):
        raise ValueError(
            f"{where}: the certificate declares a retraining, but its 'perturbation' is not "
            "the one the suite regenerates from this call's seed (largest difference "
            f"{float((declared - fresh).abs().max()):.3g}): a retraining must minimize "
            "b = fresh_perturbation(context.seed, shape, noise_std); a b chosen after the "
            "fact makes any output an exact minimizer"
        )
    return fresh


def check_case(
    claim: CertifiedClaim,
    weights: Sequence[Sequence[torch.Tensor]],
    certificates: Sequence[Sequence[Mapping[str, Any]]],
    pretrained_perturbations: Sequence[torch.Tensor],
    retain_sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
    l2: float,
    *,
    call_seeds: Sequence[Sequence[int]] | None = None,
    label: str = "",
) -> WhiteBoxReport:
    """Check the outputs of requests ``1..K`` of every model, judging request ``K``.

    ``weights[m][k]`` is model ``m``'s output after request ``k + 1`` and
    ``certificates[m][k]`` what that call reported; ``retain_sets[k]`` the retain inputs and
    targets of request ``k + 1``; ``pretrained_perturbations[m]`` the ``b`` model ``m`` was
    pretrained with; ``call_seeds[m][k]`` the ``context.seed`` of that call (what a retraining
    draws its ``b`` from; without them no call may claim a retraining).
    """
    if claim.noise_std is None or claim.residual_budget is None:
        raise ValueError("the white-box check needs a claim with noise_std")
    budget = claim.residual_budget
    inputs, targets = retain_sets[-1]
    failures: list[str] = []
    models: list[ModelCheck] = []
    final_perturbations = []
    over_bound: list[tuple[int, float, float]] = []
    over_budget: list[tuple[int, float]] = []
    for m, (outputs, calls) in enumerate(zip(weights, certificates, strict=True)):
        b = pretrained_perturbations[m].double()
        accumulated = 0.0
        bound = None
        try:
            for k, certificate in enumerate(calls):
                where = f"{label} model {m} request {k + 1}".strip()
                b = _perturbation(certificate, b, _regenerator(call_seeds, m, k, b, claim), where)
                bound = _bound(certificate, where)
                accumulated = bound if certificate.get("retrained") else accumulated + bound
        except ValueError as error:
            failures.append(str(error))
            break
        w = outputs[-1].detach().double().cpu().unsqueeze(0)
        grad = convex.gradient(w, inputs, targets, l2, b.unsqueeze(0))
        residual = float(grad.norm())
        models.append(ModelCheck(residual, bound, accumulated))
        final_perturbations.append(b)
        if bound is not None and residual > bound * (1 + _RELATIVE_SLACK) + _ABSOLUTE_SLACK:
            over_bound.append((m, residual, bound))
        if accumulated > budget * (1 + _RELATIVE_SLACK):
            over_budget.append((m, accumulated))
    if over_bound:
        m, residual, bound = max(over_bound, key=lambda item: item[1] / max(item[2], 1e-300))
        failures.append(
            f"gradient residual exceeds the reported bound on {len(over_bound)} of "
            f"{len(weights)} models (worst: model {m}, exact ||grad L_b|| = {residual:.3g} > "
            f"reported {bound:.3g})"
        )
    if over_budget:
        m, accumulated = max(over_budget, key=lambda item: item[1])
        failures.append(
            f"the accumulated residual bound exceeds the claim's budget noise_std * eps / c = "
            f"{budget:.3g} on {len(over_budget)} of {len(weights)} models (worst: model {m}, "
            f"{accumulated:.3g}) without retraining: once the budget is spent the method "
            "must retrain (and say so with certificate['retrained'] = True)"
        )
    measured = float("nan")
    if final_perturbations:
        stacked = torch.stack(final_perturbations)
        statistic = float((stacked**2).sum()) / claim.noise_std**2
        measured = math.sqrt(float((stacked**2).mean()))
        if statistic < chi_square_lower_quantile(stacked.numel(), NOISE_TEST_ALPHA):
            failures.append(
                f"the loss perturbation behind the outputs has standard deviation "
                f"{measured:.3g}, significantly below the declared noise_std "
                f"{claim.noise_std:.3g} (chi-square, {stacked.numel()} coordinates, "
                f"alpha {NOISE_TEST_ALPHA:g}): the method did not add the noise it declares"
            )
    return WhiteBoxReport(models, budget, measured, claim.noise_std, failures)


def _regenerator(
    call_seeds: Sequence[Sequence[int]] | None,
    m: int,
    k: int,
    like: torch.Tensor,
    claim: CertifiedClaim,
) -> Callable[[], torch.Tensor]:
    def regenerate() -> torch.Tensor:
        if call_seeds is None:
            raise ValueError("a retraining was declared, but the calls' seeds are unknown")
        assert claim.noise_std is not None
        return fresh_perturbation(call_seeds[m][k], tuple(like.shape), claim.noise_std)

    return regenerate
