"""Evaluate one certified case from a method run: the black-box audit or the white-box checks.

The figures of both are reported as ``unlearn_*`` properties, like the KLoM cases', and the
failure message says which part of the claim the evidence contradicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..certified import Audit, CertifiedClaim, WhiteBoxReport, audit_claim, check_case
from ..store import Ensembles
from ..training import model_seed
from .cases import CertifiedCase
from .method_runner import MethodRun, call_seed, request_splits


@dataclass(frozen=True)
class CertifiedResult:
    """The outcome of one certified case."""

    case: CertifiedCase
    claim: CertifiedClaim
    n_models: int
    audit: Audit | None = None
    whitebox: WhiteBoxReport | None = None

    @property
    def passed(self) -> bool:
        if self.audit is not None:
            return self.audit.eps_lb <= self.claim.epsilon
        return self.whitebox is not None and self.whitebox.passed

    @property
    def inconclusive(self) -> str | None:
        """Why a passing audit proves nothing here, or None: with N models an audit can refute
        only claims below ``max_refutable_epsilon``."""
        a = self.audit
        if a is None or not self.passed or a.max_refutable > self.claim.epsilon:
            return None
        return (
            f"inconclusive: with N={self.n_models} models per ensemble the black-box audit can "
            f"refute only claims of epsilon below {a.max_refutable:.3f}, and this claim is "
            f"epsilon={self.claim.epsilon:g}: a larger --unlearn-models lets it refute the claim"
        )

    def properties(self) -> dict[str, Any]:
        from ..figures import to_properties

        figures: dict[str, Any] = {
            "benchmark": self.case.benchmark,
            "forget_set": self.case.forget_set,
            "request": self.case.request,
            "check": self.case.check,
            "n_models": self.n_models,
            "claimed_epsilon": self.claim.epsilon,
            "claimed_delta": self.claim.delta,
            "verdict": (
                "FAIL" if not self.passed else "INCONCLUSIVE" if self.inconclusive else "PASS"
            ),
            "sequential": self.case.sequential,
        }
        if self.audit is not None:
            a = self.audit
            figures.update(
                eps_lb=a.eps_lb,
                max_refutable_epsilon=a.max_refutable,
                audit_rule=a.rule,
                audit_fpr_upper=a.fpr_upper,
                audit_fnr_upper=a.fnr_upper,
                audit_alpha=a.alpha,
            )
        if self.whitebox is not None:
            w = self.whitebox
            figures.update(
                max_gradient_residual=w.max_residual if w.models else None,
                max_accumulated_bound=w.max_accumulated,
                residual_budget=w.budget,
                measured_noise_std=w.measured_noise_std,
                declared_noise_std=w.declared_noise_std,
            )
        return to_properties(figures)

    def explanation(self) -> str:
        where = f"{self.case.benchmark}/{self.case.forget_set}" + (
            f" after request {self.case.request}" if self.case.sequential else ""
        )
        claim = f"(epsilon={self.claim.epsilon:g}, delta={self.claim.delta:g})"
        if self.audit is not None:
            a = self.audit
            return (
                f"black-box audit refutes the claim {claim} on {where}: a test on forget point "
                f"#{a.point} (rule '{a.rule}', chosen on half the models) misclassified "
                f"{a.false_positives}/{a.oracle_trials} held-out oracles and "
                f"{a.false_negatives}/{a.unlearned_trials} held-out unlearned models; "
                f"Clopper-Pearson upper bounds FPR {a.fpr_upper:.3f}, FNR {a.fnr_upper:.3f} "
                f"(Bonferroni over {2 * a.candidates} bounds, alpha {a.alpha:g}) give "
                f"eps_lb = {a.eps_lb:.3f} > {self.claim.epsilon:g}"
            )
        assert self.whitebox is not None
        return f"white-box check refutes the claim {claim} on {where}: " + "; ".join(
            self.whitebox.failures
        )


class CheckUnavailable(Exception):
    """This check cannot run at this configuration (the test is skipped with the reason)."""


#: The audit splits each ensemble in two halves and needs at least two models in each.
MIN_AUDIT_MODELS = 4


def blackbox(
    case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
) -> CertifiedResult:
    """Audit the claim on the margins of every point deleted so far."""
    if ensembles.n_models < MIN_AUDIT_MODELS:
        raise CheckUnavailable(
            f"the black-box audit needs at least {MIN_AUDIT_MODELS} models per ensemble "
            f"(--unlearn-models={ensembles.n_models})"
        )
    bench = ensembles.benchmark
    deleted = torch.tensor(
        bench.forget_set(case.forget_set).deleted_after(case.request), dtype=torch.int64
    )
    halves = ensembles.oracles[case.forget_set, case.request]
    oracle = torch.cat([halves.half_a, halves.half_b])[:, deleted]
    audit = audit_claim(
        run.margins[case.request][:, deleted].numpy(),
        oracle.numpy(),
        claim.delta,
        seed=model_seed("certified-audit", case.id, ensembles.n_models),
    )
    return CertifiedResult(case, claim, ensembles.n_models, audit=audit)


def whitebox(
    case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
) -> CertifiedResult:
    """Check residuals, budget and noise of every model's output after ``case.request``."""
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
    return CertifiedResult(case, claim, ensembles.n_models, whitebox=report)


def run_check(
    case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
) -> CertifiedResult:
    """The case's check (``blackbox`` or ``whitebox``) on a method run."""
    check = blackbox if case.check == "blackbox" else whitebox
    return check(case, claim, run, ensembles)
