"""The terminal summary of certified-claim tests: one row per test. Controller-only.

The columns are the test id, the claimed epsilon, every registered check's columns (their
union, in registration order: see :mod:`pytest_unlearn.harness.certified_checks`) and the
verdict; a row shows "-" where its check records no such figure. Rows come from the collected
records (:class:`~.records.RecordCollector`), so an error in any phase (teardown included)
reaches the table as it reaches the JSON report.

>>> [column.header for column in table_columns()]
['claimed eps', 'eps_lb', 'max refutable', 'residual', 'budget']
>>> record = CaseRecord("b-fs-blackbox", "t.py::test_certified[b-fs-blackbox]", "passed",
...                     figures={"claimed_epsilon": 1.0, "eps_lb": 0.25, "verdict": "PASS"})
>>> row_cells(record, table_columns())
('b-fs-blackbox', '1', '0.250', '-', '-', '-', 'PASS')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from ..figures import CERTIFIED_CASE_PROPERTY
from ..harness.certified_checks import CertifiedCheck, Column, registered_checks
from .records import CaseRecord, RecordCollector
from .terminal_table import write_table

#: The columns every row has, before the checks' own.
COMMON_COLUMNS = (Column("claimed eps", "claimed_epsilon", "g"),)


def table_columns(checks: Iterable[CertifiedCheck] | None = None) -> tuple[Column, ...]:
    """:data:`COMMON_COLUMNS`, then the union of the checks' columns (the registered checks'
    by default) in registration order, each once."""
    columns: list[Column] = list(COMMON_COLUMNS)
    for check in registered_checks() if checks is None else checks:
        columns += [column for column in check.columns if column not in columns]
    return tuple(columns)


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def row_cells(record: CaseRecord, columns: tuple[Column, ...]) -> tuple[str, ...]:
    """One table row: the test id, a cell per column, the verdict."""
    figures = record.figures
    cells = (_number(figures.get(column.figure), column.format) for column in columns)
    return (record.test_id, *cells, record.verdict_label)


class CertifiedTable:
    """Collects certified-claim reports and prints them after the KLoM table."""

    def __init__(self) -> None:
        self.collector = RecordCollector(CERTIFIED_CASE_PROPERTY)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        records = self.collector.records()
        if not records:
            return
        columns = table_columns()
        terminalreporter.section("pytest-unlearn certified claim")
        header = ("test", *(column.header for column in columns), "verdict")
        write_table(terminalreporter, header, [row_cells(record, columns) for record in records])
        legends = [column.legend for column in columns if column.legend]
        if legends:
            terminalreporter.write_line("; ".join(legends) + ".")
