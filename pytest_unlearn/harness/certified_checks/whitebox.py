"""The ``whitebox`` check: the residual, budget, retraining and noise checks of
:mod:`pytest_unlearn.certified.whitebox`, on benchmarks with an exact convex objective
(``benchmark.objective``) for claims that state their ``noise_std``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...certified import check_case
from ...training import model_seed
from ..method_runner import call_seed, request_splits
from .base import CheckOutcome, Column, claim_text, where_text

if TYPE_CHECKING:
    from ...benchmarks import Benchmark
    from ...certified import CertifiedClaim
    from ...store import Ensembles
    from ..cases import CertifiedCase
    from ..method_runner import MethodRun


class WhiteBoxChecks:
    """Holds every model's output after ``case.request`` to the certificates it reported."""

    name = "whitebox"
    columns = (
        Column("residual", "max_gradient_residual", ".2e",
               "residual = largest exact gradient residual"),
        Column("budget", "residual_budget", ".2e", "budget = noise_std * eps / c"),
    )  # fmt: skip

    def applies(self, benchmark: Benchmark, claim: CertifiedClaim | None) -> bool:
        exact = getattr(benchmark, "objective", None) is not None
        return exact and (claim is None or claim.noise_std is not None)

    def run(
        self, case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
    ) -> CheckOutcome:
        bench = ensembles.benchmark
        objective = bench.objective
        assert run.outputs is not None and run.certificates is not None
        retain_sets = []
        for k in range(1, case.request + 1):
            _, retain = request_splits(ensembles, case.forget_set, k, torch.device("cpu"))
            retain_sets.append((retain.inputs.double(), retain.targets))
        report = check_case(
            claim,
            [[out[objective.parameter] for out in model[: case.request]] for model in run.outputs],
            [calls[: case.request] for calls in run.certificates],
            [
                objective.perturbation(model_seed(bench.name, "pretrain", i))
                for i in range(ensembles.n_models)
            ],
            retain_sets,
            objective.l2,
            call_seeds=[
                [
                    call_seed(run.seed, bench.name, case.forget_set, k, m)
                    for k in range(1, case.request + 1)
                ]
                for m in range(ensembles.n_models)
            ],
            label=f"{bench.name}/{case.forget_set}",
        )
        figures = {
            "max_gradient_residual": report.max_residual if report.models else None,
            "max_accumulated_bound": report.max_accumulated,
            "residual_budget": report.budget,
            "measured_noise_std": report.measured_noise_std,
            "declared_noise_std": report.declared_noise_std,
        }
        explanation = (
            f"white-box check refutes the claim {claim_text(claim)} on {where_text(case)}: "
            + "; ".join(report.failures)
        )
        return CheckOutcome(figures, report.passed, None, explanation)


CHECK = WhiteBoxChecks()
