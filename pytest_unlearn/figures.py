"""The figures a conformance or certified test records: names, types, units and meaning, once.

A test records each figure as a ``("unlearn_<name>", value)`` user property, which pytest
carries to JUnit and xdist carries to the controller; every writer (the terminal tables, the
JSON report, the plots, ``compare``) reads the figures by the names declared here, and
``docs/reports.md`` describes the same list. A figure a test records that is not declared here
is a bug (``tests/test_figures.py``).

>>> FIGURES["p95"].meaning.split(":")[0]
'the verdict statistic'
>>> to_properties({"p95": 0.4})
{'unlearn_p95': 0.4}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

PREFIX = "unlearn_"
#: The user property that marks a report as a conformance test's, valued with its case id.
CASE_PROPERTY = PREFIX + "case"
#: The user property that marks a certified-claim test's report, valued with its id.
CERTIFIED_CASE_PROPERTY = PREFIX + "certified_case"
#: The user property carrying one split's per-point KLoM values (only with ``--unlearn-plots``).
POINTS_PROPERTY = PREFIX + "points"
#: The series of :data:`POINTS_PROPERTY`, each against oracle half A on the split's points.
POINT_SERIES = ("method", "do_nothing", "floor")
#: Enough for a plot (KLoM values live in [0, ~12]) and keeps the property a third of the size.
POINT_DECIMALS = 4

#: What a verdict's reason adds to it in tables and plots (plain PASS and FAIL-above say it all).
VERDICT_QUALIFIERS = {
    "below": "closer than retraining can be",
    "cannot-fail": "cannot fail at this N",
    "do-nothing-passes": "do-nothing passes too",
}


@dataclass(frozen=True)
class Figure:
    """One recorded figure: its name (without the ``unlearn_`` prefix), type, unit, meaning."""

    name: str
    type: str  # "float", "int", "bool", "str", "object"
    unit: str  # "KLoM (nats)", "%", "s", "", ...
    meaning: str


def _figures(*rows: tuple[str, str, str, str]) -> dict[str, Figure]:
    return {row[0]: Figure(*row) for row in rows}


#: The figures of a KLoM conformance test, in the order reports list them.
CASE_FIGURES = _figures(
    ("benchmark", "str", "", "benchmark name"),
    ("forget_set", "str", "", "forget set (or sequential schedule) name"),
    ("request", "int", "", "request of a sequential schedule, from 1; 1 when not sequential"),
    ("split", "str", "", "forget, retain or validation"),
    ("sequential", "bool", "", "whether the forget set is a sequential schedule"),
    ("n_models", "int", "models", "ensemble size N"),
    ("p95", "float", "KLoM (nats)",
     "the verdict statistic: 95th percentile over the split's points of KLoM(unlearned || "
     "oracle half A)"),
    ("mean", "float", "KLoM (nats)", "mean of the same per-point values"),
    ("median", "float", "KLoM (nats)", "median of the same per-point values"),
    ("floor", "float", "KLoM (nats)",
     "P95 of oracle half B against half A: one draw of what exact retraining scores"),
    ("null_median", "float", "KLoM (nats)",
     "median P95 over random half-splits of the pooled oracles"),
    ("null_sd", "float", "KLoM (nats)",
     "their standard deviation: the estimate of exact retraining's spread"),
    ("null_max", "float", "KLoM (nats)", "the largest of those P95s"),
    ("do_nothing", "float", "KLoM (nats)", "P95 of the pretrained models against half A"),
    ("threshold", "float", "KLoM (nats)",
     "above it the case fails: floor + z(1 - alpha) * sqrt(2) * null_sd"),
    ("lower_threshold", "float", "KLoM (nats)",
     "below it the case fails too (closer to the oracles than retraining can be)"),
    ("alpha", "float", "", "false-fail level of each tail for an exactly unlearning method"),
    ("separable", "bool", "", "whether do-nothing fails the case"),
    ("conclusive", "bool", "", "whether a pass means something: the case can fail and "
     "do-nothing fails it"),
    ("score", "float", "%",
     "share of the gap between do-nothing (0) and exact retraining (100) the method closes"),
    ("score_band", "float", "percentage points",
     "the score's noise band: exact retraining scores 100 +- it"),
    ("verdict", "str", "", "PASS, FAIL or INCONCLUSIVE"),
    ("verdict_reason", "str", "",
     "within (PASS), above or below (FAIL), cannot-fail or do-nothing-passes (INCONCLUSIVE)"),
    ("returned_input_unchanged", "bool", "",
     "every call handed back the parameters it received, bit for bit"),
    ("baseline_p95", "float", "KLoM (nats)", "the same test's P95 in --unlearn-baseline"),
    ("baseline_score", "float", "%", "the same test's score in --unlearn-baseline"),
    ("regression", "bool", "", "worse than the baseline beyond the noise band"),
    ("fingerprint", "str", "", "the benchmark definition's fingerprint"),
    ("store_id", "str", "", "digest of the store's manifest the figures come from"),
    ("method_seconds_per_model", "float", "s", "seconds of one method call on one model"),
    ("retrain_seconds_per_model", "float", "s",
     "seconds of one exact retraining on this kind of device, timed when the store was built "
     "(null when the store does not record it), for scale"),
    ("slower_than_retraining", "bool", "", "the method took longer than retraining"),
    ("device", "str", "", "torch device the case ran on"),
)  # fmt: skip

#: The figures of a certified-claim test (a check of an (epsilon, delta) claim).
CERTIFIED_FIGURES = _figures(
    ("benchmark", "str", "", "benchmark name"),
    ("forget_set", "str", "", "forget set name"),
    ("request", "int", "", "request of a sequential schedule, from 1"),
    ("sequential", "bool", "", "whether the forget set is a sequential schedule"),
    ("check", "str", "", "the check's registered name: blackbox, whitebox, ..."),
    ("n_models", "int", "models", "ensemble size N"),
    ("claimed_epsilon", "float", "", "the claim's epsilon"),
    ("claimed_delta", "float", "", "the claim's delta"),
    ("verdict", "str", "", "PASS, FAIL or INCONCLUSIVE"),
    ("eps_lb", "float", "", "lower bound on epsilon from a held-out distinguishing test"),
    ("max_refutable_epsilon", "float", "", "the largest epsilon this N can refute"),
    ("audit_rule", "str", "", "the distinguishing rule behind eps_lb"),
    ("audit_fpr_upper", "float", "", "Clopper-Pearson upper bound on its false-positive rate"),
    ("audit_fnr_upper", "float", "", "Clopper-Pearson upper bound on its false-negative rate"),
    ("audit_alpha", "float", "", "the audit's level"),
    ("max_gradient_residual", "float", "", "largest exact gradient residual over the models"),
    ("max_accumulated_bound", "float", "", "largest accumulated residual bound"),
    ("residual_budget", "float", "", "noise_std * epsilon / c"),
    ("measured_noise_std", "float", "", "standard deviation of the b behind the outputs"),
    ("declared_noise_std", "float", "", "the claim's noise_std"),
)  # fmt: skip

#: Every declared figure, by name.
FIGURES = {**CERTIFIED_FIGURES, **CASE_FIGURES}


def to_properties(figures: dict[str, Any]) -> dict[str, Any]:
    """``{"p95": 0.4}`` -> ``{"unlearn_p95": 0.4}``; an undeclared name is a ``KeyError``."""
    unknown = [name for name in figures if name not in FIGURES and name != "points"]
    if unknown:
        raise KeyError(f"undeclared figure(s) {unknown}: declare them in pytest_unlearn.figures")
    return {PREFIX + key: value for key, value in figures.items()}


def from_properties(properties: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`to_properties`, ignoring unrelated user properties.

    >>> from_properties([("unlearn_p95", 0.4), ("other", 1)])
    {'p95': 0.4}
    """
    return {key[len(PREFIX) :]: value for key, value in properties if key.startswith(PREFIX)}


