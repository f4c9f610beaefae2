"""Compare JSON reports as a Markdown table, and merge the reports of sharded runs.

``python -m pytest_unlearn compare A.json B.json ...`` prints, per test, each report's score,
P95 and verdict, and whether each later report regressed against the first (beyond the noise
band the verdict uses), in a table suited to a pull-request comment or ``$GITHUB_STEP_SUMMARY``.
``python -m pytest_unlearn merge SHARD.json ... --out ALL.json`` joins the reports of a CI
matrix (one benchmark per job, say) into one report that ``compare`` and
``--unlearn-baseline`` accept.

Example::

    table = compare_reports([("main", main_report), ("pr", pr_report)])
    print(table)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..harness.baseline import compare
from .json_report import SCHEMA


class ReportMismatch(ValueError):
    """Reports that cannot be compared or merged (another N, another benchmark definition)."""


def _settings_key(report: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    settings = report.get("settings") or {}
    return settings.get("n_models"), dict(settings.get("fingerprints") or {})


def _check_comparable(named: Sequence[tuple[str, dict[str, Any]]]) -> None:
    first_name, first = named[0]
    n_first, fp_first = _settings_key(first)
    for name, report in named[1:]:
        n, fingerprints = _settings_key(report)
        if n_first is not None and n is not None and n != n_first:
            raise ReportMismatch(f"{name} was run at N={n}, {first_name} at N={n_first}")
        for benchmark, fingerprint in fingerprints.items():
            if benchmark in fp_first and fp_first[benchmark] != fingerprint:
                raise ReportMismatch(
                    f"{name} and {first_name} were run on different definitions of {benchmark} "
                    f"(fingerprints {fingerprint} and {fp_first[benchmark]})"
                )


def _margin(record: dict[str, Any]) -> float | None:
    threshold, floor = record.get("threshold"), record.get("floor")
    if isinstance(threshold, int | float) and isinstance(floor, int | float):
        return float(threshold) - float(floor)
    return None


def change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """``regression``, ``improvement`` or ``""`` (within noise, or nothing to compare).

    >>> change({"p95": 1.0}, {"p95": 3.0, "threshold": 1.5, "floor": 1.0})
    'regression'
    """
    if before is None or after is None:
        return ""
    old, new, margin = before.get("p95"), after.get("p95"), _margin(after)
    if not isinstance(old, int | float) or not isinstance(new, int | float) or margin is None:
        return ""
    if compare(new, margin, before).regressed:  # the rule --unlearn-baseline applies
        return "regression"
    if new < old - margin:
        return "improvement"
    return ""


def _cell(value: Any, pattern: str) -> str:
    return "-" if not isinstance(value, int | float) else pattern.format(value)


def compare_reports(named: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The Markdown comparison of ``(label, loaded report)`` pairs, the first the reference."""
    if len(named) < 1:
        raise ValueError("compare needs at least one report")
    _check_comparable(named)
    labels = [label for label, _ in named]
    by_label = [{r["test_id"]: r for r in report["records"]} for _, report in named]
    ids = sorted({test_id for records in by_label for test_id in records})
    lines = [f"### pytest-unlearn: {' vs '.join(f'`{label}`' for label in labels)}", ""]
    for label, report in named:
        settings = report.get("settings") or {}
        params = settings.get("params") or {}
        described = ", ".join(f"{k}={v}" for k, v in params.items())
        lines.append(
            f"* `{label}`: method `{settings.get('method')}`"
            + (f" ({described})" if described else "")
            + f", N={settings.get('n_models')}, exit status {report.get('exit_status')}"
        )
    lines.append("")
    header = ["test"]
    for position, label in enumerate(labels):
        header += [f"{label} score", f"{label} P95", f"{label} verdict"]
        if position:
            header.append(f"{label} vs {labels[0]}")
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    regressions = 0
    for test_id in ids:
        row = [test_id]
        for position, records in enumerate(by_label):
            record = records.get(test_id)
            if record is None:
                row += ["-", "-", "-"]
            else:
                row += [
                    _cell(record.get("score"), "{:.0f}%"),
                    _cell(record.get("p95"), "{:.3f}"),
                    str(record.get("verdict") or record.get("outcome")),
                ]
            if position:
                flag = change(by_label[0].get(test_id), record)
                regressions += flag == "regression"
                row.append(f"**{flag}**" if flag == "regression" else flag)
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"{regressions} regression(s) beyond noise against `{labels[0]}`. Score: the share of "
        "the gap between do-nothing (0%) and exact retraining (100%) a method closes.",
    ]
    return "\n".join(lines) + "\n"


def merge_reports(named: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One report holding the records of every shard; shards must agree on N and benchmark
    definitions, and a test in two shards must have the same record in both."""
    if not named:
        raise ValueError("merge needs at least one report")
    _check_comparable(named)
    records: dict[str, dict[str, Any]] = {}
    certified: dict[str, dict[str, Any]] = {}
    for name, report in named:
        for target, entries in ((records, report["records"]),
                                (certified, report.get("certified_records", []))):  # fmt: skip
            for record in entries:
                known = target.get(record["test_id"])
                if known is not None and known != record:
                    raise ReportMismatch(
                        f"{name} holds another record of {record['test_id']} than an earlier "
                        "shard: shards must not overlap"
                    )
                target[record["test_id"]] = record
    reports = [report for _, report in named]
    settings: dict[str, Any] = {}
    for report in reports:
        for key, value in (report.get("settings") or {}).items():
            if key == "fingerprints":
                settings.setdefault("fingerprints", {}).update(value or {})
            elif key in ("devices", "benchmarks"):
                settings[key] = sorted(set(settings.get(key, [])) | set(value or []))
            else:
                settings.setdefault(key, value)
    statuses = [r.get("exit_status") for r in reports]
    expected = [r.get("expected_records") for r in reports]
    return {
        "schema": SCHEMA,
        "pytest_unlearn_version": reports[0].get("pytest_unlearn_version"),
        "created": max(str(r.get("created")) for r in reports),
        "exit_status": None if None in statuses else max(statuses),
        "complete": all(r.get("complete", True) for r in reports),
        "expected_records": None if None in expected else sum(expected),  # type: ignore[arg-type]
        "settings": settings,
        "records": [records[k] for k in sorted(records)],
        "certified_records": [certified[k] for k in sorted(certified)],
        "merged_from": [name for name, _ in named],
    }
