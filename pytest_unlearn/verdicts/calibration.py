"""Calibrate a KLoM threshold from the oracle ensembles themselves.

The statistic is P95 over a split's points of KLoM(unlearned || oracle half A). Under exact
unlearning the unlearned ensemble is just another draw of N oracle models, so its statistic
follows the *null distribution*: the P95 KLoM between two independent N-model oracle
ensembles. One such draw (half B vs half A) is the reported noise floor, but a single draw is
itself noisy (docs/verdicts.md), so the threshold comes from many: the 2N oracle models are pooled
and split at random into two halves ``resamples`` times, and

    threshold = SAFETY x max(null draws)

Do-nothing (the pretrained ensemble) is scored the same way; when its P95 does not exceed the
threshold the case cannot tell do-nothing from exact unlearning, and is reported as such
(``separable=False``) rather than pretending to test forgetting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metric import klom

#: Random half-splits of the pooled oracles that estimate the null distribution.
RESAMPLES = 100
#: Headroom over the largest null draw: covers the variation of the comparison half A
#: itself, which the pooled resampling averages over (see docs/verdicts.md).
SAFETY = 1.25


@dataclass(frozen=True)
class Calibration:
    """The figures behind one case's threshold (all P95 KLoM over the split's points)."""

    floor: float  # oracle half B vs half A
    null_median: float  # median over random half-splits of the pooled oracles
    null_max: float  # largest of those draws
    do_nothing: float  # pretrained ensemble vs half A
    threshold: float

    @property
    def separable(self) -> bool:
        """Whether do-nothing fails this case, i.e. whether it tests forgetting at all."""
        return self.do_nothing > self.threshold


def _p95(unlearned: torch.Tensor, oracle: torch.Tensor) -> float:
    return float(np.percentile(klom(unlearned, oracle).cpu().numpy(), 95))


def calibrate(
    half_a: torch.Tensor,
    half_b: torch.Tensor,
    pretrained: torch.Tensor,
    *,
    seed: int,
    resamples: int = RESAMPLES,
) -> Calibration:
    """Calibrate one split: every argument is a (models, split points) margin tensor.

    >>> cal = calibrate(a[:, forget], b[:, forget], pre[:, forget], seed=0)  # doctest: +SKIP
    >>> cal.threshold >= cal.null_max
    True
    """
    n = len(half_a)
    pooled = torch.cat([half_a, half_b])
    generator = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(resamples):
        order = torch.randperm(len(pooled), generator=generator)
        draws.append(_p95(pooled[order[:n]], pooled[order[n:]]))
    null_max = max(draws)
    return Calibration(
        floor=_p95(half_b, half_a),
        null_median=float(np.median(draws)),
        null_max=null_max,
        do_nothing=_p95(pretrained, half_a),
        threshold=SAFETY * null_max,
    )
