"""``--unlearn-baseline=REPORT.json``: gate on regressions against an earlier run, not on the
absolute verdict.

A method that fails every case today can still be kept from getting worse: each test compares
its P95 with the same test's P95 in the baseline report (for example the target branch's last
run) and fails only when the new one is worse by more than the noise of the statistic, the band
``z * sqrt(2) * sd`` the absolute verdict uses (docs/verdicts.md). A FAIL below the lower
threshold (closer to the oracles than retraining can be) still fails: that is evidence of a
cheat, whatever the baseline says. A test the baseline does not hold keeps its absolute verdict.

The comparison needs both runs on the same benchmark definitions and N (checked when the run
starts: a usage error otherwise) and on the same store (checked per benchmark as its first test
runs: the store's manifest digest is recorded in every record).

>>> report = {"settings": {"n_models": 16}, "records": [
...     {"test_id": "digits-mlp-knn36-forget", "p95": 10.92}]}
>>> baseline = Baseline.of(report, Path("main.json"), n_models=16, fingerprints={})
>>> baseline.record("digits-mlp-knn36-forget")["p95"]
10.92
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Comparison:
    """The outcome of one test against its baseline record."""

    regressed: bool
    baseline_p95: float
    baseline_score: float | None
    band: float  # how much worse than the baseline's P95 is still noise

    def message(self, case_id: str, p95: float, score: float | None) -> str:
        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}%"

        return (
            f"regression on {case_id}: P95 KLoM {p95:.3f} (score {pct(score)}) against the "
            f"baseline's {self.baseline_p95:.3f} (score {pct(self.baseline_score)}), worse by "
            f"{p95 - self.baseline_p95:.3f}, beyond the noise band of {self.band:.3f}"
        )


class Baseline:
    """An earlier run's records, by test id."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]], settings: dict) -> None:
        self.path = path
        self.records = records
        self.settings = settings

    @classmethod
    def of(
        cls,
        report: dict[str, Any],
        path: Path,
        *,
        n_models: int,
        fingerprints: dict[str, str],
        source: str = "--unlearn-baseline",
    ) -> Baseline:
        """Check a loaded baseline report against this run; ``pytest.UsageError`` names what
        does not fit (the plugin loads the file: reading reports is the report layer's)."""
        settings = report.get("settings") or {}
        if report.get("complete") is False:
            raise pytest.UsageError(
                f"{source}: {path} is the report of a run that did not end: no baseline"
            )
        recorded_n = settings.get("n_models")
        if recorded_n is not None and recorded_n != n_models:
            raise pytest.UsageError(
                f"{source}: {path} was recorded at N={recorded_n}, this run uses N={n_models}: "
                "a baseline must come from the same ensemble size"
            )
        recorded = settings.get("fingerprints") or {}
        for benchmark, fingerprint in fingerprints.items():
            if benchmark in recorded and recorded[benchmark] != fingerprint:
                raise pytest.UsageError(
                    f"{source}: {path} was recorded on another definition of {benchmark} "
                    f"(fingerprint {recorded[benchmark]}, this installation's {fingerprint}): "
                    "a baseline must come from the same benchmark and store"
                )
        records = {r["test_id"]: r for r in report["records"]}
        return cls(path, records, settings)

    def record(self, case_id: str) -> dict[str, Any] | None:
        """The baseline's record of a test, if it has figures to compare with."""
        record = self.records.get(case_id)
        if record is None or not isinstance(record.get("p95"), int | float):
            return None
        return record

    def store_mismatch(self, benchmark: str, store_id: str | None) -> str | None:
        """Why this benchmark's records cannot be compared (another store), or None."""
        stores = {
            r.get("store_id")
            for r in self.records.values()
            if r.get("benchmark") == benchmark and r.get("store_id")
        }
        if not stores or store_id is None or store_id in stores:
            return None
        return (
            f"the baseline {self.path} was recorded on another store of {benchmark} (manifest "
            f"digest {', '.join(sorted(stores))}, this run's {store_id}): regenerate the "
            "baseline with this store"
        )


def compare(p95: float, margin: float, record: dict[str, Any]) -> Comparison:
    """Whether ``p95`` is worse than the baseline record's beyond ``margin`` (the noise band of
    the difference of two draws of the statistic)."""
    baseline_p95 = float(record["p95"])
    score = record.get("score")
    return Comparison(
        regressed=p95 > baseline_p95 + margin,
        baseline_p95=baseline_p95,
        baseline_score=float(score) if isinstance(score, int | float) else None,
        band=margin,
    )
