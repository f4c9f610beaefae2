"""Certified checks through the suite: collected only for a claiming method, and verdicts on
the example methods (``certified_newton`` passes, ``overclaiming`` fails)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import IDENTITY_METHOD, output, unlearn_args

from pytest_unlearn.benchmarks import get_benchmark
from pytest_unlearn.store import load_or_build

BENCHMARK = "digits-logreg-perturbed"
#: The smallest N of the measured sizes at which the audit can refute epsilon = 1
#: (max_refutable_epsilon(30, 60, 1e-5) = 1.47; at N=16 it is 0.60).
MODELS = 30
CLAIMING_IDENTITY = (
    "from pytest_unlearn.certified import certified\n"
    "@certified(epsilon=1.0, delta=1e-5)\n" + IDENTITY_METHOD
)


@pytest.fixture(scope="module")
def perturbed_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("perturbed-cache")
    load_or_build(get_benchmark(BENCHMARK), MODELS, cache, log=lambda message: None)
    return cache


def _ids(result: pytest.RunResult) -> list[str]:
    return [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_" in line]


def test_a_method_without_a_claim_gets_no_certified_tests(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache), "--collect-only", "-q"
    )
    assert result.ret == 0
    assert not any("test_certified" in line for line in result.outlines)


def test_a_claim_on_an_sgd_benchmark_gets_the_audit_only(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=CLAIMING_IDENTITY)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache), "--collect-only", "-q"
    )
    certified = [i for i in _ids(result) if i.endswith(("-blackbox", "-whitebox"))]
    assert certified == [
        "digits-mlp-knn36-blackbox",
        "digits-mlp-random36-blackbox",
        "digits-mlp-seq3x12-req1-blackbox",
        "digits-mlp-seq3x12-req2-blackbox",
        "digits-mlp-seq3x12-req3-blackbox",
    ]


def _run_certified(
    pytester: pytest.Pytester, cache: Path, method: str, *args: str
) -> pytest.RunResult:
    return pytester.runpytest(
        f"--unlearn-method={method}",
        f"--unlearn-benchmark={BENCHMARK}",
        *unlearn_args(cache, MODELS),
        "-m",
        "certified",
        *args,
    )


def test_certified_newton_passes_its_claim(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    result = _run_certified(with_examples, perturbed_cache, "examples.certified_newton:unlearn")
    result.assert_outcomes(passed=10, deselected=15)
    assert "pytest-unlearn certified claim" in output(result)


def test_the_audit_can_refute_the_examples_claim_at_this_n() -> None:
    from pytest_unlearn.certified import max_refutable_epsilon

    assert max_refutable_epsilon(MODELS, 2 * MODELS, 1e-5) > 1.0


def test_the_black_box_audit_refutes_overclaiming(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    """Stripping the training noise concentrates the outputs: some held-out test on a forget
    point tells them from the oracles beyond what epsilon = 1 allows."""
    result = _run_certified(
        with_examples, perturbed_cache, "examples.overclaiming:unlearn", "-k", "blackbox"
    )
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert failed and all("blackbox" in line for line in failed)
    assert "black-box audit refutes the claim (epsilon=1, delta=1e-05)" in output(result)


def test_a_passing_audit_that_could_not_refute_the_claim_is_inconclusive(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    """At N=8 the audit can refute no epsilon above 0: its pass would prove nothing."""
    result = with_examples.runpytest(
        "--unlearn-method=examples.overclaiming:unlearn",
        f"--unlearn-benchmark={BENCHMARK}",
        *unlearn_args(perturbed_cache, 8),
        "-m",
        "certified",
        "-k",
        "knn36-blackbox",
        "-rs",
    )
    result.assert_outcomes(skipped=1, deselected=24)
    assert "the black-box audit can refute only claims of epsilon below 0.000" in output(result)


FAKE_RETRAIN = """
import torch
from pytest_unlearn.certified import certified
from pytest_unlearn.training import convex


