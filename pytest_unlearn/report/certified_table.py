"""The terminal summary of certified-claim tests: one row per check. Controller-only."""

from __future__ import annotations

from typing import Any

import pytest

from .records import CERTIFIED_CASE_PROPERTY, from_properties

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
        test_id = dict(report.user_properties).get(CERTIFIED_CASE_PROPERTY)
        if test_id is None:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            figures = from_properties(report.user_properties)
            self.rows[str(test_id)] = _cells(str(test_id), report.outcome, figures)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.section("pytest-unlearn certified claim")
        rows = [_COLUMNS] + [self.rows[key] for key in sorted(self.rows)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        for position, row in enumerate(rows):
            line = "  ".join(
                cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            terminalreporter.write_line(line.rstrip(), bold=position == 0)
        terminalreporter.write_line(
            "eps_lb = lower bound on epsilon from a held-out distinguishing test (claim refuted "
            "when eps_lb > claimed eps; N cannot refute above max refutable); residual = largest "
            "exact gradient residual, budget = noise_std * eps / c."
        )
