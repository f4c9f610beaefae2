"""``benchmarks/results_table.py``: the command behind docs/results.md and its plot.

The table and plot are checked on hand-made reports (no training); one small end-to-end run
(do-nothing, N=2, quick profile, the shared cache) proves the command runs the suite.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import REPO_ROOT

from pytest_unlearn.report.json_report import RECORD_FIELDS

SCRIPT = REPO_ROOT / "benchmarks" / "results_table.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve the module's annotations through sys.modules.
    sys.modules["results_table"] = module
    spec.loader.exec_module(module)
    return module


def _record(case: str, split: str, p95: float, **figures: Any) -> dict[str, Any]:
    """A JSON report record of ``case`` ("benchmark/forget set[/request]") and ``split``."""
    benchmark, forget_set, *rest = case.split("/")
    request = int(rest[0]) if rest else 1
    test_id = f"{benchmark}-{forget_set}" + (f"-req{request}" if rest else "") + f"-{split}"
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    record.update(
        test_id=test_id,
        nodeid=f"test_klom.py::test_klom[{test_id}]",
        outcome="passed" if p95 <= 1.0 else "failed",
        benchmark=benchmark,
        forget_set=forget_set,
        request=request,
        split=split,
        n_models=4,
        p95=p95,
        threshold=1.0,
        separable=True,
        verdict="PASS" if p95 <= 1.0 else "FAIL",
        method_seconds_per_model=0.05,
        retrain_seconds_per_model=2.0,
        device="cpu",
    )
    record.update(figures)
    return record


def _failed_before_recording(test_id: str, request: int, message: str) -> dict[str, Any]:
    """The record of a test whose method raised: every figure null (benchmark and split too),
    only the id, the outcome and the message, as docs/reports.md describes."""
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    record.update(
        test_id=test_id,
        nodeid=f"test_klom.py::test_klom[{test_id}]",
        outcome="failed",
        request=request,
        message=message,
    )
    return record


def _report(*records: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": "pytest-unlearn-report/1",
        "pytest_unlearn_version": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "exit_status": 1,
        "settings": {"method": None, "n_models": 4, "devices": ["cpu"], "benchmarks": []},
        "records": list(records),
    }


def _reports() -> list[tuple[str, dict[str, Any]]]:
    splits = ("forget", "retain", "validation")
    retrain = _report(
        *(_record("b/knn", s, 0.5, method_seconds_per_model=1.5) for s in splits),
        *(_record("b/seq/2", s, 0.6, method_seconds_per_model=1.5) for s in splits),
        # Do-nothing passes this one's retain split too: a pass there proves nothing.
        _record("b/rand", "forget", 0.5, method_seconds_per_model=1.5),
        _record("b/rand", "retain", 0.5, method_seconds_per_model=1.5, separable=False,
                verdict="INCONCLUSIVE", outcome="skipped"),
        _record("b/rand", "validation", 0.5, method_seconds_per_model=1.5),
    )  # fmt: skip
    scrub = _report(
        _record("b/knn", "forget", 4.0),
        _record("b/knn", "retain", 2.0, separable=False),
        _record("b/knn", "validation", 0.5),
        *(_failed_before_recording(f"b-seq-req2-{s}", 2, "ValueError: boom") for s in splits),
        # A certified-claim check is no split test: left out of the table.
        _failed_before_recording("b-knn-whitebox", 1, "claim contradicted"),
    )
    return [("retrain", retrain), ("scrub", scrub)]


def test_cases_group_the_three_splits_in_table_order(results_table: ModuleType) -> None:
    cases = results_table.read_cases(_reports())
    # Per benchmark and forget set, methods in the table's order (retrain last).
    assert [(c.method, c.label) for c in cases] == [
        ("scrub", "knn"),
        ("retrain", "knn"),
        ("retrain", "rand"),
        ("scrub", "seq req2"),
        ("retrain", "seq req2"),
    ]
    scrub_knn, retrain_knn = cases[0], cases[1]
    assert scrub_knn.failed_splits == ["forget", "retain"] and not scrub_knn.passed
    assert retrain_knn.passed
    assert retrain_knn.ratio == pytest.approx(0.75)
    assert cases[2].inconclusive and not cases[2].passed
    assert cases[3].errors == ["ValueError: boom"] * 3


def test_markdown_has_a_row_per_case_with_p95_verdict_and_seconds(
    results_table: ModuleType,
) -> None:
    cases = results_table.read_cases(_reports())
    text = results_table.render_markdown(cases, {"command": "python x.py", "profile": "full"})
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    by_key = {(row.split(" | ")[0], row.split(" | ")[2]): row for row in rows if "cases" not in row}
    assert len(by_key) == 5
    scrub = by_key[("| `scrub`", "knn")].split(" | ")
    assert scrub[3:8] == ["**4.000**", "**2.000**", "0.500", "-", "FAIL (forget, retain)"]
    rand = by_key[("| `retrain`", "rand")].split(" | ")
    assert rand[3:8] == ["0.500", "0.500 †", "0.500", "-", "INCONCLUSIVE (retain)"]
    assert scrub[8:] == ["0.05", "2", "0.025x |"]
    assert by_key[("| `retrain`", "seq req2")].split(" | ")[7] == "PASS"
    assert "ERROR: ValueError: boom" in by_key[("| `scrub`", "seq req2")]
    # The summary: cases passed and the median compute ratio, per method and benchmark.
    assert "| `retrain` | 2/3 cases (1 inconclusive), score -, 0.75x |" in text
    assert "| `scrub` | 0/2 cases, score -, 0.025x |" in text
    assert "    python x.py" in text


def test_plot_is_a_png(results_table: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "plots" / "compute.png"
    results_table.plot(results_table.read_cases(_reports()), path)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_pytest_command_carries_the_overrides(results_table: ModuleType) -> None:
    args = results_table.parse_args(
        ["--benchmarks", "digits-mlp", "--models", "4", "--profile", "quick", "--workers", "2"]
    )
    command = results_table.pytest_command("scrub", Path("r.json"), args)
    assert command[:3] == [sys.executable, "-m", "pytest"]
    for expected in (
        "--unlearn-method=examples.scrub:unlearn",
        "--unlearn-benchmark=digits-mlp",
        "--unlearn-report=r.json",
        "--unlearn-models=4",
        "--unlearn-profile=quick",
    ):
        assert expected in command
    assert command[-4:] == ["-n", "2", "--dist", "load"]
    assert args.method_list == list(results_table.METHODS)


def test_unknown_method_is_a_usage_error(results_table: ModuleType) -> None:
    with pytest.raises(SystemExit) as raised:
        results_table.parse_args(["--methods", "finetune,no_such_method"])
    assert raised.value.code == 2


def test_small_run_writes_the_table_and_the_plot(tmp_path: Path, unlearn_cache: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    command = [
        sys.executable, str(SCRIPT), "--methods", "do_nothing", "--benchmarks", "digits-mlp",
        "--models", "2", "--profile", "quick", "--threads", "1",
        "--cache-dir", str(unlearn_cache), "--reports-dir", str(tmp_path / "reports"),
        "--output", str(tmp_path / "results.md"), "--plot", str(tmp_path / "compute.png"),
        "--readme", str(readme),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `do_")]
    # The quick profile: knn36 and the three requests of seq3x12 (the summary row aside).
    labels = [cells[2] for cells in rows if len(cells) > 3]
    assert labels == ["knn36", "seq3x12 req1", "seq3x12 req2", "seq3x12 req3"]
    assert (tmp_path / "compute.png").read_bytes().startswith(PNG_MAGIC)
    assert (tmp_path / "reports" / "do_nothing.json").is_file()
    updated = readme.read_text(encoding="utf-8")
    assert "old" not in updated and updated.endswith("<!-- results:end -->\nafter\n")
    assert "| `do_nothing` | 0/4 cases" in updated or "| `do_nothing` | 4/4 cases" in updated
    assert "](results.md)" in updated and "](compute.png)" in updated
