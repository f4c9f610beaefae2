"""The plots (``--unlearn-plots=DIR``) and the per-point values they are drawn from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import IDENTITY_METHOD, output

# Loaded out here on purpose: an in-process pytester run drops the modules it imported, and
# matplotlib's C extensions are best imported once per process.
pytest.importorskip("matplotlib.backends.backend_agg")

from pytest_unlearn.figures import POINTS_PROPERTY, points_from_figures, points_property
from pytest_unlearn.report import plots
from pytest_unlearn.report.plots import PlotWriter, plot_filename
from pytest_unlearn.report.records import CaseRecord, RecordCollector

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = Path("plots")  # relative on purpose: resolved against the invocation dir
_ABSENT = object()


def record(
    forget_set: str, split: str, *, request: int | None = None, points: bool = True
) -> CaseRecord:
    """A record as the collector builds it from a conformance test's user properties."""
    sequential = request is not None
    test_id = f"bench-{forget_set}{f'-req{request}' if sequential else ''}-{split}"
    figures: dict[str, Any] = {
        "case": test_id,
        "benchmark": "bench",
        "forget_set": forget_set,
        "split": split,
        "request": request or 1,
        "n_models": 8,
        "p95": 0.9,
        "threshold": 1.0,
        "floor": 0.5,
        "do_nothing": 4.0,
        "separable": True,
        "verdict": "PASS",
    }
    if points:
        figures["points"] = points_property([0.1, 0.5, 0.9], [3.0, 4.0, 4.2], [0.2, 0.4, 0.5])
    return CaseRecord(test_id, f"test_x.py::test[{test_id}]", "passed", None, figures)


# -- file names and grouping ------------------------------------------------------------------


def test_file_name_has_a_request_suffix_only_for_sequential_cases() -> None:
    assert plot_filename("digits-mlp", "knn36") == "digits-mlp-knn36.png"
    assert plot_filename("digits-mlp", "seq3x12", 2) == "digits-mlp-seq3x12-req2.png"


def test_file_name_cannot_leave_the_directory() -> None:
    assert "/" not in plot_filename("../../etc", "a/b")


