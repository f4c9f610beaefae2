"""The terminal summary table: one row per conformance test. Controller-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from .records import VERDICT_QUALIFIERS, case_id, from_properties

_COLUMNS = ("test", "P95 KLoM", "threshold", "floor", "do-nothing", "score", "verdict")


@dataclass
class TableRow:
    test_id: str
    outcome: str
    figures: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> tuple[str, ...]:
        def number(key: str) -> str:
            value = self.figures.get(key)
            return f"{value:.3f}" if isinstance(value, int | float) else "-"

        verdict = self.figures.get("verdict") or self.outcome.upper()
        qualifiers = [VERDICT_QUALIFIERS.get(self.figures.get("verdict_reason"))]
        if self.figures.get("returned_input_unchanged") is True:
            qualifiers.append("returned its input unchanged")
        if any(qualifiers):
            verdict += f" ({'; '.join(q for q in qualifiers if q)})"
        score = self.figures.get("score")
        return (
            self.test_id,
            number("p95"),
            number("threshold"),
            number("floor"),
            number("do_nothing"),
            f"{score:.0f}%" if isinstance(score, int | float) else "-",
            verdict,
        )


def write_table(
    terminalreporter: pytest.TerminalReporter,
    header: tuple[str, ...],
    rows: list[tuple[str, ...]],
) -> None:
    """Header and rows as aligned columns: the first and last left-aligned (ids, verdicts),
    the figures between right-aligned; the header in bold."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for position, row in enumerate(table):
        line = "  ".join(
            cell.ljust(width) if i in (0, len(row) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        terminalreporter.write_line(line.rstrip(), bold=position == 0)


class TerminalTable:
    """Collects conformance reports as they arrive and prints the table at the end."""

    def __init__(self) -> None:
        self.rows: dict[str, TableRow] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test_id = case_id(report.user_properties)
        if test_id is None:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.rows[test_id] = TableRow(
                test_id, report.outcome, from_properties(report.user_properties)
            )

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.section("pytest-unlearn conformance")
        write_table(
            terminalreporter, _COLUMNS, [self.rows[key].cells() for key in sorted(self.rows)]
        )
        terminalreporter.write_line(
            "P95 KLoM = 95th percentile over the split's points of KL(unlearned || oracle); "
            "floor = same for a second oracle ensemble; fail above the threshold (or far below "
            "the floor), each at a false-fail level of 0.001 for exact retraining; score = share "
            "of the do-nothing-to-retraining gap closed (100% = retraining, 0% = do-nothing); "
            "INCONCLUSIVE = skipped, a pass there would prove nothing (docs/verdicts.md)."
        )
