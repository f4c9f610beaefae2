"""The ``blackbox`` check: the distinguishing-test audit of
:mod:`pytest_unlearn.certified.blackbox` on the margins of every point deleted so far. Every
claim gets it on every benchmark."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...certified import audit_claim
from ...training import model_seed
from .base import CheckOutcome, CheckUnavailable, Column, claim_text, where_text

if TYPE_CHECKING:
    from ...benchmarks import Benchmark
    from ...certified import CertifiedClaim
    from ...store import Ensembles
    from ..cases import CertifiedCase
    from ..method_runner import MethodRun

#: The audit splits each ensemble in two halves and needs at least two models in each.
MIN_AUDIT_MODELS = 4


class BlackBoxAudit:
    """Refutes the claim when a held-out test tells the outputs from the oracles beyond it."""

    name = "blackbox"
    columns = (
        Column(
            "eps_lb",
            "eps_lb",
            ".3f",
            "eps_lb = lower bound on epsilon from a held-out distinguishing test (claim "
            "refuted when eps_lb > claimed eps; N cannot refute above max refutable)",
        ),
        Column("max refutable", "max_refutable_epsilon", ".3f"),
    )

    def applies(self, benchmark: Benchmark, claim: CertifiedClaim | None) -> bool:
        return True

    def run(
        self, case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
    ) -> CheckOutcome:
        n = ensembles.n_models
        if n < MIN_AUDIT_MODELS:
            raise CheckUnavailable(
                f"the black-box audit needs at least {MIN_AUDIT_MODELS} models per ensemble "
                f"(--unlearn-models={n})"
            )
        deleted = torch.tensor(
            ensembles.benchmark.forget_set(case.forget_set).deleted_after(case.request),
            dtype=torch.int64,
        )
        halves = ensembles.oracles[case.forget_set, case.request]
        oracle = torch.cat([halves.half_a, halves.half_b])[:, deleted]
        a = audit_claim(
            run.margins[case.request][:, deleted].numpy(),
            oracle.numpy(),
            claim.delta,
            seed=model_seed("certified-audit", case.id, n),
        )
        passed = a.eps_lb <= claim.epsilon
        inconclusive = None
        if passed and a.max_refutable <= claim.epsilon:
            inconclusive = (
                f"inconclusive: with N={n} models per ensemble the black-box audit can refute "
                f"only claims of epsilon below {a.max_refutable:.3f}, and this claim is "
                f"epsilon={claim.epsilon:g}: a larger --unlearn-models lets it refute the claim"
            )
        explanation = (
            f"black-box audit refutes the claim {claim_text(claim)} on {where_text(case)}: a "
            f"test on forget point #{a.point} (rule '{a.rule}', chosen on half the models) "
            f"misclassified {a.false_positives}/{a.oracle_trials} held-out oracles and "
            f"{a.false_negatives}/{a.unlearned_trials} held-out unlearned models; "
            f"Clopper-Pearson upper bounds FPR {a.fpr_upper:.3f}, FNR {a.fnr_upper:.3f} "
            f"(Bonferroni over {2 * a.candidates} bounds, alpha {a.alpha:g}) give "
            f"eps_lb = {a.eps_lb:.3f} > {claim.epsilon:g}"
        )
        figures = {
            "eps_lb": a.eps_lb,
            "max_refutable_epsilon": a.max_refutable,
            "audit_rule": a.rule,
            "audit_fpr_upper": a.fpr_upper,
            "audit_fnr_upper": a.fnr_upper,
            "audit_alpha": a.alpha,
        }
        return CheckOutcome(figures, passed, inconclusive, explanation)


CHECK = BlackBoxAudit()
