"""How a method declares a certified-unlearning claim, and how the suite finds it.

The claim travels with the method object itself, so it works however the method arrives
(``--unlearn-method=MODULE:FUNCTION``, the ``pytest_unlearn_method`` hook, a plugin package)::

    from pytest_unlearn.certified import certified

    @certified(epsilon=1.0, delta=1e-5, noise_std=3e-3)
    def unlearn(model, forget, retain, context):
        ...
        context.certificate["gradient_residual_bound"] = bound   # per call
        return model

Per call, the method reports in ``context.certificate`` (a dict):

``gradient_residual_bound`` (float, required for the white-box check)
    An upper bound on ``||grad L_b(W_out; retain)||``, the exact gradient norm of the
    benchmark's regularized, loss-perturbed retain objective at the returned weights.
``perturbation`` (tensor shaped like the weights, optional)
    The ``b`` of the objective the output minimizes, when the method drew a new one (it
    retrained). Without it ``b`` is inherited: the previous request's, else the one the
    pretrained model was trained with.
``retrained`` (bool, optional)
    This output was trained from scratch: the accumulated bound starts again from this call.

``context.history`` holds the method's earlier certificates for the same model, so a
sequential method can carry state (its accumulated bound, its ``b``) from request to request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute of a method object that holds its :class:`CertifiedClaim`.
CLAIM_ATTRIBUTE = "unlearn_claim"


@dataclass(frozen=True)
class CertifiedClaim:
    """An (epsilon, delta) certified-unlearning claim and the constants its bound needs.

    ``noise_std`` is the standard deviation of the loss perturbation ``b`` the guarantee
    relies on (Guo et al. 2020); ``None`` for a claim without a gradient-residual bound
    (then only the black-box audit applies). ``constants`` are any other figures the
    method's bound uses, reported alongside the verdicts.

    >>> claim = CertifiedClaim(epsilon=1.0, delta=1e-5, noise_std=3e-3)
    >>> round(claim.residual_budget, 6)
    0.000614
    """

    epsilon: float
    delta: float
    noise_std: float | None = None
    constants: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"a certified claim needs epsilon > 0, got {self.epsilon!r}")
        if not 0 < self.delta < 1:
            raise ValueError(f"a certified claim needs 0 < delta < 1, got {self.delta!r}")
        if self.noise_std is not None and not (
            math.isfinite(self.noise_std) and self.noise_std > 0
        ):
            raise ValueError(f"noise_std must be > 0 when given, got {self.noise_std!r}")

    @property
    def c(self) -> float:
        """Guo et al.'s ``c = sqrt(2 log(1.5 / delta))``."""
        return math.sqrt(2 * math.log(1.5 / self.delta))

    @property
    def residual_budget(self) -> float | None:
        """The largest accumulated gradient residual the claim allows: ``noise_std * eps / c``
        (Guo et al. 2020, Theorem 3: residual ``<= eps'`` and ``b ~ N(0, (c eps'/eps)^2)``
        give (eps, delta)-certified removal)."""
        if self.noise_std is None:
            return None
        return self.noise_std * self.epsilon / self.c


def certified(
    epsilon: float, delta: float, noise_std: float | None = None, **constants: float
) -> Callable[[F], F]:
    """Decorate an unlearning method with its certified claim.

    >>> @certified(epsilon=1.0, delta=1e-5, noise_std=3e-3)
    ... def unlearn(model, forget, retain, context):
    ...     return model
    >>> claim_of(unlearn).epsilon
    1.0
    """
    claim = CertifiedClaim(epsilon, delta, noise_std, dict(constants))

    def attach(method: F) -> F:
        setattr(method, CLAIM_ATTRIBUTE, claim)
        return method

    return attach


def claim_of(method: Callable[..., Any]) -> CertifiedClaim | None:
    """The claim a method declares, or ``None``; a malformed one raises ``TypeError``."""
    claim = getattr(method, CLAIM_ATTRIBUTE, None)
    if claim is None or isinstance(claim, CertifiedClaim):
        return claim
    raise TypeError(
        f"{CLAIM_ATTRIBUTE} of the method must be a pytest_unlearn.certified.CertifiedClaim "
        f"(use the @certified(...) decorator), got {type(claim).__name__}"
    )
