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

PREFIX = "unlearn_"
#: The user property that marks a report as a conformance test's, valued with its case id.
CASE_PROPERTY = PREFIX + "case"
#: The user property that marks a certified-claim test's report, valued with its id.
CERTIFIED_CASE_PROPERTY = PREFIX + "certified_case"


#: What a verdict's reason adds to it in the table and the plots (plain PASS and FAIL-above
#: say it all).
VERDICT_QUALIFIERS = {
    "below": "closer than retraining can be",
    "cannot-fail": "cannot fail at this N",
    "do-nothing-passes": "do-nothing passes too",
}


def to_properties(record: dict[str, Any]) -> dict[str, Any]:
    """``{"p95": 0.4}`` -> ``{"unlearn_p95": 0.4}``."""
    return {PREFIX + key: value for key, value in record.items()}


def from_properties(properties: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`to_properties`, ignoring unrelated user properties."""
    return {key[len(PREFIX) :]: value for key, value in properties if key.startswith(PREFIX)}


def case_id(properties: Iterable[tuple[str, Any]], name: str = CASE_PROPERTY) -> str | None:
    """The case a report belongs to (by its ``name`` property), or None for any other test."""
    for key, value in properties:
        if key == name:
            return str(value)
    return None


# -- per-point KLoM values, for plots ---------------------------------------------------------

#: The user property carrying one split's per-point KLoM values (see :func:`points_property`).
POINTS_PROPERTY = PREFIX + "points"
#: The user property carrying the request index of a sequential schedule (absent: request 1).
REQUEST_PROPERTY = PREFIX + "request"
#: The series of :data:`POINTS_PROPERTY`, each against oracle half A on the split's points.
POINT_SERIES = ("method", "do_nothing", "floor")
#: Enough for a plot (KLoM values live in [0, ~12]) and keeps the property a third of the size.
POINT_DECIMALS = 4


def _plain_floats(values: Any) -> list[float]:
    """A 1-D numpy array, torch tensor or sequence as rounded Python floats.

    Python floats, not numpy scalars: execnet (xdist) serializes only builtin types.
    """
    import numpy as np

    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return [float(value) for value in np.round(array, POINT_DECIMALS)]


def points_property(method: Any, do_nothing: Any, floor: Any) -> dict[str, list[float]]:
    """The value of :data:`POINTS_PROPERTY` for one split: per-point KLoM of the method's
    models, of the pretrained models (do-nothing) and of oracle half B (the noise floor), each
    against oracle half A, as plain lists rounded to :data:`POINT_DECIMALS` decimals.

    >>> points_property([0.123456, 2.0], [5.0, 6.0], [0.1, 0.2])["method"]
    [0.1235, 2.0]
    """
    return {
        "method": _plain_floats(method),
        "do_nothing": _plain_floats(do_nothing),
        "floor": _plain_floats(floor),
    }


def points_from_figures(figures: dict[str, Any]) -> dict[str, list[float]] | None:
    """The per-point series of a record's figures, or None when absent or malformed.

    >>> points_from_figures({"points": {"method": [1.0], "do_nothing": [2.0], "floor": [0.5]}})
    {'method': [1.0], 'do_nothing': [2.0], 'floor': [0.5]}
    """
    points = figures.get("points")
    if not isinstance(points, dict):
        return None
    series: dict[str, list[float]] = {}
    for name in POINT_SERIES:
        values = points.get(name)
        if not isinstance(values, list | tuple) or not all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in values
        ):
            return None
        series[name] = [float(value) for value in values]
    return series


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

    >>> collector = RecordCollector()
    >>> collector.add(report)  # doctest: +SKIP
    >>> [record.test_id for record in collector.records()]  # doctest: +SKIP
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
