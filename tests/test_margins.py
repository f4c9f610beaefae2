"""margins(): z_y - logsumexp over the other classes, stable, numpy and torch alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pytest_unlearn.metric import margins


def _naive(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.empty(logits.shape[:-1])
    for idx in np.ndindex(*logits.shape[:-1]):
        z = logits[idx].astype(np.float64)
        y = labels[idx[-1]]
        others = np.delete(z, y)
        out[idx] = z[y] - math.log(np.exp(others).sum())
    return out


def test_known_small_example() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    got = margins(logits, np.array([0, 1]))
    want = [2.0 - math.log(2.0), 1.0 - math.log(1.0 + math.exp(3.0))]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_two_classes_give_the_logit_difference() -> None:
    got = margins(np.array([[0.5, -1.25]]), np.array([1]))
    assert got[0] == pytest.approx(-1.75, abs=1e-15)


def test_matches_naive_formula_for_moderate_logits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(3, 50, 10))
    labels = rng.integers(0, 10, size=50)
    np.testing.assert_allclose(margins(logits, labels), _naive(logits, labels), atol=1e-12)


def test_huge_logits_give_finite_exact_margins() -> None:
    logits = np.array([[1e30, -1e30, 5.0], [-3e38, 3e38, 3e38]], dtype=np.float32)
    got = margins(logits, np.array([0, 0]))
    assert np.isfinite(got).all()
    # log-sum-exp of {3e38, 3e38} is 3e38 + log 2: far below float64 resolution there.
    np.testing.assert_allclose(got, [1e30 - 5.0, -6e38], rtol=1e-7)


def test_opposite_extreme_float64_logits_saturate_instead_of_inf() -> None:
    big = np.finfo(np.float64).max
    got = margins(np.array([[big, -big], [-big, big]]), np.array([0, 0]))
    np.testing.assert_array_equal(got, [big, -big])


def test_non_finite_logits_propagate_for_klom_to_reject() -> None:
    got = margins(np.array([[np.nan, 0.0], [1.0, 0.0]]), np.array([0, 0]))
    assert np.isnan(got[0]) and np.isfinite(got[1])


def test_leading_ensemble_dims_are_vectorized() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 7, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=7)
    got = margins(logits, labels)
    assert got.shape == (2, 3, 7)
    np.testing.assert_allclose(got[1, 2], margins(logits[1, 2], labels), rtol=0, atol=0)


def test_numpy_result_is_float64_and_input_is_untouched() -> None:
    logits = np.array([[1.0, 2.0, 3.0]])
    before = logits.copy()
    got = margins(logits, np.array([2]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(logits, before)


def test_torch_matches_numpy_on_same_device() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=10.0, size=(4, 25, 6)).astype(np.float32)
    labels = rng.integers(0, 6, size=25)
    got = margins(torch.from_numpy(logits), torch.from_numpy(labels))
    assert isinstance(got, torch.Tensor)
    assert got.dtype == torch.float64 and got.device.type == "cpu"
    np.testing.assert_allclose(got.numpy(), margins(logits, labels), atol=1e-12)


def test_torch_accepts_numpy_labels_and_leaves_input_untouched() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    before = logits.clone()
    got = margins(logits, np.array([0]))
    assert got[0].item() == pytest.approx(1.0 - math.log(math.exp(2.0) + math.exp(3.0)))
    assert torch.equal(logits, before)


def test_torch_huge_logits_stay_finite() -> None:
    logits = torch.tensor([[1e30, -1e30, 5.0]], dtype=torch.float32)
    assert torch.isfinite(margins(logits, torch.tensor([1]))).all()


def test_torch_margins_keep_autograd() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]], requires_grad=True)
    margins(logits, torch.tensor([0])).sum().backward()
    assert logits.grad is not None
    assert logits.grad[0, 0].item() == pytest.approx(1.0)


def test_label_count_must_match_points() -> None:
    with pytest.raises(ValueError, match=r"labels must be \(points,\) = \(3,\)"):
        margins(np.zeros((3, 4)), np.array([0, 1]))


def test_labels_out_of_range_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        margins(np.zeros((2, 4)), np.array([0, 4]))


def test_single_class_logits_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        margins(np.zeros((2, 1)), np.array([0, 0]))


def test_float_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="labels must be integers"):
        margins(np.zeros((2, 3)), np.array([0.0, 1.0]))
