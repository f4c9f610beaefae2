"""``examples/plugin_package``: a method provided by an installable pluggy plugin.

Nothing is installed: the package directory goes on ``sys.path`` and ``-p MODULE`` loads the
module as its ``pytest11`` entry point would, which shows pytest-unlearn picks up its hook.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import CONFORMANCE_IDS, REPO_ROOT, conformance_ids, output, unlearn_args

from pytest_unlearn.report.json_report import load_report

PACKAGE = REPO_ROOT / "examples" / "plugin_package"
MODULE = "unlearn_example_plugin"


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The package importable as if installed (pytester's in-process runs share sys.path)."""
    monkeypatch.syspath_prepend(str(PACKAGE))


def test_entry_point_names_the_plugin_module() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text(encoding="utf-8"))
    entry_points = project["project"]["entry-points"]["pytest11"]
    assert list(entry_points.values()) == [MODULE]
    assert project["tool"]["setuptools"]["py-modules"] == [MODULE]
    assert (PACKAGE / f"{MODULE}.py").is_file()


def test_without_the_plugin_the_run_is_inert(pytester: pytest.Pytester, on_path: None) -> None:
    result = pytester.runpytest("--collect-only", "-q")
    assert conformance_ids(result) == []


def test_loading_the_plugin_supplies_the_method(pytester: pytest.Pytester, on_path: None) -> None:
    # No --unlearn-method: only the plugin's hook can have activated the suite.
    result = pytester.runpytest("-p", MODULE, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert conformance_ids(result) == CONFORMANCE_IDS


def test_the_plugins_method_runs_with_verdicts(
    pytester: pytest.Pytester, on_path: None, unlearn_cache: Path
) -> None:
    report = pytester.path / "unlearn.json"
    result = pytester.runpytest(
        "-p",
        MODULE,
        *unlearn_args(unlearn_cache, 4),
        f"--unlearn-report={report}",
        "-k",
        "knn36",
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), output(result)
    loaded = load_report(report)
    assert loaded["settings"]["method"] is None  # a hook-provided method, not an option
    records = loaded["records"]
    assert [r["test_id"] for r in records] == [c for c in CONFORMANCE_IDS if "knn36" in c]
    assert all(r["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE") for r in records)
