"""Hyper-parameters of the example methods: defaults, per-benchmark values chosen by a sweep,
and the run's ``--unlearn-param`` overrides, in that order of precedence.

``examples/tuned.json`` is written by ``python benchmarks/sweep_examples.py --write``: for every
example and benchmark, the grid point with the best mean score on the quick profile at N=16
(method seeds apart from the evaluation's: ``--unlearn-seed=1000``), with the grid and the
scores behind the choice. Unknown keys in ``--unlearn-param`` are an error, so a typo in a
sweep cannot silently run the defaults.

>>> from types import SimpleNamespace
>>> context = SimpleNamespace(benchmark="no-such-benchmark", params={"lr": 0.5})
>>> choose("finetune", {"lr": 0.01, "epoch_fraction": 0.1}, context)
{'lr': 0.5, 'epoch_fraction': 0.1}
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

#: Written by benchmarks/sweep_examples.py --write.
TUNED = Path(__file__).with_name("tuned.json")


@cache
def _tuned() -> dict[str, Any]:
    try:
        return json.loads(TUNED.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def tuned(method: str, benchmark: str) -> dict[str, Any]:
    """The sweep's choice for ``method`` on ``benchmark`` (empty when it was not swept)."""
    entry = _tuned().get("methods", {}).get(method, {}).get(benchmark, {})
    return dict(entry.get("chosen", {}))


def choose(method: str, defaults: dict[str, Any], context: Any) -> dict[str, Any]:
    """``defaults``, then the tuned values for ``context.benchmark``, then ``context.params``."""
    params = dict(getattr(context, "params", None) or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"{method} has no hyper-parameter {', '.join(unknown)} "
            f"(it has {', '.join(sorted(defaults))})"
        )
    return {**defaults, **tuned(method, context.benchmark), **params}
