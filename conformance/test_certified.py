"""Certified claims: a method that declares (epsilon, delta) unlearning is held to it.

Collected only for a method decorated with ``@certified(...)``. Per forget set (and request):
the black-box audit (no test on the forget points may distinguish the unlearned models from
the oracles beyond what epsilon allows), and on benchmarks with an exact convex objective the
white-box checks (gradient residual within the reported bound, accumulated bounds within the
budget, the declared noise really there). See docs/certified.md.
"""

from __future__ import annotations

import pytest

from pytest_unlearn.harness.outcomes import one_line_failures, record_verdict

pytestmark = pytest.mark.unlearn


def test_certified(unlearn_certified_case, unlearn_evaluator, record_property) -> None:
    with one_line_failures():
        result = unlearn_evaluator.certify(unlearn_certified_case)
    record_verdict(result, record_property)
