"""summarize(): P95 (linear interpolation), mean, median and point count of one split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pytest_unlearn.metric import KlomSummary, summarize


def test_p95_interpolates_linearly_between_order_statistics() -> None:
    # Rank 0.95 * 4 = 3.8 lies between the 4th (3.0) and 5th (4.0) values.
    assert summarize([4.0, 0.0, 3.0, 1.0, 2.0]).p95 == pytest.approx(3.8)


def test_p95_equals_numpy_percentile() -> None:
    values = np.random.default_rng(0).exponential(size=301)
    assert summarize(values).p95 == np.percentile(values, 95)


def test_mean_median_and_points() -> None:
    assert summarize([0.0, 0.0, 1.0, 7.0]) == KlomSummary(
        p95=pytest.approx(6.1), mean=2.0, median=0.5, points=4
    )


def test_fields_are_plain_python_numbers() -> None:
    summary = summarize(np.array([1.0, 2.0], dtype=np.float32))
    assert type(summary.p95) is float and type(summary.points) is int


def test_torch_tensor_is_accepted() -> None:
    assert summarize(torch.tensor([1.0, 3.0], dtype=torch.float64)).mean == 2.0


def test_nan_is_rejected_with_a_count() -> None:
    with pytest.raises(ValueError, match="2 NaN and 0 infinite of 4 points"):
        summarize([0.1, np.nan, 0.2, np.nan])


def test_infinity_is_rejected() -> None:
    with pytest.raises(ValueError, match="0 NaN and 1 infinite"):
        summarize([0.1, np.inf])


def test_empty_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_two_dimensional_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"1-D.*\(2, 3\)"):
        summarize(np.zeros((2, 3)))


def test_summary_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        summarize([1.0]).p95 = 0.0  # type: ignore[misc]
