"""Certified-unlearning claims and the checks that can refute them.

* :mod:`.claim`: how a method declares ``(epsilon, delta)`` and reports certificates;
* :mod:`.blackbox`: the distinguishing-test audit any claiming method gets (``eps_lb``);
* :mod:`.whitebox`: the exact gradient-residual, budget and noise checks on a benchmark with
  an exact convex objective (``digits-logreg-perturbed``).
"""

from .blackbox import Audit, audit_claim, clopper_pearson_upper, max_refutable_epsilon
from .claim import CertifiedClaim, certified, claim_of
from .whitebox import WhiteBoxReport, check_case, fresh_perturbation

__all__ = [
    "Audit",
    "CertifiedClaim",
    "WhiteBoxReport",
    "audit_claim",
    "certified",
    "check_case",
    "claim_of",
    "clopper_pearson_upper",
    "fresh_perturbation",
    "max_refutable_epsilon",
]
