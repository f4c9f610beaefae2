"""The JSON report (``--unlearn-report=PATH``) and the figures in JUnit XML.

Most runs use a *fake* conformance module: tests that tag themselves with ``unlearn_case`` and
record figures as user properties exactly as ``conformance/test_klom.py`` does, without training
anything. One run on the shared N=16 cache proves the real suite end to end.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import IDENTITY_METHOD, output, unlearn_args

from pytest_unlearn.report.json_report import (
    RECORD_FIELDS,
    SCHEMA,
    JsonReport,
    ReportSchemaError,
    load_report,
)

REPORT = Path("out") / "unlearn.json"  # relative on purpose: resolved against the invocation dir

_ABSENT = object()

FAKE_SUITE = """
import pytest

SPLITS = ("forget", "retain", "validation")


@pytest.fixture(autouse=True)
def _tag(request):
    # Tags the report from setup on, as the real unlearn_case fixture does.
    marker = request.node.get_closest_marker("case")
    if marker is not None:
        request.node.user_properties.append(("unlearn_case", marker.args[0]))


def _figures(record_property, forget_set, split, p95, **extra):
    figures = {
        "benchmark": "bench", "forget_set": forget_set, "split": split, "n_models": 4,
        "p95": p95, "mean": p95 / 2, "median": p95 / 3, "floor": 0.4, "null_max": 0.8,
        "do_nothing": 3.0, "threshold": 1.0, "separable": True,
        "verdict": "PASS" if p95 <= 1.0 else "FAIL", "method_seconds_per_model": 0.01,
        "device": "cpu", **extra,
    }
    for key, value in figures.items():
        record_property("unlearn_" + key, value)


@pytest.mark.parametrize(
    "split", [pytest.param(s, marks=pytest.mark.case(f"bench-a-{s}")) for s in SPLITS]
)
def test_passes(record_property, split):
    _figures(record_property, "a", split, 0.5)


@pytest.mark.case("bench-b-forget")
def test_fails(record_property):
    _figures(record_property, "b", "forget", 2.5)
    pytest.fail("P95 KLoM 2.500 above the threshold 1.000", pytrace=False)


@pytest.mark.case("bench-c-forget")
def test_method_raised():
    raise RuntimeError("scrubbing is not implemented")


@pytest.fixture
def broken_store():
    raise OSError("store unreadable")


@pytest.mark.case("bench-c-retain")
def test_setup_error(broken_store):
    pass


@pytest.mark.case("bench-d-forget")
@pytest.mark.xfail(reason="known weak on d")
def test_xfailed(record_property):
    _figures(record_property, "d", "forget", 2.0)
    pytest.fail("above", pytrace=False)


@pytest.mark.case("bench-d-retain")
@pytest.mark.xfail(reason="expected to fail on d")
def test_xpassed(record_property):
    _figures(record_property, "d", "retain", 0.5)


@pytest.mark.case("bench-e-forget")
def test_skipped():
    pytest.skip("needs a GPU")


@pytest.mark.case("bench-s-req2-forget")
def test_sequential(record_property):
    _figures(record_property, "s", "forget", 0.5, request=2, retrain_seconds_per_model=0.25)


def test_unrelated(record_property):
    record_property("something_else", 1)
"""

#: Every tagged test of FAKE_SUITE, sorted: the records a report must hold.
FAKE_IDS = [
    "bench-a-forget",
    "bench-a-retain",
    "bench-a-validation",
    "bench-b-forget",
    "bench-c-forget",
    "bench-c-retain",
    "bench-d-forget",
    "bench-d-retain",
    "bench-e-forget",
    "bench-s-req2-forget",
]
TIMING_FIELDS = ("method_seconds_per_model", "retrain_seconds_per_model")


def report_option(pytester: pytest.Pytester, pytestconfig: pytest.Config, path: Path) -> list[str]:
    """The command-line option that asks for the report.

    ``--unlearn-report`` once settings.py defines it (plugin.py then registers the writer);
    until then a conftest registers :class:`JsonReport` on the controller, as plugin.py will.
    """
    if pytestconfig.getoption("unlearn_report", default=_ABSENT) is not _ABSENT:
        return [f"--unlearn-report={path}"]
    pytester.makeconftest(
        "from pytest_unlearn.report.json_report import JsonReport\n\n"
        "def pytest_configure(config):\n"
        "    if not hasattr(config, 'workerinput'):\n"
        f"        config.pluginmanager.register(JsonReport({str(path)!r}), 'unlearn-report')\n"
    )
    return []


@pytest.fixture
def fake_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(mymethod=IDENTITY_METHOD, test_fake_conformance=FAKE_SUITE)
    pytester.makeini("[pytest]\nmarkers =\n    case(id): the conformance case a fake test is\n")
    return pytester


def run_fake(
    pytester: pytest.Pytester, pytestconfig: pytest.Config, *args: str
) -> pytest.RunResult:
    """Run the fake suite with a method configured (so the plugin is active) and the packaged
    conformance tests deselected (nothing needs the cache)."""
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-cache-dir={pytester.path / 'cache'}",
        "-k",
        "fake_conformance",
        "-p",
        "no:hypothesispytest",  # xdist workers would import hypothesis' 500 modules for nothing
        *report_option(pytester, pytestconfig, REPORT),
        *args,
    )


def records(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    """The report's records by test id (validated by load_report)."""
    report = load_report(pytester.path / REPORT)
    return {record["test_id"]: record for record in report["records"]}


