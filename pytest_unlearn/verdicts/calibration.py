"""Calibrate a case from the oracle ensembles themselves: the null figures behind a verdict.

The statistic of a case is ``S(U) = P95 over the split's points of KLoM(U || oracle half A)``.
Under exact unlearning the N unlearned models are one more fresh draw of N oracle models, so
given the store's half A, ``S(U)`` and the store's own ``S(half B)`` (the *floor*) are two
independent draws from the same distribution. The test is therefore a paired comparison with
the floor, and both sides share half A: whatever is peculiar about that particular half A (a
narrow range on some points, say) moves both alike instead of failing an honest method.

Their difference ``S(U) - floor`` is symmetric about 0 with standard deviation ``sqrt(2) *
sigma``, where ``sigma`` is the spread of the statistic between fresh ensembles. ``sigma`` is
estimated by the standard deviation of ``S`` over random half-splits of the pooled 2N oracles
(:data:`RESAMPLES` of them, seeded per case). That spread also contains the variation of the
comparison half itself, so it over-estimates ``sigma``: the test errs towards passing exact
retraining (docs/verdicts.md has the measured sizes). With ``z`` the standard normal quantile
of ``1 - alpha``::

    threshold       = floor + z * sqrt(2) * sigma     (above: distinguishable from retraining)
    lower_threshold = floor - z * sqrt(2) * sigma     (below: closer than retraining can be)

each tail at the stated per-test level ``alpha`` (:data:`ALPHA`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> half_a, half_b = rng.normal(size=(30, 200)), rng.normal(size=(30, 200))
>>> cal = calibrate(half_a, half_b, pretrained=half_a + 2.0, seed=0)
>>> cal.threshold > cal.floor > cal.lower_threshold, cal.separable
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from ..metric import KLOM_MAX, klom

#: The false-fail level of each tail of each test, for an exactly unlearning method.
ALPHA = 1e-3
#: Random half-splits of the pooled oracles that estimate the statistic's spread.
RESAMPLES = 200
#: Splits scored per KLoM call (stacked along the points): amortizes the per-call overhead.
_SPLITS_PER_CALL = 16


@dataclass(frozen=True)
class Calibration:
    """The figures behind one case's verdict (all P95 KLoM over the split's points, against
    oracle half A), and the thresholds they give at level ``alpha`` per tail.

    >>> cal = Calibration(n_models=100, floor=0.8, null_median=0.8, null_sd=0.05,
    ...                   null_max=0.95, do_nothing=5.0)
    >>> round(cal.threshold, 3), cal.conclusive
    (1.019, True)
    """

    n_models: int
    floor: float  # oracle half B vs half A
    null_median: float  # median over random half-splits of the pooled oracles
    null_sd: float  # their standard deviation: the estimate of sigma
    null_max: float  # the largest of them
    do_nothing: float  # pretrained ensemble vs half A
    alpha: float = ALPHA

    @property
    def margin(self) -> float:
        """``z * sqrt(2) * sigma``: how far from the floor exact retraining lands with
        probability ``alpha`` on each side."""
        return NormalDist().inv_cdf(1.0 - self.alpha) * math.sqrt(2.0) * self.null_sd

    @property
    def threshold(self) -> float:
        return self.floor + self.margin

    @property
    def lower_threshold(self) -> float:
        return self.floor - self.margin

    @property
    def gap(self) -> float:
        """How far do-nothing lies from what exact retraining scores (the floor)."""
        return self.do_nothing - self.floor

    def score(self, p95: float) -> float | None:
        """The share of the gap between do-nothing and exact retraining a method closes, in
        percent: 100 = as close as retraining (the floor), 0 = do-nothing, negative = worse.
        None where there is no gap (do-nothing within the noise of retraining).

        >>> Calibration(100, floor=1.0, null_median=1.0, null_sd=0.1, null_max=1.3,
        ...             do_nothing=5.0).score(2.0)
        75.0
        """
        if self.gap <= self.margin or self.gap <= 0:
            return None
        return 100.0 * (self.do_nothing - p95) / self.gap

    @property
    def score_band(self) -> float | None:
        """The score's noise band at the test's level, in percentage points: exact retraining
        scores 100 +- this, and a score below 100 minus it is a FAIL."""
        if self.gap <= self.margin or self.gap <= 0:
            return None
        return 100.0 * self.margin / self.gap

    @property
    def can_fail(self) -> bool:
        """Whether any unlearned ensemble can score above the threshold (KLoM is at most
        ``ln(1/eps)``; at very small N the threshold lies beyond it)."""
        return self.threshold < KLOM_MAX

    @property
    def can_fail_low(self) -> bool:
        """Whether a score can fall below the lower threshold (KLoM is at least 0)."""
        return self.lower_threshold > 0.0

    @property
    def separable(self) -> bool:
        """Whether do-nothing (the pretrained ensemble) fails this case, i.e. whether a pass
        shows any forgetting at all."""
        return self.do_nothing > self.threshold

    @property
    def conclusive(self) -> bool:
        """Whether a pass means something: the case can fail, and do-nothing fails it."""
        return self.can_fail and self.separable


def p95_klom(unlearned: Any, oracle: Any) -> float:
    """The statistic: P95 over points of KLoM(unlearned || oracle), for (models, points)."""
    return float(np.percentile(np.asarray(klom(_numpy(unlearned), _numpy(oracle))), 95))


def null_draws(half_a: Any, half_b: Any, resamples: int, seed: int) -> np.ndarray:
    """``S`` between the two halves of ``resamples`` random half-splits of the pooled oracles.

    Several splits go through one KLoM call, side by side along the points axis (KLoM is
    computed per point), which is several times faster than one call per split.
    """
    a, b = _numpy(half_a), _numpy(half_b)
    pooled = np.concatenate([a, b])
    n, points = len(a), a.shape[1]
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, _SPLITS_PER_CALL):
        count = min(_SPLITS_PER_CALL, resamples - start)
        orders = np.stack([rng.permutation(len(pooled)) for _ in range(count)])
        side_x = pooled[orders[:, :n]].transpose(1, 0, 2).reshape(n, count * points)
        side_y = pooled[orders[:, n:]].transpose(1, 0, 2).reshape(-1, count * points)
        values = np.asarray(klom(side_x, side_y)).reshape(count, points)
        draws.append(np.percentile(values, 95, axis=1))
    return np.concatenate(draws)


def calibrate(
    half_a: Any,
    half_b: Any,
    pretrained: Any,
    *,
    seed: int,
    resamples: int = RESAMPLES,
    alpha: float = ALPHA,
) -> Calibration:
    """Calibrate one split: every argument is a (models, split points) margin array/tensor."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
    draws = null_draws(half_a, half_b, resamples, seed)
    return Calibration(
        n_models=len(half_a),
        floor=p95_klom(half_b, half_a),
        null_median=float(np.median(draws)),
        null_sd=float(np.std(draws, ddof=1)) if len(draws) > 1 else 0.0,
        null_max=float(draws.max()),
        do_nothing=p95_klom(pretrained, half_a),
        alpha=alpha,
    )


def _numpy(margins: Any) -> np.ndarray:
    if hasattr(margins, "detach"):  # a torch tensor, possibly on a GPU
        margins = margins.detach().cpu().numpy()
    return np.asarray(margins)
