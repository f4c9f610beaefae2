"""Certified claims: a method that declares (epsilon, delta) unlearning is held to it.

Collected only for a method decorated with ``@certified(...)``. Per forget set (and request):
the black-box audit (no test on the forget points may distinguish the unlearned models from
the oracles beyond what epsilon allows), and on benchmarks with an exact convex objective the
white-box checks (gradient residual within the reported bound, accumulated bounds within the
budget, the declared noise really there). See docs/certified.md.
"""

from __future__ import annotations

import pytest

from pytest_unlearn.harness.certified_checks import CheckUnavailable
from pytest_unlearn.harness.contract_checks import ContractViolation
from pytest_unlearn.harness.evaluator import FAILED_IN_ANOTHER_TEST

pytestmark = pytest.mark.unlearn


def test_certified(unlearn_certified_case, unlearn_evaluator, record_property) -> None:
    try:
        result = unlearn_evaluator.certify(unlearn_certified_case)
    except ContractViolation as violation:
        pytest.fail(f"contract violation: {violation}", pytrace=False)
    except FAILED_IN_ANOTHER_TEST as failure:
        pytest.fail(str(failure), pytrace=False)
    except CheckUnavailable as reason:
        pytest.skip(str(reason))
    for name, value in result.properties().items():
        record_property(name, value)
    if not result.passed:
        pytest.fail(result.explanation(), pytrace=False)
