"""The JSON report (``--unlearn-report=PATH``): one machine-readable record per conformance test.

Controller-only, like pytest-reportlog: it reads the figures from the reports' user properties
(which xdist carries to the controller), so ``-n 4`` writes the same records as ``-n 0``. The file
is written once, at the end of the session, through a temporary file and ``os.replace``: a reader
never sees a half-written report, and a failed write leaves the previous report intact.

The format is documented field by field in ``docs/reports.md``; :func:`load_report` reads it back
and refuses any other schema.

Example::

    config.pluginmanager.register(JsonReport("unlearn.json"))
    load_report("unlearn.json")["records"][0]["verdict"]
    'FAIL'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ..atomic_files import write_atomically
from ..figures import CASE_FIGURES, CERTIFIED_CASE_PROPERTY
from .records import OUTCOMES, CaseRecord, RecordCollector

#: The format's name and major version. Adding a field keeps it; removing, renaming or changing
#: the meaning of one bumps the number (see docs/reports.md, "Versioning").
SCHEMA = "pytest-unlearn-report/1"

#: The keys of every record, in the order they are written: the test's identity and outcome,
#: every figure a conformance test records (declared in :mod:`pytest_unlearn.figures`), the
#: message.
RECORD_FIELDS = ("test_id", "nodeid", "outcome", *CASE_FIGURES, "message")
#: The keys of the report itself.
REPORT_FIELDS = (
    "schema",
    "pytest_unlearn_version",
    "created",
    "exit_status",
    "settings",
    "records",
)
#: Record fields copied from the test's ``unlearn_<field>`` user properties (null when absent).
_FIGURE_FIELDS = tuple(
    name
    for name in RECORD_FIELDS
    if name not in ("test_id", "nodeid", "outcome", "request", "message")
)


class ReportSchemaError(ValueError):
    """A file that is not a pytest-unlearn JSON report of a schema this version reads."""


def _json_value(value: Any) -> Any:
    """A user property's value as strict JSON: non-finite floats become null (strict JSON has
    no NaN), numpy scalars become Python ones, anything else exotic its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # a numpy or torch scalar recorded without conversion
        try:
            return _json_value(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def record_to_json(record: CaseRecord) -> dict[str, Any]:
    """One record of the report, every field of :data:`RECORD_FIELDS` present.

    >>> record_to_json(CaseRecord("b-f-forget", "t.py::t[b-f-forget]", "error", "boom"))["p95"]
    """
    figures = record.figures
    entry: dict[str, Any] = {
        "test_id": record.test_id,
        "nodeid": record.nodeid,
        "outcome": record.outcome,
    }
    for name in _FIGURE_FIELDS:
        entry[name] = _json_value(figures.get(name))
    entry["request"] = record.request
    entry["message"] = record.message
    return {name: entry[name] for name in RECORD_FIELDS}


def _single(values: Iterable[Any]) -> Any:
    """The value all records agree on, or None when they disagree or have none."""
    distinct = {value for value in values if value is not None}
    return distinct.pop() if len(distinct) == 1 else None


def certified_record_to_json(record: CaseRecord) -> dict[str, Any]:
    """One record of the report's ``certified_records``: id, node id, outcome, message and
    every figure the certified test recorded (``eps_lb``, ``max_refutable_epsilon``, ...)."""
    figures = {
        name: _json_value(value)
        for name, value in record.figures.items()
        if name not in ("certified_case", "case")
    }
    return {
        "test_id": record.test_id,
        "nodeid": record.nodeid,
        "outcome": record.outcome,
        "message": record.message,
        **figures,
    }


def build_report(
    records: Iterable[CaseRecord],
    exit_status: int | None,
    *,
    method: str | None = None,
    certified: Iterable[CaseRecord] = (),
    complete: bool = True,
    expected_records: int | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict.

    ``complete`` is False only in the placeholder written when the session starts: a run
    that dies before it ends (a killed process, an ``os._exit``) leaves that placeholder, so
    a CI gate that reads the report never mistakes it for a green run.

    >>> build_report([], 0)["schema"]
    'pytest-unlearn-report/1'
    """
    from pytest_unlearn import __version__

    entries = [record_to_json(record) for record in records]
    return {
        "schema": SCHEMA,
        "pytest_unlearn_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "exit_status": None if exit_status is None else int(exit_status),
        # Added within schema 1: whether the session reached its end, and how many conformance
        # and certified tests it collected (null where unknown).
        "complete": complete,
        "expected_records": expected_records,
        "settings": {
            "method": method,
            # From the records, i.e. what the tests actually used, not what was asked for.
            "n_models": _single(entry["n_models"] for entry in entries),
            "devices": sorted({str(e["device"]) for e in entries if e["device"] is not None}),
            "benchmarks": sorted({e["benchmark"] for e in entries if e["benchmark"] is not None}),
            # Added within schema 1: what a baseline comparison checks (docs/ci.md).
            "fingerprints": {
                e["benchmark"]: e["fingerprint"]
                for e in entries
                if e["benchmark"] is not None and e["fingerprint"] is not None
            },
            **{k: v for k, v in (run or {}).items() if k != "method"},
        },
        "records": entries,
        # Added within schema 1 (readers ignore unknown keys): the certified-claim checks of
        # a method that declares a claim; an empty list otherwise.
        "certified_records": [certified_record_to_json(record) for record in certified],
    }


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON report back, checking its schema and that every record has every field.

    Unknown extra fields are accepted: a later version of schema 1 may add some.

    Example::

        load_report("unlearn.json")["schema"]
        'pytest-unlearn-report/1'
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReportSchemaError(f"{path}: not a JSON file ({error})") from None
    found = data.get("schema") if isinstance(data, dict) else None
    if found != SCHEMA:
        raise ReportSchemaError(
            f"{path}: schema {found!r} is not {SCHEMA!r}, the one this version of "
            "pytest-unlearn reads"
        )
    missing = [name for name in REPORT_FIELDS if name not in data]
    if missing:
        raise ReportSchemaError(f"{path}: missing report field(s) {', '.join(missing)}")
    if not isinstance(data["records"], list):
        raise ReportSchemaError(f"{path}: 'records' is not a list")
    for position, record in enumerate(data["records"]):
        if not isinstance(record, dict):
            raise ReportSchemaError(f"{path}: record {position} is not an object")
        absent = [name for name in RECORD_FIELDS if name not in record]
        if absent:
            raise ReportSchemaError(
                f"{path}: record {position} ({record.get('test_id')!r}) lacks {', '.join(absent)}"
            )
        if record["outcome"] not in OUTCOMES:
            raise ReportSchemaError(
                f"{path}: record {position} has outcome {record['outcome']!r}, "
                f"not one of {', '.join(OUTCOMES)}"
            )
    return data


def _is_recorded_test(nodeid: str) -> bool:
    """Whether a collected test gets a record: a conformance or certified test."""
    return "::test_klom[" in nodeid or "::test_certified[" in nodeid


def check_report(path: str | os.PathLike[str]) -> list[str]:
    """What makes a report unfit to gate on (empty when it is fit): absent, unreadable, from a
    run that did not end, with fewer records than tests collected, or a failing exit status.

    >>> check_report("no-such-report.json")
    ['no-such-report.json: no report: the run did not start, or wrote it elsewhere']
    """
    if not Path(path).is_file():
        return [f"{path}: no report: the run did not start, or wrote it elsewhere"]
    try:
        report = load_report(path)
    except (ReportSchemaError, OSError, UnicodeDecodeError) as error:
        return [str(error)]
    problems = []
    if report.get("complete") is False:
        return [f"{path}: the run that wrote it ended before pytest's session did (killed, or "
                "an os._exit): its verdicts are incomplete"]  # fmt: skip
    expected = report.get("expected_records")
    got = len(report["records"]) + len(report.get("certified_records", []))
    if isinstance(expected, int) and got < expected:
        problems.append(f"{path}: {got} records for {expected} tests collected")
    if report["exit_status"] != 0:
        problems.append(f"{path}: the run exited with status {report['exit_status']}")
    return problems


def _method_spec(config: pytest.Config) -> str | None:
    """The configured ``MODULE:FUNCTION``, or None (a hook-provided method has no spec)."""
    try:
        from ..settings import method_spec

        return method_spec(config)[0]
    except (ValueError, pytest.UsageError):  # options absent (plugin disabled) or malformed
        return None


class JsonReport:
    """A controller-only pytest plugin that writes the JSON report at the end of the session.

    Example::

        config.pluginmanager.register(JsonReport(Path("unlearn.json")), "unlearn-json-report")
    """

    def __init__(self, path: str | os.PathLike[str], run: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        #: What the run was asked for that records do not show (profile, params, seed).
        self.run = dict(run or {})
        self.collector = RecordCollector()
        self.certified = RecordCollector(CERTIFIED_CASE_PROPERTY)
        self._written: Path | None = None
        self._error: str | None = None
        self._expected: int | None = None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)
        self.certified.add(report)

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Replace any earlier report with an incomplete placeholder at once: if this run never
        reaches its end, no report of an earlier run can be read as this one's."""
        self._write(session.config, self._report(session.config, None, complete=False))

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._expected = sum(1 for item in session.items if _is_recorded_test(item.nodeid))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Under xdist the controller does not collect; every worker reports the same ids.
        self._expected = sum(1 for nodeid in ids if _is_recorded_test(nodeid))

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._write(session.config, self._report(session.config, int(exitstatus), complete=True))

    def _report(self, config: pytest.Config, exit_status: int | None, *, complete: bool) -> dict:
        return build_report(
            self.collector.records(),
            exit_status,
            # What the plugin resolved (Settings), when it says; a bare JsonReport asks pytest.
            method=self.run["method"] if "method" in self.run else _method_spec(config),
            certified=self.certified.records(),
            complete=complete,
            expected_records=self._expected,
            run=self.run,
        )

    def _write(self, config: pytest.Config, report: dict[str, Any]) -> None:
        if hasattr(config, "workerinput"):
            # An xdist worker sees only its own tests; the controller writes the whole report.
            return
        path = self.path.expanduser()
        if not path.is_absolute():
            path = config.invocation_params.dir / path
        try:
            write_atomically(path, json.dumps(report, indent=2, allow_nan=False) + "\n")
        except OSError as error:
            # One clear line in the summary rather than an INTERNALERROR traceback; the test
            # outcomes (and the exit status) stand as they are.
            self._error = f"pytest-unlearn: could not write the JSON report {path}: {error}"
            return
        self._error = None
        self._written = path

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self._error is not None:
            terminalreporter.write_line(self._error, yellow=True, bold=True)
        elif self._written is not None:
            terminalreporter.write_sep(
                "-",
                f"pytest-unlearn report: {self._written} ({len(self.collector)} records)",
            )
