"""White-box checks: the convex objective's derivatives, and each rule of ``check_case``."""

from __future__ import annotations

import pytest
import torch

from pytest_unlearn.certified import CertifiedClaim, check_case
from pytest_unlearn.training import convex

L2, SIGMA, MODELS = 1e-2, 3e-3, 40
CLAIM = CertifiedClaim(epsilon=1.0, delta=1e-5, noise_std=SIGMA)


@pytest.fixture(scope="module")
def problem() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(200, 5, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (200,), generator=generator)
    b0 = torch.stack([convex.loss_perturbation(seed, (3, 5), SIGMA) for seed in range(MODELS)])
    retain = torch.arange(10, 200)
    return {
        "inputs": inputs,
        "targets": targets,
        "b0": b0,
        "retain": retain,
        # Request 1 deletes points 0..9; the honest output is the exact retain minimizer.
        "exact": convex.solve(inputs[retain], targets[retain], L2, b0),
    }


def _check(problem, weights, certificates, b0=None):
    retain = problem["retain"]
    return check_case(
        CLAIM,
        [[w] for w in weights],
        [[c] for c in certificates],
        list(problem["b0"] if b0 is None else b0),
        [(problem["inputs"][retain], problem["targets"][retain])],
        L2,
    )


def test_gradient_is_the_autograd_gradient_of_the_objective(problem) -> None:
    w = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    b = problem["b0"][:2]
    value = convex.objective(w, problem["inputs"], problem["targets"], L2, b).sum()
    (autograd,) = torch.autograd.grad(value, w)
    exact = convex.gradient(w.detach(), problem["inputs"], problem["targets"], L2, b)
    torch.testing.assert_close(exact, autograd, rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_matches_the_explicit_hessian(problem) -> None:
    w, v = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    explicit = convex.hessian(w, problem["inputs"], L2) @ v.flatten()
    product = convex.hessian_vector(w[None], problem["inputs"], L2, v[None])[0]
    torch.testing.assert_close(product.flatten(), explicit, rtol=1e-10, atol=1e-12)


def test_solve_reaches_a_vanishing_gradient(problem) -> None:
    retain = problem["retain"]
    grad = convex.gradient(
        problem["exact"], problem["inputs"][retain], problem["targets"][retain], L2, problem["b0"]
    )
    assert grad.flatten(1).norm(dim=1).max() < 1e-10


def test_exact_outputs_with_honest_bounds_pass(problem) -> None:
    report = _check(problem, problem["exact"], [{"gradient_residual_bound": 1e-9}] * MODELS)
    assert report.passed, report.failures
    assert report.max_residual < 1e-9


def test_a_bound_below_the_exact_residual_fails(problem) -> None:
    moved = problem["exact"] + 1e-3
    report = _check(problem, moved, [{"gradient_residual_bound": 1e-9}] * MODELS)
    assert any("exceeds the reported bound" in failure for failure in report.failures)


def test_a_missing_bound_fails_with_its_name(problem) -> None:
    report = _check(problem, problem["exact"], [{}] * MODELS)
    assert "gradient_residual_bound" in report.failures[0]


def test_bounds_beyond_the_budget_without_retraining_fail(problem) -> None:
    certificates = [{"gradient_residual_bound": 2 * CLAIM.residual_budget}] * MODELS
    report = _check(problem, problem["exact"], certificates)
    assert any("must retrain" in failure for failure in report.failures)


def test_bounds_accumulate_over_requests_until_a_retrain(problem) -> None:
    half = {"gradient_residual_bound": 0.6 * CLAIM.residual_budget}
    retain = (problem["inputs"][problem["retain"]], problem["targets"][problem["retain"]])
    outputs = [[w, w] for w in problem["exact"]]
    spent = check_case(
        CLAIM, outputs, [[half, half]] * MODELS, list(problem["b0"]), [retain, retain], L2
    )
    assert any("must retrain" in failure for failure in spent.failures)
    retrained = [[half, {**half, "retrained": True, "perturbation": b}] for b in problem["b0"]]
    fresh = check_case(CLAIM, outputs, retrained, list(problem["b0"]), [retain, retain], L2)
    assert fresh.passed, fresh.failures


def test_a_new_perturbation_without_retraining_is_refused(problem) -> None:
    certificates = [{"gradient_residual_bound": 1e-9, "perturbation": b} for b in problem["b0"]]
    report = _check(problem, problem["exact"], certificates)
    assert "without 'retrained'" in report.failures[0]


def test_less_noise_than_declared_fails(problem) -> None:
    small = problem["b0"] / 100
    retain = problem["retain"]
    exact = convex.solve(problem["inputs"][retain], problem["targets"][retain], L2, small)
    certificates = [
        {"gradient_residual_bound": 1e-9, "retrained": True, "perturbation": b} for b in small
    ]
    report = _check(problem, exact, certificates)
    assert any("did not add the noise it declares" in failure for failure in report.failures)


def test_a_shared_data_dependent_perturbation_fails(problem) -> None:
    shifted = problem["b0"] + 5 * SIGMA  # the same offset in every model: not fresh noise
    retain = problem["retain"]
    exact = convex.solve(problem["inputs"][retain], problem["targets"][retain], L2, shifted)
    certificates = [
        {"gradient_residual_bound": 1e-9, "retrained": True, "perturbation": b} for b in shifted
    ]
    report = _check(problem, exact, certificates)
    assert any("common shift" in failure for failure in report.failures)


def test_white_box_needs_a_claim_with_noise(problem) -> None:
    with pytest.raises(ValueError, match="noise_std"):
        check_case(CertifiedClaim(1.0, 1e-5), [], [], [], [(None, None)], L2)
