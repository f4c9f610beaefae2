"""White-box checks: the convex objective's derivatives, and each rule of ``check_case``."""

from __future__ import annotations

import pytest
import torch

from pytest_unlearn.certified import CertifiedClaim, check_case, fresh_perturbation
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


def _retrained(problem, seeds: list[int]) -> torch.Tensor:
    """Honest retrainings: each model the exact minimizer for the b its call's seed gives."""
    retain = problem["retain"]
    fresh = torch.stack([fresh_perturbation(seed, (3, 5), SIGMA) for seed in seeds])
    return convex.solve(problem["inputs"][retain], problem["targets"][retain], L2, fresh)


def _two_requests(problem, outputs, certificates, seeds):
    retain = (problem["inputs"][problem["retain"]], problem["targets"][problem["retain"]])
    return check_case(
        CLAIM, outputs, certificates, list(problem["b0"]), [retain, retain], L2,
        call_seeds=[[1000 + m, seed] for m, seed in enumerate(seeds)],
    )  # fmt: skip


SEEDS = [5000 + m for m in range(MODELS)]


def test_bounds_accumulate_over_requests_until_a_retrain(problem) -> None:
    half = {"gradient_residual_bound": 0.6 * CLAIM.residual_budget}
    outputs = [[w, w] for w in problem["exact"]]
    spent = _two_requests(problem, outputs, [[half, half]] * MODELS, SEEDS)
    assert any("must retrain" in failure for failure in spent.failures)
    retrained = [[w, r] for w, r in zip(problem["exact"], _retrained(problem, SEEDS), strict=True)]
    restart = {"gradient_residual_bound": 1e-9, "retrained": True}
    fresh = _two_requests(problem, retrained, [[half, restart]] * MODELS, SEEDS)
    assert fresh.passed, fresh.failures


def test_a_retraining_may_declare_the_perturbation_its_seed_gives(problem) -> None:
    outputs = [[w, r] for w, r in zip(problem["exact"], _retrained(problem, SEEDS), strict=True)]
    certificates = [
        [{"gradient_residual_bound": 1e-9}, {"gradient_residual_bound": 1e-9, "retrained": True,
                                             "perturbation": fresh_perturbation(s, (3, 5), SIGMA)}]
        for s in SEEDS
    ]  # fmt: skip
    report = _two_requests(problem, outputs, certificates, SEEDS)
    assert report.passed, report.failures


def test_a_retraining_that_chooses_its_perturbation_fails(problem) -> None:
    """The cheat: no retraining, but a declared one, with the b the output happens to minimize."""
    moved = problem["exact"] + 1e-3
    retain = problem["retain"]
    inputs, targets = problem["inputs"][retain], problem["targets"][retain]
    chosen = -convex.gradient(moved, inputs, targets, L2)  # moved minimizes L_b exactly
    outputs = [[w, w] for w in moved]
    certificates = [
        [{"gradient_residual_bound": 1e-9},
         {"gradient_residual_bound": 1e-9, "retrained": True, "perturbation": b}]
        for b in chosen
    ]  # fmt: skip
    report = _two_requests(problem, outputs, certificates, SEEDS)
    assert any("not the one the suite regenerates" in failure for failure in report.failures)


def test_a_declared_retraining_is_checked_against_the_regenerated_perturbation(problem) -> None:
    moved = problem["exact"] + 1e-3
    outputs = [[w, w] for w in moved]
    restart = {"gradient_residual_bound": 1e-9, "retrained": True}
    report = _two_requests(problem, outputs, [[restart, restart]] * MODELS, SEEDS)
    assert any("exceeds the reported bound" in failure for failure in report.failures)


def test_a_retraining_without_known_call_seeds_cannot_be_checked(problem) -> None:
    restart = {"gradient_residual_bound": 1e-9, "retrained": True}
    report = _check(problem, problem["exact"], [restart] * MODELS)
    assert "seeds are unknown" in report.failures[0]


def test_a_new_perturbation_without_retraining_is_refused(problem) -> None:
    certificates = [{"gradient_residual_bound": 1e-9, "perturbation": b} for b in problem["b0"]]
    report = _check(problem, problem["exact"], certificates)
    assert "without 'retrained'" in report.failures[0]


def test_a_claim_of_more_noise_than_the_models_were_trained_with_fails(problem) -> None:
    loud = CertifiedClaim(epsilon=1.0, delta=1e-5, noise_std=10 * SIGMA)
    retain = (problem["inputs"][problem["retain"]], problem["targets"][problem["retain"]])
    report = check_case(
        loud, [[w] for w in problem["exact"]], [[{"gradient_residual_bound": 1e-9}]] * MODELS,
        list(problem["b0"]), [retain], L2,
    )  # fmt: skip
    assert any("did not add the noise it declares" in failure for failure in report.failures)


def test_the_declared_noise_level_of_honest_perturbations_passes(problem) -> None:
    report = _check(problem, problem["exact"], [{"gradient_residual_bound": 1e-9}] * MODELS)
    assert not any("noise" in failure for failure in report.failures)
    assert report.measured_noise_std == pytest.approx(SIGMA, rel=0.1)


def test_white_box_needs_a_claim_with_noise(problem) -> None:
    with pytest.raises(ValueError, match="noise_std"):
        check_case(CertifiedClaim(1.0, 1e-5), [], [], [], [(None, None)], L2)
