"""Summaries of per-point KLoM values: the 95th percentile (the verdict statistic), mean, median.

Call it once per split (forget, retain, validation) on that split's per-point values.

>>> summarize([0.0, 1.0, 2.0, 3.0, 4.0])
KlomSummary(p95=3.8, mean=2.0, median=2.0, points=5)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class KlomSummary:
    """P95 / mean / median of one split's per-point KLoM values, and how many points."""

    p95: float
    mean: float
    median: float
    points: int


def summarize(values: Any) -> KlomSummary:
    """Summarize a 1-D array (numpy, torch or sequence) of per-point KLoM values.

    P95 is ``numpy.percentile(values, 95)`` with linear interpolation. Values must be
    finite: a NaN (e.g. from ``mode="dub"``) is an error, never silently skipped.

    >>> summarize([2.0, 2.0]).p95
    2.0
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be 1-D (one KLoM value per point), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("cannot summarize an empty set of KLoM values")
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(
            f"KLoM values must be finite: {n_nan} NaN and {n_inf} infinite of {arr.size} points"
        )
    return KlomSummary(
        p95=float(np.percentile(arr, 95)),
        mean=float(arr.mean()),
        median=float(np.median(arr)),
        points=int(arr.size),
    )