@certified(epsilon=1.0, delta=1e-5, noise_std=3e-3)
def unlearn(model, forget, retain, context):
    # Never retrains: one Newton step towards the *unperturbed* retain minimizer, then it
    # declares a retraining with the b its output happens to minimize exactly.
    l2 = context.recipe.weight_decay
    w = model.weight.detach().double().cpu()
    x, y = retain.inputs.double().cpu(), retain.targets.cpu()
    g = convex.gradient(w[None], x, y, l2)[0]
    new = (w - torch.linalg.solve(convex.hessian(w, x, l2), g.flatten()).view_as(w)).float()
    b = -convex.gradient(new.double()[None], x, y, l2)[0]
    with torch.no_grad():
        model.weight.copy_(new)
    certificate = {"gradient_residual_bound": 1e-9, "retrained": True}
    if DECLARE_B:
        certificate["perturbation"] = b
    context.certificate.update(certificate)
    return model
"""


def test_a_fake_retraining_with_a_chosen_perturbation_fails_the_white_box_check(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    with_examples.makepyfile(mymethod="DECLARE_B = True\n" + FAKE_RETRAIN)
    result = _run_certified(
        with_examples, perturbed_cache, "mymethod:unlearn", "-k", "knn36-whitebox"
    )
    result.assert_outcomes(failed=1, deselected=24)
    assert "its 'perturbation' is not the one the suite regenerates" in output(result)


def test_a_fake_retraining_without_a_perturbation_fails_on_the_regenerated_one(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    with_examples.makepyfile(mymethod="DECLARE_B = False\n" + FAKE_RETRAIN)
    result = _run_certified(
        with_examples, perturbed_cache, "mymethod:unlearn", "-k", "knn36-whitebox"
    )
    result.assert_outcomes(failed=1, deselected=24)
    assert "exceeds the reported bound" in output(result)


def test_overclaiming_fails_every_white_box_check(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    result = _run_certified(
        with_examples, perturbed_cache, "examples.overclaiming:unlearn", "-k", "whitebox"
    )
    result.assert_outcomes(failed=5, deselected=20)
    assert output(result).count("exceeds the reported bound") >= 5


SPENDTHRIFT = """
from examples.certified_newton import newton_removal
from pytest_unlearn.certified import CertifiedClaim, certified

GENEROUS = CertifiedClaim(epsilon=1000.0, delta=1e-5, noise_std=3e-3)


@certified(epsilon=0.2, delta=1e-5, noise_std=3e-3)
def unlearn(model, forget, retain, context):
    # Budgets by a far larger epsilon than it claims: it never retrains.
    return newton_removal(model, forget, retain, context, claim=GENEROUS)
"""

FRUGAL = """
from examples.certified_newton import newton_removal
from pytest_unlearn.certified import CertifiedClaim, certified

CLAIM = CertifiedClaim(epsilon=0.2, delta=1e-5, noise_std=3e-3)


@certified(epsilon=0.2, delta=1e-5, noise_std=3e-3)
def unlearn(model, forget, retain, context):
    return newton_removal(model, forget, retain, context, claim=CLAIM)
