"""What every certified check is: the :class:`CertifiedCheck` protocol, what one run of it
returns (:class:`CheckOutcome`) and the verdict the conformance test records
(:class:`CertifiedResult`).

A check adapts one statistic of :mod:`pytest_unlearn.certified` to the harness: it says where
it applies, runs the statistic on a method run and reports figures (each declared in
:data:`pytest_unlearn.figures.CERTIFIED_FIGURES`), a pass or fail, why a pass proves nothing
(or None) and why a failure refutes the claim. The figures every check shares (benchmark,
forget set, request, check, N, the claim, the verdict) are :class:`CertifiedResult`'s.

>>> outcome = CheckOutcome({"eps_lb": 0.0}, passed=True)
>>> outcome.inconclusive is None, outcome.explanation
(True, '')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...benchmarks import Benchmark
    from ...certified import CertifiedClaim
    from ...store import Ensembles
    from ..cases import CertifiedCase
    from ..method_runner import MethodRun


class CheckUnavailable(Exception):
    """This check cannot run at this configuration (the test is skipped with the reason)."""


@dataclass(frozen=True)
class Column:
    """One column of the ``pytest-unlearn certified claim`` terminal table: its header, the
    figure it shows (a name in ``CERTIFIED_FIGURES``), that figure's format spec, and an
    optional line for the table's legend.

    >>> column = Column("eps_lb", "eps_lb", ".3f")
    >>> format(0.5, column.format)
    '0.500'
    """

    header: str
    figure: str
    format: str
    legend: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    """What one run of a check found."""

    #: The check's own figures, by name (each declared in ``CERTIFIED_FIGURES``).
    figures: dict[str, Any]
    passed: bool
    #: Why this pass proves nothing (the test is skipped as INCONCLUSIVE), or None.
    inconclusive: str | None = None
    #: Why a failure refutes the claim (the test's failure message).
    explanation: str = ""


class CertifiedCheck(Protocol):
    """One certified check: a module of :mod:`pytest_unlearn.harness.certified_checks`
    registered in its ``CHECKS``."""

    #: The test id's suffix (``<benchmark>-<forget set>[-req<k>]-<name>``); unique.
    name: str
    #: Its figures' columns in the terminal table, in order.
    columns: tuple[Column, ...]

    def applies(self, benchmark: Benchmark, claim: CertifiedClaim | None) -> bool:
        """Whether a method with ``claim`` gets this check on ``benchmark``. ``claim`` is
        None when any claim is meant (the ids an ``--unlearn-xfail-file`` may name)."""
        ...

    def run(
        self, case: CertifiedCase, claim: CertifiedClaim, run: MethodRun, ensembles: Ensembles
    ) -> CheckOutcome:
        """Check ``claim`` on the method's ``run`` for ``case``; raises
        :class:`CheckUnavailable` when it cannot run at this configuration."""
        ...


def claim_text(claim: CertifiedClaim) -> str:
    """``(epsilon=1, delta=1e-05)``: the claim as failure messages name it."""
    return f"(epsilon={claim.epsilon:g}, delta={claim.delta:g})"


def where_text(case: CertifiedCase) -> str:
    """``benchmark/forget set[ after request k]``: the case as failure messages name it."""
    return f"{case.benchmark}/{case.forget_set}" + (
        f" after request {case.request}" if case.sequential else ""
    )


@dataclass(frozen=True)
class CertifiedResult:
    """The outcome of one certified case: the figures every check records, then the check's
    own (the :class:`~pytest_unlearn.harness.outcomes.Verdict` the test records)."""

    case: CertifiedCase
    claim: CertifiedClaim
    n_models: int
    outcome: CheckOutcome = field(default_factory=lambda: CheckOutcome({}, passed=True))

    @property
    def passed(self) -> bool:
        return self.outcome.passed

    @property
    def inconclusive(self) -> str | None:
        """Why a pass proves nothing here, or None (always None for a failure)."""
        return self.outcome.inconclusive if self.passed else None

    @property
    def verdict(self) -> str:
        if not self.passed:
            return "FAIL"
        return "INCONCLUSIVE" if self.inconclusive else "PASS"

    def properties(self) -> dict[str, Any]:
        from ...figures import CERTIFIED_FIGURES, to_properties

        undeclared = sorted(set(self.outcome.figures) - set(CERTIFIED_FIGURES))
        if undeclared:
            raise KeyError(
                f"the {self.case.check!r} check records undeclared figure(s) {undeclared}: "
                "declare them in pytest_unlearn.figures.CERTIFIED_FIGURES"
            )
        figures: dict[str, Any] = {
            "benchmark": self.case.benchmark,
            "forget_set": self.case.forget_set,
            "request": self.case.request,
            "check": self.case.check,
            "n_models": self.n_models,
            "claimed_epsilon": self.claim.epsilon,
            "claimed_delta": self.claim.delta,
            "verdict": self.verdict,
            "sequential": self.case.sequential,
            **self.outcome.figures,
        }
        return to_properties(figures)

    def explanation(self) -> str:
        return self.outcome.explanation
