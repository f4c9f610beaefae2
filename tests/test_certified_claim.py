"""Declaring a certified claim: the decorator, its validation, and how the plugin reads it."""

from __future__ import annotations

import math

import pytest

from pytest_unlearn.certified import CertifiedClaim, certified, claim_of


def test_decorator_attaches_the_claim_and_returns_the_method() -> None:
    def unlearn(model, forget, retain, context):
        return model

    decorated = certified(epsilon=0.5, delta=1e-6, noise_std=0.01, lipschitz=0.25)(unlearn)
    assert decorated is unlearn
    assert claim_of(unlearn) == CertifiedClaim(0.5, 1e-6, 0.01, {"lipschitz": 0.25})


def test_a_method_without_a_claim_has_none() -> None:
    assert claim_of(lambda model, forget, retain, context: model) is None


def test_residual_budget_is_noise_times_epsilon_over_c() -> None:
    claim = CertifiedClaim(2.0, 1e-5, 0.01)
    assert claim.residual_budget == pytest.approx(0.01 * 2.0 / math.sqrt(2 * math.log(1.5e5)))


def test_a_claim_without_noise_has_no_budget() -> None:
    assert CertifiedClaim(1.0, 1e-5).residual_budget is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 0.0, "delta": 1e-5}, "epsilon > 0"),
        ({"epsilon": math.inf, "delta": 1e-5}, "epsilon > 0"),
        ({"epsilon": 1.0, "delta": 1.0}, "0 < delta < 1"),
        ({"epsilon": 1.0, "delta": 1e-5, "noise_std": -1.0}, "noise_std must be > 0"),
    ],
)
def test_an_impossible_claim_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CertifiedClaim(**kwargs)


def test_a_malformed_claim_attribute_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        mymethod="def unlearn(model, forget, retain, context):\n    return model\n"
        "unlearn.unlearn_claim = {'epsilon': 1.0}\n"
    )
    result = pytester.runpytest("--unlearn-method=mymethod:unlearn", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "CertifiedClaim" in result.stderr.str()
