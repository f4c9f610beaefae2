"""The terminal summary table: one row per conformance test. Controller-only."""

from __future__ import annotations

import pytest

from .records import CaseRecord, RecordCollector

_COLUMNS = ("test", "P95 KLoM", "threshold", "floor", "do-nothing", "score", "verdict")


def row_cells(record: CaseRecord) -> tuple[str, ...]:
    """One row of the table: the test id, its figures, its verdict."""
    figures = record.figures

    def number(key: str) -> str:
        value = figures.get(key)
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    score = figures.get("score")
    return (
        record.test_id,
        number("p95"),
        number("threshold"),
        number("floor"),
        number("do_nothing"),
        f"{score:.0f}%" if isinstance(score, int | float) else "-",
        record.verdict_label,
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
        self.collector = RecordCollector()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        records = self.collector.records()
        if not records:
            return
        terminalreporter.section("pytest-unlearn conformance")
        write_table(terminalreporter, _COLUMNS, [row_cells(record) for record in records])
        terminalreporter.write_line(
            "P95 KLoM = 95th percentile over the split's points of KL(unlearned || oracle); "
            "floor = same for a second oracle ensemble; fail above the threshold (or far below "
            "the floor), each at a false-fail level of 0.001 for exact retraining; score = share "
            "of the do-nothing-to-retraining gap closed (100% = retraining, 0% = do-nothing); "
            "INCONCLUSIVE = skipped, a pass there would prove nothing (docs/verdicts.md)."
        )
