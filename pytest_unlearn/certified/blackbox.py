"""Black-box audit of an (epsilon, delta) claim from the models' outputs alone.

A claim of (epsilon, delta)-unlearning says no test can tell an unlearned model from a
retrained one much better than chance: for every rejection region, with ``FPR`` the rate at
which retrained (oracle) models are called "unlearned" and ``FNR`` the rate at which
unlearned models are called "retrained",

    FPR + e^eps * FNR >= 1 - delta   and   FNR + e^eps * FPR >= 1 - delta,

so any test's error rates give ``eps >= eps_lb = max(log((1 - delta - FPR) / FNR),
log((1 - delta - FNR) / FPR))``. The audit builds such tests on the margins of forget points:

1. The unlearned and the oracle models are each split at random into a *selection* half and
   an *evaluation* half.
2. On the selection half, for every forget point and four rule families (margin above ``t``,
   margin below ``t``, margin within ``t`` of the oracles' median, margin further than ``t``
   from it) the threshold ``t`` with the best selection-half ``eps_lb`` is chosen; the
   ``candidates`` best (point, rule, ``t``) are kept.
3. Each candidate is applied once to the evaluation half; its FPR and FNR get one-sided
   Clopper-Pearson upper bounds. **Multiple testing:** points and rules are chosen on data the
   evaluation never sees, and the ``2 * candidates`` bounds are Bonferroni-corrected, each at
   ``alpha / (2 * candidates)``; so, if the claim holds, the reported ``eps_lb`` exceeds epsilon
   with probability at most ``alpha``.

With perfect separation the bounds stay above zero, so a finite N can only refute claims below
:func:`max_refutable_epsilon`: a pass at a larger epsilon is no evidence for the claim.

At N=30 unlearned and 60 oracle models, margins drawn alike refute nothing, and margins that
separate perfectly reach the ceiling (``rng`` is ``numpy.random.default_rng(0)``):

>>> rng = np.random.default_rng(0)
>>> alike = audit_claim(rng.normal(size=(30, 20)), rng.normal(size=(60, 20)), delta=1e-5)
>>> alike.eps_lb, round(alike.max_refutable, 2)
(0.0, 1.47)
>>> apart = audit_claim(rng.normal(size=(30, 20)) + 10, rng.normal(size=(60, 20)), delta=1e-5)
>>> apart.eps_lb == apart.max_refutable
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RULES: tuple[str, ...] = ("above", "below", "near-oracle-median", "far-from-oracle-median")


def _log_binomial_pmf(trials: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(trials + 1, dtype=np.float64)
    log_choose = np.array(
        [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) for k in i]
    )
    return i, log_choose


def binomial_cdf(k: int, n: int, p: float) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, p)``, summed in log space."""
    if k >= n or p <= 0.0:
        return 1.0
    if k < 0 or p >= 1.0:
        return 0.0
    i, log_choose = _log_binomial_pmf(n)
    terms = (log_choose + i * math.log(p) + (n - i) * math.log1p(-p))[: k + 1]
    top = terms.max()
    return float(min(1.0, math.exp(top) * np.exp(terms - top).sum()))


def clopper_pearson_table(trials: int, alpha: float) -> np.ndarray:
    """``clopper_pearson_upper(k, trials, alpha)`` for every ``k = 0..trials`` at once."""
    if trials <= 0:
        raise ValueError("a Clopper-Pearson bound needs at least one trial")
    i, log_choose = _log_binomial_pmf(trials)
    errors = np.arange(trials + 1)
    low, high = errors / trials, np.ones(trials + 1)
    included = i[None, :] <= errors[:, None]  # (k, i): the terms of P(X <= k)
    for _ in range(64):  # bisection, all k together: the CDF falls as p grows
        mid = np.clip((low + high) / 2, 1e-300, 1 - 1e-16)
        terms = log_choose + i * np.log(mid)[:, None] + (trials - i) * np.log1p(-mid)[:, None]
        terms = np.where(included, terms, -np.inf)
        top = terms.max(axis=1, keepdims=True)
        cdf = np.exp(top[:, 0]) * np.exp(terms - top).sum(axis=1)
        above = cdf > alpha
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    high[errors >= trials] = 1.0
    return high


def clopper_pearson_upper(errors: int, trials: int, alpha: float) -> float:
    """The one-sided ``1 - alpha`` Clopper-Pearson upper bound on an error rate.

    >>> round(clopper_pearson_upper(0, 50, 0.05), 4)   # 1 - 0.05 ** (1 / 50)
    0.0582
    """
    if not 0 <= errors <= trials:
        raise ValueError(f"errors must lie in [0, trials], got {errors} of {trials}")
    return float(clopper_pearson_table(trials, alpha)[errors])


def epsilon_lower_bound(fpr: float, fnr: float, delta: float) -> float:
    """``max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR))``, at least 0."""
    best = 0.0
    for a, b in ((fpr, fnr), (fnr, fpr)):
        numerator = 1.0 - delta - a
        if numerator > 0 and b > 0:
            best = max(best, math.log(numerator / b))
    return best


