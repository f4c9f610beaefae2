"""The terminal summary of certified-claim tests: one row per check. Controller-only."""

from __future__ import annotations

from typing import Any

import pytest

from .records import CERTIFIED_CASE_PROPERTY, case_id, from_properties
from .terminal_table import write_table

_COLUMNS = ("test", "claimed eps", "eps_lb", "max refutable", "residual", "budget", "verdict")


def _number(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def _cells(test_id: str, outcome: str, figures: dict[str, Any]) -> tuple[str, ...]:
    residual = figures.get("max_gradient_residual")
    budget = figures.get("residual_budget")
    return (
        test_id,
        _number(figures.get("claimed_epsilon"), "g"),
        _number(figures.get("eps_lb")),
        _number(figures.get("max_refutable_epsilon")),
        _number(residual, ".2e"),
        _number(budget, ".2e"),
        figures.get("verdict") or outcome.upper(),
    )


class CertifiedTable:
    """Collects certified-claim reports and prints them after the KLoM table."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, ...]] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test_id = case_id(report.user_properties, CERTIFIED_CASE_PROPERTY)
        if test_id is None:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            figures = from_properties(report.user_properties)
            self.rows[test_id] = _cells(test_id, report.outcome, figures)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.section("pytest-unlearn certified claim")
        write_table(terminalreporter, _COLUMNS, [self.rows[key] for key in sorted(self.rows)])
        terminalreporter.write_line(
            "eps_lb = lower bound on epsilon from a held-out distinguishing test (claim refuted "
            "when eps_lb > claimed eps; N cannot refute above max refutable); residual = largest "
            "exact gradient residual, budget = noise_std * eps / c."
        )