def _plain_floats(values: Any) -> list[float]:
    """A 1-D numpy array, torch tensor or sequence as rounded Python floats.

    Python floats, not numpy scalars: execnet (xdist) serializes only builtin types.
    """
    import numpy as np

    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return [float(value) for value in np.round(array, POINT_DECIMALS)]


def points_property(method: Any, do_nothing: Any, floor: Any) -> dict[str, list[float]]:
    """The value of :data:`POINTS_PROPERTY` for one split: per-point KLoM of the method's
    models, of the pretrained models (do-nothing) and of oracle half B (the noise floor), each
    against oracle half A, as plain lists rounded to :data:`POINT_DECIMALS` decimals.

    >>> points_property([0.123456, 2.0], [5.0, 6.0], [0.1, 0.2])["method"]
    [0.1235, 2.0]
    """
    return {
        "method": _plain_floats(method),
        "do_nothing": _plain_floats(do_nothing),
        "floor": _plain_floats(floor),
    }


def points_from_figures(figures: dict[str, Any]) -> dict[str, list[float]] | None:
    """The per-point series of a record's figures, or None when absent or malformed.

    >>> points_from_figures({"points": {"method": [1.0], "do_nothing": [2.0], "floor": [0.5]}})
    {'method': [1.0], 'do_nothing': [2.0], 'floor': [0.5]}
    """
    points = figures.get("points")
    if not isinstance(points, dict):
        return None
    series: dict[str, list[float]] = {}
    for name in POINT_SERIES:
        values = points.get(name)
        if not isinstance(values, list | tuple) or not all(
            isinstance(value, int | float) and not isinstance(value, bool) for value in values
        ):
            return None
        series[name] = [float(value) for value in values]
    return series
