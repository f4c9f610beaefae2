"""The black-box audit: Clopper-Pearson bounds, the eps_lb formula, and the audit itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.certified.blackbox import (
    audit_claim,
    binomial_cdf,
    clopper_pearson_table,
    clopper_pearson_upper,
    epsilon_lower_bound,
    max_refutable_epsilon,
)


@given(st.integers(1, 300), st.floats(1e-4, 0.5))
def test_clopper_pearson_with_no_errors_is_the_closed_form(trials: int, alpha: float) -> None:
    assert clopper_pearson_upper(0, trials, alpha) == pytest.approx(
        1 - alpha ** (1 / trials), rel=1e-9
    )


@given(st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_clopper_pearson_bound_leaves_exactly_alpha_below(case: tuple[int, int]) -> None:
    trials, errors = case
    upper = clopper_pearson_upper(errors, trials, 0.05)
    assert errors / trials < upper < 1
    assert binomial_cdf(errors, trials, upper) == pytest.approx(0.05, rel=1e-6)


def test_clopper_pearson_table_rises_with_the_errors_and_ends_at_one() -> None:
    table = clopper_pearson_table(50, 0.01)
    assert np.all(np.diff(table) > 0)
    assert table[-1] == 1.0


def test_clopper_pearson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="errors must lie"):
        clopper_pearson_upper(5, 4, 0.05)


def test_epsilon_lower_bound_is_the_published_formula() -> None:
    fpr, fnr, delta = 0.05, 0.1, 1e-5
    want = max(math.log((1 - delta - fpr) / fnr), math.log((1 - delta - fnr) / fpr))
    assert epsilon_lower_bound(fpr, fnr, delta) == pytest.approx(want)


def test_epsilon_lower_bound_is_zero_for_a_coin_flip() -> None:
    assert epsilon_lower_bound(0.5, 0.5, 1e-5) == 0.0


def test_max_refutable_epsilon_grows_with_the_ensembles() -> None:
    small, large = max_refutable_epsilon(16, 32, 1e-5), max_refutable_epsilon(100, 200, 1e-5)
    assert 0 < small < large < 3.5


def test_audit_of_identical_distributions_refutes_nothing() -> None:
    rng = np.random.default_rng(0)
    audit = audit_claim(rng.normal(size=(100, 36)), rng.normal(size=(200, 36)), 1e-5)
    assert audit.eps_lb < 0.5


def test_audit_catches_outputs_more_concentrated_than_the_oracles() -> None:
    rng = np.random.default_rng(1)
    audit = audit_claim(rng.normal(size=(100, 36)) * 0.01, rng.normal(size=(200, 36)), 1e-5)
    assert audit.rule == "near-oracle-median"
    assert audit.eps_lb > 2.0


def test_audit_catches_a_shift_on_one_point() -> None:
    rng = np.random.default_rng(2)
    unlearned = rng.normal(size=(100, 36))
    unlearned[:, 7] += 6.0
    audit = audit_claim(unlearned, rng.normal(size=(200, 36)), 1e-5)
    assert audit.point == 7 and audit.rule in ("above", "far-from-oracle-median")
    assert audit.eps_lb == pytest.approx(audit.max_refutable)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 3.0))
def test_audit_never_exceeds_what_its_sizes_can_refute(seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    audit = audit_claim(rng.normal(size=(20, 5)) + shift, rng.normal(size=(30, 5)), 1e-5)
    assert 0.0 <= audit.eps_lb <= audit.max_refutable + 1e-12


def test_audit_rejects_mismatched_points() -> None:
    with pytest.raises(ValueError, match="same points"):
        audit_claim(np.zeros((10, 3)), np.zeros((10, 4)), 1e-5)


def test_audit_rejects_tiny_ensembles() -> None:
    with pytest.raises(ValueError, match="at least 4 models"):
        audit_claim(np.zeros((3, 3)), np.zeros((10, 3)), 1e-5)