def _without_timing(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k not in TIMING_FIELDS} for entry in entries]


# -- what the report holds ---------------------------------------------------------------------


def test_report_has_one_record_per_conformance_test_sorted_by_id(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    report = load_report(fake_project.path / REPORT)
    assert [record["test_id"] for record in report["records"]] == FAKE_IDS
    assert all(list(record) == list(RECORD_FIELDS) for record in report["records"])


def test_report_header_names_schema_version_and_exit_status(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    import pytest_unlearn

    result = run_fake(fake_project, pytestconfig)
    report = load_report(fake_project.path / REPORT)
    assert report["schema"] == SCHEMA
    assert report["pytest_unlearn_version"] == pytest_unlearn.__version__
    assert report["exit_status"] == result.ret == pytest.ExitCode.TESTS_FAILED
    assert report["created"].endswith("+00:00")  # ISO 8601, UTC


def test_report_settings_say_what_the_tests_used(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    settings = load_report(fake_project.path / REPORT)["settings"]
    assert settings == {
        "method": "mymethod:unlearn",
        "n_models": 4,
        "devices": ["cpu"],
        "benchmarks": ["bench"],
        "fingerprints": {},  # the fake records name none
        "profile": "full",
        "params": {},
        "seed": 0,
    }


def test_passing_record_carries_every_figure(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    record = records(fake_project)["bench-a-forget"]
    assert record["nodeid"] == "test_fake_conformance.py::test_passes[forget]"
    assert record["outcome"] == "passed"
    assert record["message"] is None
    expected = {"benchmark": "bench", "forget_set": "a", "split": "forget", "n_models": 4}
    expected |= {"p95": 0.5, "mean": 0.25, "threshold": 1.0, "floor": 0.4, "null_max": 0.8}
    expected |= {"do_nothing": 3.0, "separable": True, "verdict": "PASS", "device": "cpu"}
    assert {key: record[key] for key in expected} == expected
    assert record["retrain_seconds_per_model"] is None  # not recorded: null, not absent


def test_failed_verdict_record_carries_the_failure_message(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    record = records(fake_project)["bench-b-forget"]
    assert (record["outcome"], record["verdict"]) == ("failed", "FAIL")
    assert record["message"] == "P95 KLoM 2.500 above the threshold 1.000"


def test_test_whose_method_raised_has_a_record_with_nulls_and_the_exception(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    record = records(fake_project)["bench-c-forget"]
    assert record["outcome"] == "failed"
    assert record["message"] == "RuntimeError: scrubbing is not implemented"
    assert record["p95"] is None and record["verdict"] is None and record["split"] is None


def test_setup_error_is_recorded_as_error(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    record = records(fake_project)["bench-c-retain"]
    assert record["outcome"] == "error"
    assert record["message"] == "OSError: store unreadable"


def test_xfail_markers_map_to_xfailed_and_xpassed(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    by_id = records(fake_project)
    assert by_id["bench-d-forget"]["outcome"] == "xfailed"
    assert by_id["bench-d-forget"]["message"] == "known weak on d"
    assert by_id["bench-d-retain"]["outcome"] == "xpassed"
    assert by_id["bench-e-forget"]["outcome"] == "skipped"
    assert by_id["bench-e-forget"]["message"] == "needs a GPU"


def test_request_is_read_from_the_property_and_defaults_to_1(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    by_id = records(fake_project)
    assert by_id["bench-s-req2-forget"]["request"] == 2
    assert by_id["bench-s-req2-forget"]["retrain_seconds_per_model"] == 0.25
    assert by_id["bench-a-forget"]["request"] == 1


def test_tests_without_the_case_tag_have_no_record(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    nodeids = {record["nodeid"] for record in records(fake_project).values()}
    assert not [nodeid for nodeid in nodeids if "test_unrelated" in nodeid]


def test_terminal_summary_names_the_written_report(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    result = run_fake(fake_project, pytestconfig)
    result.stdout.fnmatch_lines(
        [f"*pytest-unlearn report: {fake_project.path / REPORT} ({len(FAKE_IDS)} records)*"]
    )


def test_write_leaves_no_temporary_file(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    run_fake(fake_project, pytestconfig)
    assert sorted(os.listdir(fake_project.path / REPORT.parent)) == [REPORT.name]


# -- xdist ------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Benchmarks are automatically disabled")
def test_under_xdist_the_controller_writes_the_records_of_a_serial_run(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    pytest.importorskip("xdist")
    run_fake(fake_project, pytestconfig, "-n", "0")
    serial = load_report(fake_project.path / REPORT)
    # One xdist run only (worker start-up costs seconds): one file, no worker or temporary
    # leftovers, and the records of every test on both workers, equal to the serial run's.
    result = run_fake(fake_project, pytestconfig, "-n", "2")
    assert "2 workers" in output(result)
    assert sorted(os.listdir(fake_project.path / REPORT.parent)) == [REPORT.name]
    parallel = load_report(fake_project.path / REPORT)
    assert [record["test_id"] for record in parallel["records"]] == FAKE_IDS
    assert _without_timing(parallel["records"]) == _without_timing(serial["records"])
    assert parallel["settings"] == serial["settings"]


# -- the writer and the reader, directly --------------------------------------------------------


class _Session:
    """Just what ``pytest_sessionfinish`` reads from a session."""

    def __init__(self, directory: Path, worker: bool = False) -> None:
        self.config = type("Config", (), {})()
        self.config.invocation_params = type("Params", (), {"dir": directory})()
        # No --unlearn-method, no ini: the report's "method" is then null.
        self.config.getoption = lambda name, default=None: default
        self.config.getini = lambda name: None
        if worker:
            self.config.workerinput = {"workerid": "gw0"}


def test_xdist_worker_never_writes_the_report(tmp_path: Path) -> None:
    writer = JsonReport(tmp_path / "unlearn.json")
    writer.pytest_sessionfinish(_Session(tmp_path, worker=True), exitstatus=0)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_report_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "unlearn.json"
    path.write_text("previous")

    def refuse(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    writer = JsonReport(path)
    writer.pytest_sessionfinish(_Session(tmp_path), exitstatus=0)  # type: ignore[arg-type]
    assert path.read_text() == "previous"
    assert os.listdir(tmp_path) == ["unlearn.json"]
    assert writer._error is not None and "disk full" in writer._error


def test_load_report_refuses_another_schema(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema": "pytest-unlearn-report/2", "records": []}))
    with pytest.raises(ReportSchemaError, match=r"schema 'pytest-unlearn-report/2' is not"):
        load_report(path)


def test_load_report_refuses_a_record_missing_a_field(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    report = dict.fromkeys(("pytest_unlearn_version", "created", "exit_status", "settings"))
    report |= {"schema": SCHEMA, "records": [{"test_id": "b-f-forget", "outcome": "passed"}]}
    path.write_text(json.dumps(report))
    with pytest.raises(ReportSchemaError, match=r"record 0 \('b-f-forget'\) lacks nodeid"):
        load_report(path)


# -- the real suite ---------------------------------------------------------------------------


def test_real_do_nothing_run_reports_the_knn36_cases(
    with_examples: pytest.Pytester, unlearn_cache: Path, pytestconfig: pytest.Config
) -> None:
    with_examples.runpytest(
        "--unlearn-method=examples.do_nothing:unlearn",
        *unlearn_args(unlearn_cache),
        "-k",
        "knn36",
        *report_option(with_examples, pytestconfig, REPORT),
    )
    report = load_report(with_examples.path / REPORT)
    by_id = {record["test_id"]: record for record in report["records"]}
    assert sorted(by_id) == [f"digits-mlp-knn36-{s}" for s in ("forget", "retain", "validation")]
    forget = by_id["digits-mlp-knn36-forget"]
    assert (forget["outcome"], forget["verdict"]) == ("failed", "FAIL")
    assert forget["p95"] > forget["threshold"]
    assert forget["message"].startswith("P95 KLoM on the forget split")
    assert report["settings"]["n_models"] == 16
    for record in by_id.values():
        assert record["request"] == 1 and record["n_models"] == 16
        assert record["verdict"] == {"passed": "PASS", "failed": "FAIL"}[record["outcome"]]


# -- JUnit XML --------------------------------------------------------------------------------

FIGURE_PROPERTIES = {"unlearn_case", "unlearn_p95", "unlearn_threshold", "unlearn_verdict"}


def _junit_properties(path: Path) -> dict[str, set[str]]:
    """The property names of every testcase, by testcase name."""
    return {
        case.get("name", ""): {prop.get("name", "") for prop in case.iter("property")}
        for case in ET.parse(path).getroot().iter("testcase")
    }


def test_junit_default_family_has_the_figures_of_every_conformance_testcase(
    with_examples: pytest.Pytester, unlearn_cache: Path
) -> None:
    junit = with_examples.path / "junit.xml"
    with_examples.runpytest(
        "--unlearn-method=examples.do_nothing:unlearn",
        *unlearn_args(unlearn_cache),
        "-k",
        "knn36",
        f"--junitxml={junit}",
    )
    cases = _junit_properties(junit)
    assert sorted(cases) == [
        f"test_klom[digits-mlp-knn36-{s}]" for s in ("forget", "retain", "validation")
    ]
    for name, properties in cases.items():
        assert properties >= FIGURE_PROPERTIES, name


def test_junit_default_family_warns_that_record_property_is_not_xunit2(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    # pytest's default junit_family is xunit2, whose schema has no per-testcase <properties>:
    # pytest still writes them but warns once per test that calls record_property.
    result = run_fake(fake_project, pytestconfig, "--junitxml=junit.xml")
    assert "record_property is incompatible with junit_family 'xunit2'" in output(result)
    assert _junit_properties(fake_project.path / "junit.xml")["test_fails"] >= FIGURE_PROPERTIES


def test_junit_xunit1_family_has_the_figures_without_warning(
    fake_project: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    result = run_fake(
        fake_project, pytestconfig, "--junitxml=junit.xml", "-o", "junit_family=xunit1"
    )
    assert "incompatible with junit_family" not in output(result)
    assert _junit_properties(fake_project.path / "junit.xml")["test_fails"] >= FIGURE_PROPERTIES


# -- a report a CI gate can trust ---------------------------------------------------------------

KILLS_ITSELF = """
import os, signal

def unlearn(model, forget, retain, context):
    os.kill(os.getpid(), signal.SIGKILL)  # no interception can stop this one
"""


def test_a_run_that_dies_leaves_a_report_marked_incomplete(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    from pytest_unlearn.report.json_report import check_report

    pytester.makepyfile(mymethod=KILLS_ITSELF)
    report = pytester.path / "unlearn.json"
    report.write_text('{"schema": "an earlier, green run"}')
    result = pytester.runpytest_subprocess(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache, 2),
        f"--unlearn-report={report}", "-k", "knn36-forget",
    )  # fmt: skip
    assert result.ret != 0
    assert json.loads(report.read_text())["complete"] is False
    (problem,) = check_report(report)
    assert "ended before pytest's session did" in problem


def test_a_finished_run_records_how_many_tests_it_collected(
    pytester: pytest.Pytester, unlearn_cache: Path
) -> None:
    from pytest_unlearn.report.json_report import check_report

    pytester.makepyfile(mymethod=IDENTITY_METHOD)
    report = pytester.path / "unlearn.json"
    pytester.runpytest(
        "--unlearn-method=mymethod:unlearn", *unlearn_args(unlearn_cache),
        f"--unlearn-report={report}", "-k", "knn36",
    )  # fmt: skip
    loaded = load_report(report)
    assert loaded["complete"] is True and loaded["expected_records"] == 3
    assert len(loaded["records"]) == 3
    assert check_report(report) == [f"{report}: the run exited with status 1"]  # do-nothing fails


def test_check_report_wants_a_report(tmp_path: Path) -> None:
    from pytest_unlearn.report.json_report import check_report

    assert "no report" in check_report(tmp_path / "absent.json")[0]