def max_refutable_epsilon(
    n_unlearned: int, n_oracle: int, delta: float, alpha: float = 0.05, candidates: int = 5
) -> float:
    """The largest epsilon an audit of these ensemble sizes can refute: ``eps_lb`` of a test
    that separates the evaluation halves perfectly."""
    level = alpha / (2 * candidates)
    return epsilon_lower_bound(
        clopper_pearson_upper(0, n_oracle - n_oracle // 2, level),
        clopper_pearson_upper(0, n_unlearned - n_unlearned // 2, level),
        delta,
    )


@dataclass(frozen=True)
class Audit:
    """The outcome of :func:`audit_claim` (point indices are columns of the inputs)."""

    eps_lb: float
    max_refutable: float
    point: int
    rule: str
    threshold: float
    false_positives: int  # evaluation oracles called "unlearned"
    oracle_trials: int
    false_negatives: int  # evaluation unlearned models called "retrained"
    unlearned_trials: int
    fpr_upper: float
    fnr_upper: float
    alpha: float
    candidates: int


def _statistics(margins: np.ndarray, center: np.ndarray, rule: str) -> np.ndarray:
    # Larger statistic = "looks unlearned": every rule is "unlearned iff statistic > t".
    if rule == "above":
        return margins
    if rule == "below":
        return -margins
    if rule == "near-oracle-median":
        return -np.abs(margins - center)
    return np.abs(margins - center)


def _best_thresholds(
    unlearned: np.ndarray, oracle: np.ndarray, delta: float, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the threshold with the best ``eps_lb`` on these samples, and that score."""
    pooled = np.concatenate([unlearned, oracle])  # candidate thresholds, (T, P)
    # (T, P): how many of each ensemble lie above each candidate threshold.
    unlearned_above = (unlearned[None, :, :] > pooled[:, None, :]).sum(axis=1)
    oracle_above = (oracle[None, :, :] > pooled[:, None, :]).sum(axis=1)
    n_u, n_o = len(unlearned), len(oracle)
    fnr = clopper_pearson_table(n_u, level)[n_u - unlearned_above]
    fpr = clopper_pearson_table(n_o, level)[oracle_above]
    scores = np.maximum(
        np.log(np.clip(1.0 - delta - fpr, 1e-300, None) / fnr),
        np.log(np.clip(1.0 - delta - fnr, 1e-300, None) / fpr),
    )
    scores = np.where((1.0 - delta - fpr > 0) | (1.0 - delta - fnr > 0), scores, 0.0)
    scores = np.maximum(scores, 0.0)
    best = scores.argmax(axis=0)
    columns = np.arange(pooled.shape[1])
    return pooled[best, columns], scores[best, columns]


def audit_claim(
    unlearned: np.ndarray,
    oracle: np.ndarray,
    delta: float,
    *,
    alpha: float = 0.05,
    candidates: int = 5,
    seed: int = 0,
) -> Audit:
    """Audit an (epsilon, delta) claim on forget-point margins.

    ``unlearned`` is ``(N, P)`` (N unlearned models, P forget points), ``oracle`` ``(M, P)``;
    both need at least 4 models. Returns the largest ``eps_lb`` over the candidates, with
    the test that produced it.
    """
    unlearned = np.asarray(unlearned, dtype=np.float64)
    oracle = np.asarray(oracle, dtype=np.float64)
    if unlearned.ndim != 2 or oracle.ndim != 2 or unlearned.shape[1] != oracle.shape[1]:
        raise ValueError(
            f"margins must be (models, points) with the same points, got {unlearned.shape} "
            f"and {oracle.shape}"
        )
    if min(len(unlearned), len(oracle)) < 4 or unlearned.shape[1] == 0:
        raise ValueError("an audit needs at least 4 models per ensemble and one point")
    rng = np.random.default_rng(seed)
    u_perm, o_perm = rng.permutation(len(unlearned)), rng.permutation(len(oracle))
    u_sel, u_eval = unlearned[u_perm[: len(u_perm) // 2]], unlearned[u_perm[len(u_perm) // 2 :]]
    o_sel, o_eval = oracle[o_perm[: len(o_perm) // 2]], oracle[o_perm[len(o_perm) // 2 :]]
    level = alpha / (2 * candidates)
    center = np.median(o_sel, axis=0)
    fpr_table = clopper_pearson_table(len(o_eval), level)
    fnr_table = clopper_pearson_table(len(u_eval), level)

    ranked = []  # (selection score, rule, point, threshold)
    for rule in RULES:
        thresholds, scores = _best_thresholds(
            _statistics(u_sel, center, rule), _statistics(o_sel, center, rule), delta, level
        )
        ranked += [(scores[p], rule, p, thresholds[p]) for p in range(len(scores))]
    ranked.sort(key=lambda item: -item[0])

    best: Audit | None = None
    for _score, rule, point, threshold in ranked[:candidates]:
        u_stat = _statistics(u_eval[:, point], center[point], rule)
        o_stat = _statistics(o_eval[:, point], center[point], rule)
        false_negatives = int((u_stat <= threshold).sum())
        false_positives = int((o_stat > threshold).sum())
        fpr_upper, fnr_upper = float(fpr_table[false_positives]), float(fnr_table[false_negatives])
        eps_lb = epsilon_lower_bound(fpr_upper, fnr_upper, delta)
        if best is None or eps_lb > best.eps_lb:
            best = Audit(
                eps_lb=eps_lb,
                max_refutable=max_refutable_epsilon(
                    len(unlearned), len(oracle), delta, alpha, candidates
                ),
                point=point,
                rule=rule,
                threshold=float(threshold),
                false_positives=false_positives,
                oracle_trials=len(o_stat),
                false_negatives=false_negatives,
                unlearned_trials=len(u_stat),
                fpr_upper=fpr_upper,
                fnr_upper=fnr_upper,
                alpha=alpha,
                candidates=candidates,
            )
    assert best is not None
    return best