def test_one_png_per_benchmark_forget_set_and_request(tmp_path: Path) -> None:
    records = [record("a", split) for split in ("forget", "retain", "validation")]
    records += [record("s", "forget", request=k) for k in (1, 2)]
    written = PlotWriter(tmp_path).write(records)
    assert sorted(path.name for path in written) == [
        "bench-a.png",
        "bench-s-req1.png",
        "bench-s-req2.png",
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_written_files_are_pngs(tmp_path: Path) -> None:
    written = PlotWriter(tmp_path).write([record("a", "forget"), record("b", "retain")])
    assert len(written) == 2
    for path in written:
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_records_without_per_point_values_still_get_a_plot(tmp_path: Path) -> None:
    # Before the evaluator records unlearn_points, the P95 figures alone are drawn.
    written = PlotWriter(tmp_path).write([record("a", "forget", points=False)])
    assert [path.read_bytes()[:8] for path in written] == [PNG_MAGIC]


def test_records_without_a_benchmark_are_not_plotted(tmp_path: Path) -> None:
    errored = CaseRecord("bench-c-forget", "test_x.py::test[c]", "error", "boom", {"case": "x"})
    assert PlotWriter(tmp_path / "plots").write([errored]) == []
    assert not (tmp_path / "plots").exists()


def test_missing_matplotlib_is_one_warning_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what "not installed" looks like
    writer = PlotWriter(tmp_path)
    assert writer.write([record("a", "forget")]) == []
    assert len(writer.warnings) == 1
    assert "plots skipped: matplotlib is not installed" in writer.warnings[0]
    assert list(tmp_path.iterdir()) == []


def test_a_plotting_error_is_a_warning_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise ValueError("bad data")

    monkeypatch.setattr(plots, "render_group", broken)
    writer = PlotWriter(tmp_path)
    assert writer.write([record("a", "forget")]) == []
    assert writer.warnings == ["pytest-unlearn: could not draw bench-a.png: ValueError: bad data"]
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


# -- the per-point property -------------------------------------------------------------------


def test_points_property_is_plain_floats_rounded_to_4_decimals() -> None:
    np = pytest.importorskip("numpy")
    points = points_property(np.array([0.123456, 1.0]), [2.0], np.float32([0.5]))
    assert points == {"method": [0.1235, 1.0], "do_nothing": [2.0], "floor": [0.5]}
    assert all(type(value) is float for values in points.values() for value in values)


def test_points_property_accepts_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    points = points_property(torch.tensor([0.25]), torch.tensor([1.0]), torch.tensor([0.5]))
    assert points["method"] == [0.25]


def test_malformed_points_are_ignored() -> None:
    assert points_from_figures({"points": {"method": [1.0]}}) is None
    assert points_from_figures({"points": "0.1,0.2"}) is None
    assert points_from_figures({}) is None


def test_points_survive_xdist_report_serialization() -> None:
    # xdist ships a report as pytest_report_to_serializable's dict through execnet; the
    # controller rebuilds it from that: the points must come back as they were recorded.
    execnet = pytest.importorskip("execnet")
    points = points_property([0.1, 0.2], [3.0, 3.5], [0.15, 0.25])
    report = pytest.TestReport(
        "test_x.py::test[bench-a-forget]",
        ("test_x.py", 1, "test"),
        {},
        "passed",
        None,
        "call",
        user_properties=[("unlearn_case", "bench-a-forget"), (POINTS_PROPERTY, points)],
    )
    shipped = execnet.loads(execnet.dumps(report._to_json()))
    collector = RecordCollector()
    collector.add(pytest.TestReport._from_json(shipped))
    assert collector.records()[0].points == points


# -- through pytest ---------------------------------------------------------------------------

FAKE_SUITE = """
import pytest

from pytest_unlearn.figures import points_property


@pytest.mark.parametrize("split", ["forget", "retain", "validation"])
@pytest.mark.parametrize("forget_set", ["a", "b"])
def test_case(request, record_property, forget_set, split):
    request.node.user_properties.append(("unlearn_case", f"bench-{forget_set}-{split}"))
    figures = {
        "benchmark": "bench", "forget_set": forget_set, "split": split, "request": 1,
        "n_models": 4, "p95": 0.9, "threshold": 1.0, "floor": 0.5, "do_nothing": 4.0,
        "separable": True, "verdict": "PASS",
        "points": points_property([0.1, 0.9], [3.0, 4.0], [0.2, 0.5]),
    }
    for key, value in figures.items():
        record_property("unlearn_" + key, value)
"""


def plots_option(pytester: pytest.Pytester, pytestconfig: pytest.Config, path: Path) -> list[str]:
    """``--unlearn-plots`` once settings.py defines it (plugin.py then registers the writer);
    until then a conftest registers :class:`PlotWriter` on the controller, as plugin.py will."""
    if pytestconfig.getoption("unlearn_plots", default=_ABSENT) is not _ABSENT:
        return [f"--unlearn-plots={path}"]
    pytester.makeconftest(
        "from pytest_unlearn.report.plots import PlotWriter\n\n"
        "def pytest_configure(config):\n"
        "    if not hasattr(config, 'workerinput'):\n"
        f"        config.pluginmanager.register(PlotWriter({str(path)!r}), 'unlearn-plots')\n"
    )
    return []


def run_fake(pytester: pytest.Pytester, pytestconfig: pytest.Config) -> pytest.RunResult:
    pytester.makepyfile(mymethod=IDENTITY_METHOD, test_fake_conformance=FAKE_SUITE)
    return pytester.runpytest(
        "--unlearn-method=mymethod:unlearn",
        f"--unlearn-cache-dir={pytester.path / 'cache'}",
        "-k",
        "fake_conformance",
        *plots_option(pytester, pytestconfig, PLOTS),
    )


def test_run_writes_one_png_per_forget_set_and_names_the_directory(
    pytester: pytest.Pytester, pytestconfig: pytest.Config
) -> None:
    result = run_fake(pytester, pytestconfig)
    result.assert_outcomes(passed=6)
    directory = pytester.path / PLOTS
    assert sorted(path.name for path in directory.iterdir()) == ["bench-a.png", "bench-b.png"]
    result.stdout.fnmatch_lines([f"*pytest-unlearn plots: 2 PNG file(s) in {directory}*"])


def test_run_without_matplotlib_warns_in_the_summary_and_passes(
    pytester: pytest.Pytester, pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = run_fake(pytester, pytestconfig)
    assert result.ret == pytest.ExitCode.OK
    lines = [line for line in output(result).splitlines() if "matplotlib is not installed" in line]
    assert len(lines) == 1 and lines[0].startswith("pytest-unlearn: plots skipped")
    assert not (pytester.path / PLOTS).exists()
