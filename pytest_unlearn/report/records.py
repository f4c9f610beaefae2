"""The figures a conformance test records, carried to the controller in ``user_properties``.

Every figure travels as its own ``("unlearn_<field>", value)`` user property, so it reaches the
controller under xdist and shows up as a JUnit ``<property>`` with no extra work. Per-point KLoM
values (for plots) travel the same way, as one ``unlearn_points`` property of plain float lists.

On the controller, :class:`RecordCollector` folds each test's setup/call/teardown reports into one
:class:`CaseRecord`; the terminal table, the JSON report and the plots all read those properties.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..figures import CASE_PROPERTY, VERDICT_QUALIFIERS, from_properties, points_from_figures


def case_id(properties: Iterable[tuple[str, Any]], name: str = CASE_PROPERTY) -> str | None:
    """The case a report belongs to (by its ``name`` property), or None for any other test."""
    for key, value in properties:
        if key == name:
            return str(value)
    return None


# -- reports -> one record per conformance test -----------------------------------------------

#: Every outcome a record can have (pytest's own vocabulary, as in its terminal summary).
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


@dataclass
class CaseRecord:
    """What the controller learned about one conformance test from its reports.

    >>> record = CaseRecord("digits-mlp-knn36-forget", "test_klom.py::test_klom[...]")
    >>> record.outcome, record.figures
    ('passed', {})
    """

    test_id: str
    nodeid: str
    outcome: str = "passed"
    message: str | None = None
    #: Every ``unlearn_*`` user property without its prefix (``case`` and ``points`` included).
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def request(self) -> int:
        """The request index in a sequential schedule; 1 when the case is not sequential."""
        try:
            return int(self.figures.get("request", 1))
        except (TypeError, ValueError):
            return 1

    @property
    def sequential(self) -> bool:
        """Whether the case belongs to a sequential schedule: an explicit ``unlearn_sequential``
        property if recorded, else the public id format (``<benchmark>-<forget set>-req<k>-``);
        not the mere presence of ``unlearn_request``, which every case records (request 1)."""
        explicit = self.figures.get("sequential")
        if isinstance(explicit, bool):
            return explicit
        benchmark, forget_set = self.figures.get("benchmark"), self.figures.get("forget_set")
        if benchmark is None or forget_set is None:
            return "-req" in self.test_id
        return self.test_id.startswith(f"{benchmark}-{forget_set}-req{self.request}-")

    @property
    def points(self) -> dict[str, list[float]] | None:
        return points_from_figures(self.figures)

    @property
    def verdict_label(self) -> str:
        """What every table and plot shows as the verdict: the recorded verdict, else the
        pytest outcome (an error after a verdict says both), with the qualifiers the figures
        carry (why a case is inconclusive, a method that returned its input unchanged).

        >>> CaseRecord("t", "n", "error", figures={"verdict": "PASS"}).verdict_label
        'ERROR (after PASS)'
        >>> CaseRecord("t", "n", figures={"verdict": "INCONCLUSIVE",
        ...     "verdict_reason": "cannot-fail"}).verdict_label
        'INCONCLUSIVE (cannot fail at this N)'
        """
        verdict = self.figures.get("verdict")
        if self.outcome == "error":
            label = f"ERROR (after {verdict})" if verdict else "ERROR"
        else:
            label = str(verdict or self.outcome.upper())
        qualifiers = [VERDICT_QUALIFIERS.get(self.figures.get("verdict_reason"))]
        if self.figures.get("returned_input_unchanged") is True:
            qualifiers.append("returned its input unchanged")
        shown = [q for q in qualifiers if q]
        return f"{label} ({'; '.join(shown)})" if shown else label


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix) :] if text.startswith(prefix) else text


def short_message(report: Any) -> str | None:
    """The one-line reason pytest would show for a report: the crash message of a failure
    (without ``pytest.fail``'s "Failed: "), a skip's reason, an xfail's reason; else None.

    >>> short_message(type("R", (), {"longrepr": ("t.py", 3, "Skipped: no GPU")})())
    'no GPU'
    """
    reason = getattr(report, "wasxfail", None)
    if reason is not None:  # xfailed and xpassed: the marker's reason says why
        return str(reason) or None
    longrepr = getattr(report, "longrepr", None)
    if longrepr is None:
        return None
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        text = str(crash.message)
    elif isinstance(longrepr, tuple | list) and len(longrepr) == 3:  # a skip: (path, line, why)
        text = str(longrepr[2])
    else:  # a plain string (collect errors, custom repr_failure) or a repr without a crash
        text = str(longrepr)
    text = _strip_prefix(_strip_prefix(text, "Failed: "), "Skipped: ").strip()
    return text or None


def phase_outcome(report: Any) -> str:
    """The outcome one phase's report contributes, in :data:`OUTCOMES`' vocabulary.

    >>> phase_outcome(type("R", (), {"when": "setup", "outcome": "failed"})())
    'error'
    """
    xfail = hasattr(report, "wasxfail")
    if report.outcome == "failed":
        return "failed" if report.when == "call" else "error"
    if report.outcome == "skipped":
        return "xfailed" if xfail else "skipped"
    return "xpassed" if xfail and report.when == "call" else "passed"


class RecordCollector:
    """Turns the setup/call/teardown reports of conformance tests into one record per test.

    Reports are selected by their :data:`CASE_PROPERTY` user property, which xdist carries to
    the controller, so a collector on the controller sees the same records with or without
    ``-n``. Feed it every report; it ignores unrelated tests.

    Example::

        collector = RecordCollector()
        collector.add(report)
        [record.test_id for record in collector.records()]
        ['digits-mlp-knn36-forget']
    """

    def __init__(self, case_property: str = CASE_PROPERTY) -> None:
        #: The user property that selects this collector's tests (certified tests have theirs).
        self.case_property = case_property
        self._records: dict[str, CaseRecord] = {}

    def add(self, report: Any) -> None:
        properties = list(getattr(report, "user_properties", None) or ())
        test_id = case_id(properties, self.case_property)
        if test_id is None:
            return
        nodeid = str(report.nodeid)
        record = self._records.get(nodeid)
        if record is None:
            record = self._records[nodeid] = CaseRecord(test_id, nodeid)
        # Each phase's report carries every property recorded so far: later phases win.
        record.figures.update(from_properties(properties))
        outcome = phase_outcome(report)
        if report.when in ("setup", "call"):
            if report.when == "call" or outcome != "passed":
                record.outcome = outcome
                record.message = short_message(report)
        elif outcome == "error" and record.outcome in ("passed", "xpassed", "skipped"):
            # A failing teardown turns a test that otherwise passed into an error, as pytest
            # counts it; a failure that already happened stays the record's outcome.
            record.outcome = "error"
            record.message = short_message(report)

    def records(self) -> list[CaseRecord]:
        """The records sorted by test id (then node id, for duplicated ids)."""
        return sorted(self._records.values(), key=lambda record: (record.test_id, record.nodeid))

    def __len__(self) -> int:
        return len(self._records)