"""


def test_a_method_that_never_retrains_overspends_its_budget(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    with_examples.makepyfile(mymethod=SPENDTHRIFT)
    result = _run_certified(
        with_examples, perturbed_cache, "mymethod:unlearn", "-k", "seq3x12 and whitebox"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "must retrain" in output(result)


def test_the_same_method_retraining_when_the_budget_is_spent_passes(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    with_examples.makepyfile(mymethod=FRUGAL)
    result = _run_certified(
        with_examples, perturbed_cache, "mymethod:unlearn", "-k", "seq3x12 and whitebox"
    )
    result.assert_outcomes(passed=3, deselected=22)


def test_a_claim_on_a_method_from_the_hook_counts(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makeconftest(
        "from pytest_unlearn.certified import certified\n"
        "@certified(epsilon=1.0, delta=1e-5)\n"
        "def _unlearn(model, forget, retain, context):\n"
        "    return model\n"
        "def pytest_unlearn_method(config):\n"
        "    return _unlearn\n"
    )
    result = pytester.runpytest(*unlearn_args(unlearn_cache), "--collect-only", "-q")
    assert "digits-mlp-knn36-blackbox" in _ids(result)


def test_the_json_report_lists_the_certified_checks(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    from pytest_unlearn.report.json_report import load_report

    report_path = with_examples.path / "unlearn.json"
    _run_certified(
        with_examples,
        perturbed_cache,
        "examples.overclaiming:unlearn",
        "-k",
        "knn36",
        f"--unlearn-report={report_path}",
    )
    report = load_report(report_path)
    records = {r["test_id"]: r for r in report["certified_records"]}
    assert sorted(records) == [
        "digits-logreg-perturbed-knn36-blackbox",
        "digits-logreg-perturbed-knn36-whitebox",
    ]
    whitebox = records["digits-logreg-perturbed-knn36-whitebox"]
    assert whitebox["outcome"] == "failed" and whitebox["verdict"] == "FAIL"
    assert whitebox["max_gradient_residual"] > whitebox["residual_budget"]
    assert "exceeds the reported bound" in whitebox["message"]
    assert report["records"] == []  # -m certified deselected every KLoM test


def test_the_audit_is_skipped_with_its_reason_below_four_models(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    pytester.makepyfile(mymethod=CLAIMING_IDENTITY)
    result = pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        *unlearn_args(unlearn_cache, 2),
        "-m",
        "certified",
        "-k",
        "knn36",
        "-rs",
    )
    result.assert_outcomes(skipped=1, deselected=19)
    assert "needs at least 4 models per ensemble (--unlearn-models=2)" in output(result)


def test_a_numpy_scalar_bound_is_read_as_a_number() -> None:
    import numpy as np
    import torch

    from pytest_unlearn.certified import CertifiedClaim, check_case

    weight = torch.zeros(1, 2, 3, dtype=torch.float64)
    report = check_case(
        CertifiedClaim(1.0, 1e-5, 1.0),
        [[weight[0]]],
        [[{"gradient_residual_bound": np.float32(10.0)}]],
        [torch.zeros(2, 3, dtype=torch.float64)],
        [(torch.rand(5, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 0]))],
        1e-2,
    )
    assert report.models[0].reported_bound == 10.0


def test_under_xdist_the_certified_checks_match_a_serial_run(
    with_examples: pytest.Pytester, perturbed_cache: Path
) -> None:
    """Workers that split the calls hand the checks the same outputs and certificates (the
    white-box checks read every returned model and its perturbation tensor)."""
    pytest.importorskip("xdist")
    from pytest_unlearn.report.json_report import load_report

    records = []
    for workers in ("0", "2"):
        report_path = with_examples.path / f"unlearn-{workers}.json"
        result = with_examples.runpytest_subprocess(
            "--unlearn-method=examples.certified_newton:unlearn",
            f"--unlearn-benchmark={BENCHMARK}",
            *unlearn_args(perturbed_cache, MODELS),
            "--unlearn-threads=1",
            "-m",
            "certified",
            "-k",
            "seq3x12",  # the chains: certificates with history, retrains with perturbations
            f"--unlearn-report={report_path}",
            "-n",
            workers,
            "--dist",
            "load",
        )
        outcomes = result.parseoutcomes()  # xdist reports no "deselected" count
        assert (outcomes.get("passed"), outcomes.get("failed")) == (6, None), outcomes
        figures = ("outcome", "verdict", "eps_lb", "max_gradient_residual", "residual_budget")
        records.append(
            {
                r["test_id"]: {k: r.get(k) for k in figures}
                for r in load_report(report_path)["certified_records"]
            }
        )
    assert records[0] == records[1]
    assert len(records[0]) == 6
