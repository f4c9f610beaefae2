"""Which ensemble size makes a case conclusive, as measured by ``benchmarks/bench_power.py``.

An inconclusive case says what N would make it conclusive. That comes from a measurement, not
a formula: ``bench_power.py --write`` builds each benchmark's store, calibrates every case at
N = 16, 30, 50 and 100, and records the smallest N at which the case can fail and do-nothing
fails it, in ``conclusive_sizes.json`` next to this module (docs/verdicts.md shows the table).
A measurement holds for the store it was made on: it is keyed by the benchmark's fingerprint,
and a store with another fingerprint gets no figure.

>>> conclusive_hint("no-such-benchmark", "0" * 16, "x-forget", 16)
'a larger --unlearn-models may make it conclusive (no measurement for this benchmark)'
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

#: Written by ``benchmarks/bench_power.py --write``; shipped with the package.
TABLE = Path(__file__).with_name("conclusive_sizes.json")


@cache
def _table() -> dict[str, Any]:
    try:
        return json.loads(TABLE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def conclusive_from(benchmark: str, fingerprint: str, case_id: str) -> tuple[bool, int | None]:
    """``(measured, N)``: whether this benchmark's store was measured, and the smallest
    measured N at which the case is conclusive (None: at none of the measured sizes)."""
    entry = _table().get("benchmarks", {}).get(benchmark)
    if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
        return False, None
    sizes = entry.get("conclusive_from", {})
    if case_id not in sizes:
        return False, None
    value = sizes[case_id]
    return True, int(value) if isinstance(value, int) else None


def measured_sizes(benchmark: str) -> list[int]:
    entry = _table().get("benchmarks", {}).get(benchmark, {})
    return [int(n) for n in entry.get("sizes", [])] if isinstance(entry, dict) else []


def conclusive_hint(benchmark: str, fingerprint: str, case_id: str, n_models: int) -> str:
    """What ensemble size would make the case conclusive, in words."""
    measured, smallest = conclusive_from(benchmark, fingerprint, case_id)
    if not measured:
        return (
            "a larger --unlearn-models may make it conclusive (no measurement for this benchmark)"
        )
    if smallest is None:
        largest = max(measured_sizes(benchmark), default=n_models)
        return (
            f"not conclusive at any measured N up to {largest} (docs/verdicts.md): on this "
            "benchmark the case does not separate do-nothing from exact retraining"
        )
    if smallest > n_models:
        return f"conclusive from --unlearn-models={smallest} (measured, docs/verdicts.md)"
    return (
        f"measured conclusive from N={smallest} (docs/verdicts.md), but not on this draw of "
        "the oracles: a larger --unlearn-models makes it more likely"
    )
