"""``compare`` (a Markdown table of reports) and ``merge`` (sharded runs into one report), on
hand-made reports."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_unlearn.report.compare import ReportMismatch, compare_reports, merge_reports
from pytest_unlearn.report.json_report import RECORD_FIELDS, SCHEMA


def _record(test_id: str, p95: float, **figures: Any) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
    record.update(
        test_id=test_id, nodeid=f"t::t[{test_id}]", outcome="failed", p95=p95,
        threshold=1.5, floor=1.0, score=50.0, verdict="FAIL", benchmark=test_id.split("-")[0],
    )  # fmt: skip
    record.update(figures)
    return record


def _report(*records: dict[str, Any], n: int = 16, fingerprint: str = "f1", **extra: Any) -> dict:
    return {
        "schema": SCHEMA, "pytest_unlearn_version": "0.1.0", "created": "2026-12-01T00:00:00+00:00",
        "exit_status": 1, "complete": True, "expected_records": len(records),
        "settings": {"method": "m:u", "n_models": n, "devices": ["cpu"], "benchmarks": ["b"],
                     "fingerprints": {"b": fingerprint}, "params": {"lr": 0.1}},
        "records": list(records), "certified_records": [], **extra,
    }  # fmt: skip


def test_compare_flags_a_regression_beyond_the_noise_band() -> None:
    main = _report(_record("b-knn-forget", 2.0), _record("b-knn-retain", 2.0))
    pr = _report(_record("b-knn-forget", 2.4), _record("b-knn-retain", 3.0))
    table = compare_reports([("main", main), ("pr", pr)])
    rows = {
        line.split(" | ")[0].strip("| "): line for line in table.splitlines() if "b-knn" in line
    }
    assert rows["b-knn-retain"].rstrip(" |").endswith("**regression**")  # 3.0 > 2.0 + 0.5
    assert "regression" not in rows["b-knn-forget"]  # 2.4 is within 2.0 + 0.5
    assert "1 regression(s) beyond noise against `main`" in table
    assert "method `m:u` (lr=0.1), N=16" in table


def test_compare_names_an_improvement() -> None:
    table = compare_reports(
        [
            ("main", _report(_record("b-knn-forget", 3.0))),
            ("pr", _report(_record("b-knn-forget", 1.0))),
        ]
    )
    assert "improvement" in table


def test_reports_of_another_n_cannot_be_compared() -> None:
    with pytest.raises(ReportMismatch, match="N=30"):
        compare_reports([("a", _report(n=16)), ("b", _report(n=30))])


def test_reports_of_another_benchmark_definition_cannot_be_compared() -> None:
    with pytest.raises(ReportMismatch, match="different definitions of b"):
        compare_reports([("a", _report(fingerprint="f1")), ("b", _report(fingerprint="f2"))])


def test_merge_joins_shards_into_one_loadable_report(tmp_path) -> None:
    import json

    from pytest_unlearn.report.json_report import load_report

    one = _report(_record("b-knn-forget", 1.0), exit_status=0)
    two = _report(_record("c-knn-forget", 2.0), fingerprint="f1")
    two["settings"]["fingerprints"] = {"c": "f9"}
    merged = merge_reports([("one", one), ("two", two)])
    assert [r["test_id"] for r in merged["records"]] == ["b-knn-forget", "c-knn-forget"]
    assert merged["exit_status"] == 1 and merged["expected_records"] == 2
    assert merged["settings"]["fingerprints"] == {"b": "f1", "c": "f9"}
    path = tmp_path / "all.json"
    path.write_text(json.dumps(merged))
    assert load_report(path)["complete"] is True


def test_merge_refuses_shards_that_disagree_on_a_test() -> None:
    with pytest.raises(ReportMismatch, match="must not overlap"):
        merge_reports(
            [("one", _report(_record("b-knn-forget", 1.0))),
             ("two", _report(_record("b-knn-forget", 2.0)))]
        )  # fmt: skip


def test_merge_of_an_incomplete_shard_is_incomplete() -> None:
    merged = merge_reports([("one", _report()), ("two", _report(complete=False))])
    assert merged["complete"] is False


def _write(tmp_path, name: str, report: dict) -> str:
    import json

    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report))
    return str(path)


def test_the_compare_command_prints_the_table(tmp_path, capsys) -> None:
    from pytest_unlearn.cli import main

    main_json = _write(tmp_path, "main", _report(_record("b-knn-forget", 2.0)))
    pr_json = _write(tmp_path, "pr", _report(_record("b-knn-forget", 3.0)))
    assert main(["compare", main_json, pr_json]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### pytest-unlearn: `main` vs `pr`")
    assert "**regression**" in out


def test_the_compare_command_refuses_reports_of_another_n_in_one_line(tmp_path, capsys) -> None:
    from pytest_unlearn.cli import main

    a = _write(tmp_path, "a", _report(n=16))
    b = _write(tmp_path, "b", _report(n=30))
    assert main(["compare", a, b]) == 2
    err = capsys.readouterr().err
    assert "cannot be compared" in err and len(err.strip().splitlines()) == 1


def test_the_merge_command_writes_a_report_compare_accepts(tmp_path, capsys) -> None:
    from pytest_unlearn.cli import main

    one = _write(tmp_path, "one", _report(_record("b-knn-forget", 1.0)))
    two = _write(tmp_path, "two", _report(_record("b-rnd-forget", 1.0)))
    merged = str(tmp_path / "all.json")
    assert main(["merge", one, two, "--out", merged]) == 0
    assert main(["compare", merged, one]) == 0


def test_the_check_report_command_fails_an_incomplete_report(tmp_path, capsys) -> None:
    from pytest_unlearn.cli import main

    path = _write(tmp_path, "r", _report(complete=False))
    assert main(["check-report", path]) == 1
    assert "ended before pytest's session did" in capsys.readouterr().err
